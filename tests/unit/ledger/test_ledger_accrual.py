"""Accrual: day counts, drift-free rounding, CN-30 and product caps, floating rates, stops, idempotence."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.enums import AccountStatus, Component, Product
from arrears.errors import NotFound, ValidationFailed
from arrears.ledger.accrual import (
    AccountTerms,
    AccrualBase,
    AccrualResult,
    AccrualState,
    DayCount,
    RateBasis,
    Rounding,
    accrual_window,
    accrue,
    accrue_reversed_principal,
    cap_headroom,
    days_30_360,
)
from arrears.ledger.caps import CapTable, cap_amount, load_caps, load_lpr_table
from arrears.ledger.postings import PostingKind

LPR = load_lpr_table()
CAPS = load_caps()
INT, PEN = Component.INTEREST, Component.PENALTY


def terms(**kw: Any) -> AccountTerms:
    base: dict[str, Any] = {
        "account_id": 1,
        "origination_date": date(2024, 1, 1),
        "original_principal_minor": 1_000_000,
        "interest_rate_annual_ppm": 182_500,
        "penalty_rate_annual_ppm": 0,
        "penalty_base": AccrualBase.NONE,
    }
    base.update(kw)
    return AccountTerms(**base)


def run(
    t: AccountTerms,
    s: AccrualState,
    start: date,
    end: date,
    *,
    caps: CapTable | None = None,
    day_count: DayCount = DayCount.ACT_365,
    rounding: Rounding = Rounding.HALF_UP,
) -> AccrualResult:
    return accrue(t, s, start, end, LPR, caps, day_count, rounding)


# -- LPR table -----------------------------------------------------------------------------------------------


def test_lpr_table_answers_the_rate_in_force_on_a_day() -> None:
    assert LPR.one_year_ppm(date(2019, 8, 20)) == 42_500
    assert LPR.one_year_ppm(date(2024, 7, 21)) == 34_500
    assert LPR.one_year_ppm(date(2024, 7, 22)) == 33_500
    assert LPR.one_year_ppm(date(2024, 10, 21)) == 31_000
    with pytest.raises(NotFound):
        LPR.one_year_ppm(date(2019, 8, 19))


# -- day counts and rounding --------------------------------------------------------------------------------


def test_act_365_accrues_rate_over_365_per_day() -> None:
    # 10,000.00 at 18.25% ACT/365 is exactly 5.00 a day
    result = run(terms(), AccrualState(1_000_000), date(2024, 1, 1), date(2024, 1, 10))
    assert [p.amount_minor for p in result.postings] == [500] * 10
    assert all(p.kind is PostingKind.ACCRUAL and p.component is INT for p in result.postings)


def test_act_360_accrues_rate_over_360_per_day() -> None:
    t = terms(interest_rate_annual_ppm=180_000)
    result = run(t, AccrualState(1_000_000), date(2024, 1, 1), date(2024, 1, 10), day_count=DayCount.ACT_360)
    assert result.amount(INT) == 5_000


def test_30_360_counts_30_days_a_month_and_catches_up_at_the_end_of_february() -> None:
    t = terms(interest_rate_annual_ppm=180_000)  # 5.00 per 30/360 day
    result = run(
        t, AccrualState(1_000_000), date(2025, 1, 1), date(2025, 12, 31), day_count=DayCount.THIRTY_360
    )
    by_day = {p.effective_date: p.amount_minor for p in result.postings}
    # bond basis: 30 Jan -> 31 Jan counts 0 days, 31 Jan -> 1 Feb counts 1: January is 30 days' worth
    assert date(2025, 1, 30) not in by_day and by_day[date(2025, 1, 31)] == 500
    assert sum(v for d, v in by_day.items() if d.month == 1) == 15_000
    assert by_day[date(2025, 2, 28)] == 1_500  # 28 Feb -> 1 Mar counts 3 days
    assert result.amount(INT) == 180_000  # a 30/360 year is 360 days
    assert days_30_360(date(2024, 2, 29), date(2024, 3, 1)) == 2


def test_rounding_does_not_drift_over_a_year() -> None:
    # 3,333.33 at 10% ACT/365: 0.91324... a day. Rounding each day alone would post 0.91 x 365 = 332.15;
    # the exact year is 333.333, so the cumulative method posts 333.33.
    t = terms(original_principal_minor=333_333, interest_rate_annual_ppm=100_000)
    result = run(t, AccrualState(333_333), date(2025, 1, 1), date(2025, 12, 31))
    assert result.amount(INT) == 33_333
    down = run(t, AccrualState(333_333), date(2025, 1, 1), date(2025, 12, 31), rounding=Rounding.DOWN)
    assert down.amount(INT) == 33_333


def _exact_minor(base: int, ppm: int, start: date, end: date, day_count: DayCount) -> Fraction:
    total = Fraction(0)
    day = start
    while day <= end:
        if day_count is DayCount.ACT_365:
            fraction = Fraction(1, 365)
        elif day_count is DayCount.ACT_360:
            fraction = Fraction(1, 360)
        else:
            fraction = Fraction(days_30_360(day, day + timedelta(days=1)), 360)
        total += Fraction(base * ppm, 1_000_000) * fraction
        day += timedelta(days=1)
    return total


@settings(max_examples=120, deadline=None)
@given(
    st.integers(1, 10**10),
    st.integers(0, 1_000_000),
    st.sampled_from(list(DayCount)),
    st.sampled_from(list(Rounding)),
    st.dates(date(2023, 1, 1), date(2026, 12, 31)),
    st.integers(1, 120),
    st.data(),
)
def test_any_split_of_a_period_posts_the_rounded_exact_total(
    principal: int,
    ppm: int,
    day_count: DayCount,
    rounding: Rounding,
    start: date,
    length: int,
    data: st.DataObject,
) -> None:
    end = start + timedelta(days=length)
    t = terms(origination_date=start, original_principal_minor=principal, interest_rate_annual_ppm=ppm)
    whole = run(t, AccrualState(principal), start, end, day_count=day_count, rounding=rounding)
    exact = _exact_minor(principal, ppm, start, end, day_count)
    expected = int(exact + Fraction(1, 2)) if rounding is Rounding.HALF_UP else int(exact)
    assert whole.amount(INT) == expected
    # the same days in two runs give the same postings
    cut = start + timedelta(days=data.draw(st.integers(0, length - 1)))
    first = run(t, AccrualState(principal), start, cut, day_count=day_count, rounding=rounding)
    second = run(t, first.state, cut + timedelta(days=1), end, day_count=day_count, rounding=rounding)
    assert first.postings + second.postings == whole.postings
    assert second.state == whole.state


# -- CN-30 and product caps ---------------------------------------------------------------------------------


def private_loan(**kw: Any) -> AccountTerms:
    return terms(
        origination_date=date(2024, 7, 1),
        interest_rate_annual_ppm=100_000,  # 10% contract interest
        penalty_rate_annual_ppm=120_000,  # 12% penalty interest on overdue principal
        penalty_base=AccrualBase.OVERDUE_PRINCIPAL,
        **kw,
    )


def test_cn30_caps_all_charges_at_four_times_the_lpr_at_the_contract_date() -> None:
    # Contract date 2024-07-01: one-year LPR 3.45%, so the CN-30 cap is 4 x 3.45% = 13.8% a year.
    # The LPR then falls to 3.35% (2024-07-22) and 3.10% (2024-10-21) inside the period; the cap does not
    # follow it, because CN-30 takes the LPR at the contract date.
    t = private_loan()
    state = AccrualState(1_000_000, overdue_principal_minor=1_000_000)
    result = run(t, state, date(2024, 7, 1), date(2024, 12, 31), caps=CAPS)
    days = 184
    cap = 1_000_000 * 138_000 * days // (365 * 1_000_000)  # 69,567.12 -> 69,567
    assert cap == cap_amount(
        1_000_000, 4 * LPR.one_year_ppm(date(2024, 7, 1)), date(2024, 7, 1), date(2024, 12, 31)
    )
    assert result.amount(INT) + result.amount(PEN) == cap == 69_567
    # contract interest (10% < 13.8%) is kept whole; penalty interest takes only what the cap leaves
    assert result.amount(INT) == round(1_000_000 * Fraction(100_000 * days, 365 * 1_000_000))
    assert result.cap_rule_id == "CN-30"
    assert {p.rule_id for p in result.postings if p.component is PEN} == {"CN-30"}
    assert result.state.charged_minor == cap
    # had the cap followed the LPR in force at the end (3.10%), it would have been lower
    assert cap > 1_000_000 * 4 * 31_000 * days // (365 * 1_000_000)


def test_cn30_accrual_stops_once_charges_reach_the_cap() -> None:
    # fees and interest already charged before the period use up the whole cap through 2024-12-31
    t = private_loan()
    full = cap_amount(1_000_000, 138_000, date(2024, 7, 1), date(2024, 12, 31))
    state = AccrualState(1_000_000, overdue_principal_minor=1_000_000, charged_minor=full)
    result = run(t, state, date(2024, 12, 1), date(2024, 12, 31), caps=CAPS)
    assert result.postings == []
    assert result.forfeited_minor > 0 and result.cap_rule_id == "CN-30"
    assert cap_headroom(t, result.state, date(2024, 12, 31), LPR, CAPS) == 0  # no room for a fee either
    assert cap_headroom(t, result.state, date(2025, 1, 1), LPR, CAPS) == 378  # one more day of cap


def test_licensed_lender_uses_its_product_cap_not_cn30() -> None:
    t = private_loan(licensed_lender=True, product=Product.CREDIT_CARD)
    state = AccrualState(1_000_000, overdue_principal_minor=1_000_000)
    result = run(t, state, date(2024, 7, 1), date(2024, 12, 31), caps=CAPS)
    # 10% + 12% = 22% stays under the configured 24% product cap: nothing is cut
    assert result.cap_rule_id is None
    capped = run(
        replace(t, penalty_rate_annual_ppm=240_000), state, date(2024, 7, 1), date(2024, 12, 31), caps=CAPS
    )
    assert capped.cap_rule_id == "product_cap"
    assert capped.amount(INT) + capped.amount(PEN) == cap_amount(
        1_000_000, 240_000, date(2024, 7, 1), date(2024, 12, 31)
    )


def test_floating_product_takes_the_lpr_in_force_on_each_day() -> None:
    # Licensed lender, interest = one-year LPR + 3.00%. The LPR moves from 3.35% to 3.10% on 2024-10-21:
    # 15-20 Oct accrue at 6.35%, 21-25 Oct at 6.10%. (Its cap, were it private lending, would still use
    # the LPR at the contract date.)
    t = terms(
        origination_date=date(2024, 1, 1),
        rate_basis=RateBasis.LPR_1Y,
        interest_rate_annual_ppm=30_000,
        licensed_lender=True,
    )
    result = run(t, AccrualState(1_000_000), date(2024, 10, 15), date(2024, 10, 25), caps=CAPS)
    before = sum(p.amount_minor for p in result.postings if p.effective_date < date(2024, 10, 21))
    after = sum(p.amount_minor for p in result.postings if p.effective_date >= date(2024, 10, 21))
    assert before == round(Fraction(1_000_000 * 63_500 * 6, 365 * 1_000_000))  # 1,043.84 -> 1,044
    assert before + after == round(Fraction(1_000_000 * (63_500 * 6 + 61_000 * 5), 365 * 1_000_000))  # 1,879
    assert after == 835


# -- bases, stops, idempotence ------------------------------------------------------------------------------


def test_instalment_product_accrues_on_overdue_principal_only() -> None:
    t = terms(
        product=Product.INSTALMENT_LOAN,
        interest_base=AccrualBase.OVERDUE_PRINCIPAL,
        interest_rate_annual_ppm=182_500,
    )
    result = run(
        t, AccrualState(1_000_000, overdue_principal_minor=200_000), date(2024, 3, 1), date(2024, 3, 10)
    )
    assert result.amount(INT) == 1_000  # 2,000.00 overdue at 18.25%: 1.00 a day


@pytest.mark.parametrize("status", [AccountStatus.SETTLED, AccountStatus.WRITTEN_OFF, AccountStatus.CLOSED])
def test_no_accrual_on_settled_written_off_or_closed_accounts(status: AccountStatus) -> None:
    result = run(terms(status=status), AccrualState(1_000_000), date(2024, 3, 1), date(2024, 3, 31))
    assert result.postings == []
    assert result.stop_reason == str(status)
    assert result.state.accrued_through_date == date(2024, 3, 31)  # the days count as processed


def test_accrual_stops_from_a_flagged_stop_date() -> None:
    t = terms(accrual_stop_date=date(2024, 3, 6), accrual_stop_reason="court_order")
    result = run(t, AccrualState(1_000_000), date(2024, 3, 1), date(2024, 3, 31))
    assert max(p.effective_date for p in result.postings) == date(2024, 3, 5)
    assert result.amount(INT) == 2_500
    assert result.stop_reason == "court_order"


def test_accruing_a_day_already_accrued_adds_nothing() -> None:
    t = terms()
    once = run(t, AccrualState(1_000_000), date(2024, 3, 1), date(2024, 3, 1))
    again = run(t, once.state, date(2024, 3, 1), date(2024, 3, 1))
    assert once.amount(INT) == 500
    assert again.postings == [] and again.state == once.state
    assert accrual_window(once.state.accrued_through_date, date(2024, 3, 1)) is None
    assert accrual_window(once.state.accrued_through_date, date(2024, 3, 3)) == (
        date(2024, 3, 2),
        date(2024, 3, 3),
    )
    assert accrual_window(None, date(2024, 3, 3)) == (date(2024, 3, 3), date(2024, 3, 3))


def test_a_gap_after_the_last_accrued_day_is_refused() -> None:
    state = AccrualState(1_000_000, accrued_through_date=date(2024, 3, 1))
    with pytest.raises(ValidationFailed):
        run(terms(), state, date(2024, 3, 5), date(2024, 3, 6))


# -- back-dated reversal ---------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    principal=st.integers(1, 10**9),
    paid=st.integers(1, 10**9),
    rate=st.integers(0, 300_000),
    penalty=st.integers(0, 300_000),
    floating=st.booleans(),
    start=st.integers(0, 20),
    days=st.integers(0, 15),
    day_count=st.sampled_from(list(DayCount)),
    rounding=st.sampled_from(list(Rounding)),
)
def test_a_reversed_principal_catches_up_exactly_what_the_unpaid_account_accrued(
    principal: int,
    paid: int,
    rate: int,
    penalty: int,
    floating: bool,
    start: int,
    days: int,
    day_count: DayCount,
    rounding: Rounding,
) -> None:
    # Paid on some day of October 2024 (the LPR falls on 2024-10-21, inside many windows), accrued on the
    # reduced principal for a few days, then reversed: the catch-up brings the account to the same amounts,
    # carries and charged total as an account that was never paid.
    paid = min(paid, principal)
    t = terms(
        interest_rate_annual_ppm=rate,
        penalty_rate_annual_ppm=penalty,
        penalty_base=AccrualBase.OVERDUE_PRINCIPAL,
        rate_basis=RateBasis.LPR_1Y if floating else RateBasis.FIXED,
        licensed_lender=True,
    )
    paid_on = date(2024, 10, 1) + timedelta(days=start)
    last = paid_on + timedelta(days=days)
    before = AccrualState(
        principal, overdue_principal_minor=principal, accrued_through_date=paid_on - timedelta(days=1)
    )
    never_paid = accrue(t, before, paid_on, last, LPR, None, day_count, rounding)
    reduced = accrue(
        t,
        replace(before, principal_minor=principal - paid, overdue_principal_minor=principal - paid),
        paid_on,
        last,
        LPR,
        None,
        day_count,
        rounding,
    )
    restored = replace(reduced.state, principal_minor=principal, overdue_principal_minor=principal)
    catch_up = accrue_reversed_principal(
        t,
        restored,
        restored_principal_minor=paid,
        overdue_amount_minor=principal,
        due_date=date(2024, 6, 30),
        paid_on=paid_on,
        correction_date=last + timedelta(days=1),
        lpr_table=LPR,
        caps=None,
        day_count=day_count,
        rounding=rounding,
    )
    for c in (INT, PEN):
        assert reduced.amount(c) + catch_up.amount(c) == never_paid.amount(c)
    assert catch_up.state.interest_carry_sub == never_paid.state.interest_carry_sub
    assert catch_up.state.penalty_carry_sub == never_paid.state.penalty_carry_sub
    assert catch_up.state.charged_minor == never_paid.state.charged_minor
    assert all(
        p.effective_date == last + timedelta(days=1) and p.rule_id == "reversal_accrual"
        for p in catch_up.postings
    )
