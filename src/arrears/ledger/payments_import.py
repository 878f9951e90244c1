"""Payment files in: a bank's or core system's repayment file (CSV or XLSX), all rows or none.

The file is read with the account import's reader (UTF-8 / GB18030 CSV, XLSX, in chunks), amounts and dates
are parsed with the same vectorised rules, and problems are reported row by row in the same report format
(`arrears.portfolios.report.write_report`). A file with any error row posts nothing. References (流水号)
must be unique within the file and must not be stored already. Valid files are posted by
`service.apply_payments` in one set-based pass.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path

import polars as pl
import psycopg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from arrears import money
from arrears.errors import ValidationFailed
from arrears.ledger import bulk, service
from arrears.models import ImportBatch
from arrears.portfolios import messages
from arrears.portfolios.mapping import fold
from arrears.portfolios.reader import ROW, open_source
from arrears.portfolios.validate import ISSUE_SCHEMA, _amount, _date

FIELDS = ("account_ref", "national_id", "amount", "received_on", "reference")

# Problem codes of payment files, in the account import's message table (zh_CN / en).
messages.MESSAGES.update(
    {
        "zero_amount": ("还款金额必须大于零", "a payment must be more than zero"),
        "payer_missing": ("需要借据号或身份证号", "an account reference or an ID number is needed"),
        "account_unknown": ("资产包中没有此借据号", "no account with this reference in the portfolio"),
        "debtor_unknown": (
            "资产包中没有此身份证号的债务人",
            "no debtor with this ID number has an account in the portfolio",
        ),
        "duplicate_reference": (
            "文件中流水号重复（另见第 {other} 行）",
            "reference repeated in the file (see also row {other})",
        ),
        "reference_posted": ("该流水号已入账", "this reference is already posted"),
        "before_opening": (
            "还款日期早于账户期初余额日期 {other}（期初余额已含此前还款）",
            "payment predates the account's opening balances of {other}, which already include it",
        ),
        "no_accounts": ("该债务人在此资产包中没有账户", "the debtor has no account in this portfolio"),
    }
)


@dataclass
class PaymentImportReport:
    """What a payment file did, or would do (dry run), or why it was refused."""

    filename: str
    portfolio_id: int
    status: str  # "applied", "dry_run", "rejected"
    rows_total: int = 0
    amount_minor: int = 0
    allocated_minor: int = 0
    credit_minor: int = 0
    postings: int = 0
    issues: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ISSUE_SCHEMA))
    batch_id: int | None = None

    @property
    def errors(self) -> pl.DataFrame:
        """Error rows (any one refuses the whole file)."""
        return self.issues.filter(pl.col("severity") == "error")


def _columns(headers: list[str], filename: str) -> dict[str, str]:
    text = resources.files("arrears.ledger").joinpath("data", "payment_columns.toml").read_text("utf-8")
    known = {fold(h): name for name, hs in tomllib.loads(text)["columns"].items() for h in hs}
    columns: dict[str, str] = {}
    for h in headers:
        name = known.get(fold(h))
        if name is not None and name not in columns:
            columns[name] = h
    missing = [f for f in ("amount", "received_on", "reference") if f not in columns]
    if "account_ref" not in columns and "national_id" not in columns:
        missing.append("account_ref / national_id")
    if missing:
        raise ValidationFailed(
            f"{filename}: 缺少必需的列（借据号或身份证号、还款金额、还款日期、流水号） / missing required "
            f"columns: {', '.join(missing)}",
            code="missing_columns",
        )
    return columns


def _issues(frame: pl.DataFrame, cond: pl.Expr, code: pl.Expr | str, fld: str, column: str) -> pl.DataFrame:
    hit = frame.filter(cond)
    return hit.select(
        row=pl.col("row"),
        column=pl.lit(column),
        field=pl.lit(fld),
        value=pl.col(f"{fld}_raw") if f"{fld}_raw" in hit.columns else pl.lit(None, dtype=pl.String),
        code=code if isinstance(code, pl.Expr) else pl.lit(code),
        severity=pl.lit("error"),
        detail=pl.col("detail") if "detail" in hit.columns else pl.lit(None, dtype=pl.String),
    ).cast(pl.Schema(ISSUE_SCHEMA))


def _by_value(values: pl.Series, parse: Callable[[pl.Expr], tuple[pl.Expr, pl.Expr]]) -> pl.DataFrame:
    """``parse`` (value and problem code of a column) run once per distinct value, aligned with ``values``.

    A bank file repeats a handful of dates a million times; the import's regular expressions then run a
    handful of times.
    """
    distinct = values.unique().to_frame("v")
    value, code = parse(pl.col("v"))
    table = distinct.with_columns(value=value, code=code)
    return (
        values.to_frame("v")
        .join(table, on="v", how="left", nulls_equal=True, maintain_order="left")
        .select("value", "code")
    )


_PLAIN_AMOUNT = r"^\d{1,15}(?:\.\d+)?$"


def _amounts(values: pl.Series, exponent: int) -> pl.DataFrame:
    """Minor units and problem code of each amount, as `validate._amount` gives them.

    Plain decimals (``1234.5``, most of a bank file) are read with string splits; anything else (currency
    signs, thousands separators, signs, bad input) goes through `validate._amount` once per distinct value.
    """
    frame = values.to_frame("v")
    plain = frame.select(pl.col("v").str.contains(_PLAIN_AMOUNT).fill_null(False)).to_series()
    parts = pl.col("v").str.split_exact(".", 1)
    frac = parts.struct.field("field_1")
    frac_value = (
        frac.fill_null("").str.pad_end(exponent, "0").str.slice(0, exponent).cast(pl.Int64, strict=False)
        if exponent
        else pl.lit(0, dtype=pl.Int64)
    )
    too_long = frac.str.len_chars().fill_null(0) > exponent
    fast = frame.select(
        value=pl.when(too_long)
        .then(None)
        .otherwise(parts.struct.field("field_0").cast(pl.Int64, strict=False) * (10**exponent) + frac_value),
        code=pl.when(too_long).then(pl.lit("too_many_decimals")).otherwise(None),
    )
    if bool(plain.all()):
        return fast
    slow = _by_value(values.filter(~plain), lambda e: _amount(e, exponent)).with_columns(
        v=values.filter(~plain)
    )
    table = slow.unique("v")
    other = frame.join(table, on="v", how="left", nulls_equal=True, maintain_order="left")
    return pl.DataFrame(
        {
            "value": fast["value"].zip_with(plain, other["value"]),
            "code": fast["code"].zip_with(plain, other["code"]),
        }
    )


def _parse(chunk: pl.DataFrame, columns: dict[str, str], exponent: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    # NFKC leaves ASCII as it is, so only the columns holding other characters need it (a bank file's
    # references, amounts and dates are ASCII but for the odd full-width digit)
    headers = [columns[f] for f in FIELDS if f in columns]
    non_ascii = chunk.select(pl.col(h).str.contains(r"[^\x00-\x7F]").any() for h in headers).row(0)
    needs_nfkc = {h for h, flag in zip(headers, non_ascii, strict=True) if flag}

    def raw(name: str) -> pl.Expr:
        if name not in columns:
            return pl.lit(None, dtype=pl.String)
        e = pl.col(columns[name])
        if columns[name] in needs_nfkc:
            e = e.str.normalize("NFKC")
        e = e.str.strip_chars()
        return pl.when(e == "").then(None).otherwise(e)

    src = chunk.select(pl.col(ROW).alias("row"), *[raw(f).alias(f"{f}_raw") for f in FIELDS])
    amounts = _amounts(src["amount_raw"], exponent)
    days = _by_value(src["received_on_raw"], _date)
    amount, amount_code = pl.lit(amounts["value"]), pl.lit(amounts["code"])
    parsed = src.with_columns(
        amount_minor=amount,
        amount_code=pl.when(pl.col("amount_raw").is_null())
        .then(pl.lit("required"))
        .otherwise(pl.when(amount == 0).then(pl.lit("zero_amount")).otherwise(amount_code)),
        received_on=pl.lit(days["value"]),
        day_code=pl.when(pl.col("received_on_raw").is_null())
        .then(pl.lit("required"))
        .otherwise(pl.lit(days["code"])),
        account_ref=pl.col("account_ref_raw"),
        national_id=pl.col("national_id_raw").str.to_uppercase(),
        reference=pl.col("reference_raw"),
    )
    issues = pl.concat(
        [
            _issues(
                parsed,
                pl.col("amount_code").is_not_null(),
                pl.col("amount_code"),
                "amount",
                columns["amount"],
            ),
            _issues(
                parsed,
                pl.col("day_code").is_not_null(),
                pl.col("day_code"),
                "received_on",
                columns["received_on"],
            ),
            _issues(parsed, pl.col("reference").is_null(), "required", "reference", columns["reference"]),
            _issues(
                parsed,
                pl.col("account_ref").is_null() & pl.col("national_id").is_null(),
                "payer_missing",
                "account_ref" if "account_ref" in columns else "national_id",
                columns.get("account_ref", columns.get("national_id", "")),
            ),
        ]
    )
    keep = parsed.select("row", "account_ref", "national_id", "amount_minor", "received_on", "reference")
    return keep, issues


_RESOLVED: dict[str, pl.DataType] = {
    "row": pl.Int64(),
    "account_id": pl.Int64(),
    "debtor_id": pl.Int64(),
}

#: A file of more rows than this is resolved against the portfolio's accounts read once, and its references
#: are left to the unique constraint (checked row by row only when the file is refused).
RESOLVE_IN_MEMORY_ROWS = 10_000


def _resolve(
    session: Session, portfolio_id: int, rows: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Account and debtor of each row, and for a large file the portfolio's accounts it read.

    A small file is resolved by the database (one join each). A large one is joined with the portfolio's
    accounts read in one pass under the portfolio's ledger lock (`service.portfolio_accounts`), which
    `service.apply_payments` then uses as read; rows naming only an ID number still go to the database.
    """
    if rows.height <= RESOLVE_IN_MEMORY_ROWS:
        return _resolve_in_database(session, portfolio_id, rows), None
    bulk.roomy_joins(session)
    accounts = service.portfolio_accounts(session, portfolio_id=portfolio_id)
    refs = accounts.select(account_ref="external_ref", account_id="id", debtor_id="debtor_id")
    by_ref = (
        rows.filter(pl.col("account_ref").is_not_null())
        .select("row", "account_ref")
        .join(refs, on="account_ref", how="left")
        .select("row", "account_id", "debtor_id")
    )
    by_id = rows.filter(pl.col("account_ref").is_null())
    parts = [by_ref.cast(pl.Schema(_RESOLVED))]
    if by_id.height:
        parts.append(_resolve_in_database(session, portfolio_id, by_id))
    return pl.concat(parts), accounts


