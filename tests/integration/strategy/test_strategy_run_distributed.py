"""The daily run split across real Celery workers (real Redis) gives exactly the in-process results.

Two portfolios get the same accounts from the same rows; one is run in-process, the other by partition on
two worker processes the test starts. Every decision, outbox message, work item and case stage is compared.
Skipped when Redis is unreachable, unless CI=true.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from strategy_builders import DAY0, Row, committed_collectors, days, import_portfolio

from arrears import db
from arrears.config import get_settings
from arrears.models import Account, Case, OutboxMessage, StrategyDecision, StrategyRun, WorkItem
from arrears.strategy import run as daily

BROKER = os.environ.get("ARREARS_BROKER_URL", get_settings().broker_url)
NOW = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
SRC = Path(__file__).resolve().parents[3] / "src"


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(BROKER, socket_connect_timeout=2).ping()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis unreachable at {BROKER}: {exc}")
        pytest.skip(f"Redis unreachable at {BROKER}: the distributed run needs a broker")


@pytest.fixture
def workers(engine: Engine) -> Iterator[str]:
    """Two Celery worker processes on a queue of their own, serving this test's database."""
    _redis_or_skip()
    queue = f"arrears-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "ARREARS_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "ARREARS_BROKER_URL": BROKER,
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "arrears.worker:celery_app",
                "worker",
                "--pool=solo",
                "-Q",
                queue,
                "-n",
                f"{queue}-{k}@%h",
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for k in range(2)
    ]
    try:
        yield queue
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _rows() -> list[Row]:
    return [
        Row(f"a{k}", DAY0 - timedelta(days=dpd), amount=amount)
        for k, (dpd, amount) in enumerate(
            [
                (-3, "100.00"),
                (1, "200.00"),
                (4, "300.00"),
                (5, "50.00"),
                (6, "80.00"),
                (20, "900.00"),
                (88, "6000.00"),
                (2, "10.00"),
                (-1, "70.00"),
                (40, "400.00"),
                (0, "60.00"),
                (3, "90.00"),
            ]
        )
    ]  # no holds here: this test commits, and other tests count every flag in the database


def _results(session: Session, name: str) -> dict[str, Any]:
    prefix = f"{name}-"
    refs = {
        a.id: a.external_ref.removeprefix(prefix)
        for a in session.scalars(select(Account).where(Account.external_ref.like(f"{prefix}%")))
    }
    decisions = sorted(
        (
            refs[d.account_id],
            d.as_of_date,
            d.stage,
            d.exit,
            tuple(d.actions),
            d.stage_entered_on,
            d.dpd,
            d.priority,
        )
        for d in session.scalars(select(StrategyDecision).where(StrategyDecision.account_id.in_(refs)))
    )
    outbox = sorted(
        (
            refs[m.account_id],
            m.action_key,
            m.as_of_date,
            m.channel,
            m.status,
            m.planned_for,
            m.window_end,
            tuple(m.rule_ids),
            m.locale,
            m.idempotency_key.split(":", 1)[1],
        )
        for m in session.scalars(select(OutboxMessage).where(OutboxMessage.account_id.in_(refs)))
    )
    items = sorted(
        (
            refs[w.account_id],
            w.action_key,
            w.as_of_date,
            w.kind,
            w.status,
            w.window_start_at,
            w.window_end_at,
            tuple(w.rule_ids),
            w.priority,
            w.queue,
            w.collector_id is not None,
        )
        for w in session.scalars(select(WorkItem).where(WorkItem.account_id.in_(refs)))
    )
    cases = sorted(
        (refs[a.id], c.stage, c.assignee_id is not None)
        for a, c in session.execute(
            select(Account, Case).join(Case, Case.id == Account.case_id).where(Account.id.in_(refs))
        )
    )
    return {"decisions": decisions, "outbox": outbox, "items": items, "cases": cases}


def test_distributed_run_matches_the_in_process_run(engine: Engine, workers: str, tmp_path: Path) -> None:
    with db.session_scope(engine) as s:
        local = import_portfolio(s, tmp_path, _rows(), as_of=DAY0, prefix="local")
        spread = import_portfolio(s, tmp_path, _rows(), as_of=DAY0, prefix="spread")
    with committed_collectors(engine, 2):
        _compare(engine, local.name, spread.name, workers)


def _compare(engine: Engine, local: str, spread: str, workers: str) -> None:
    from arrears.worker import run_distributed

    for k, as_of in enumerate(days(DAY0, 3)):
        with db.session_scope(engine) as s:
            here = daily.run_portfolio(s, portfolio=local, as_of=as_of, now=NOW + timedelta(days=k))
        there = run_distributed(
            engine,
            portfolio=spread,
            as_of=as_of,
            now=NOW + timedelta(days=k),
            partitions=3,
            queue=workers,
            timeout=180,
        )
        assert there.status == "succeeded" and there.mode == "distributed"
        assert there.outcome.accounts_evaluated == here.outcome.accounts_evaluated == 12
        assert there.outcome.stage_counts == here.outcome.stage_counts
        assert there.outcome.action_counts == here.outcome.action_counts
        assert there.outcome.blocked_by_rule == here.outcome.blocked_by_rule
        # the same rows either way; the partitions write their calls before the allocation, which then
        # moves them to their case's collector, while a run in one process writes them after it
        assert there.changes - there.allocation_changes == here.changes - here.allocation_changes
        assert there.allocation_changes >= here.allocation_changes
    with Session(engine) as s:
        assert _results(s, spread) == _results(s, local)
        run = s.get(StrategyRun, there.run_id)
        assert run is not None and run.partitions == 3 and run.status == "succeeded"
    # the same date again, distributed: nothing changes
    again = run_distributed(
        engine,
        portfolio=spread,
        as_of=as_of,
        now=NOW + timedelta(days=5),
        partitions=3,
        queue=workers,
        timeout=180,
    )
    assert again.changes == 0 and again.outcome.accounts_skipped == 12


def test_in_process_partitions_give_the_results_of_one_part(engine: Engine, tmp_path: Path) -> None:
    # partitions in one process hold their work items until the allocation; two accounts of one debtor
    # are one case, so one partition and one call
    rows = [
        *_rows(),
        Row("b0", DAY0 - timedelta(days=4), amount="500.00", person=1),
        Row("b1", DAY0 - timedelta(days=6), amount="700.00", person=1),
    ]
    with db.session_scope(engine) as s:
        whole = import_portfolio(s, tmp_path, rows, as_of=DAY0, prefix="whole")
        parts = import_portfolio(s, tmp_path, rows, as_of=DAY0, prefix="parts")
    with committed_collectors(engine, 2):
        for k, as_of in enumerate(days(DAY0, 3)):
            now = NOW + timedelta(days=k)
            with db.session_scope(engine) as s:
                one = daily.run_portfolio(s, portfolio=whole.name, as_of=as_of, now=now)
            with db.session_scope(engine) as s:
                three = daily.run_portfolio(s, portfolio=parts.name, as_of=as_of, now=now, partitions=3)
            assert three.changes == one.changes and three.outcome.work_items == one.outcome.work_items
        with Session(engine) as s:
            assert _results(s, parts.name) == _results(s, whole.name)
            both = [whole.ids["b0"], whole.ids["b1"]]
            calls = s.scalars(
                select(WorkItem).where(WorkItem.account_id.in_(both), WorkItem.kind == "call")
            ).all()
            debtor_calls = [c.as_of_date for c in calls if c.audience == "debtor"]
            assert len(set(debtor_calls)) == len(debtor_calls) == 3  # one call a day for the two accounts
