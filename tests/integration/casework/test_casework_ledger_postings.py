"""Case work money on the ledger, on SQLite and PostgreSQL: a kept settlement posts its waiver and closes
its accounts (once), legal costs post as ``costs`` when recorded and are met first by a payment (CN-28),
a correction reverses them; the ledger reconciles after each step."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from casework_builders import Book
from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears import clock
from arrears.arrangements import service as arrangements
from arrears.enums import Component
from arrears.errors import Conflict
from arrears.ledger import service as ledger
from arrears.legal import service as legal
from arrears.models import Account, ArrangementWaiver, Posting

AT = datetime(2025, 7, 2, 2, 0, tzinfo=UTC)


def _day(book: Book, n: int) -> date:
    """``n`` days after the accounts' opening day in the ledger (the import day, local time)."""
    opened = clock.to_local(book.account("1").created_at, book.portfolio.timezone).date()
    return opened + timedelta(days=n)


def _postings(session: Session, account_id: int, kind: str) -> list[Posting]:
    return list(
        session.scalars(
            select(Posting).where(Posting.account_id == account_id, Posting.kind == kind).order_by(Posting.id)
        )
    )


def _balances(session: Session, account_id: int) -> dict[str, int]:
    account = session.get(Account, account_id)
    assert account is not None
    session.refresh(account)
    return {c.value: int(getattr(account, f"{c.value}_minor")) for c in Component}


def test_a_kept_settlement_posts_its_waiver_once_and_closes_the_account(session: Session, book: Book) -> None:
    account = book.account("4")  # 王五: principal 3000, interest 100, penalty 50 -> 3150.00 owed
    plan = arrangements.create_arrangement(
        session,
        account_ids=[account.id],
        request=arrangements.parse_request(
            {"kind": "settlement", "settle_minor": 290000, "first_on": _day(book, 4).isoformat()}
        ),
        as_of=_day(book, 0),
    )
    assert plan.status == "active" and plan.waived_minor == 25000
    agreed = arrangements.settlement_waivers(session, arrangement_id=plan.id)[account.id]
    assert agreed == {Component.PENALTY: 5000, Component.INTEREST: 10000, Component.PRINCIPAL: 10000}

    # not yet kept: nothing is waived
    assert arrangements.post_kept_settlements(session, portfolio_id=book.portfolio.id, now=AT) == []
    ledger.post_payment(
        session,
        portfolio_id=book.portfolio.id,
        account_id=account.id,
        amount_minor=290000,
        received_on=_day(book, 4),
        reference="settle-1",
        now=AT,
    )
    # CN-28 met interest and penalty first, so only principal (250.00) is left to waive
    assert _balances(session, account.id) == {
        "principal": 25000,
        "interest": 0,
        "penalty": 0,
        "fees": 0,
        "costs": 0,
    }
    refreshed = arrangements.refresh_arrangements(
        session, portfolio_id=book.portfolio.id, as_of=_day(book, 5)
    )
    assert refreshed.completed == (plan.id,)

    [kept] = arrangements.post_kept_settlements(session, portfolio_id=book.portfolio.id, now=AT)
    assert (kept.arrangement_id, kept.agreed_minor, kept.closed_account_ids) == (
        plan.id,
        25000,
        (account.id,),
    )
    assert kept.residue_minor == {account.id: 0}
    waivers = _postings(session, account.id, "waiver")
    # never more than agreed: the 150.00 of interest and penalty the payment met moved to principal,
    # the one component left owing that the plan waives
    assert [(p.component, p.amount_minor, p.rule_id, p.effective_date) for p in waivers] == [
        ("principal", -25000, f"settlement:{plan.id}", _day(book, 4))
    ]
    session.refresh(account)
    assert account.status == "settled" and account.balance_minor == 0
    assert ledger.verify_balances(session, portfolio_id=book.portfolio.id) == []
    rows = {
        w.component: (w.amount_minor, w.posted_minor)
        for w in session.scalars(select(ArrangementWaiver).where(ArrangementWaiver.arrangement_id == plan.id))
    }
    assert rows == {"penalty": (5000, 0), "interest": (10000, 0), "principal": (10000, 25000)}
    assert arrangements.settlement_waivers(session, arrangement_id=plan.id) == {}

    # a second pass (the next night's run) posts nothing
    assert arrangements.post_kept_settlements(session, portfolio_id=book.portfolio.id, now=AT) == []
    assert len(_postings(session, account.id, "waiver")) == 1


