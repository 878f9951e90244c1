"""Accrual: contract interest and penalty interest, day by day, under the caps.

For each day an account is active, each of the two components accrues ``base x annual rate x day
fraction``, where the base is configured per account (the principal balance, the overdue principal for
instalment products, or nothing) and the day fraction follows the portfolio's day-count convention
(ACT/365, ACT/360 or 30/360). Floating products take the one-year LPR in force on each day plus their margin.

Rounding without drift: exact amounts are kept in integer *sub-units* (1 minor unit =
`SUB_UNITS_PER_MINOR`, a multiple of both 365 and 360 days times one ppm, so a day's exact amount is always
a whole number of sub-units). The amount posted for a day is the difference of the rounded cumulative
amounts; only the residual of the cumulative (the *carry*, ``exact - rounded``, smaller than one minor unit)
is stored. Any run of days therefore posts exactly ``round(exact total)``, whatever the split into days.

Caps: contract interest, penalty interest and fees together never exceed the account's cap
(`caps.cap_amount`: annual cap x contract principal x days since the contract date). For private lending
the cap is CN-30's 4 x the one-year LPR at the contract date; licensed lenders' products have their own.
When the cap binds, contract interest is kept before penalty interest and the excess is dropped (never
carried to a later day); the posting that was cut carries the cap's rule id.

Accrual stops for a settled, written-off or closed account, and from an account's stop date (set when a
rule flags it, e.g. a court order). Stopped days still count as processed. Re-running a day already accrued
adds nothing: `accrue` starts after ``state.accrued_through_date``.

The base is taken as constant over the days of one call: the caller accrues up to the day before a balance
changes (the daily run accrues one day at a time). `accrual_frame.accrue_frame` is the set-based twin for
one day and must give the same amounts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import StrEnum

from arrears.enums import AccountStatus, Component, Product
from arrears.errors import ValidationFailed
from arrears.ledger.caps import PPM, CapTable, LprTable, cap_amount
from arrears.ledger.postings import Posting, PostingKind

#: Sub-units per minor unit: lcm(365, 360) x one ppm. A day's exact accrual in sub-units is
#: base x rate_ppm x (units per day): 72 for ACT/365, 73 for ACT/360 and per 30/360 day.
SUB_UNITS_PER_MINOR = 26_280 * PPM
UNITS_PER_DAY_ACT_365 = 26_280 // 365
UNITS_PER_DAY_360 = 26_280 // 360

STOPPED_STATUSES = frozenset({AccountStatus.SETTLED, AccountStatus.WRITTEN_OFF, AccountStatus.CLOSED})


class DayCount(StrEnum):
    """Day-count conventions (a portfolio setting)."""

    ACT_365 = "ACT/365"  # actual days / 365 (fixed, also in leap years)
    ACT_360 = "ACT/360"  # actual days / 360
    THIRTY_360 = "30/360"  # ISDA 30/360 bond basis: months of 30 days, years of 360


class Rounding(StrEnum):
    """How the exact cumulative accrual is rounded to minor units (a portfolio setting)."""

    HALF_UP = "half_up"
    DOWN = "down"


class RateBasis(StrEnum):
    """Fixed rates, or rates floating on the one-year LPR (the account's rates are then margins)."""

    FIXED = "fixed"
    LPR_1Y = "lpr_1y"


class AccrualBase(StrEnum):
    """What a rate applies to."""

    PRINCIPAL = "principal"
    OVERDUE_PRINCIPAL = "overdue_principal"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class AccountTerms:
    """The contract terms accrual needs (columns of ``account`` plus portfolio and creditor settings).

    Rates are annual, in ppm (24% = 240000); for ``RateBasis.LPR_1Y`` they are margins over the LPR.
    ``accrual_stop_date``: no accrual on or after it (e.g. a court order flag); ``accrual_stop_reason``
    says why.
    """

    account_id: int
    origination_date: date
    original_principal_minor: int
    interest_rate_annual_ppm: int
    penalty_rate_annual_ppm: int
    product: Product = Product.CONSUMER_LOAN
    rate_basis: RateBasis = RateBasis.FIXED
    interest_base: AccrualBase = AccrualBase.PRINCIPAL
    penalty_base: AccrualBase = AccrualBase.OVERDUE_PRINCIPAL
    licensed_lender: bool = False
    status: AccountStatus = AccountStatus.ACTIVE
    accrual_stop_date: date | None = None
    accrual_stop_reason: str | None = None


@dataclass(frozen=True, slots=True)
class AccrualState:
    """Balances and accrual bookkeeping of one account before a run.

    ``interest_carry_sub``/``penalty_carry_sub``: exact minus rounded cumulative accrual, in sub-units.
    ``charged_minor``: contract interest, penalty interest and fees charged since the contract date (gross,
    before payments), which counts against the cap.
    """

    principal_minor: int
    overdue_principal_minor: int = 0
    accrued_through_date: date | None = None
    interest_carry_sub: int = 0
    penalty_carry_sub: int = 0
    charged_minor: int = 0


@dataclass(frozen=True, slots=True)
class AccrualResult:
    """Postings of a run, the state after it, and why anything was cut or skipped."""

    postings: list[Posting]
    state: AccrualState
    cap_rule_id: str | None = None  # set when the cap cut something
    forfeited_minor: int = 0  # accrual dropped by the cap
    stop_reason: str | None = None  # why days were skipped (status or stop flag)

    def amount(self, component: Component) -> int:
        """Total accrued to ``component`` in this run."""
        return sum(p.amount_minor for p in self.postings if p.component is component)


def day_units(day: date, day_count: DayCount) -> int:
    """Sub-unit multiplier of one day's accrual (exact sub-units = base x rate_ppm x this)."""
    if day_count is DayCount.ACT_365:
        return UNITS_PER_DAY_ACT_365
    if day_count is DayCount.ACT_360:
        return UNITS_PER_DAY_360
    return UNITS_PER_DAY_360 * days_30_360(day, day + timedelta(days=1))


def days_30_360(start: date, end: date) -> int:
    """ISDA 30/360 (bond basis) day count from ``start`` to ``end``."""
    d1 = min(start.day, 30)
    d2 = 30 if end.day == 31 and d1 == 30 else end.day
    return 360 * (end.year - start.year) + 30 * (end.month - start.month) + (d2 - d1)


def round_sub(exact_sub: int, rounding: Rounding) -> int:
    """Round a non-negative sub-unit amount to minor units."""
    half = SUB_UNITS_PER_MINOR // 2 if rounding is Rounding.HALF_UP else 0
    return (exact_sub + half) // SUB_UNITS_PER_MINOR


def accrual_window(accrued_through_date: date | None, as_of: date) -> tuple[date, date] | None:
    """The days still to accrue up to ``as_of`` (inclusive), or ``None`` when they are all done.

    The idempotence guard of the daily run: the same ``as_of`` twice yields nothing the second time.
    """
    if accrued_through_date is None:
        return as_of, as_of
    if accrued_through_date >= as_of:
        return None
    return accrued_through_date + timedelta(days=1), as_of


def _base(which: AccrualBase, state: AccrualState) -> int:
    if which is AccrualBase.PRINCIPAL:
        return max(state.principal_minor, 0)
    if which is AccrualBase.OVERDUE_PRINCIPAL:
        return max(state.overdue_principal_minor, 0)
    return 0


def stop_reason(terms: AccountTerms, day: date) -> str | None:
    """Why nothing accrues on ``day``, or ``None`` when it does."""
    if terms.status in STOPPED_STATUSES:
        return str(terms.status)
    if terms.accrual_stop_date is not None and day >= terms.accrual_stop_date:
        return terms.accrual_stop_reason or "stopped"
    if day < terms.origination_date:
        return "not_started"
    return None


def annual_cap(
    terms: AccountTerms, lpr_table: LprTable, caps: CapTable | None
) -> tuple[int | None, str | None]:
    """The account's annual cap in ppm and the rule setting it (``(None, None)``: no cap applies)."""
    if caps is None:
        return None, None
    ppm, rule = caps.annual_cap(
        licensed_lender=terms.licensed_lender,
        product=terms.product,
        origination_date=terms.origination_date,
        lpr=lpr_table,
    )
    return (None, None) if ppm is None else (ppm, rule)


def cap_headroom(
    terms: AccountTerms, state: AccrualState, day: date, lpr_table: LprTable, caps: CapTable | None
) -> int | None:
    """How much more interest, penalty interest or fees may be charged by the end of ``day``.

    ``None`` when no cap applies. A fee charge must fit in it as accruals do (CN-30).
    """
    ppm, _ = annual_cap(terms, lpr_table, caps)
    if ppm is None:
        return None
    return max(
        0, cap_amount(terms.original_principal_minor, ppm, terms.origination_date, day) - state.charged_minor
    )


def accrue(
    account_terms: AccountTerms,
    balances: AccrualState,
    from_date: date,
    to_date: date,
    lpr_table: LprTable,
    caps: CapTable | None,
    day_count: DayCount,
    rounding: Rounding,
) -> AccrualResult:
    """Accrue interest and penalty interest for each day from ``from_date`` to ``to_date`` (inclusive).

    Days up to ``balances.accrued_through_date`` are skipped (re-running adds nothing); a gap after it is
    refused. Returns one accrual posting per component and day with a non-zero amount, and the new state.
    """
    terms, state = account_terms, balances
    if to_date < from_date:
        raise ValidationFailed("accrual period ends before it starts", code="bad_period")
    start = from_date
    if state.accrued_through_date is not None:
        if from_date > state.accrued_through_date + timedelta(days=1):
            raise ValidationFailed(
                f"account {terms.account_id}: accrued through {state.accrued_through_date}, "
                f"cannot start at {from_date} (计息日期不连续)",
                code="accrual_gap",
            )
        start = max(from_date, state.accrued_through_date + timedelta(days=1))
    if start > to_date:
        return AccrualResult([], state)

    postings: list[Posting] = []
    carry_i, carry_p, charged = state.interest_carry_sub, state.penalty_carry_sub, state.charged_minor
    base_i, base_p = _base(terms.interest_base, state), _base(terms.penalty_base, state)
    cap_ppm: int | None = None
    cap_rule: str | None = None
    cap_known = False
    cut_rule: str | None = None
    forfeited = 0
    skipped: str | None = None

    day = start
    while day <= to_date:
        reason = stop_reason(terms, day)
        if reason is not None:
            skipped = skipped or reason
            day += timedelta(days=1)
            continue
        if not cap_known:
            cap_ppm, cap_rule = annual_cap(terms, lpr_table, caps)
            cap_known = True
        rate_i, rate_p = terms.interest_rate_annual_ppm, terms.penalty_rate_annual_ppm
        if terms.rate_basis is RateBasis.LPR_1Y:
            lpr = lpr_table.one_year_ppm(day)
            rate_i, rate_p = rate_i + lpr, rate_p + lpr
        units = day_units(day, day_count)
        exact_i = carry_i + base_i * max(rate_i, 0) * units
        exact_p = carry_p + base_p * max(rate_p, 0) * units
        due_i, due_p = round_sub(exact_i, rounding), round_sub(exact_p, rounding)
        carry_i, carry_p = exact_i - due_i * SUB_UNITS_PER_MINOR, exact_p - due_p * SUB_UNITS_PER_MINOR
        post_i, post_p = due_i, due_p
        if cap_ppm is not None:
            room = max(
                0, cap_amount(terms.original_principal_minor, cap_ppm, terms.origination_date, day) - charged
            )
            post_i = min(due_i, room)
            post_p = min(due_p, room - post_i)
        for component, posted, due in (
            (Component.INTEREST, post_i, due_i),
            (Component.PENALTY, post_p, due_p),
        ):
            cut = posted < due
            if cut:
                cut_rule = cap_rule
                forfeited += due - posted
            if posted:
                postings.append(
                    Posting(
                        account_id=terms.account_id,
                        component=component,
                        amount_minor=posted,
                        kind=PostingKind.ACCRUAL,
                        effective_date=day,
                        rule_id=cap_rule if cut else None,
                    )
                )
        charged += post_i + post_p
        day += timedelta(days=1)

    new_state = replace(
        state,
        accrued_through_date=to_date,
        interest_carry_sub=carry_i,
        penalty_carry_sub=carry_p,
        charged_minor=charged,
    )
    return AccrualResult(postings, new_state, cut_rule, forfeited, skipped)


REVERSAL_ACCRUAL_RULE = "reversal_accrual"


def _overdue_base(
    terms: AccountTerms, principal: int, overdue_amount: int, due_date: date | None, day: date
) -> int:
    """The penalty base on ``day`` for a given principal, as the daily run computes it."""
    if due_date is None or due_date >= day:
        return 0
    if terms.product in (Product.INSTALMENT_LOAN, Product.BNPL):
        return max(0, min(principal, overdue_amount))
    return max(0, principal)


def accrue_reversed_principal(
    account_terms: AccountTerms,
    balances: AccrualState,
    *,
    restored_principal_minor: int,
    overdue_amount_minor: int,
    due_date: date | None,
    paid_on: date,
    correction_date: date,
    lpr_table: LprTable,
    caps: CapTable | None,
    day_count: DayCount,
    rounding: Rounding,
) -> AccrualResult:
    """The interest a reversed payment's principal would have earned on the days already accrued without it.

    Rule (back-dated reversal): a day's interest accrues on the balance as it stands at the end of that day,
    so a payment received on ``paid_on`` lowered the base from that day on, and every day from ``paid_on``
    through ``balances.accrued_through_date`` accrued on a base that lacked ``restored_principal_minor``. When the payment is reversed, that interest (and the penalty
    interest on the overdue part) is owed after all: it is computed day by day with each day's rate (the
    LPR of the day for floating products), day count and stop rules, added to the stored carries and
    rounded once, then cut by the cap (CN-30, or the product cap) as of the last accrued day. The result is
    at most one accrual posting per component, dated ``correction_date`` (the day of the reversal), with
    rule id ``reversal_accrual``, or the cap's rule id when the cap cut it. ``balances`` holds the state
    *after* the reversal (principal restored); the new state carries the new carries and charged amount.
    """
    terms, state = account_terms, balances
    through = state.accrued_through_date
    if restored_principal_minor <= 0 or through is None or through < paid_on:
        return AccrualResult([], state)
    extra_i = extra_p = 0
    day = paid_on
    while day <= through:
        if stop_reason(terms, day) is None:
            rate_i, rate_p = terms.interest_rate_annual_ppm, terms.penalty_rate_annual_ppm
            if terms.rate_basis is RateBasis.LPR_1Y:
                lpr = lpr_table.one_year_ppm(day)
                rate_i, rate_p = rate_i + lpr, rate_p + lpr
            units = day_units(day, day_count)
            if terms.interest_base is AccrualBase.PRINCIPAL:
                extra_i += restored_principal_minor * max(rate_i, 0) * units
            elif terms.interest_base is AccrualBase.OVERDUE_PRINCIPAL:
                extra_i += (
                    (
                        _overdue_base(terms, state.principal_minor, overdue_amount_minor, due_date, day)
                        - _overdue_base(
                            terms,
                            state.principal_minor - restored_principal_minor,
                            overdue_amount_minor,
                            due_date,
                            day,
                        )
                    )
                    * max(rate_i, 0)
                    * units
                )
            if terms.penalty_base is AccrualBase.PRINCIPAL:
                extra_p += restored_principal_minor * max(rate_p, 0) * units
            elif terms.penalty_base is AccrualBase.OVERDUE_PRINCIPAL:
                extra_p += (
                    (
                        _overdue_base(terms, state.principal_minor, overdue_amount_minor, due_date, day)
                        - _overdue_base(
                            terms,
                            state.principal_minor - restored_principal_minor,
                            overdue_amount_minor,
                            due_date,
                            day,
                        )
                    )
                    * max(rate_p, 0)
                    * units
                )
        day += timedelta(days=1)
    exact_i = state.interest_carry_sub + extra_i
    exact_p = state.penalty_carry_sub + extra_p
    due_i, due_p = round_sub(exact_i, rounding), round_sub(exact_p, rounding)
    post_i, post_p = due_i, due_p
    cap_ppm, cap_rule = annual_cap(terms, lpr_table, caps)
    if cap_ppm is not None:
        room = max(
            0,
            cap_amount(terms.original_principal_minor, cap_ppm, terms.origination_date, through)
            - state.charged_minor,
        )
        post_i = min(due_i, room)
        post_p = min(due_p, room - post_i)
    postings: list[Posting] = []
    cut_rule: str | None = None
    for component, posted, due in ((Component.INTEREST, post_i, due_i), (Component.PENALTY, post_p, due_p)):
        cut = posted < due
        if cut:
            cut_rule = cap_rule
        if posted > 0:
            postings.append(
                Posting(
                    account_id=terms.account_id,
                    component=component,
                    amount_minor=posted,
                    kind=PostingKind.ACCRUAL,
                    effective_date=correction_date,
                    rule_id=cap_rule if cut else REVERSAL_ACCRUAL_RULE,
                )
            )
    new_state = replace(
        state,
        interest_carry_sub=exact_i - due_i * SUB_UNITS_PER_MINOR,
        penalty_carry_sub=exact_p - due_p * SUB_UNITS_PER_MINOR,
        charged_minor=state.charged_minor + max(post_i, 0) + max(post_p, 0),
    )
    return AccrualResult(postings, new_state, cut_rule, (due_i - post_i) + (due_p - post_p))
