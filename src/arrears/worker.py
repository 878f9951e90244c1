"""Celery app and tasks (scale-out). By default the same functions run in-process, with no broker.

Start workers with ``celery -A arrears.worker:celery_app worker -Q arrears`` (broker and result backend:
``ARREARS_BROKER_URL``, default ``redis://127.0.0.1:6379/0``; database: ``ARREARS_DATABASE_URL``).

The daily run is split by partition of the portfolio's cases (``case_id % partitions``): `run_distributed`
takes the lock and creates the run row (one transaction), sends one `run_partition` task per partition,
each of which evaluates, gates and writes its partition in its own transaction, then allocates and records
the run (a last transaction). The phases are the very functions the in-process run calls, and a partition
depends only on its own cases, so both paths give identical results. A failed partition leaves the others
written; running the date again finishes the rest (accounts already decided are skipped).
"""

from __future__ import annotations

import time
from datetime import date, datetime
from functools import reduce
from typing import Any

from celery import Celery, group
from sqlalchemy import Engine, text

from arrears.config import get_settings

DEFAULT_QUEUE = "arrears"


def make_celery(broker_url: str | None = None) -> Celery:
    """A Celery app on the configured broker (also the result backend), JSON only."""
    url = broker_url or get_settings().broker_url
    app = Celery("arrears", broker=url, backend=url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=DEFAULT_QUEUE,
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        result_expires=24 * 3600,
    )
    return app


celery_app = make_celery()


@celery_app.task(name="arrears.strategy.run_partition")  # type: ignore[untyped-decorator]
def run_partition(run_id: int, partition: int, partitions: int) -> dict[str, Any]:
    """One partition of a daily run, in its own transaction (see `arrears.strategy.run.run_partition`)."""
    from arrears import db
    from arrears.errors import NotFound
    from arrears.models import StrategyRun
    from arrears.strategy import run as daily

    with db.session_scope(db.get_engine()) as session:
        if session.get_bind().dialect.name == "sqlite":
            # SQLite has one writer: take the write lock before reading, so a partition waits for another
            # one's commit instead of failing on a stale read snapshot.
            session.execute(
                text("UPDATE strategy_run SET partitions = partitions WHERE id = :id"), {"id": run_id}
            )
        run = session.get(StrategyRun, run_id)
        if run is None:
            raise NotFound(f"no run {run_id}", code="run_not_found")
        settings = daily.resolve_settings(session, portfolio=run.portfolio_id)
        outcome = daily.run_partition(
            session,
            settings,
            run_id=run_id,
            as_of=run.as_of_date,
            now=run.started_at,
            partition=partition,
            partitions=partitions,
        )
        return outcome.to_dict()


def run_distributed(
    engine: Engine,
    *,
    portfolio: str | int,
    as_of: date,
    now: datetime,
    partitions: int,
    queue: str = DEFAULT_QUEUE,
    timeout: float = 6 * 3600,
    requested_by: str | None = None,
    app: Celery | None = None,
) -> Any:
    """Run a portfolio's day across Celery workers; commits (this is an edge, like a CLI command).

    Returns the `RunReport`. On any failure the run row is marked failed with the error and the lock is
    released, then the error is raised again.
    """
    from arrears import db
    from arrears.models import StrategyRun
    from arrears.strategy import run as daily

    started = time.perf_counter()
    with db.session_scope(engine) as session:
        settings = daily.resolve_settings(session, portfolio=portfolio)
        run = daily.begin_run(
            session,
            settings,
            as_of=as_of,
            now=now,
            mode="distributed",
            partitions=partitions,
            requested_by=requested_by,
        )
        run_id = run.id
    try:
        task = (app or celery_app).tasks[run_partition.name]
        job = group(task.s(run_id, k, partitions).set(queue=queue) for k in range(partitions)).apply_async()
        results = job.get(timeout=timeout, disable_sync_subtasks=False)
        outcome = reduce(
            daily.PartitionOutcome.merge,
            (daily.PartitionOutcome.from_dict(r) for r in results),
            daily.PartitionOutcome(),
        )
        with db.session_scope(engine) as session:
            settings = daily.resolve_settings(session, portfolio=portfolio)
            stored = session.get(StrategyRun, run_id)
            assert stored is not None
            return daily.finish_run(session, settings, stored, outcome, now=now, started=started)
    except BaseException as exc:
        with db.session_scope(engine) as session:
            daily.fail_run(session, run_id=run_id, error=f"{type(exc).__name__}: {exc}", now=now)
        raise


@celery_app.task(name="arrears.channels.dispatch")  # type: ignore[untyped-decorator]
def dispatch_outbox(portfolio_id: int | None = None, limit: int | None = None) -> dict[str, int]:
    """Drain the outbox (see `arrears.channels.outbox`): several workers may run this at once, each claims
    its own rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so messages go out once whoever sends them."""
    from arrears import clock, db
    from arrears.channels import outbox

    senders = outbox.ConfiguredSenders()
    try:
        report = outbox.drain(
            db.session_factory(db.get_engine()),
            now=clock.now,
            senders=senders,
            portfolio_id=portfolio_id,
            limit=limit,
            overlap=True,  # each session has its own connection here
        )
    finally:
        senders.close()
    return report.to_dict()


def schedule_dispatch(app: Celery, *, every_s: float, queue: str = DEFAULT_QUEUE) -> None:
    """Have Celery beat send a dispatch task every ``every_s`` seconds."""
    app.conf.beat_schedule = {
        **(app.conf.beat_schedule or {}),
        "arrears-dispatch": {
            "task": "arrears.channels.dispatch",
            "schedule": every_s,
            "options": {"queue": queue},
        },
    }