def test_a_settlement_over_two_accounts_waives_component_by_component(session: Session, book: Book) -> None:
    ids = [book.account("1").id, book.account("2").id]  # 张三: 10,000.00 and 5,000.00
    plan = arrangements.create_arrangement(
        session,
        account_ids=ids,
        request=arrangements.parse_request(
            {"kind": "settlement", "settle_minor": 1050000, "first_on": _day(book, 4).isoformat()}
        ),
        as_of=_day(book, 0),
    )
    assert plan.status == "pending_approval"
    arrangements.approve_arrangement(
        session, arrangement_id=plan.id, user_id=book.users["supervisor"].id, at=AT, reason="一次性结清"
    )
    ledger.post_payment(
        session,
        portfolio_id=book.portfolio.id,
        account_id=ids[0],
        amount_minor=1050000,
        received_on=_day(book, 3),
        reference="settle-zs",
        now=AT,
    )
    arrangements.refresh_arrangements(session, portfolio_id=book.portfolio.id, as_of=_day(book, 4))
    [kept] = arrangements.post_kept_settlements(session, portfolio_id=book.portfolio.id, now=AT)
    assert kept.agreed_minor == plan.waived_minor == 450000
    assert sorted(kept.closed_account_ids) == sorted(ids)
    waived = [p for i in ids for p in _postings(session, i, "waiver")]
    assert -sum(p.amount_minor for p in waived) == 450000
    assert all(p.rule_id == f"settlement:{plan.id}" for p in waived)
    for account_id in ids:
        assert sum(_balances(session, account_id).values()) == 0
    assert ledger.verify_balances(session, portfolio_id=book.portfolio.id) == []


def _legal_case(session: Session, book: Book, ref: str) -> int:
    case = legal.refer_to_legal(
        session,
        account_ids=[book.account(ref).id],
        kind="litigation",
        referred_by_id=book.users["collector"].id,
        referred_on=_day(book, 0),
        law_firm_name="北京市正衡律师事务所",
    )
    legal.decide_referral(
        session, legal_case_id=case.id, user_id=book.users["supervisor"].id, approve=True, at=AT
    )
    return case.id


def test_legal_costs_are_posted_as_costs_and_a_payment_meets_them_first(session: Session, book: Book) -> None:
    account = book.account("3")  # 李四: principal 20,000, interest 1,500, penalty 800, fees 200
    case_id = _legal_case(session, book, "3")
    court = legal.add_cost(
        session,
        legal_case_id=case_id,
        account_id=account.id,
        description="诉讼费",
        costs_minor=50000,
        incurred_on=_day(book, 1),
        user_id=book.users["collector"].id,
    )
    lawyer = legal.add_cost(
        session,
        legal_case_id=case_id,
        account_id=account.id,
        description="律师费",
        costs_minor=80000,
        incurred_on=_day(book, 2),
    )
    assert (
        court.posted and lawyer.posted and legal.unposted_costs(session, portfolio_id=book.portfolio.id) == []
    )
    charges = [p for p in _postings(session, account.id, "charge") if p.component == "costs"]
    assert [(p.amount_minor, p.rule_id, p.id) for p in charges] == [
        (50000, f"legal_cost:{court.id}", court.posting_id),
        (80000, f"legal_cost:{lawyer.id}", lawyer.posting_id),
    ]
    assert _balances(session, account.id)["costs"] == 130000
    assert ledger.verify_balances(session, portfolio_id=book.portfolio.id) == []

    # the lawyer's fee was 600.00, not 800.00: reversed and recorded again
    fixed = legal.correct_cost(
        session, cost_id=lawyer.id, costs_minor=60000, corrected_on=_day(book, 4), reason="发票金额有误"
    )
    assert lawyer.reversed_on == _day(book, 4) and fixed.costs_minor == 60000 and fixed.posted
    [reversal] = _postings(session, account.id, "reversal")
    assert (reversal.amount_minor, reversal.reverses_posting_id) == (-80000, lawyer.posting_id)
    assert _balances(session, account.id)["costs"] == 110000
    with pytest.raises(Conflict):
        legal.reverse_cost(session, cost_id=lawyer.id, reversed_on=_day(book, 4), reason="again")

    # CN-28: a payment goes to the costs of enforcing the claim before interest, fees and principal
    paid = ledger.post_payment(
        session,
        portfolio_id=book.portfolio.id,
        account_id=account.id,
        amount_minor=120000,
        received_on=_day(book, 5),
        reference="pay-ls-1",
        now=AT,
    )
    split = {s.component: s.amount_minor for s in paid.splits}
    assert split["costs"] == -110000 and sum(split.values()) == -120000
    assert all("CN-28" in (s.rule_id or "") for s in paid.splits)
    assert _balances(session, account.id)["costs"] == 0
    # a cost already met by a payment is not reversed behind the payment's back
    with pytest.raises(Conflict) as paid_cost:
        legal.reverse_cost(session, cost_id=court.id, reversed_on=_day(book, 6), reason="误录")
    assert paid_cost.value.code == "cost_already_paid"
    assert ledger.verify_balances(session, portfolio_id=book.portfolio.id) == []