def _resolve_in_database(session: Session, portfolio_id: int, rows: pl.DataFrame) -> pl.DataFrame:
    if rows.height > 10_000:
        bulk.roomy_joins(session)  # the portfolio's accounts hashed in memory, not in batches on disk
    bulk.temp_table(
        session,
        "ledger_tmp_payment",
        {"row": pl.Int64(), "account_ref": pl.String(), "national_id": pl.String(), "reference": pl.String()},
        rows,
    )
    pid = int(portfolio_id)
    sql = (
        "SELECT t.row, a.id, COALESCE(a.debtor_id, d.debtor_id)"
        " FROM ledger_tmp_payment t"
        f" LEFT JOIN account a ON a.portfolio_id = {pid} AND a.external_ref = t.account_ref"
        " LEFT JOIN (SELECT debtor.national_id AS national_id, MIN(debtor.id) AS debtor_id FROM debtor"
        f" JOIN account x ON x.debtor_id = debtor.id AND x.portfolio_id = {pid}"
        " WHERE debtor.national_id IN (SELECT national_id FROM ledger_tmp_payment)"
        " GROUP BY debtor.national_id) d ON t.account_ref IS NULL AND d.national_id = t.national_id"
    )
    out = bulk.read_frame(session, sql.replace("t.row", 't."row"'), _RESOLVED)
    bulk.drop_temp(session, "ledger_tmp_payment")
    return out


