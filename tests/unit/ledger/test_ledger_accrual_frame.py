"""The set-based one-day accrual gives exactly what the scalar `accrue` gives, row by row."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.enums import AccountStatus, Component, Product
from arrears.errors import ValidationFailed
from arrears.ledger.accrual import (
    SUB_UNITS_PER_MINOR,
    AccountTerms,
    AccrualBase,
    AccrualState,
    DayCount,
    RateBasis,
    Rounding,
    accrue,
)
from arrears.ledger.accrual_frame import accrue_frame
from arrears.ledger.caps import CapTable, load_caps, load_lpr_table

LPR = load_lpr_table()
CAPS = load_caps()
# licensed lenders with no configured cap: only private lending is capped
CAPS_PRIVATE_ONLY = replace(CAPS, licensed_default_ppm=None, licensed_product_ppm={"bnpl": 150_000})
SCHEMA = {
    "account_id": pl.Int64,
    "origination_date": pl.Date,
    "original_principal_minor": pl.Int64,
    "interest_rate_annual_ppm": pl.Int64,
    "penalty_rate_annual_ppm": pl.Int64,
    "product": pl.String,
    "rate_basis": pl.String,
    "interest_base": pl.String,
    "penalty_base": pl.String,
    "licensed_lender": pl.Boolean,
    "status": pl.String,
    "accrual_stop_date": pl.Date,
    "accrual_stop_reason": pl.String,
    "principal_minor": pl.Int64,
    "overdue_principal_minor": pl.Int64,
    "accrued_through_date": pl.Date,
    "interest_carry_sub": pl.Int64,
    "penalty_carry_sub": pl.Int64,
    "charged_minor": pl.Int64,
}


def to_row(t: AccountTerms, s: AccrualState) -> dict[str, Any]:
    return {
        "account_id": t.account_id,
        "origination_date": t.origination_date,
        "original_principal_minor": t.original_principal_minor,
        "interest_rate_annual_ppm": t.interest_rate_annual_ppm,
        "penalty_rate_annual_ppm": t.penalty_rate_annual_ppm,
        "product": str(t.product),
        "rate_basis": str(t.rate_basis),
        "interest_base": str(t.interest_base),
        "penalty_base": str(t.penalty_base),
        "licensed_lender": t.licensed_lender,
        "status": str(t.status),
        "accrual_stop_date": t.accrual_stop_date,
        "accrual_stop_reason": t.accrual_stop_reason,
        "principal_minor": s.principal_minor,
        "overdue_principal_minor": s.overdue_principal_minor,
        "accrued_through_date": s.accrued_through_date,
        "interest_carry_sub": s.interest_carry_sub,
        "penalty_carry_sub": s.penalty_carry_sub,
        "charged_minor": s.charged_minor,
    }


AS_OF_RANGE = (date(2020, 1, 1), date(2026, 12, 31))


@st.composite
def account(
    draw: st.DrawFn, as_of: date, rounding: Rounding, account_id: int
) -> tuple[AccountTerms, AccrualState]:
    origination = draw(st.dates(date(2019, 8, 20), as_of + timedelta(days=3)))
    principal = draw(st.integers(0, 10**10))
    t = AccountTerms(
        account_id=account_id,
        origination_date=origination,
        original_principal_minor=draw(st.sampled_from([principal, 0, 10**10])),
        interest_rate_annual_ppm=draw(st.integers(-40_000, 1_000_000)),
        penalty_rate_annual_ppm=draw(st.integers(-40_000, 1_000_000)),
        product=draw(st.sampled_from(list(Product))),
        rate_basis=draw(st.sampled_from(list(RateBasis))),
        interest_base=draw(st.sampled_from(list(AccrualBase))),
        penalty_base=draw(st.sampled_from(list(AccrualBase))),
        licensed_lender=draw(st.booleans()),
        status=draw(st.sampled_from([AccountStatus.ACTIVE] * 4 + list(AccountStatus))),
        accrual_stop_date=draw(
            st.one_of(st.none(), st.dates(as_of - timedelta(days=3), as_of + timedelta(days=3)))
        ),
        accrual_stop_reason=draw(st.sampled_from([None, "court_order"])),
    )
    low, high = (-(SUB_UNITS_PER_MINOR // 2), SUB_UNITS_PER_MINOR // 2 - 1)
    if rounding is Rounding.DOWN:
        low, high = 0, SUB_UNITS_PER_MINOR - 1
    through = draw(
        st.sampled_from(
            [None, as_of - timedelta(days=1), as_of, as_of - timedelta(days=5), as_of + timedelta(days=2)]
        )
    )
    s = AccrualState(
        principal_minor=principal,
        overdue_principal_minor=draw(st.integers(0, principal)),
        accrued_through_date=through,
        interest_carry_sub=draw(st.integers(low, high)),
        penalty_carry_sub=draw(st.integers(low, high)),
        charged_minor=draw(st.integers(0, 10**9)),
    )
    return t, s


@settings(max_examples=200, deadline=None)
@given(
    st.dates(*AS_OF_RANGE),
    st.sampled_from(list(DayCount)),
    st.sampled_from(list(Rounding)),
    st.sampled_from([CAPS, CAPS_PRIVATE_ONLY, None]),
    st.data(),
)
def test_frame_accrual_equals_scalar_accrual_for_one_day(
    as_of: date, day_count: DayCount, rounding: Rounding, caps: CapTable | None, data: st.DataObject
) -> None:
    size = data.draw(st.integers(1, 6))
    accounts = [data.draw(account(as_of, rounding, i + 1)) for i in range(size)]
    frame = pl.DataFrame([to_row(t, s) for t, s in accounts], schema=SCHEMA)
    out = accrue_frame(frame, as_of, lpr_table=LPR, caps=caps, day_count=day_count, rounding=rounding)
    assert out["account_id"].to_list() == [t.account_id for t, _ in accounts]
    for row, (t, s) in zip(out.iter_rows(named=True), accounts, strict=True):
        try:
            result = accrue(t, s, as_of, as_of, LPR, caps, day_count, rounding)
        except ValidationFailed:
            # a gap: the frame leaves the row for the scalar catch-up
            assert row["needs_catch_up"] and row["accrued_through_date"] == s.accrued_through_date
            assert row["interest_accrued_minor"] == row["penalty_accrued_minor"] == 0
            continue
        assert not row["needs_catch_up"]
        assert row["interest_accrued_minor"] == result.amount(Component.INTEREST)
        assert row["penalty_accrued_minor"] == result.amount(Component.PENALTY)
        assert row["accrued_through_date"] == result.state.accrued_through_date
        assert row["interest_carry_sub"] == result.state.interest_carry_sub
        assert row["penalty_carry_sub"] == result.state.penalty_carry_sub
        assert row["charged_minor"] == result.state.charged_minor
        for p in result.postings:
            column = "interest_rule_id" if p.component is Component.INTEREST else "penalty_rule_id"
            assert row[column] == p.rule_id
        assert (row["interest_rule_id"] or row["penalty_rule_id"]) == result.cap_rule_id
