"""Allocation, collectors' work queues, claiming under the compliance gate, explanations and
champion / challenger, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from strategy_builders import DAY0, Row, days, import_portfolio, make_collectors

from arrears.errors import ComplianceBlocked, Conflict, Forbidden
from arrears.models import AccountFlag, Case, StrategyDecision, StrategyRun, WorkItem
from arrears.strategy import queue_service, service
from arrears.strategy import run as daily
from arrears.strategy.loader import STRATEGY_DIR_ENV

NOW = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
TEN_AM = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai on DAY0


def _case_of(session: Session, account_id: int) -> Case:
    return session.scalars(select(Case).where(Case.accounts.any(id=account_id))).one()


def test_cases_are_split_evenly_and_held_cases_are_not_allocated(session: Session, tmp_path: Path) -> None:
    rows = [Row(f"c{k}", DAY0 - timedelta(days=2 + k)) for k in range(7)] + [
        Row("held", DAY0 - timedelta(days=4), hold="投诉")
    ]
    p = import_portfolio(session, tmp_path, rows, as_of=DAY0)
    a, b = make_collectors(session, 2)
    report = daily.run_portfolio(session, portfolio=p.name, as_of=DAY0, now=NOW)
    loads = {a: 0, b: 0}
    for ref, account_id in p.ids.items():
        case = _case_of(session, account_id)
        if ref == "held":
            assert case.assignee_id is None
        else:
            assert case.assignee_id in loads
            loads[case.assignee_id] += 1
    assert abs(loads[a] - loads[b]) <= 1 and sum(loads.values()) == 7
    assert report.allocation_counts.get("held") == 1
    history = queue_service.allocation_history(session, case_id=_case_of(session, p.ids["c0"]).id)
    assert [(e.outcome, e.from_collector_id, e.actor) for e in history] == [("assigned", None, None)]
    # every open call of an allocated case sits with that case's collector
    for item in session.scalars(select(WorkItem).where(WorkItem.account_id.in_(p.ids.values()))):
        if item.status == "open" and item.kind in ("call", "visit"):
            assert item.collector_id == _case_of(session, item.account_id).assignee_id


def test_supervisor_reassigns_with_a_reason_and_the_history_says_who_from_to_why(
    session: Session, tmp_path: Path
) -> None:
    p = import_portfolio(
        session,
        tmp_path,
        [Row("x", DAY0 - timedelta(days=4)), Row("h", DAY0 - timedelta(days=4), hold="异议")],
        as_of=DAY0,
    )
    a, b = make_collectors(session, 2)
    daily.run_portfolio(session, portfolio=p.name, as_of=DAY0, now=NOW)
    case = _case_of(session, p.ids["x"])
    before = case.assignee_id
    target = b if before == a else a
    events = queue_service.assign_cases(
        session, case_ids=[case.id], collector=target, actor="lead", reason="语言匹配 / language", as_of=DAY0
    )
    assert [(e.from_collector_id, e.to_collector_id, e.outcome, e.actor) for e in events] == [
        (before, target, "manual", "lead")
    ]
    session.refresh(case)
    assert case.assignee_id == target
    calls = session.scalars(select(WorkItem).where(WorkItem.case_id == case.id, WorkItem.status == "open"))
    assert {w.collector_id for w in calls} == {target}
    held_case = _case_of(session, p.ids["h"])
    with pytest.raises(Conflict) as refused:
        queue_service.assign_cases(
            session, case_ids=[case.id, held_case.id], collector=target, actor="lead", reason="x", as_of=DAY0
        )
    assert refused.value.code == "case_held"
    # the next run keeps the supervisor's choice while the collector works the queue
    daily.run_portfolio(
        session, portfolio=p.name, as_of=DAY0 + timedelta(days=1), now=NOW + timedelta(days=1)
    )
    session.refresh(case)
    assert case.assignee_id == target


def test_work_queue_is_ordered_by_priority_and_claims_respect_window_and_gate(
    session: Session, tmp_path: Path
) -> None:
    rows = [
        Row("small", DAY0 - timedelta(days=4), amount="100.00"),
        Row("big", DAY0 - timedelta(days=5), amount="90000.00"),
        Row("mid", DAY0 - timedelta(days=4), amount="5000.00"),
    ]
    p = import_portfolio(session, tmp_path, rows, as_of=DAY0)
    (collector,) = make_collectors(session, 1)
    daily.run_portfolio(session, portfolio=p.name, as_of=DAY0, now=NOW)
    queue = queue_service.work_queue(session, collector_id=collector, at=TEN_AM)
    assert [w.account_id for w in queue] == [p.ids["big"], p.ids["mid"], p.ids["small"]]
    assert [w.priority for w in queue] == sorted((w.priority for w in queue), reverse=True)
    first = queue_service.next_case(session, collector_id=collector, at=TEN_AM)
    assert first is not None and first.account_id == p.ids["big"]
    early = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)  # 07:00 in Shanghai: before the window
    assert queue_service.next_case(session, collector_id=collector, at=early) is None
    with pytest.raises(Conflict) as outside:
        queue_service.claim_work_item(session, item_id=first.id, collector_id=collector, at=early)
    assert outside.value.code == "outside_window"
    with pytest.raises(Forbidden):
        queue_service.claim_work_item(session, item_id=first.id, collector_id=collector + 10_000, at=TEN_AM)
    claimed = queue_service.claim_work_item(session, item_id=first.id, collector_id=collector, at=TEN_AM)
    assert claimed.status == "claimed"
    with pytest.raises(Conflict):
        queue_service.claim_work_item(session, item_id=first.id, collector_id=collector, at=TEN_AM)
    done = queue_service.complete_work_item(
        session,
        item_id=first.id,
        collector_id=collector,
        outcome="promise",
        at=TEN_AM,
        note="will pay Friday",
    )
    assert done.status == "done"
    # a dispute raised after the run: the real-time gate refuses the call (ALL-1)
    mid = next(w for w in queue if w.account_id == p.ids["mid"])
    session.add(AccountFlag(account_id=mid.account_id, case_id=mid.case_id, kind="dispute", source="agent"))
    session.flush()
    with pytest.raises(ComplianceBlocked) as blocked:
        queue_service.claim_work_item(session, item_id=mid.id, collector_id=collector, at=TEN_AM)
    assert blocked.value.details["rule_ids"] == ["ALL-1"]
    following = queue_service.next_case(session, collector_id=collector, at=TEN_AM)
    assert following is not None and following.account_id == p.ids["small"]


def test_a_debtor_with_two_overdue_accounts_is_one_call_in_the_queue(
    session: Session, tmp_path: Path
) -> None:
    rows = [
        Row("card", DAY0 - timedelta(days=4), amount="800.00", person=1),
        Row("loan", DAY0 - timedelta(days=5), amount="20000.00", person=1),
        Row("other", DAY0 - timedelta(days=4), amount="900.00"),
    ]
    p = import_portfolio(session, tmp_path, rows, as_of=DAY0)
    (collector,) = make_collectors(session, 1)
    daily.run_portfolio(session, portfolio=p.name, as_of=DAY0, now=NOW)
    case = _case_of(session, p.ids["card"])
    assert _case_of(session, p.ids["loan"]).id == case.id
    # both accounts' decisions plan the call; the case gets one
    planned = session.scalars(
        select(StrategyDecision).where(StrategyDecision.account_id.in_([p.ids["card"], p.ids["loan"]]))
    ).all()
    assert len(planned) == 2 and all(any("call" in a for a in d.actions) for d in planned)
    calls = session.scalars(
        select(WorkItem).where(WorkItem.case_id == case.id, WorkItem.kind == "call")
    ).all()
    assert len(calls) == 1
    queue = queue_service.work_queue(session, collector_id=collector, at=TEN_AM)
    assert sorted(w.case_id for w in queue) == sorted([case.id, _case_of(session, p.ids["other"]).id])


def test_an_account_imported_later_the_same_day_adds_no_second_call_to_its_case(
    session: Session, tmp_path: Path
) -> None:
    p = import_portfolio(session, tmp_path, [Row("card", DAY0 - timedelta(days=4), person=1)], as_of=DAY0)
    make_collectors(session, 1)
    daily.run_portfolio(session, portfolio=p.name, as_of=DAY0, now=NOW)
    later = import_portfolio(
        session,
        tmp_path,
        [Row("loan", DAY0 - timedelta(days=5), amount="30000.00", person=1)],
        as_of=DAY0,
        into=p,
    )
    case = _case_of(session, later.ids["loan"])
    assert _case_of(session, p.ids["card"]).id == case.id
    report = daily.run_portfolio(session, portfolio=p.name, as_of=DAY0, now=NOW + timedelta(minutes=30))
    assert report.outcome.accounts_evaluated == 1 and report.outcome.accounts_skipped == 1
    decision = session.scalars(
        select(StrategyDecision).where(StrategyDecision.account_id == later.ids["loan"])
    ).one()
    assert any("call" in a for a in decision.actions)  # planned, but the case has its call for the day
    calls = session.scalars(
        select(WorkItem).where(
            WorkItem.case_id == case.id, WorkItem.kind == "call", WorkItem.status == "open"
        )
    ).all()
    assert [c.account_id for c in calls] == [p.ids["card"]]


def test_no_next_case_says_why_windows_not_open_yet_or_which_rule_blocks(
    session: Session, tmp_path: Path
) -> None:
    rows = [Row("one", DAY0 - timedelta(days=4), amount="800.00"), Row("two", DAY0 - timedelta(days=5))]
    p = import_portfolio(session, tmp_path, rows, as_of=DAY0)
    (collector,) = make_collectors(session, 1)
    nobody = queue_service.next_case_or_idle(session, collector_id=collector, at=TEN_AM)
    assert isinstance(nobody, queue_service.Idle) and nobody.empty and nobody.resumes_at is None
    daily.run_portfolio(session, portfolio=p.name, as_of=DAY0, now=NOW)
    queue = queue_service.work_queue(session, collector_id=collector, at=TEN_AM)
    early = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)  # 07:00 in Shanghai: before every window
    idle = queue_service.next_case_or_idle(session, collector_id=collector, at=early)
    assert isinstance(idle, queue_service.Idle) and not idle.empty
    assert idle.waiting == len(queue) and idle.blocked == ()
    assert idle.resumes_at == min(w.window_start_at for w in queue)
    # a dispute on both accounts: in their window, the gate refuses every item (ALL-1), with no time
    for item in queue:
        session.add(
            AccountFlag(account_id=item.account_id, case_id=item.case_id, kind="dispute", source="agent")
        )
    session.flush()
    blocked = queue_service.next_case_or_idle(session, collector_id=collector, at=TEN_AM)
    assert isinstance(blocked, queue_service.Idle)
    assert [(reason.rule_id, count) for reason, count in blocked.blocked] == [("ALL-1", len(queue))]
    assert blocked.waiting == 0 and blocked.resumes_at is None


def test_explain_says_why_recorded_and_preview(session: Session, tmp_path: Path) -> None:
    p = import_portfolio(
        session,
        tmp_path,
        [Row("x", DAY0 - timedelta(days=6)), Row("h", DAY0 - timedelta(days=6), hold="异议")],
        as_of=DAY0,
    )
    daily.run_portfolio(session, portfolio=p.name, as_of=DAY0, now=NOW)
    recorded = service.explain_account(session, account_id=p.ids["x"], as_of=DAY0)
    assert recorded.source == "recorded" and recorded.stage == "intensive" and recorded.dpd == 6
    assert any(r.code == "dpd" for r in recorded.reasons)
    third = next(a for a in recorded.actions if a.action_key == "intensive.third_party_call")
    assert third.status == "blocked" and third.rule_ids == ["CN-3"]
    preview = service.explain_account(session, account_id=p.ids["x"], as_of=DAY0 + timedelta(days=1))
    assert preview.source == "preview" and preview.stage == "intensive" and preview.days_in_stage == 1
    assert preview.actions == []  # the call repeats every two days
    held = service.explain_account(session, account_id=p.ids["h"], as_of=DAY0 + timedelta(days=1))
    assert held.stage == "held" and held.flags == ["dispute"]
    assert held.reasons[0].code == "stage:held"


def test_champion_challenger_split_is_stable_and_recorded(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib import resources

    text = resources.files("arrears.strategy").joinpath("strategies/default.toml").read_text(encoding="utf-8")
    (tmp_path / "gentler.toml").write_text(text.replace('name = "default"', 'name = "gentler"', 1), "utf-8")
    monkeypatch.setenv(STRATEGY_DIR_ENV, str(tmp_path))
    rows = [Row(f"a{k}", DAY0 - timedelta(days=k % 9)) for k in range(40)]
    p = import_portfolio(session, tmp_path, rows, as_of=DAY0)
    service.assign_strategy(
        session, portfolio=p.name, strategy="default", challenger="gentler", challenger_share_bp=3000
    )
    arms: dict[int, str] = {}
    for k, as_of in enumerate(days(DAY0, 2)):
        report = daily.run_portfolio(session, portfolio=p.name, as_of=as_of, now=NOW + timedelta(days=k))
        run = session.get(StrategyRun, report.run_id)
        assert run is not None and run.challenger == "gentler" and run.challenger_share_bp == 3000
        assert sum(run.arm_counts.values()) == 40
        decisions = session.scalars(
            select(StrategyDecision).where(
                StrategyDecision.account_id.in_(p.ids.values()), StrategyDecision.as_of_date == as_of
            )
        ).all()
        for d in decisions:
            assert d.strategy == ("gentler" if d.arm == "challenger" else "default")
            assert d.challenger_share_bp == 3000
            assert arms.setdefault(d.account_id, d.arm or "") == d.arm  # the same arm every day
    assert set(arms.values()) == {"champion", "challenger"}


def _copy_of(item: WorkItem, **changes: object) -> WorkItem:
    columns = {c.key: getattr(item, c.key) for c in WorkItem.__table__.columns if c.key != "id"}
    return WorkItem(**{**columns, **changes})


def test_a_live_work_items_key_is_unique_and_an_expired_one_leaves_the_index(
    session: Session, tmp_path: Path
) -> None:
    p = import_portfolio(session, tmp_path, [Row("x", DAY0 - timedelta(days=2))], as_of=DAY0)
    make_collectors(session, 1)
    daily.run_portfolio(session, portfolio=p.name, as_of=DAY0, now=NOW)
    first = session.scalars(
        select(WorkItem).where(
            WorkItem.account_id == p.ids["x"], WorkItem.kind == "call", WorkItem.status == "open"
        )
    ).first()
    assert first is not None
    # the run never writes a key twice; a second row with a live item's key is refused by the database
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(_copy_of(first))
    daily.run_portfolio(
        session, portfolio=p.name, as_of=DAY0 + timedelta(days=1), now=NOW + timedelta(days=1)
    )
    session.refresh(first)
    assert first.status == "expired"
    # expired: a later date's run replaced it, and no run goes back to its date; its key is out of the
    # unique index (it is most of the table's rows, rewritten each day), and so out of its upkeep
    with session.begin_nested():
        session.add(_copy_of(first, status="expired"))
    assert (
        len(session.scalars(select(WorkItem).where(WorkItem.idempotency_key == first.idempotency_key)).all())
        == 2
    )


def test_the_allocation_reads_the_same_decisions_a_run_hands_it_as_it_reads_back(
    session: Session, tmp_path: Path
) -> None:
    rows = [
        Row("a1", DAY0 - timedelta(days=3), person=1),
        Row("a2", DAY0 - timedelta(days=12), person=1),
        Row("held", DAY0 - timedelta(days=4), hold="投诉"),
        Row("early", DAY0 - timedelta(days=1)),
        Row("current", DAY0 + timedelta(days=5)),
    ]
    p = import_portfolio(session, tmp_path, rows, as_of=DAY0)
    make_collectors(session, 2)
    daily.run_portfolio(session, portfolio=p.name, as_of=DAY0, now=NOW)
    settings = daily.resolve_settings(session, portfolio=p.name)
    # the date's decisions again, as the run made them in memory
    snapshot, _history = daily.load_snapshot(session, settings, as_of=DAY0, include_decided=True)
    decisions, _planned = daily.evaluate_snapshot(
        settings, snapshot, as_of=DAY0, outcome=daily.PartitionOutcome()
    )
    handed = daily.decided_for_allocation(decisions)
    assert handed["held"].sum() == 1
    pid, order = settings.portfolio_id, daily.stage_order(settings)
    read = queue_service._allocation_frame(session, portfolio_id=pid, as_of=DAY0, order=order)
    given = queue_service._allocation_frame(
        session, portfolio_id=pid, as_of=DAY0, order=order, decided=handed
    )
    assert read.height == 4 and given.equals(read)


def test_a_case_rotates_after_its_days_with_one_collector_counted_from_the_day_it_came(
    session: Session, tmp_path: Path
) -> None:
    p = import_portfolio(session, tmp_path, [Row("late", DAY0 - timedelta(days=8))], as_of=DAY0)
    make_collectors(session, 2)
    case = _case_of(session, p.ids["late"])
    default = queue_service.portfolio_queue_set(session, case.portfolio_id)
    rotating = default.model_copy(
        update={
            "queues": tuple(
                q.model_copy(update={"rotation_days": 2}) if q.name == "late" else q for q in default.queues
            )
        }
    )
    daily.run_portfolio(session, portfolio=p.name, as_of=DAY0, now=NOW)
    session.refresh(case)
    first = case.assignee_id
    assert first is not None and case.assigned_on == DAY0
    for k in (1, 2):
        day = DAY0 + timedelta(days=k)
        daily.run_portfolio(session, portfolio=p.name, as_of=day, now=NOW + timedelta(days=k))
        queue_service.allocate_portfolio(
            session,
            portfolio_id=case.portfolio_id,
            as_of=day,
            now=NOW + timedelta(days=k),
            queue_set=rotating,
        )
        session.refresh(case)
        if k == 1:  # one day with the collector: kept, and still counted from the first day
            assert (case.assignee_id, case.assigned_on) == (first, DAY0)
    # two days: rotated to the other collector, who has it from today
    assert case.assignee_id not in (None, first)
    assert case.assigned_on == DAY0 + timedelta(days=2)
    history = queue_service.allocation_history(session, case_id=case.id)
    assert [(e.from_collector_id, e.effective_on) for e in history][-1] == (first, DAY0 + timedelta(days=2))
    # a supervisor's reassignment starts the count again
    queue_service.assign_cases(
        session,
        case_ids=[case.id],
        collector=first,
        actor="lead",
        reason="交接 / handover",
        as_of=DAY0 + timedelta(days=3),
    )
    session.refresh(case)
    assert (case.assignee_id, case.assigned_on) == (first, DAY0 + timedelta(days=3))
