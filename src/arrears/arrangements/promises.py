"""Promises to pay (承诺还款): whether a promise was kept, and the debtor acknowledgments (CN-26) that
promises, plans and payments give the limitation clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from arrears.arrangements.schemas import Arrangement, ArrangementKind, Payment
from arrears.enums import Channel
from arrears.errors import ValidationFailed


class PromiseState(StrEnum):
    """Where a promise stands on a date."""

    PENDING = "pending"  # not yet paid in full, the deadline has not passed
    KEPT = "kept"  # paid in full by the deadline
    PARTLY_KEPT = "partly_kept"  # the deadline passed with part of the amount paid
    BROKEN = "broken"  # the deadline passed with nothing paid


@dataclass(frozen=True, slots=True)
class Promise:
    """The debtor's promise to pay ``amount_minor`` by ``promised_on``, taken on ``made_on`` by ``taken_by``
    over ``channel``.
    """

    amount_minor: int
    currency: str
    promised_on: date
    made_on: date
    channel: Channel
    taken_by: str
    ref: str | None = None

    def __post_init__(self) -> None:
        if self.amount_minor <= 0:
            raise ValidationFailed("a promise needs a positive amount", code="bad_promise_amount")
        if self.promised_on < self.made_on:
            raise ValidationFailed(
                "a promise cannot be for a date before it was made", code="bad_promise_date"
            )


@dataclass(frozen=True, slots=True)
class PromiseOutcome:
    """A promise's state on a date, with the money counted towards it and the dates that matter.

    ``deadline_on`` is the last day a payment still counts (promised date + grace days); ``broken_on`` is
    the day after it, set once the promise has failed (broken or only partly kept).
    """

    status: PromiseState
    paid_minor: int
    deadline_on: date
    kept_on: date | None = None
    broken_on: date | None = None


def evaluate_promise(
    promise: Promise, payments: Iterable[Payment], as_of: date, grace_days: int
) -> PromiseOutcome:
    """Evaluate a promise on ``as_of`` (payments received on ``as_of`` count).

    Payments received from the day the promise was made up to the deadline (``promised_on`` +
    ``grace_days``) count towards it; later ones do not mend it. Every payment in the list is counted: a
    caller with several open promises on one account passes each the payments that are meant for it.
    """
    if grace_days < 0:
        raise ValidationFailed("grace days cannot be negative", code="bad_grace_days")
    deadline = promise.promised_on + timedelta(days=grace_days)
    last_counted = min(as_of, deadline)
    paid = 0
    kept_on: date | None = None
    for payment in sorted(payments, key=lambda p: p.received_on):
        if payment.currency != promise.currency:
            raise ValidationFailed("a payment in another currency than the promise", code="currency_mismatch")
        if payment.received_on < promise.made_on or payment.received_on > last_counted:
            continue
        paid += payment.amount_minor
        if kept_on is None and paid >= promise.amount_minor:
            kept_on = payment.received_on
    if kept_on is not None:
        return PromiseOutcome(PromiseState.KEPT, paid, deadline, kept_on=kept_on)
    if as_of > deadline:
        state = PromiseState.PARTLY_KEPT if paid > 0 else PromiseState.BROKEN
        return PromiseOutcome(state, paid, deadline, broken_on=deadline + timedelta(days=1))
    return PromiseOutcome(PromiseState.PENDING, paid, deadline)


def promise_status(
    promise: Promise, payments: Iterable[Payment], as_of: date, grace_days: int
) -> PromiseState:
    """``kept``, ``partly_kept``, ``broken`` or ``pending`` on ``as_of`` (see `evaluate_promise`)."""
    return evaluate_promise(promise, payments, as_of, grace_days).status


# --- acknowledgments for the limitation clock (CN-26) -------------------------------------------------


class AcknowledgmentKind(StrEnum):
    """Acts by which the debtor acknowledges the debt (CN-26: they interrupt the limitation period)."""

    PROMISE_TO_PAY = "promise_to_pay"
    PAYMENT = "payment"  # a partial or instalment payment
    REPAYMENT_PLAN = "repayment_plan"  # an agreed plan: instalments, settlement, lump sum, payment in kind
    EXTENSION_REQUEST = "extension_request"


ACKNOWLEDGMENT_RULE = "CN-26"


@dataclass(frozen=True, slots=True, order=True)
class AcknowledgmentEvent:
    """One acknowledgment, for the limitation module: what, on which day, and the record it comes from."""

    occurred_on: date
    kind: AcknowledgmentKind
    source: str
    rule_id: str = ACKNOWLEDGMENT_RULE


def _source(prefix: str, ref: str | None, on: date) -> str:
    return f"{prefix}:{ref}" if ref else f"{prefix}@{on.isoformat()}"


def acknowledgment_events(
    *,
    promises: Iterable[Promise] = (),
    arrangements: Iterable[Arrangement] = (),
    payments: Iterable[Payment] = (),
) -> tuple[AcknowledgmentEvent, ...]:
    """The debtor's acknowledgments of the debt, oldest first (CN-26).

    A promise counts on the day it was made (not the day promised), a plan on the day it was agreed (an
    extension as a request for extension), a payment on the day it was received. Whether an
    acknowledgment restarts the clock under a given rule pack is the limitation module's decision.
    """
    events = [
        AcknowledgmentEvent(
            p.made_on, AcknowledgmentKind.PROMISE_TO_PAY, _source("promise", p.ref, p.made_on)
        )
        for p in promises
    ]
    for plan in arrangements:
        kind = (
            AcknowledgmentKind.EXTENSION_REQUEST
            if plan.kind is ArrangementKind.EXTENSION
            else AcknowledgmentKind.REPAYMENT_PLAN
        )
        events.append(AcknowledgmentEvent(plan.agreed_on, kind, f"arrangement:{plan.ref}"))
    events.extend(
        AcknowledgmentEvent(
            p.received_on, AcknowledgmentKind.PAYMENT, _source("payment", p.ref, p.received_on)
        )
        for p in payments
    )
    return tuple(sorted(events))
