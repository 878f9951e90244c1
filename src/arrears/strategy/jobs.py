"""Daily runs started from the desk: the normal run (``run.run_portfolio``) in a background task.

The run stays what it is everywhere else (one transaction, its row in ``strategy_run`` once it commits);
the job only says, while it works, which phase it is in, and afterwards how it ended. Jobs are kept in
memory by the process that runs them (the page that started one polls the same process); what lasts is
the run's own row. One job per portfolio at a time; the run's own lock still guards against runs started
elsewhere (CLI, API, the scheduler).
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Engine

from arrears import clock
from arrears.db import session_scope
from arrears.errors import ArrearsError, Conflict
from arrears.strategy import run as daily

log = logging.getLogger(__name__)

KEPT = 20  # finished jobs shown on the page


@dataclass
class RunJob:
    """A run started from the desk, as the page shows it."""

    id: int
    portfolio: str
    as_of: date
    dry_run: bool
    requested_by: str
    started_at: datetime
    status: str = "running"  # running, succeeded, dry_run, failed
    phase: str | None = None
    run_id: int | None = None
    changes: int | None = None
    message: str | None = None
    finished_at: datetime | None = None
    phases_seen: set[str] = field(default_factory=set)

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def phases_done(self) -> int:
        return len(self.phases_seen)


_jobs: dict[int, RunJob] = {}
_ids = itertools.count(1)
_lock = threading.Lock()


def start(*, portfolio: str, as_of: date, dry_run: bool, requested_by: str, now: datetime) -> RunJob:
    """Register a job (refused while one for the same portfolio is still running here)."""
    with _lock:
        if any(j.running and j.portfolio == portfolio for j in _jobs.values()):
            raise Conflict(
                f"资产包 {portfolio} 的批次正在运行 / a run of portfolio {portfolio} is already in progress",
                code="run_in_progress",
            )
        job = RunJob(
            id=next(_ids),
            portfolio=portfolio,
            as_of=as_of,
            dry_run=dry_run,
            requested_by=requested_by,
            started_at=now,
        )
        _jobs[job.id] = job
        finished = sorted((j for j in _jobs.values() if not j.running), key=lambda j: j.id)
        for old in finished[:-KEPT]:
            del _jobs[old.id]
        return job


def get(job_id: int) -> RunJob | None:
    with _lock:
        return _jobs.get(job_id)


def recent() -> list[RunJob]:
    """The jobs this process knows, newest first."""
    with _lock:
        return sorted(_jobs.values(), key=lambda j: -j.id)


def execute(engine: Engine, job_id: int) -> None:
    """Run a registered job to its end; every outcome, including an unexpected error, is kept on the job."""
    job = get(job_id)
    if job is None or not job.running:
        return

    def progress(phase: str, done: int, total: int) -> None:
        with _lock:
            job.phase = phase
            if done >= total:
                job.phases_seen.add(phase)

    try:
        with session_scope(engine) as s:
            report = daily.run_portfolio(
                s,
                portfolio=job.portfolio,
                as_of=job.as_of,
                now=job.started_at,
                dry_run=job.dry_run,
                requested_by=job.requested_by,
                progress=progress,
            )
        status, message = report.status, None
        run_id, changes = report.run_id, report.changes
    except ArrearsError as exc:
        status, message, run_id, changes = "failed", exc.message, None, None
    except Exception:  # the job must say it failed rather than stay "running" forever
        log.exception("desk run %s failed", job_id)
        status, run_id, changes = "failed", None, None
        message = (
            "批次运行时发生内部错误，请联系管理员 / the run failed with an internal error; see the server log"
        )
    with _lock:
        job.status = status
        job.message = message
        job.run_id = run_id
        job.changes = changes
        job.phase = None
        job.finished_at = clock.now()
