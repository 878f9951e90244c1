"""Portfolios and account import: the service the CLI, the API and the demo all call.

`import_accounts` streams a file through vectorised validation into staging tables, then merges the
whole file in a handful of set-based statements. It is all or nothing: a file with any error row changes
nothing and returns the row-level problems. It flushes and never commits; the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from arrears import clock, money
from arrears.errors import Conflict, NotFound, ValidationFailed
from arrears.ledger import service as ledger_service
from arrears.models import Creditor, ImportBatch, Portfolio
from arrears.portfolios import direct, staging
from arrears.portfolios.fields import BALANCE_FIELDS, FIELDS, REQUIRED_COLUMNS
from arrears.portfolios.mapping import Mapping, load_mapping
from arrears.portfolios.merge import SCHEDULE_FIELDS, MergeCounts, Merger
from arrears.portfolios.reader import open_source
from arrears.portfolios.validate import ISSUE_SCHEMA, STAGE_SCHEMA, ChunkContext, validate_chunk

Progress = Callable[[int], None]
# Told the import's phase: "validate" (with the file's estimated rows) then "write".
Phase = Callable[[str, int | None], None]


@dataclass
class ImportReport:
    """What an import did, or would do (dry run), or why it was refused."""

    filename: str
    portfolio: str
    status: str  # "applied", "dry_run", "rejected"
    rows_total: int = 0
    counts: MergeCounts = field(default_factory=MergeCounts)
    issues: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ISSUE_SCHEMA))
    batch_id: int | None = None
    encoding: str = ""

    @property
    def errors(self) -> pl.DataFrame:
        return self.issues.filter(pl.col("severity") == "error")

    @property
    def warnings(self) -> pl.DataFrame:
        return self.issues.filter(pl.col("severity") == "warning")

    @property
    def error_rows(self) -> list[int]:
        return sorted(set(self.errors["row"].to_list()))


# --- portfolios -------------------------------------------------------------------------------------


def get_portfolio(session: Session, *, name: str) -> Portfolio:
    portfolio = session.scalar(select(Portfolio).where(Portfolio.name == name))
    if portfolio is None:
        raise NotFound(
            f"资产包不存在：{name}（可用 `arrears portfolio create` 创建） / portfolio {name!r} does not exist "
            "(create it with `arrears portfolio create`)",
            code="portfolio_not_found",
        )
    return portfolio


def create_portfolio(
    session: Session,
    *,
    name: str,
    creditor: str,
    currency: str = "CNY",
    timezone: str = "Asia/Shanghai",
    rule_pack: str = "cn",
    strategy: str = "default",
    locale: str = "zh_CN",
    licensed_lender: bool = True,
) -> Portfolio:
    """Create a portfolio (and its creditor when new)."""
    money.exponent(currency)
    clock.zone_info(timezone)
    if session.scalar(select(Portfolio).where(Portfolio.name == name)) is not None:
        raise Conflict(f"资产包已存在：{name} / portfolio {name!r} already exists", code="portfolio_exists")
    cred = session.scalar(select(Creditor).where(Creditor.name == creditor))
    if cred is None:
        cred = Creditor(name=creditor, licensed_lender=licensed_lender)
        session.add(cred)
        session.flush()
    portfolio = Portfolio(
        creditor_id=cred.id,
        name=name,
        currency=currency.upper(),
        timezone=timezone,
        rule_pack=rule_pack,
        strategy=strategy,
        locale=locale,
    )
    session.add(portfolio)
    session.flush()
    return portfolio


def list_portfolios(session: Session) -> list[Portfolio]:
    return list(session.scalars(select(Portfolio).order_by(Portfolio.id)))


# --- import -----------------------------------------------------------------------------------------


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _header_issues(
    headers: list[str], mapping: Mapping, filename: str
) -> tuple[dict[str, str], pl.DataFrame]:
    columns: dict[str, str] = {}
    rows = []
    for h in headers:
        target = mapping.field_for(h)
        if target == "ignore":
            continue
        if target is None:
            rows.append(
                {
                    "row": 1,
                    "column": h,
                    "field": "",
                    "value": h,
                    "code": "unknown_column",
                    "severity": "warning",
                    "detail": None,
                }
            )
            continue
        if target in columns:
            raise ValidationFailed(
                f"{filename}: 列“{columns[target]}”和“{h}”都对应字段 {target}，请在映射文件中把其中一列设为 ignore"
                f' / columns {columns[target]!r} and {h!r} both map to {target}; map one of them to "ignore"',
                code="ambiguous_columns",
            )
        columns[target] = h
    missing = [f for f in REQUIRED_COLUMNS if f not in columns and f not in mapping.defaults]
    if missing:
        names = ", ".join(f"{FIELDS[f].label_zh}/{FIELDS[f].label_en}" for f in missing)
        raise ValidationFailed(
            f"{filename}: 缺少必需的列 / missing required columns: {names}", code="missing_columns"
        )
    if not any(f in columns or f in mapping.defaults for f in (*BALANCE_FIELDS, "overdue_amount")):
        raise ValidationFailed(
            f"{filename}: 缺少金额列（逾期金额或本金） / no amount column (overdue amount or principal)",
            code="missing_columns",
        )
    if not any(f in columns or f in mapping.defaults for f in ("due_date", "dpd")):
        raise ValidationFailed(
            f"{filename}: 缺少到期日或逾期天数列 / no due date or days-past-due column",
            code="missing_columns",
        )
    if "product" not in columns and "product" not in mapping.defaults:
        raise ValidationFailed(
            f"{filename}: 缺少产品类型列；可在映射文件 [defaults] 中指定 product / no product column; "
            "set one in the mapping file's [defaults]",
            code="missing_columns",
        )
    return columns, pl.DataFrame(rows, schema=ISSUE_SCHEMA)


def _present_fields(columns: dict[str, str], mapping: Mapping) -> set[str]:
    present = set(columns) | set(mapping.defaults)
    if present & {*BALANCE_FIELDS, "overdue_amount"}:
        present |= {*BALANCE_FIELDS, "overdue_amount"}
    if "dpd" in present:
        present.add("due_date")
    if present & {"instalment_count", "first_instalment_date"}:
        present.add("last_due_date")
    if "national_id" in present:
        present.add("date_of_birth")
    return present


def import_accounts(
    session: Session,
    *,
    path: Path,
    portfolio_name: str,
    mapping_path: Path | None = None,
    dry_run: bool = False,
    as_of: date | None = None,
    progress: Progress | None = None,
    chunk_rows: int = 100_000,
    created_by: str | None = None,
    now: datetime | None = None,
    allow_direct: bool = True,
    phase: Phase | None = None,
) -> ImportReport:
    """Import an account file into a portfolio: all rows or none.

    Re-importing an external reference updates that account and records each changed field; it never
    creates a second account. Debtors are de-duplicated by ID number, then by verified mobile number.

    The file is read and validated chunk by chunk; each validated chunk is spilled to a temporary file so
    memory stays bounded. A first import (an empty portfolio, no stored debtor matching the file) is then
    written straight into the final tables (`direct`); any other goes through the set-based merge
    (`merge`). `allow_direct=False` forces the merge (the tests compare the two).
    """
    portfolio = get_portfolio(session, name=portfolio_name)
    mapping = load_mapping(mapping_path)
    as_of = as_of or clock.today(portfolio.timezone)
    now = now or clock.now()
    source = open_source(path)
    report = ImportReport(
        filename=path.name, portfolio=portfolio.name, status="rejected", encoding=source.encoding
    )
    try:
        columns, header_issues = _header_issues(source.headers, mapping, path.name)
        ctx = ChunkContext(
            mapping=mapping,
            columns=columns,
            currency_exponent=money.exponent(portfolio.currency),
            currency=portfolio.currency,
            as_of=as_of,
        )
        issue_frames = [header_issues]
        savepoint = session.begin_nested()
        try:
            if session.get_bind().dialect.name == "postgresql":
                # one import per portfolio at a time
                session.execute(select(Portfolio.id).where(Portfolio.id == portfolio.id).with_for_update())
            if phase:
                phase("validate", source.estimated_rows())
            with tempfile.TemporaryDirectory(prefix="arrears-import-") as spill:
                parts: list[Path] = []
                key_frames: list[pl.DataFrame] = []
                total = 0
                for i, chunk in enumerate(source.chunks(chunk_rows)):
                    stage, issues = validate_chunk(chunk, ctx)
                    rows = chunk.height
                    total += rows
                    issue_frames.append(issues)
                    bad = issues.filter(pl.col("severity") == "error")["row"].unique()
                    good = stage.filter(~pl.col("row_no").is_in(bad.implode())) if bad.len() else stage
                    part = Path(spill) / f"{i:06d}.arrow"
                    good.write_ipc(part)
                    parts.append(part)
                    key_frames.append(good.select(direct.KEY_COLUMNS))
                    del chunk, stage, good
                    if progress:
                        progress(rows)
                report.rows_total = total
                keys = (
                    pl.concat(key_frames, how="vertical")
                    if key_frames
                    else pl.DataFrame(schema={c: STAGE_SCHEMA[c] for c in direct.KEY_COLUMNS})
                )
                del key_frames
                batch = ImportBatch(
                    portfolio_id=portfolio.id,
                    filename=path.name,
                    file_sha256=_file_sha256(path),
                    rows_total=total,
                    started_at=now,
                    created_by=created_by,
                )
                session.add(batch)
                session.flush()  # on SQLite this takes the write lock the direct path's ids rely on
                if phase:
                    phase("write", None)
                resolved: pl.DataFrame | None = None
                if allow_direct and direct.portfolio_is_empty(session, portfolio_id=portfolio.id):
                    resolved = direct.debtor_keys(keys)
                    if direct.matches_stored_debtors(session, keys=keys, resolved=resolved):
                        resolved = None
                if resolved is not None:
                    file_issues = _duplicate_issues(direct.duplicate_refs(keys), columns)
                    report.issues = _all_issues(issue_frames, file_issues)
                    if report.errors.height:
                        savepoint.rollback()
                        return report
                    the_plan = direct.plan(session, resolved)
                    del keys, resolved
                    counts = direct.write(
                        session,
                        the_plan=the_plan,
                        parts=parts,
                        portfolio_id=portfolio.id,
                        currency=portfolio.currency,
                        now=now,
                    )
                    counts.accounts_unchanged = total - counts.accounts_created
                else:
                    del keys
                    staging.create(session)
                    for part in parts:
                        good = pl.read_ipc(part)
                        staging.load(session, staging.stage_account, good)
                        staging.load(session, staging.stage_instalment, direct.instalment_rows(good))
                    if session.get_bind().dialect.name == "postgresql":
                        staging.analyze(session)
                    merger = Merger(
                        session,
                        portfolio_id=portfolio.id,
                        currency=portfolio.currency,
                        batch_id=batch.id,
                        now=now,
                        present=_present_fields(columns, mapping),
                    )
                    merger.index_stage()
                    file_issues = _duplicate_issues(merger.duplicate_refs(), columns)
                    conflicts = merger.resolve_debtors()
                    file_issues += [
                        {
                            "row": row,
                            "column": columns.get("national_id", ""),
                            "field": "national_id",
                            "value": nid,
                            "code": "id_conflict",
                            "severity": "error",
                            "detail": None,
                        }
                        for row, nid in conflicts
                    ]
                    report.issues = _all_issues(issue_frames, file_issues)
                    if report.errors.height:
                        savepoint.rollback()
                        return report
                    merger.create_debtors()
                    merger.update_debtors()
                    merger.create_cases()
                    changed = merger.update_accounts()
                    # balances the ledger already holds change through adjustment postings, never silently
                    ledger_service.post_import_adjustments(
                        session, portfolio_id=portfolio.id, import_batch_id=batch.id, on=as_of
                    )
                    merger.create_accounts()
                    merger.write_instalments(bool(changed & SCHEDULE_FIELDS))
                    merger.write_contact_points()
                    merger.write_flags()
                    merger.finish_counts(total)
                    counts = merger.counts
                    staging.drop(session)
            batch.accounts_created = counts.accounts_created
            batch.accounts_updated = counts.accounts_updated
            batch.accounts_unchanged = counts.accounts_unchanged
            batch.debtors_created = counts.debtors_created
            batch.contact_points_created = counts.contact_points_created
            batch.warnings_count = report.warnings.height
            batch.finished_at = clock.now()
            session.flush()
            report.counts = counts
            report.batch_id = batch.id
            if dry_run:
                savepoint.rollback()
                report.status = "dry_run"
                report.batch_id = None
            else:
                savepoint.commit()
                report.status = "applied"
            return report
        except BaseException:
            if savepoint.is_active:
                savepoint.rollback()
            raise
    finally:
        source.close()


def _duplicate_issues(dups: list[tuple[int, str, int]], columns: dict[str, str]) -> list[dict[str, object]]:
    return [
        {
            "row": row,
            "column": columns["external_ref"],
            "field": "external_ref",
            "value": ref,
            "code": "duplicate_ref",
            "severity": "error",
            "detail": str(first),
        }
        for row, ref, first in dups
    ]


def _all_issues(frames: list[pl.DataFrame], file_issues: list[dict[str, object]]) -> pl.DataFrame:
    frames = [*frames, pl.DataFrame(file_issues, schema=ISSUE_SCHEMA)]
    return pl.concat(frames, how="vertical").sort(["row", "column"])


# Rows the import writes in bulk refer to each other without database foreign keys (see models/account.py);
# each entry: (child table, column, parent table).
REFERENCES = [
    ("contact_point", "debtor_id", "debtor"),
    ("case", "debtor_id", "debtor"),
    ("case", "portfolio_id", "portfolio"),
    ("account", "case_id", "case"),
    ("account", "debtor_id", "debtor"),
    ("account", "portfolio_id", "portfolio"),
    ("instalment", "account_id", "account"),
    ("case", "assignee_id", "app_user"),  # written by the daily allocation (a case without one: NULL)
]


def verify_references(session: Session) -> None:
    """Check the references the database no longer checks; raise naming the first broken ones.

    Also that an account's debtor and portfolio are its case's.
    """
    broken: list[str] = []
    for child, column, parent in REFERENCES:
        n = session.execute(
            text(
                f'SELECT COUNT(*) FROM "{child}" c WHERE c.{column} IS NOT NULL AND NOT EXISTS'
                f' (SELECT 1 FROM "{parent}" p WHERE p.id = c.{column})'
            )
        ).scalar_one()
        if n:
            broken.append(f"{child}.{column} -> {parent}: {n}")
    n = session.execute(
        text(
            'SELECT COUNT(*) FROM account a JOIN "case" c ON c.id = a.case_id'
            " WHERE c.debtor_id <> a.debtor_id OR c.portfolio_id <> a.portfolio_id"
        )
    ).scalar_one()
    if n:
        broken.append(f"account not matching its case's debtor or portfolio: {n}")
    if broken:
        raise Conflict(
            "数据引用不一致 / broken references: " + "; ".join(broken),
            code="broken_reference",
            details=broken,
        )
