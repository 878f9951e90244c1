"""Ledger invariants as properties, through the service on a real database (SQLite and PostgreSQL).

For any accounts, payments (with or without a designated account), reversals and accrual days:
balances equal the sum of postings per component, no component is negative, every payment is split
exactly into what was allocated and what became credit, and a payment followed by its reversal restores
every balance.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import ledger_builders as b
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arrears.ledger import service
from arrears.models import Account, Payment, Posting

NOW = datetime(2025, 6, 1, tzinfo=UTC)
START = date(2025, 1, 2)
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

account_st = st.fixed_dictionaries(
    {
        "principal": st.integers(0, 200_000),
        "interest": st.integers(0, 20_000),
        "penalty": st.integers(0, 5_000),
        "fees": st.integers(0, 3_000),
        "costs": st.integers(0, 3_000),
        "rate_ppm": st.sampled_from([0, 50_000, 150_000, 240_000, 360_000]),
        "penalty_ppm": st.sampled_from([0, 120_000]),
        "secured": st.booleans(),
        "due_offset": st.integers(-60, 60),
    }
)
op_st = st.one_of(
    st.tuples(st.just("pay"), st.integers(1, 300_000), st.one_of(st.none(), st.integers(0, 3))),
    st.tuples(st.just("reverse"), st.integers(0, 20), st.none()),
    st.tuples(st.just("accrue"), st.integers(1, 3), st.none()),
)


def _snapshot(session: Session, accounts: list[Account]) -> dict[int, tuple[int, ...]]:
    out = {}
    for a in accounts:
        session.refresh(a)
        out[a.id] = (
            a.principal_minor,
            a.interest_minor,
            a.penalty_minor,
            a.fees_minor,
            a.costs_minor,
            a.credit_minor,
        )
    return out


def _build(session: Session, specs: list[dict[str, int]], licensed: bool) -> tuple[int, int, list[Account]]:
    p = b.portfolio(session, licensed_lender=licensed)
    d, c = b.debtor(session, p)
    accounts = [
        b.account(
            session,
            p,
            d,
            c,
            principal=s["principal"],
            interest=s["interest"],
            penalty=s["penalty"],
            fees=s["fees"],
            costs=s["costs"],
            rate_ppm=s["rate_ppm"],
            penalty_ppm=s["penalty_ppm"],
            secured=bool(s["secured"]),
            due_date=START + timedelta(days=s["due_offset"]),
            imported_at=datetime(2025, 1, 1, 2, tzinfo=UTC),
        )
        for s in specs
    ]
    return p.id, d.id, accounts


@SETTINGS
@given(
    specs=st.lists(account_st, min_size=1, max_size=4),
    ops=st.lists(op_st, min_size=1, max_size=8),
    licensed=st.booleans(),
)
def test_balances_reconcile_nothing_goes_negative_and_every_payment_is_split_exactly(
    session: Session, specs: list[dict[str, int]], ops: list[tuple[str, int, int | None]], licensed: bool
) -> None:
    pid, debtor_id, accounts = _build(session, specs, licensed)
    day = START
    posted: list[int] = []
    for n, (kind, value, target) in enumerate(ops):
        if kind == "pay":
            account_id = accounts[target % len(accounts)].id if target is not None else None
            view = service.post_payment(
                session,
                portfolio_id=pid,
                debtor_id=debtor_id,
                account_id=account_id,
                amount_minor=value,
                received_on=day,
                reference=f"P{n}",
                now=NOW,
            )
            assert view.allocated_minor + view.credit_minor == value
            assert -sum(s.amount_minor for s in view.splits) == value
            assert all(s.amount_minor < 0 for s in view.splits)
            posted.append(view.id)
        elif kind == "reverse" and posted:
            payment_id = posted.pop(value % len(posted))
            service.reverse_payment(
                session, payment_id=payment_id, reversed_on=day, reason="bounced", now=NOW
            )
        elif kind == "accrue":
            day += timedelta(days=value)
            service.accrue_portfolio(session, portfolio_id=pid, as_of=day)
        # balances equal the sum of postings per component; none negative (DESIGN invariant 2)
        assert service.verify_balances(session, portfolio_id=pid) == []
    paid = session.scalar(
        select(func.coalesce(func.sum(Payment.amount_minor), 0)).where(
            Payment.portfolio_id == pid, Payment.status == "posted"
        )
    )
    applied = session.scalar(
        select(func.coalesce(func.sum(-Posting.amount_minor), 0)).where(
            Posting.portfolio_id == pid, Posting.payment_id.is_not(None)
        )
    )
    credit = sum(a.credit_minor for a in accounts)
    allocated = session.scalar(
        select(func.coalesce(func.sum(-Posting.amount_minor), 0)).where(
            Posting.portfolio_id == pid, Posting.payment_id.is_not(None), Posting.component.is_not(None)
        )
    )
    # total paid = total allocated + credit balance (reversed payments net to zero on both sides)
    assert paid == applied == allocated + credit


@SETTINGS
@given(
    specs=st.lists(account_st, min_size=1, max_size=4),
    earlier=st.lists(st.integers(1, 100_000), max_size=3),
    amount=st.integers(1, 400_000),
    designate=st.one_of(st.none(), st.integers(0, 3)),
)
def test_a_payment_followed_by_its_reversal_restores_every_balance_exactly(
    session: Session, specs: list[dict[str, int]], earlier: list[int], amount: int, designate: int | None
) -> None:
    pid, debtor_id, accounts = _build(session, specs, True)
    for n, value in enumerate(earlier):
        service.post_payment(
            session,
            portfolio_id=pid,
            debtor_id=debtor_id,
            amount_minor=value,
            received_on=START,
            reference=f"E{n}",
            now=NOW,
        )
    service.ensure_opening_postings(session, portfolio_id=pid)
    before = _snapshot(session, accounts)
    statuses = [a.status for a in accounts]
    view = service.post_payment(
        session,
        portfolio_id=pid,
        debtor_id=debtor_id,
        account_id=None if designate is None else accounts[designate % len(accounts)].id,
        amount_minor=amount,
        received_on=START,
        reference="X",
        now=NOW,
    )
    service.reverse_payment(
        session, payment_id=view.id, reversed_on=START + timedelta(days=1), reason="bounced", now=NOW
    )
    assert _snapshot(session, accounts) == before
    assert [a.status for a in accounts] == statuses
    assert service.verify_balances(session, portfolio_id=pid) == []