def _posted_references(session: Session, portfolio_id: int, rows: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``rows`` (``row``, ``reference``) whose reference the portfolio holds already."""
    bulk.temp_table(session, "ledger_tmp_reference", {"row": pl.Int64(), "reference": pl.String()}, rows)
    sql = (
        'SELECT t."row" FROM ledger_tmp_reference t'
        f" JOIN payment p ON p.portfolio_id = {int(portfolio_id)} AND p.reference = t.reference"
    )
    out = bulk.read_frame(session, sql, {"row": pl.Int64()})
    bulk.drop_temp(session, "ledger_tmp_reference")
    return rows.join(out, on="row", how="semi")


def import_payments(
    session: Session,
    *,
    path: Path,
    portfolio_id: int,
    now: datetime,
    dry_run: bool = False,
    chunk_rows: int = 200_000,
    created_by: str | None = None,
) -> PaymentImportReport:
    """Post a payment file into a portfolio: every row, or none with a row-level problem report."""
    watch = bulk.Stopwatch("import_payments")
    cfg = service.ledger_config(session, portfolio_id=portfolio_id)
    exponent = money.exponent(cfg.currency)
    source = open_source(path)
    report = PaymentImportReport(filename=path.name, portfolio_id=portfolio_id, status="rejected")
    try:
        columns = _columns(source.headers, path.name)
        frames, issue_frames = [], []
        for chunk in source.chunks(chunk_rows):
            rows, issues = _parse(chunk, columns, exponent)
            frames.append(rows)
            issue_frames.append(issues)
    finally:
        source.close()
    rows = pl.concat(frames) if frames else pl.DataFrame(schema={"row": pl.Int64})
    report.rows_total = rows.height
    issues = pl.concat(issue_frames) if issue_frames else pl.DataFrame(schema=ISSUE_SCHEMA)
    if rows.height == 0:
        report.issues = issues
        return report

    ref_col = columns["reference"]
    firsts = rows.filter(pl.col("reference").is_not_null()).with_columns(
        first=pl.col("row").min().over("reference")
    )
    dup = firsts.filter(pl.col("row") != pl.col("first")).select(
        "row", reference_raw="reference", detail=pl.col("first").cast(pl.String)
    )
    extra = [_issues(dup, pl.lit(True), "duplicate_reference", "reference", ref_col)]

    watch.lap("read, parse")
    savepoint = session.begin_nested()
    try:
        found, accounts = _resolve(session, portfolio_id, rows)
        resolved = rows.join(found, on="row", how="left")
        # Stored references: a small file's are looked up now; a large file's are left to the unique
        # constraint on (portfolio, reference) when the payments are written, and looked up only if the
        # file is refused (for the report) or the constraint refuses it.
        references_checked = rows.height <= RESOLVE_IN_MEMORY_ROWS
        watch.lap("resolve")
        payer_col = columns.get("account_ref", columns.get("national_id", ""))

        def posted_issues() -> pl.DataFrame:
            stored = _posted_references(
                session,
                portfolio_id,
                rows.filter(pl.col("reference").is_not_null()).select("row", "reference"),
            )
            return _issues(
                stored.select("row", reference_raw="reference"),
                pl.lit(True),
                "reference_posted",
                "reference",
                ref_col,
            )

        if references_checked:
            extra.append(posted_issues())
        extra += [
            _issues(
                resolved.with_columns(account_ref_raw="account_ref"),
                pl.col("account_ref").is_not_null() & pl.col("account_id").is_null(),
                "account_unknown",
                "account_ref",
                columns.get("account_ref", ""),
            ),
            _issues(
                resolved.with_columns(national_id_raw="national_id"),
                pl.col("account_ref").is_null()
                & pl.col("national_id").is_not_null()
                & pl.col("debtor_id").is_null(),
                "debtor_unknown",
                "national_id",
                columns.get("national_id", ""),
            ),
        ]
        report.issues = pl.concat([issues, *extra]).sort(["row", "column"])
        if report.errors.height:
            if not references_checked:
                report.issues = pl.concat([report.issues, posted_issues()]).sort(["row", "column"])
            savepoint.rollback()
            return report
        batch = ImportBatch(
            portfolio_id=portfolio_id,
            kind="payments",
            filename=path.name,
            file_sha256=_sha256(path),
            rows_total=rows.height,
            started_at=now,
            created_by=created_by,
        )
        session.add(batch)
        session.flush()
        watch.lap("check")
        frame = resolved.select(
            "row",
            "reference",
            "amount_minor",
            "received_on",
            "debtor_id",
            "account_id",
            designation=pl.lit(None, dtype=pl.String),
            idempotency_key=pl.lit(None, dtype=pl.String),
            request_sha256=pl.lit(None, dtype=pl.String),
            collector=pl.lit(created_by, dtype=pl.String),
        )
        try:
            applied = service.apply_payments(
                session,
                portfolio_id=portfolio_id,
                payments=frame,
                source="file",
                now=now,
                import_batch_id=batch.id,
                accounts=accounts,
            )
        except (IntegrityError, psycopg.IntegrityError, sqlite3.IntegrityError):
            if references_checked:
                raise
            # the unique constraint refusing a stored reference (COPY reports it from the driver): name the
            # rows, else re-raise
            savepoint.rollback()
            stored = posted_issues()
            if stored.height == 0:
                raise
            report.issues = pl.concat([report.issues, stored]).sort(["row", "column"])
            return report
        watch.lap("apply")
        if applied.problems:
            problems = pl.DataFrame(
                [{"row": p.row, "code": p.code, "detail": p.detail} for p in applied.problems],
                schema={"row": pl.Int64, "code": pl.String, "detail": pl.String},
            ).join(rows.select("row", payer_raw=pl.coalesce("account_ref", "national_id")), on="row")
            report.issues = pl.concat(
                [
                    report.issues,
                    problems.select(
                        "row",
                        column=pl.lit(payer_col),
                        field=pl.lit("account_ref" if "account_ref" in columns else "national_id"),
                        value="payer_raw",
                        code="code",
                        severity=pl.lit("error"),
                        detail="detail",
                    ).cast(pl.Schema(ISSUE_SCHEMA)),
                ]
            ).sort(["row", "column"])
            savepoint.rollback()
            return report
        report.amount_minor = int(rows["amount_minor"].sum())
        report.allocated_minor = int(applied.results["allocated_minor"].sum())
        report.credit_minor = int(applied.results["credit_minor"].sum())
        report.postings = applied.postings
        batch.finished_at = now
        session.flush()
        if dry_run:
            savepoint.rollback()
            report.status = "dry_run"
        else:
            savepoint.commit()
            report.status = "applied"
            report.batch_id = batch.id
        watch.lap("finish")
        watch.done()
        return report
    except BaseException:
        if savepoint.is_active:
            savepoint.rollback()
        raise


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()
