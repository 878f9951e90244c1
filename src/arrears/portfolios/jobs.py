"""Imports started from the desk: an uploaded file becomes a job that runs the normal account import.

The import stays what it is everywhere else (all rows or none, a row-level problem report); the job only
keeps the upload, says where the import stands and what came of it. The job's own rows are written in
short transactions of their own, separate from the import's single transaction, so a refused import leaves
the job saying why and nothing else. Progress (rows read so far) is kept in memory by the process that runs
the import and shown by the page that polls it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from arrears import clock
from arrears.config import get_settings
from arrears.db import session_scope
from arrears.errors import ArrearsError, NotFound, ValidationFailed
from arrears.models import AppUser, ImportJob, Portfolio
from arrears.portfolios import service as portfolios_service
from arrears.portfolios.report import write_report

log = logging.getLogger(__name__)

SUFFIXES = (".csv", ".xlsx")
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
FINISHED = frozenset({"applied", "dry_run", "rejected", "failed"})

_progress: dict[int, int] = {}
_progress_lock = threading.Lock()


def upload_dir() -> Path:
    """Where uploads and their problem reports are kept (under the document directory)."""
    return Path(get_settings().document_dir) / "imports"


def _safe_name(filename: str) -> str:
    stem = Path(filename).name
    return re.sub(r"[^\w.\-]+", "_", stem)[-120:] or "upload"


def create_job(
    session: Session,
    *,
    portfolio_id: int,
    filename: str,
    content: bytes,
    dry_run: bool,
    user_id: int | None,
) -> ImportJob:
    """Keep an uploaded file and queue its import; refuse what could never import, before storing it."""
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValidationFailed(
            f"文件 {filename} 不是 CSV 或 XLSX 文件 / {filename} is not a CSV or XLSX file",
            code="import_file_type",
        )
    if not content:
        raise ValidationFailed(f"文件 {filename} 是空的 / {filename} is empty", code="import_file_empty")
    if len(content) > MAX_UPLOAD_BYTES:
        raise ValidationFailed(
            f"文件 {filename} 超过 512 MB / {filename} is larger than 512 MB", code="import_file_too_large"
        )
    if session.get(Portfolio, portfolio_id) is None:
        raise NotFound(
            f"资产包不存在：{portfolio_id} / portfolio {portfolio_id} not found", code="portfolio_not_found"
        )
    digest = hashlib.sha256(content).hexdigest()
    directory = upload_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stored = directory / f"{digest[:16]}-{_safe_name(filename)}"
    if stored.suffix.lower() != suffix:
        stored = stored.with_suffix(suffix)
    stored.write_bytes(content)
    job = ImportJob(
        portfolio_id=portfolio_id,
        filename=Path(filename).name,
        stored_path=str(stored),
        file_sha256=digest,
        dry_run=dry_run,
        status="queued",
        created_by_id=user_id,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, *, job_id: int) -> ImportJob:
    """A job by id."""
    job = session.get(ImportJob, job_id)
    if job is None:
        raise NotFound(
            f"导入任务不存在：{job_id} / import job {job_id} not found", code="import_job_not_found"
        )
    return job


def list_jobs(session: Session, *, limit: int = 30) -> list[ImportJob]:
    """The newest jobs first."""
    return list(session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(limit)))


def rows_read(job_id: int) -> int | None:
    """Rows read so far by a job running in this process, or None when it is not running here."""
    with _progress_lock:
        return _progress.get(job_id)


def _advance(job_id: int, rows: int) -> None:
    with _progress_lock:
        _progress[job_id] = _progress.get(job_id, 0) + rows


def run_job(engine: Engine, job_id: int) -> None:
    """Run a queued job to its end; every outcome, including an unexpected error, is written on the job."""
    with session_scope(engine) as s:
        job = get_job(s, job_id=job_id)
        if job.status != "queued":
            return
        job.status = "running"
        job.started_at = clock.now()
        portfolio = s.get(Portfolio, job.portfolio_id)
        user = s.get(AppUser, job.created_by_id) if job.created_by_id else None
        portfolio_name = portfolio.name if portfolio else ""
        username = user.username if user else None
        path, dry_run = Path(job.stored_path), job.dry_run
    with _progress_lock:
        _progress[job_id] = 0
    outcome: dict[str, object] = {}
    try:
        with session_scope(engine) as s:
            report = portfolios_service.import_accounts(
                s,
                path=path,
                portfolio_name=portfolio_name,
                dry_run=dry_run,
                progress=lambda n: _advance(job_id, n),
                chunk_rows=get_settings().import_chunk_rows,
                created_by=username,
            )
            if report.status != "applied":
                s.rollback()  # a refused or dry-run import leaves nothing behind
        outcome = {
            "status": report.status,
            "rows_total": report.rows_total,
            "errors_count": report.errors.height,
            "warnings_count": report.warnings.height,
            "accounts_created": report.counts.accounts_created,
            "accounts_updated": report.counts.accounts_updated,
            "accounts_unchanged": report.counts.accounts_unchanged,
            "import_batch_id": report.batch_id,
        }
        if report.issues.height:
            outcome["report_path"] = str(
                write_report(report.issues, upload_dir() / f"job-{job_id}-problems.csv", masked=True)
            )
    except ArrearsError as exc:
        outcome = {"status": "failed", "message": exc.message}
    except Exception:  # the job must say it failed rather than stay "running" forever
        log.exception("import job %s failed", job_id)
        outcome = {
            "status": "failed",
            "message": "导入时发生内部错误，请联系管理员 / the import failed with an internal error; "
            "see the server log",
        }
    finally:
        with _progress_lock:
            _progress.pop(job_id, None)
    with session_scope(engine) as s:
        job = get_job(s, job_id=job_id)
        for key, value in outcome.items():
            setattr(job, key, value)
        job.finished_at = clock.now()
