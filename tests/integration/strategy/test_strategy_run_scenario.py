"""The daily run over ten consecutive days on a small imported portfolio, against the default strategy.

Every account's stage and planned actions are checked day by day: by hand for two accounts, and for all of
them against the pure scalar evaluation (`evaluate` + `advance`) run over the same inputs.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from strategy_builders import DAY0, Row, days, import_portfolio, make_collectors

from arrears.models import AccountFlag, Case, OutboxMessage, StrategyDecision, StrategyRun, WorkItem
from arrears.strategy import run as daily
from arrears.strategy.evaluate import Snapshot, advance, evaluate
from arrears.strategy.loader import load_strategy

NOW = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)

# Hand-checked plan of two accounts (DESIGN.md's default process), day 0 .. day 9.
PRE_DUE = [  # due on day 3: DPD -3 on day 0
    ("pre_due", ["pre_due.reminder_sms", "pre_due.reminder_email"]),
    ("pre_due", []),
    ("pre_due", []),
    (None, []),  # the due date itself: no stage
    ("gentle", ["gentle.reminder_sms"]),
    ("gentle", ["gentle.courtesy_call"]),
    ("gentle", ["gentle.courtesy_call"]),
    ("firm", ["firm.call"]),
    ("firm", ["firm.call", "firm.formal_notice"]),
    ("intensive", ["intensive.call", "intensive.field_visit", "intensive.third_party_call"]),
]
EARLY = [  # due the day before day 0: DPD 1 on day 0
    ("gentle", ["gentle.reminder_sms"]),
    ("gentle", ["gentle.courtesy_call"]),
    ("gentle", ["gentle.courtesy_call"]),
    ("firm", ["firm.call"]),
    ("firm", ["firm.call", "firm.formal_notice"]),
    ("intensive", ["intensive.call", "intensive.field_visit", "intensive.third_party_call"]),
    ("intensive", []),
    ("intensive", ["intensive.call"]),
    ("intensive", []),
    ("intensive", ["intensive.call"]),
]


def _rows(day0: date) -> list[Row]:
    return [
        Row("pre", day0 + timedelta(days=3)),
        Row("early", day0 - timedelta(days=1), email=False),
        Row("legal", day0 - timedelta(days=88), amount="6000.00"),
        Row("held", day0 - timedelta(days=10), hold="异议"),
        Row("late", day0 - timedelta(days=20)),
    ]


def _decisions(session: Session, account_ids: list[int], as_of: date) -> dict[int, StrategyDecision]:
    rows = session.scalars(
        select(StrategyDecision).where(
            StrategyDecision.account_id.in_(account_ids), StrategyDecision.as_of_date == as_of
        )
    )
    return {d.account_id: d for d in rows}


def test_ten_days_each_account_follows_the_default_strategy(session: Session, tmp_path: Path) -> None:
    day0 = DAY0
    portfolio = import_portfolio(session, tmp_path, _rows(day0), as_of=day0)
    make_collectors(session, 2)
    ids = portfolio.ids
    strategy = load_strategy("default")
    reference = {
        ref: Snapshot(account_id=i, dpd=0, balance_minor=0, currency="CNY") for ref, i in ids.items()
    }
    dues = {r.ref: r.due for r in _rows(day0)}
    balances = {"legal": 600_000}
    for k, as_of in enumerate(days(day0, 10)):
        report = daily.run_portfolio(
            session, portfolio=portfolio.name, as_of=as_of, now=NOW + timedelta(days=k)
        )
        assert report.status == "succeeded"
        assert report.outcome.accounts_evaluated == len(ids)
        got = _decisions(session, list(ids.values()), as_of)
        for ref, account_id in ids.items():
            snap = replace(
                reference[ref],
                dpd=(as_of - dues[ref]).days,
                balance_minor=balances.get(ref, 100_000),
                flags=frozenset({"dispute"}) if ref == "held" else frozenset(),
            )
            expected = evaluate(snap, strategy, as_of)
            reference[ref] = advance(snap, expected)
            decision = got[account_id]
            assert decision.stage == expected.stage, (ref, as_of)
            assert decision.actions == list(expected.action_keys), (ref, as_of)
            assert decision.stage_entered_on == expected.stage_entered_on
        assert (got[ids["pre"]].stage, got[ids["pre"]].actions) == PRE_DUE[k]
        assert (got[ids["early"]].stage, got[ids["early"]].actions) == EARLY[k]
        held = got[ids["held"]]
        assert held.stage == "held" and held.actions == [] and held.flags == "dispute"
        # the legal account crosses DPD 90 on day 2 and is referred once, for a supervisor's approval
        legal = got[ids["legal"]]
        assert legal.stage == ("intensive" if k < 2 else "legal")
        assert legal.actions == (["legal.referral"] if k == 2 else legal.actions)
    # automated messages went to the outbox, queued inside their window (09:00 Shanghai = 01:00 UTC)
    sms = session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.account_id == ids["pre"], OutboxMessage.action_key == "pre_due.reminder_sms"
        )
    ).one()
    assert sms.channel == "sms" and sms.locale == "zh_CN"
    # never sent (no dispatcher here), and cancelled by the run of day 3, when the account left pre-due
    assert sms.status == "cancelled"
    assert sms.last_reason is not None and "no collection stage" in sms.last_reason
    assert sms.planned_for == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    assert sms.window_end == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert sms.idempotency_key == f"{ids['pre']}:default:pre_due.reminder_sms:2026-03-02"
    letter = session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.account_id == ids["early"], OutboxMessage.action_key == "firm.formal_notice"
        )
    ).one()
    assert letter.channel == "letter" and letter.status == "cancelled"
    assert letter.last_reason is not None and "moved to stage intensive" in letter.last_reason
    # third-party calls are planned but the gate refuses them while the debtor is reachable (CN-3)
    third = session.scalars(
        select(WorkItem).where(
            WorkItem.account_id == ids["early"], WorkItem.action_key == "intensive.third_party_call"
        )
    ).one()
    assert third.status == "blocked" and third.rule_ids == ["CN-3"]
    # calls are in a collector's queue, and the legal referral waits for approval
    call = session.scalars(
        select(WorkItem).where(
            WorkItem.account_id == ids["early"], WorkItem.as_of_date == day0 + timedelta(days=9)
        )
    ).one()
    assert call.kind == "call" and call.status == "open" and call.collector_id is not None
    referral = session.scalars(
        select(WorkItem).where(WorkItem.action_key == "legal.referral", WorkItem.account_id.in_(ids.values()))
    ).one()
    assert referral.kind == "legal_referral" and referral.account_id == ids["legal"]
    # the held case is never allocated; the case carries its stage
    held_case = session.scalars(
        select(Case).join(Case.accounts).where(Case.accounts.any(id=ids["held"]))
    ).first()
    assert held_case is not None and held_case.stage == "held" and held_case.assignee_id is None
    runs = session.scalars(
        select(StrategyRun).where(StrategyRun.portfolio_id == report_portfolio_id(session, ids))
    )
    assert len(list(runs)) == 10


def report_portfolio_id(session: Session, ids: dict[str, int]) -> int:
    from arrears.models import Account

    account = session.get(Account, next(iter(ids.values())))
    assert account is not None
    return account.portfolio_id


def test_running_the_same_date_twice_changes_nothing(session: Session, tmp_path: Path) -> None:
    day0 = DAY0
    portfolio = import_portfolio(session, tmp_path, _rows(day0), as_of=day0)
    make_collectors(session, 2)

    def counts() -> tuple[int, ...]:
        return tuple(
            session.scalar(select(func.count()).select_from(t)) or 0
            for t in (StrategyDecision, OutboxMessage, WorkItem)
        )

    first = daily.run_portfolio(session, portfolio=portfolio.name, as_of=day0, now=NOW)
    assert first.changes > 0 and first.outcome.outbox > 0 and first.outcome.work_items > 0
    before = counts()
    stages = {c.id: (c.stage, c.assignee_id) for c in session.scalars(select(Case))}
    second = daily.run_portfolio(session, portfolio=portfolio.name, as_of=day0, now=NOW + timedelta(hours=1))
    assert second.changes == 0
    assert second.outcome.accounts_evaluated == 0 and second.outcome.accounts_skipped == len(portfolio.ids)
    assert counts() == before
    assert {c.id: (c.stage, c.assignee_id) for c in session.scalars(select(Case))} == stages
    run = session.get(StrategyRun, second.run_id)
    assert run is not None and run.changes == 0 and run.status == "succeeded"


def test_a_dispute_stops_everything_until_it_is_cleared(session: Session, tmp_path: Path) -> None:
    day0 = DAY0
    portfolio = import_portfolio(session, tmp_path, [Row("late", day0 - timedelta(days=20))], as_of=day0)
    make_collectors(session, 1)
    account_id = portfolio.ids["late"]
    d = days(day0, 8)
    daily.run_portfolio(session, portfolio=portfolio.name, as_of=d[0], now=NOW)
    case = session.scalars(select(Case).where(Case.accounts.any(id=account_id))).one()
    assert case.stage == "intensive" and case.assignee_id is not None
    open_call = session.scalars(
        select(WorkItem).where(
            WorkItem.account_id == account_id, WorkItem.status == "open", WorkItem.kind == "call"
        )
    ).one()
    flag = AccountFlag(
        account_id=account_id, case_id=case.id, kind="dispute", reason="debtor disputes the amount"
    )
    session.add(flag)
    session.flush()
    for k in (1, 2, 3):
        report = daily.run_portfolio(
            session, portfolio=portfolio.name, as_of=d[k], now=NOW + timedelta(days=k)
        )
        decision = _decisions(session, [account_id], d[k])[account_id]
        assert decision.stage == "held" and decision.actions == []
        assert report.outcome.outbox == 0 and report.outcome.work_items == 0
    session.refresh(case)
    session.refresh(open_call)
    assert case.stage == "held" and case.assignee_id is None  # held cases are taken out of queues
    # the dispute cancels what was still pending for the account, and says why
    assert open_call.status == "cancelled"
    assert open_call.last_reason is not None and "on hold (dispute)" in open_call.last_reason
    pending = session.scalars(
        select(OutboxMessage).where(OutboxMessage.account_id == account_id, OutboxMessage.status == "queued")
    ).all()
    assert pending == []
    flag.cleared_at = NOW + timedelta(days=4)
    flag.clear_reason = "verified"
    session.flush()
    daily.run_portfolio(session, portfolio=portfolio.name, as_of=d[4], now=NOW + timedelta(days=4))
    decision = _decisions(session, [account_id], d[4])[account_id]
    assert decision.stage == "intensive" and decision.stage_entered_on == d[4]
    assert "intensive.call" in decision.actions
    session.refresh(case)
    assert case.stage == "intensive" and case.assignee_id is not None


def test_dry_run_reports_and_writes_nothing(session: Session, tmp_path: Path) -> None:
    day0 = DAY0
    portfolio = import_portfolio(session, tmp_path, _rows(day0), as_of=day0)
    before = session.scalar(select(func.count()).select_from(StrategyRun))
    report = daily.run_portfolio(session, portfolio=portfolio.name, as_of=day0, now=NOW, dry_run=True)
    assert report.status == "dry_run" and report.run_id is None
    assert report.outcome.accounts_evaluated == 5 and report.outcome.outbox > 0
    assert session.scalar(select(func.count()).select_from(StrategyRun)) == before
    assert not _decisions(session, list(portfolio.ids.values()), day0)
    real = daily.run_portfolio(session, portfolio=portfolio.name, as_of=day0, now=NOW)
    assert real.outcome.stage_counts == report.outcome.stage_counts
    assert real.outcome.action_counts == report.outcome.action_counts
