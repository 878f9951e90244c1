"""Reports over a real portfolio (imported, run by the daily run twice a month apart, paid, promised,
called at night), on SQLite and PostgreSQL. Each set-based report is checked against the same figure
worked out row by row in Python from the stored rows."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from api_clients import api_client
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from arrears import db, demo
from arrears.arrangements import service as arrangements_service
from arrears.compliance.schemas import Outcome
from arrears.contacts import service as contacts_service
from arrears.enums import Channel
from arrears.ledger import service as ledger_service
from arrears.models import Account, Case, ContactPoint, Payment, Promise, StrategyDecision
from arrears.portfolios import service as portfolios
from arrears.reports import service as reports
from arrears.reports.buckets import LEFT, bucket_of
from arrears.strategy import run

JAN = date(2026, 1, 30)
FEB = date(2026, 2, 27)
NOW = datetime(2026, 2, 27, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARREARS_FROZEN_NOW", "2026-01-30T10:00:00+08:00")  # the import's day


def _portfolio(session: Session, tmp_path: Path, accounts: int = 40) -> int:
    tag = uuid.uuid4().hex[:8]
    portfolio = portfolios.create_portfolio(session, name=f"rep-{tag}", creditor=f"报表银行-{tag}")
    path = demo.write_demo_file(
        tmp_path / f"{tag}.csv", accounts=accounts, seed=random.randrange(10**9), as_of=JAN
    )
    portfolios.import_accounts(session, path=path, portfolio_name=portfolio.name, as_of=JAN)
    return portfolio.id


def _balance(a: Account) -> int:
    return a.principal_minor + a.interest_minor + a.penalty_minor + a.fees_minor + a.costs_minor


def test_aging_matches_the_accounts_bucketed_one_by_one(session: Session, tmp_path: Path) -> None:
    pid = _portfolio(session, tmp_path)
    for as_of in (JAN, date(2026, 3, 15), date(2026, 9, 1)):
        got = reports.aging(session, as_of=as_of, portfolio_id=pid)
        expected_n: Counter[str] = Counter()
        expected_sum: Counter[str] = Counter()
        for a in session.scalars(select(Account).where(Account.portfolio_id == pid)):
            if a.status == "active" and _balance(a) > 0 and a.currency == "CNY":
                name = bucket_of((as_of - a.due_date).days)
                expected_n[name] += 1
                expected_sum[name] += _balance(a)
        assert {b.bucket: b.accounts for b in got.buckets if b.accounts} == dict(expected_n)
        assert {b.bucket: b.balance_minor for b in got.buckets if b.accounts} == dict(expected_sum)
        assert got.accounts == sum(expected_n.values()) > 0


def test_roll_rates_follow_each_account_from_one_month_end_to_the_next(
    session: Session, tmp_path: Path
) -> None:
    pid = _portfolio(session, tmp_path)
    run.run_portfolio(session, portfolio=pid, as_of=JAN, now=datetime(2026, 1, 30, 2, 0, tzinfo=UTC))
    run.run_portfolio(session, portfolio=pid, as_of=FEB, now=NOW)
    (step,) = reports.roll_rates(session, through=date(2026, 2, 28), portfolio_id=pid)
    assert (step.from_on, step.to_on) == (JAN, FEB)

    def by_account(day: date) -> dict[int, int]:
        rows = session.execute(
            select(StrategyDecision.account_id, StrategyDecision.dpd).where(
                StrategyDecision.portfolio_id == pid, StrategyDecision.as_of_date == day
            )
        )
        return {int(a): int(d) for a, d in rows}

    first, second = by_account(JAN), by_account(FEB)
    expected: Counter[tuple[str, str]] = Counter()
    for account, dpd in first.items():
        later = second.get(account)
        expected[(bucket_of(dpd), LEFT if later is None else bucket_of(later))] += 1
    assert step.moves == dict(expected)
    assert sum(r.accounts for r in step.rolls) == len(first)
    for r in step.rolls:
        assert r.worse + r.same + r.better == r.accounts
    # a month of ageing with few payments: most overdue accounts roll forward
    assert any(r.worse for r in step.rolls)
    assert reports.roll_rates(session, through=date(2026, 1, 31), portfolio_id=pid) == []


def test_collections_count_payments_by_day_and_leave_out_reversals(session: Session, tmp_path: Path) -> None:
    pid = _portfolio(session, tmp_path, accounts=10)
    accounts = list(session.scalars(select(Account).where(Account.portfolio_id == pid).order_by(Account.id)))

    def pay(i: int, minor: int, on: date) -> int:
        out = ledger_service.post_payment(
            session,
            portfolio_id=pid,
            amount_minor=minor,
            received_on=on,
            reference=f"R-{uuid.uuid4().hex[:10]}",
            account_id=accounts[i].id,
            now=NOW,
        )
        return int(out.id)

    pay(0, 10_000, FEB)
    pay(1, 2_550, FEB)
    bounced = pay(2, 99_900, FEB)
    pay(3, 5_000, date(2026, 2, 3))
    pay(4, 7_000, date(2026, 1, 31))  # last month, inside the 30-day window
    ledger_service.reverse_payment(session, payment_id=bounced, reversed_on=FEB, reason="退票", now=NOW)
    got = reports.collected(session, today=FEB, days=30, portfolio_id=pid)
    assert got.today_minor == 12_550
    assert got.month_minor == 17_550
    days = dict(got.days)
    assert len(got.days) == 30 and days[FEB] == 12_550 and days[date(2026, 2, 3)] == 5_000
    assert days[date(2026, 1, 29)] == 0 and days[date(2026, 1, 31)] == 7_000
    assert date(2026, 1, 28) not in days
    stored = session.scalars(select(Payment).where(Payment.portfolio_id == pid)).all()
    assert sum(p.amount_minor for p in stored if p.reversed_on is None) == sum(days.values())


def test_promises_due_and_broken_are_counted_from_the_stored_promises(
    session: Session, tmp_path: Path
) -> None:
    pid = _portfolio(session, tmp_path, accounts=12)
    accounts = list(session.scalars(select(Account).where(Account.portfolio_id == pid).order_by(Account.id)))

    def promise(i: int, on: date, made: date) -> None:
        arrangements_service.record_promise(
            session,
            account_id=accounts[i].id,
            amount_minor=10_000 * (i + 1),
            promised_on=on,
            made_on=made,
            channel=Channel.CALL,
        )

    promise(0, date(2026, 2, 2), JAN)  # broken by the February run
    promise(1, date(2026, 2, 3), JAN)  # broken too
    run.run_portfolio(session, portfolio=pid, as_of=JAN, now=datetime(2026, 1, 30, 2, 0, tzinfo=UTC))
    run.run_portfolio(session, portfolio=pid, as_of=FEB, now=NOW)
    promise(2, FEB, FEB)  # due today
    promise(3, date(2026, 3, 4), FEB)  # due within the week
    promise(4, date(2026, 3, 20), FEB)  # later
    got = reports.promises_summary(session, today=FEB, portfolio_id=pid)
    rows = session.scalars(
        select(Promise).join(Case, Case.id == Promise.case_id).where(Case.portfolio_id == pid)
    ).all()
    broken = [p for p in rows if p.status in ("broken", "partly_kept")]
    assert got.broken_month.count == len(broken) == 2
    assert got.broken_month.amount_minor == sum(p.amount_minor - p.paid_minor for p in broken)
    assert (got.due_today.count, got.due_today.amount_minor) == (1, 30_000)
    assert (got.due_week.count, got.due_week.amount_minor) == (2, 70_000)


def test_blocked_by_rule_counts_the_runs_plan_and_the_desks_refused_calls(
    session: Session, tmp_path: Path
) -> None:
    pid = _portfolio(session, tmp_path, accounts=20)
    report = run.run_portfolio(session, portfolio=pid, as_of=JAN, now=datetime(2026, 1, 30, 2, 0, tzinfo=UTC))
    before = {r.rule_id: r for r in reports.blocked_by_rule(session, day=JAN, portfolio_id=pid)}
    assert sum(r.planned for r in before.values()) == sum(
        int(v) for v in report.outcome.blocked_by_rule.values()
    )
    case = session.scalars(select(Case).where(Case.portfolio_id == pid).order_by(Case.id)).first()
    assert case is not None
    phone = session.scalars(
        select(ContactPoint.id).where(ContactPoint.debtor_id == case.debtor_id, ContactPoint.kind == "mobile")
    ).first()
    night = datetime(2026, 1, 30, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai
    recorded = contacts_service.record_attempt(
        session,
        case_id=case.id,
        contact_point_id=phone,
        channel=Channel.CALL,
        started_at=night,
        outcome=Outcome.NO_ANSWER,
        collector="in_house",
    )
    assert recorded.blocked
    after = {r.rule_id: r for r in reports.blocked_by_rule(session, day=JAN, portfolio_id=pid)}
    assert after["CN-1"].desk == (before["CN-1"].desk if "CN-1" in before else 0) + 1
    assert reports.blocked_by_rule(session, day=date(2026, 1, 31), portfolio_id=pid) == []


def test_the_reports_api_answers_what_the_service_computes(engine: Engine, tmp_path: Path) -> None:
    with db.session_scope(engine) as s:
        pid = _portfolio(s, tmp_path, accounts=15)
        run.run_portfolio(s, portfolio=pid, as_of=JAN, now=datetime(2026, 1, 30, 2, 0, tzinfo=UTC))
        run.run_portfolio(s, portfolio=pid, as_of=FEB, now=NOW)
    client = api_client(engine)
    r = client.get("/api/v1/reports/aging", params={"as_of": "2026-02-27", "portfolio_id": pid})
    assert r.status_code == 200
    with db.session_scope(engine) as s:
        expected = reports.aging(s, as_of=FEB, portfolio_id=pid)
        steps = reports.roll_rates(s, through=FEB, portfolio_id=pid)
    body = r.json()
    assert body["accounts"] == expected.accounts and body["balance_minor"] == expected.balance_minor
    assert [(b["bucket"], b["accounts"]) for b in body["buckets"]] == [
        (b.bucket, b.accounts) for b in expected.buckets
    ]
    rolls = client.get("/api/v1/reports/rolls", params={"through": "2026-02-27", "portfolio_id": pid}).json()
    assert len(rolls) == len(steps) == 1
    assert {(m["from_bucket"], m["to_bucket"]): m["accounts"] for m in rolls[0]["moves"]} == steps[0].moves
    collected = client.get("/api/v1/reports/collected", params={"today": "2026-02-27", "portfolio_id": pid})
    assert collected.status_code == 200 and len(collected.json()["days"]) == 30
    assert client.get("/api/v1/reports/promises", params={"today": "2026-02-27"}).status_code == 200
    assert (
        client.get("/api/v1/reports/blocked", params={"day": "2026-01-30", "portfolio_id": pid}).status_code
        == 200
    )
    for path, params in (
        ("/api/v1/reports/aging", {"as_of": "2026-02-30"}),
        ("/api/v1/reports/aging", {"currency": "cny"}),
        ("/api/v1/reports/collected", {"days": "0"}),
        ("/api/v1/reports/rolls", {"months": "x"}),
    ):
        bad = client.get(path, params=params)
        assert bad.status_code == 422 and bad.json()["code"] == "validation_failed", (path, params)
