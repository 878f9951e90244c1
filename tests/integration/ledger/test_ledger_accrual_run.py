"""The daily accrual run through the service: day by day, idempotent, under the caps, stopped when due."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import ledger_builders as b
from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.ledger import service
from arrears.ledger.accrual import AccountTerms, AccrualState, accrue
from arrears.ledger.caps import cap_amount, load_caps, load_lpr_table
from arrears.models import AccountFlag, Posting

DAY = date(2025, 3, 1)
IMPORTED = datetime(2025, 2, 28, 2, 0, tzinfo=UTC)  # the day before DAY, in Shanghai


def _accruals(session: Session, account_id: int) -> list[Posting]:
    return list(
        session.scalars(
            select(Posting)
            .where(Posting.account_id == account_id, Posting.kind == "accrual")
            .order_by(Posting.effective_date, Posting.component)
        )
    )


def test_interest_and_penalty_interest_accrue_day_by_day_and_a_rerun_adds_nothing(session: Session) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    a = b.account(
        session, p, d, c, principal=1_000_000, rate_ppm=182_500, penalty_ppm=91_250, imported_at=IMPORTED
    )
    for i in range(3):
        run = service.accrue_portfolio(session, portfolio_id=p.id, as_of=DAY + timedelta(days=i))
        assert run.accrued_accounts == 1
    # ACT/365: 1,000,000 x 18.25% / 365 = 500 a day; penalty on the overdue principal 250 a day
    got = [(x.effective_date, x.component, x.amount_minor) for x in _accruals(session, a.id)]
    assert got == [
        (DAY + timedelta(days=i), comp, amt)
        for i in range(3)
        for comp, amt in (("interest", 500), ("penalty", 250))
    ]
    again = service.accrue_portfolio(session, portfolio_id=p.id, as_of=DAY + timedelta(days=2))
    assert again.postings == 0 and again.already_done_accounts == 1
    assert len(_accruals(session, a.id)) == 6
    session.refresh(a)
    assert (a.interest_minor, a.penalty_minor, service.accrued_through(session, a)) == (
        1_500,
        750,
        DAY + timedelta(days=2),
    )
    assert service.verify_balances(session, portfolio_id=p.id) == []


def test_a_missed_day_is_caught_up_with_the_same_amounts_as_the_scalar_accrual(session: Session) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    a = b.account(
        session, p, d, c, principal=333_333, rate_ppm=123_457, penalty_ppm=77_777, imported_at=IMPORTED
    )
    service.accrue_portfolio(session, portfolio_id=p.id, as_of=DAY)
    service.accrue_portfolio(session, portfolio_id=p.id, as_of=DAY + timedelta(days=10))
    got = sum(x.amount_minor for x in _accruals(session, a.id))
    terms = AccountTerms(
        account_id=a.id,
        origination_date=date(2024, 1, 1),
        original_principal_minor=333_333,
        interest_rate_annual_ppm=123_457,
        penalty_rate_annual_ppm=77_777,
    )
    expected = accrue(
        terms,
        AccrualState(principal_minor=333_333, overdue_principal_minor=333_333),
        DAY,
        DAY + timedelta(days=10),
        load_lpr_table(),
        load_caps(),
        service.ledger_config(session, portfolio_id=p.id).day_count,
        service.ledger_config(session, portfolio_id=p.id).rounding,
    )
    assert got == sum(x.amount_minor for x in expected.postings)
    assert service.verify_balances(session, portfolio_id=p.id) == []


def test_cn30_private_lending_stops_at_four_times_the_lpr_at_the_contract_date(session: Session) -> None:
    p = b.portfolio(session, licensed_lender=False)
    d, c = b.debtor(session, p)
    origination = date(2024, 8, 1)  # one-year LPR then 3.35% -> cap 13.4% a year
    cap_ppm = 4 * load_lpr_table().one_year_ppm(origination)
    assert cap_ppm == 134_000
    first_day = date(2025, 1, 2)
    # the imported interest has used all but 100 fen of the cap up to the day before
    imported = cap_amount(1_000_000, cap_ppm, origination, first_day - timedelta(days=1)) - 100
    a = b.account(
        session,
        p,
        d,
        c,
        principal=1_000_000,
        interest=imported,
        rate_ppm=240_000,
        penalty_ppm=120_000,
        origination_date=origination,
        imported_at=datetime(2025, 1, 1, 2, 0, tzinfo=UTC),
    )
    for i in range(5):
        service.accrue_portfolio(session, portfolio_id=p.id, as_of=first_day + timedelta(days=i))
    session.refresh(a)
    last = first_day + timedelta(days=4)
    assert a.charged_minor == a.interest_minor + a.penalty_minor
    # the contract rates exceed the cap, so the cap binds every day and the cut postings name CN-30
    cut = [x for x in _accruals(session, a.id) if x.rule_id == "CN-30"]
    assert cut, "the cap should cut the accrual"
    assert a.charged_minor == cap_amount(1_000_000, cap_ppm, origination, last)


def test_a_licensed_lender_is_held_to_the_product_cap_not_cn30(session: Session) -> None:
    p = b.portfolio(session, licensed_lender=True)
    d, c = b.debtor(session, p)
    origination, day = date(2024, 1, 1), date(2024, 10, 1)
    imported = cap_amount(1_000_000, 240_000, origination, day - timedelta(days=1)) - 300
    a = b.account(
        session,
        p,
        d,
        c,
        principal=1_000_000,
        interest=imported,
        rate_ppm=365_000,  # 1,000 a day, above the 24% product cap
        origination_date=origination,
        imported_at=datetime(2024, 9, 30, 2, 0, tzinfo=UTC),
    )
    service.accrue_portfolio(session, portfolio_id=p.id, as_of=day)
    session.refresh(a)
    assert a.interest_minor == cap_amount(1_000_000, 240_000, origination, day)
    assert a.interest_minor - imported < 1_000
    assert {x.rule_id for x in _accruals(session, a.id)} == {"product_cap"}


def test_settled_written_off_and_flagged_accounts_accrue_nothing(session: Session) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    live = b.account(session, p, d, c, principal=100_000, rate_ppm=200_000, imported_at=IMPORTED)
    off = b.account(session, p, d, c, principal=100_000, rate_ppm=200_000, imported_at=IMPORTED)
    off.status = "written_off"
    flagged = b.account(session, p, d, c, principal=100_000, rate_ppm=200_000, imported_at=IMPORTED)
    session.add(
        AccountFlag(
            account_id=flagged.id,
            case_id=c.id,
            kind="bankruptcy",
            created_at=datetime(2025, 2, 1, tzinfo=UTC),
            updated_at=datetime(2025, 2, 1, tzinfo=UTC),
        )
    )
    session.flush()
    run = service.accrue_portfolio(session, portfolio_id=p.id, as_of=DAY)
    assert run.stopped_accounts == 2
    assert (
        _accruals(session, live.id) and not _accruals(session, off.id) and not _accruals(session, flagged.id)
    )


def test_day_count_and_rounding_follow_the_portfolio_settings(session: Session) -> None:
    p = b.portfolio(session)
    service.configure_ledger(session, portfolio_id=p.id, day_count="ACT/360", rounding="down")
    d, c = b.debtor(session, p)
    a = b.account(
        session,
        p,
        d,
        c,
        principal=100_000,
        rate_ppm=100_000,
        due_date=date(2025, 12, 1),
        imported_at=IMPORTED,
    )
    service.accrue_portfolio(session, portfolio_id=p.id, as_of=DAY)
    # 100,000 x 10% / 360 = 27.78 -> 27 rounded down (the remainder is carried, not lost)
    [x] = _accruals(session, a.id)
    assert x.amount_minor == 27
    session.refresh(a)
    assert a.interest_carry_sub > 0


def test_unchanged_accounts_follow_the_portfolio_day_and_late_ones_catch_up_from_their_own(
    session: Session,
) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    earning = b.account(session, p, d, c, principal=1_000_000, rate_ppm=182_500, imported_at=IMPORTED)
    idle = b.account(session, p, d, c, principal=1_000_000, imported_at=IMPORTED)  # no rate: nothing changes
    undated = b.account(
        session, p, d, c, principal=1_000_000, rate_ppm=182_500, origination_date=None, imported_at=IMPORTED
    )
    for i in range(3):
        service.accrue_portfolio(session, portfolio_id=p.id, as_of=DAY + timedelta(days=i))
    for a in (earning, idle, undated):
        session.refresh(a)
    session.refresh(p)
    assert p.ledger_accrued_through == DAY + timedelta(days=2)
    # the idle account's row was never written for the accrual: it follows the portfolio
    assert idle.accrued_through_date is None and earning.accrued_through_date is None
    assert service.accrued_through(session, idle) == DAY + timedelta(days=2)
    # the account without a contract date stays where it was (its opening day: never accrued)
    assert service.accrued_through(session, undated) is None
    assert undated.accrued_through_date == DAY - timedelta(days=1)

    # an account opened on a day the portfolio has passed accrues those days; so does the undated one once
    # it has a contract date
    d2, c2 = b.debtor(session, p)
    late = b.account(session, p, d2, c2, principal=1_000_000, rate_ppm=182_500, imported_at=IMPORTED)
    undated.origination_date = date(2024, 1, 1)
    session.flush()
    run = service.accrue_portfolio(session, portfolio_id=p.id, as_of=DAY + timedelta(days=3))
    assert run.caught_up_accounts == 2
    assert [len(_accruals(session, a.id)) for a in (earning, idle, undated, late)] == [4, 0, 4, 4]
    assert all(x.amount_minor == 500 for x in _accruals(session, late.id))
    for a in (undated, late):
        session.refresh(a)
        assert a.accrued_through_date is None
        assert service.accrued_through(session, a) == DAY + timedelta(days=3)
    # a run for an earlier day changes nothing and leaves the portfolio's day alone
    again = service.accrue_portfolio(session, portfolio_id=p.id, as_of=DAY + timedelta(days=1))
    assert again.postings == 0
    session.refresh(p)
    assert p.ledger_accrued_through == DAY + timedelta(days=3)
    assert service.verify_balances(session, portfolio_id=p.id) == []
