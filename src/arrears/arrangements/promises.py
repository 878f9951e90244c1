"""Promises to pay (承诺还款): whether a promise was kept, and the debtor acknowledgments (CN-26) that
promises, plans and payments give the limitation clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

import polars as pl

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


def promise_status_frame(
    promises: pl.DataFrame, payments: pl.DataFrame, *, as_of: date, grace_days: int
) -> pl.DataFrame:
    """Many promises on ``as_of`` at once (the daily run), as `evaluate_promise` would report them.

    ``promises``: ``promise_id, amount_minor, promised_on, made_on``; ``payments``:
    ``promise_id, received_on, amount_minor`` (the payments meant for each promise). Returns
    ``promise_id, status, paid_minor, deadline_on, kept_on, broken_on``, one row per promise.
    """
    if grace_days < 0:
        raise ValidationFailed("grace days cannot be negative", code="bad_grace_days")
    as_of_lit = pl.lit(as_of, dtype=pl.Date)
    made = promises.select(
        "promise_id",
        pl.col("amount_minor").cast(pl.Int64),
        pl.col("promised_on").cast(pl.Date),
        pl.col("made_on").cast(pl.Date),
    ).with_columns(deadline_on=pl.col("promised_on") + pl.duration(days=grace_days))
    counted = (
        payments.select(
            pl.col("promise_id").cast(made.schema["promise_id"]),
            pl.col("received_on").cast(pl.Date),
            pl.col("amount_minor").cast(pl.Int64).alias("paid"),
        )
        .join(made, on="promise_id")
        .filter(
            (pl.col("received_on") >= pl.col("made_on"))
            & (pl.col("received_on") <= pl.min_horizontal(as_of_lit, pl.col("deadline_on")))
        )
        .sort("promise_id", "received_on")
        .with_columns(running=pl.col("paid").cum_sum().over("promise_id"))
    )
    totals = counted.group_by("promise_id").agg(
        paid_minor=pl.col("paid").sum(),
        kept_on=pl.col("received_on").filter(pl.col("running") >= pl.col("amount_minor")).min(),
    )
    failed = as_of_lit > pl.col("deadline_on")
    return (
        made.join(totals, on="promise_id", how="left")
        .with_columns(pl.col("paid_minor").fill_null(0))
        .with_columns(
            status=pl.when(pl.col("kept_on").is_not_null())
            .then(pl.lit(PromiseState.KEPT.value))
            .when(failed & (pl.col("paid_minor") > 0))
            .then(pl.lit(PromiseState.PARTLY_KEPT.value))
            .when(failed)
            .then(pl.lit(PromiseState.BROKEN.value))
            .otherwise(pl.lit(PromiseState.PENDING.value)),
        )
        .with_columns(
            broken_on=pl.when(pl.col("kept_on").is_null() & failed).then(
                pl.col("deadline_on") + pl.duration(days=1)
            )
        )
        .select("promise_id", "status", "paid_minor", "deadline_on", "kept_on", "broken_on")
        .sort("promise_id")
    )


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
