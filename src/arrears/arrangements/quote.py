"""Quote an arrangement without saving it: the schedule, totals, waivers by component, and whether it is
within the portfolio's policy or needs a supervisor's approval (and why, in zh_CN and en).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from arrears.arrangements.policy import BPS, ArrangementPolicy, PolicyFinding, finding
from arrears.arrangements.schedule import instalment_schedule, months_between
from arrears.arrangements.schemas import (
    ArrangementKind,
    Frequency,
    InstalmentKind,
    MonthEnd,
    ScheduledInstalment,
)
from arrears.enums import Component
from arrears.errors import ValidationFailed

# --- what the collector asks for ---------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_waivers(waivers: dict[Component, int]) -> dict[Component, int]:
    if any(amount < 0 for amount in waivers.values()):
        raise ValueError("a waiver cannot be negative")
    return waivers


class LumpSumRequest(_Request):
    """Pay the whole balance at once, on ``pay_on``."""

    kind: Literal[ArrangementKind.LUMP_SUM] = ArrangementKind.LUMP_SUM
    pay_on: date


class InstalmentRequest(_Request):
    """Pay the balance (less any ``waivers``) in ``count`` regular instalments, after an optional down
    payment.
    """

    kind: Literal[ArrangementKind.INSTALMENTS] = ArrangementKind.INSTALMENTS
    count: int = Field(ge=1)
    frequency: Frequency = Frequency.MONTHLY
    first_on: date
    down_payment_minor: int = Field(default=0, ge=0)
    down_payment_on: date | None = None
    rounding_unit_minor: int = Field(default=1, ge=1)
    month_end: MonthEnd = MonthEnd.CLAMP
    waivers: dict[Component, int] = Field(default_factory=dict)

    @field_validator("waivers")
    @classmethod
    def _waivers_ok(cls, waivers: dict[Component, int]) -> dict[Component, int]:
        return _check_waivers(waivers)


class ExtensionRequest(_Request):
    """Move the due date of the whole balance to ``new_due_on`` (grace period), pausing accrual or not.

    The extension's length is counted from the quote date. Without a pause, interest and penalty keep
    accruing (the ledger's business): the quoted amount is today's balance.
    """

    kind: Literal[ArrangementKind.EXTENSION] = ArrangementKind.EXTENSION
    new_due_on: date
    accrual_paused: bool = False


class SettlementRequest(_Request):
    """Settle for less: either a ``settle_minor`` amount (the rest is waived in the policy's waiver order) or
    explicit per-component ``waivers``; paid in ``payments`` payments from ``first_on``.
    """

    kind: Literal[ArrangementKind.SETTLEMENT] = ArrangementKind.SETTLEMENT
    settle_minor: int | None = Field(default=None, gt=0)
    waivers: dict[Component, int] | None = None
    payments: int = Field(default=1, ge=1)
    first_on: date
    frequency: Frequency = Frequency.MONTHLY

    @field_validator("waivers")
    @classmethod
    def _waivers_ok(cls, waivers: dict[Component, int] | None) -> dict[Component, int] | None:
        return None if waivers is None else _check_waivers(waivers)


class PaymentInKindRequest(_Request):
    """Transfer an asset at an agreed value (以物抵债); any shortfall stays due unless ``waive_shortfall``."""

    kind: Literal[ArrangementKind.PAYMENT_IN_KIND] = ArrangementKind.PAYMENT_IN_KIND
    asset_description: str = Field(min_length=1)
    agreed_value_minor: int = Field(gt=0)
    transfer_on: date
    waive_shortfall: bool = False


ArrangementRequest = Annotated[
    LumpSumRequest | InstalmentRequest | ExtensionRequest | SettlementRequest | PaymentInKindRequest,
    Field(discriminator="kind"),
]


@dataclass(frozen=True, slots=True)
class Balances:
    """What the debtor owes on the account(s) the plan covers, by component, and since when.

    ``due_on`` is the earliest unpaid due date (for days past due); ``None`` means not overdue.
    """

    currency: str
    by_component: Mapping[Component, int] = field(default_factory=dict)
    due_on: date | None = None

    @property
    def total_minor(self) -> int:
        """The whole balance."""
        return sum(self.by_component.values())

    def dpd(self, as_of: date) -> int:
        """Days past due on ``as_of``."""
        return max(0, (as_of - self.due_on).days) if self.due_on else 0


# --- what the quote says -----------------------------------------------------------------------------


class Quote(BaseModel):
    """A previewed plan. Nothing is saved; a service stores it once agreed (and approved if needed)."""

    model_config = ConfigDict(frozen=True)

    kind: ArrangementKind
    currency: str
    as_of: date
    dpd: int
    balance_minor: int
    balance_by_component: dict[Component, int]
    waiver_by_component: dict[Component, int]
    waived_minor: int
    payable_minor: int
    remaining_minor: int  # still owed once the plan is carried out (payment in kind without a waiver)
    discount_bps: int  # waived / balance, rounded up to a basis point (display; checks are exact)
    schedule: tuple[ScheduledInstalment, ...]
    instalment_count: int  # regular instalments (a down payment is not counted)
    last_due_on: date
    term_months: int
    extension_days: int | None = None
    accrual_paused: bool = False
    asset_description: str | None = None
    asset_value_minor: int | None = None
    within_policy: bool = True
    limits_exceeded: tuple[PolicyFinding, ...] = ()
    requires_approval: bool = False
    approval_reasons: tuple[PolicyFinding, ...] = ()
    policy_name: str = ""
    policy_version: int = 0


# --- the maths ---------------------------------------------------------------------------------------


def allocate_waiver(amount_minor: int, balances: Balances, policy: ArrangementPolicy) -> dict[Component, int]:
    """Spread a waiver over components in the policy's waiver order (penalty and interest before
    principal): first up to what each component may have waived within policy, then, only if that is
    not enough, beyond it in the same order (such a quote is outside policy and needs approval).
    """
    if amount_minor < 0 or amount_minor > balances.total_minor:
        raise ValidationFailed("the waiver must be between zero and the balance", code="bad_waiver")
    waived = dict.fromkeys(Component, 0)
    left = amount_minor
    for capped in (True, False):
        for component in policy.waiver_order:
            owed = balances.by_component.get(component, 0)
            room = (policy.component_cap_minor(component, owed) if capped else owed) - waived[component]
            take = min(left, max(room, 0))
            waived[component] += take
            left -= take
    return waived


def _explicit_waivers(waivers: Mapping[Component, int], balances: Balances) -> dict[Component, int]:
    waived = dict.fromkeys(Component, 0)
    for component, amount in waivers.items():
        if amount > balances.by_component.get(component, 0):
            raise ValidationFailed(f"cannot waive more {component} than is owed", code="waiver_above_balance")
        waived[component] = amount
    return waived


def _not_before(on: date, as_of: date, what: str) -> None:
    if on < as_of:
        raise ValidationFailed(f"{what} cannot be before the quote date", code="date_in_past")


def policy_findings(quote: Quote, policy: ArrangementPolicy) -> tuple[PolicyFinding, ...]:
    """The policy limits a quote exceeds (empty = within policy)."""
    found: list[PolicyFinding] = []
    cur = quote.currency
    if quote.waived_minor > 0:
        max_bps = policy.max_discount_bps(quote.dpd, quote.balance_minor)
        if quote.waived_minor * BPS > quote.balance_minor * max_bps:
            found.append(
                finding(
                    "discount_above_band", limit=max_bps, actual=quote.discount_bps, unit="bps", currency=cur
                )
            )
        for component in policy.waiver_order:
            waived = quote.waiver_by_component.get(component, 0)
            cap = policy.component_cap_minor(component, quote.balance_by_component.get(component, 0))
            if waived > cap:
                found.append(
                    finding(
                        "component_waiver_above_limit",
                        limit=cap,
                        actual=waived,
                        unit="minor",
                        currency=cur,
                        component=component,
                    )
                )
    if quote.kind is ArrangementKind.INSTALMENTS:
        if quote.instalment_count > policy.max_instalments:
            found.append(
                finding(
                    "too_many_instalments",
                    limit=policy.max_instalments,
                    actual=quote.instalment_count,
                    unit="count",
                    currency=cur,
                )
            )
        regular = [line.amount_minor for line in quote.schedule if line.kind is InstalmentKind.REGULAR]
        if regular and min(regular) < policy.min_instalment_minor:
            found.append(
                finding(
                    "instalment_below_minimum",
                    limit=policy.min_instalment_minor,
                    actual=min(regular),
                    unit="minor",
                    currency=cur,
                )
            )
    if quote.kind is ArrangementKind.SETTLEMENT and len(quote.schedule) > policy.max_settlement_payments:
        found.append(
            finding(
                "too_many_settlement_payments",
                limit=policy.max_settlement_payments,
                actual=len(quote.schedule),
                unit="count",
                currency=cur,
            )
        )
    if quote.extension_days is not None and quote.extension_days > policy.max_extension_days:
        found.append(
            finding(
                "extension_too_long",
                limit=policy.max_extension_days,
                actual=quote.extension_days,
                unit="days",
                currency=cur,
            )
        )
    if quote.term_months > policy.max_term_months:
        found.append(
            finding(
                "term_too_long",
                limit=policy.max_term_months,
                actual=quote.term_months,
                unit="months",
                currency=cur,
            )
        )
    return tuple(found)


def approval_reasons(quote: Quote, policy: ArrangementPolicy) -> tuple[PolicyFinding, ...]:
    """Why a quote needs a supervisor's approval (empty = a collector may agree it alone)."""
    cur = quote.currency
    limits = policy.approval
    reasons: list[PolicyFinding] = []
    if policy_findings(quote, policy):
        reasons.append(finding("outside_policy", limit=0, actual=0, unit="count", currency=cur))
    if quote.kind in limits.kinds:
        reasons.append(finding("approval_kind", limit=0, actual=quote.kind.value, unit="kind", currency=cur))
    if limits.discount_bps_over is not None and (
        quote.waived_minor * BPS > quote.balance_minor * limits.discount_bps_over
    ):
        reasons.append(
            finding(
                "approval_discount_over",
                limit=limits.discount_bps_over,
                actual=quote.discount_bps,
                unit="bps",
                currency=cur,
            )
        )
    if limits.waiver_minor_over is not None and quote.waived_minor > limits.waiver_minor_over:
        reasons.append(
            finding(
                "approval_waiver_over",
                limit=limits.waiver_minor_over,
                actual=quote.waived_minor,
                unit="minor",
                currency=cur,
            )
        )
    if limits.instalments_over is not None and quote.instalment_count > limits.instalments_over:
        reasons.append(
            finding(
                "approval_instalments_over",
                limit=limits.instalments_over,
                actual=quote.instalment_count,
                unit="count",
                currency=cur,
            )
        )
    if limits.accrual_pause and quote.accrual_paused:
        reasons.append(finding("approval_accrual_pause", limit=0, actual=0, unit="count", currency=cur))
    return tuple(reasons)


def needs_approval(quote: Quote, policy: ArrangementPolicy) -> bool:
    """Whether a supervisor must approve the plan: it is outside policy, or above an approval threshold."""
    return bool(approval_reasons(quote, policy))


def quote(request: ArrangementRequest, balances: Balances, policy: ArrangementPolicy, as_of: date) -> Quote:
    """Preview a plan for ``balances`` under ``policy`` on ``as_of`` without saving anything."""
    if balances.currency != policy.currency:
        raise ValidationFailed(
            f"the policy is for {policy.currency}, the balance is in {balances.currency}",
            code="currency_mismatch",
        )
    if any(amount < 0 for amount in balances.by_component.values()):
        raise ValidationFailed("a balance component cannot be negative", code="bad_balance")
    total = balances.total_minor
    if total <= 0:
        raise ValidationFailed("nothing is owed", code="nothing_owed")

    waived = dict.fromkeys(Component, 0)
    extension_days: int | None = None
    accrual_paused = False
    asset: tuple[str, int] | None = None
    remaining = 0
    match request:
        case LumpSumRequest():
            _not_before(request.pay_on, as_of, "the payment date")
            schedule: tuple[ScheduledInstalment, ...] = (ScheduledInstalment(1, request.pay_on, total),)
        case InstalmentRequest():
            _not_before(request.down_payment_on or request.first_on, as_of, "the first payment")
            waived = _explicit_waivers(request.waivers, balances)
            schedule = instalment_schedule(
                total - sum(waived.values()),
                request.count,
                request.frequency,
                request.first_on,
                down_payment_minor=request.down_payment_minor,
                down_payment_on=request.down_payment_on,
                rounding_unit_minor=request.rounding_unit_minor,
                month_end=request.month_end,
            )
        case ExtensionRequest():
            _not_before(request.new_due_on, as_of, "the new due date")
            extension_days = (request.new_due_on - as_of).days
            accrual_paused = request.accrual_paused
            schedule = (ScheduledInstalment(1, request.new_due_on, total),)
        case SettlementRequest():
            _not_before(request.first_on, as_of, "the first payment")
            if (request.settle_minor is None) == (request.waivers is None):
                raise ValidationFailed(
                    "a settlement needs either an amount to settle for or waivers, not both",
                    code="bad_settlement",
                )
            if request.settle_minor is not None:
                if request.settle_minor > total:
                    raise ValidationFailed("the settlement is above the balance", code="bad_settlement")
                waived = allocate_waiver(total - request.settle_minor, balances, policy)
            else:
                waived = _explicit_waivers(request.waivers or {}, balances)
            if sum(waived.values()) >= total:
                raise ValidationFailed("a settlement cannot waive the whole balance", code="bad_settlement")
            schedule = instalment_schedule(
                total - sum(waived.values()), request.payments, request.frequency, request.first_on
            )
        case PaymentInKindRequest():
            _not_before(request.transfer_on, as_of, "the transfer date")
            if request.agreed_value_minor > total:
                raise ValidationFailed(
                    "the asset's agreed value is above the balance", code="asset_value_above_balance"
                )
            shortfall = total - request.agreed_value_minor
            if request.waive_shortfall:
                waived = allocate_waiver(shortfall, balances, policy)
            else:
                remaining = shortfall
            asset = (request.asset_description, request.agreed_value_minor)
            schedule = (
                ScheduledInstalment(
                    1, request.transfer_on, request.agreed_value_minor, InstalmentKind.IN_KIND
                ),
            )

    waived_minor = sum(waived.values())
    last_due_on = max(line.due_on for line in schedule)
    draft = Quote(
        kind=request.kind,
        currency=balances.currency,
        as_of=as_of,
        dpd=balances.dpd(as_of),
        balance_minor=total,
        balance_by_component={c: balances.by_component.get(c, 0) for c in Component},
        waiver_by_component=waived,
        waived_minor=waived_minor,
        payable_minor=sum(line.amount_minor for line in schedule),
        remaining_minor=remaining,
        discount_bps=-(-waived_minor * BPS // total),
        schedule=schedule,
        instalment_count=sum(1 for line in schedule if line.kind is not InstalmentKind.DOWN_PAYMENT),
        last_due_on=last_due_on,
        term_months=months_between(as_of, last_due_on),
        extension_days=extension_days,
        accrual_paused=accrual_paused,
        asset_description=asset[0] if asset else None,
        asset_value_minor=asset[1] if asset else None,
        policy_name=policy.name,
        policy_version=policy.version,
    )
    limits = policy_findings(draft, policy)
    reasons = approval_reasons(draft, policy)
    return draft.model_copy(
        update={
            "within_policy": not limits,
            "limits_exceeded": limits,
            "requires_approval": bool(reasons),
            "approval_reasons": reasons,
        }
    )
