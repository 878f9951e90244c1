"""Direct write of a first import: every account in the file is new, and so is every debtor.

When the portfolio holds no account yet and no stored debtor matches the file (by ID number, verified
mobile or de-duplication key), nothing needs comparing: the file is resolved in Polars (duplicate account
references, debtors de-duplicated by ID number then by verified mobile, one case per debtor), the ids are
assigned here (`arrears.bulk.reserve_ids`) and the rows go straight into the final tables with COPY
(PostgreSQL) or executemany (SQLite), one validated chunk at a time. The database ends up as the set-based
merge (`merge.Merger`) would leave it; the tests compare the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
from sqlalchemy import text
from sqlalchemy.orm import Session

from arrears import bulk
from arrears.portfolios import staging
from arrears.portfolios.fields import INSTALMENT_PRODUCTS
from arrears.portfolios.merge import ACCOUNT_FIELDS, MergeCounts

# the tables a first import writes, in the order they are locked when their indexes are deferred
WRITTEN_TABLES = ["debtor", "case", "account", "instalment", "account_flag", "contact_point"]
KEY_COLUMNS = ["row_no", "external_ref", "id_type", "national_id", "mobile", "mobile_verified", "debtor_key"]


def instalment_rows(stage: pl.DataFrame) -> pl.DataFrame:
    """The contractual schedule of the instalment products in a stage frame: one row per instalment."""
    inst = stage.filter(
        pl.col("product").is_in(list(INSTALMENT_PRODUCTS))
        & pl.col("instalment_count").is_between(1, 600)
        & pl.col("first_instalment_date").is_not_null()
        & pl.col("instalment_amount_minor").is_not_null()
    )
    return (
        inst.select(
            "row_no",
            seq=pl.int_ranges(1, pl.col("instalment_count") + 1),
            first=pl.col("first_instalment_date"),
            amount_minor=pl.col("instalment_amount_minor"),
        )
        .explode("seq")
        .select(
            "row_no",
            pl.col("seq").cast(pl.Int32),
            due_date=pl.col("first").dt.offset_by(pl.format("{}mo", pl.col("seq") - 1)),
            amount_minor="amount_minor",
        )
    )


def duplicate_refs(keys: pl.DataFrame) -> list[tuple[int, str, int]]:
    """(row, reference, first row) for every row repeating an account reference of an earlier row."""
    first = (
        keys.group_by("external_ref")
        .agg(first_row=pl.col("row_no").min(), n=pl.len())
        .filter(pl.col("n") > 1)
    )
    if first.height == 0:
        return []
    dups = (
        keys.join(first, on="external_ref")
        .filter(pl.col("row_no") != pl.col("first_row"))
        .sort("row_no")
        .select("row_no", "external_ref", "first_row")
    )
    return [(int(r), str(ref), int(f)) for r, ref, f in dups.iter_rows()]


def debtor_keys(keys: pl.DataFrame) -> pl.DataFrame:
    """row_no -> the debtor key the row resolves to within the file (and whether the row has an ID).

    A row without an ID number joins a row of the same file that has one and the same verified mobile
    (the smallest such key, as the set-based merge picks it).
    """
    with_id = (
        keys.filter(
            pl.col("national_id").is_not_null() & pl.col("mobile").is_not_null() & pl.col("mobile_verified")
        )
        .group_by("mobile")
        .agg(id_key=pl.col("debtor_key").min())
    )
    return keys.join(with_id, on="mobile", how="left").select(
        "row_no",
        has_id=pl.col("national_id").is_not_null(),
        debtor_key=pl.when(
            pl.col("national_id").is_null() & pl.col("mobile_verified") & pl.col("id_key").is_not_null()
        )
        .then(pl.col("id_key"))
        .otherwise(pl.col("debtor_key")),
    )


def portfolio_is_empty(session: Session, *, portfolio_id: int) -> bool:
    for table in ("account", '"case"'):
        hit = session.execute(
            text(f"SELECT 1 FROM {table} WHERE portfolio_id = :pid LIMIT 1"), {"pid": portfolio_id}
        ).first()
        if hit is not None:
            return False
    return True


def matches_stored_debtors(session: Session, *, keys: pl.DataFrame, resolved: pl.DataFrame) -> bool:
    """Whether any row would join a stored debtor (then the set-based merge has to run)."""
    conn = session.connection()
    if conn.exec_driver_sql("SELECT 1 FROM debtor LIMIT 1").first() is None:
        return False
    link = keys.select("row_no", "external_ref", "id_type", "national_id", "mobile", "mobile_verified").join(
        resolved.select("row_no", "debtor_key"), on="row_no"
    )
    staging.stage_link.drop(conn, checkfirst=True)
    staging.stage_link.create(conn)
    try:
        staging.load(session, staging.stage_link, link)
        if bulk.is_postgres(session):
            conn.exec_driver_sql("ANALYZE stage_link")
        hit = conn.exec_driver_sql(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM stage_link s JOIN debtor d"
            "  ON d.id_type = s.id_type AND d.national_id = s.national_id)"
            " OR EXISTS (SELECT 1 FROM stage_link s JOIN contact_point cp ON cp.kind = 'mobile'"
            "  AND cp.owner_relation = 'self' AND cp.verified AND cp.value = s.mobile WHERE s.mobile_verified)"
            " OR EXISTS (SELECT 1 FROM stage_link s JOIN debtor d ON d.dedup_key = s.debtor_key)"
        ).first()
    finally:
        staging.stage_link.drop(conn, checkfirst=True)
    return hit is not None


@dataclass
class Plan:
    """Each staged row's debtor, case and account ids; debtors and cases are written with their first row."""

    rows: pl.DataFrame  # row_no, debtor_key, debtor_id, case_id, account_id, first_of_debtor
    debtors: int


def plan(session: Session, resolved: pl.DataFrame) -> Plan:
    # a debtor is written from its first row that carries the ID number, else from its first row
    with_id = pl.when(pl.col("has_id")).then(pl.col("row_no"))
    rows = resolved.with_columns(
        first_row=pl.coalesce(with_id.min().over("debtor_key"), pl.col("row_no").min().over("debtor_key"))
    ).drop("has_id")
    debtors = rows.filter(pl.col("row_no") == pl.col("first_row")).sort("row_no").select("debtor_key")
    debtors = debtors.with_columns(
        debtor_id=bulk.reserve_ids(session, "debtor", debtors.height),
        case_id=bulk.reserve_ids(session, "case", debtors.height),
    )
    rows = rows.join(debtors, on="debtor_key").sort("row_no")
    rows = rows.with_columns(
        account_id=bulk.reserve_ids(session, "account", rows.height),
        first_of_debtor=pl.col("row_no") == pl.col("first_row"),
    ).drop("first_row")
    return Plan(rows=rows, debtors=debtors.height)


def _contact_candidates(c: pl.DataFrame) -> pl.DataFrame:
    def part(
        kind: pl.Expr,
        value: str,
        ext: pl.Expr,
        relation: pl.Expr,
        owner: str,
        related: pl.Expr,
        verified: pl.Expr,
    ) -> pl.DataFrame:
        return c.filter(pl.col(value).is_not_null()).select(
            "debtor_id",
            kind=kind,
            value=pl.col(value),
            extension=ext,
            owner_relation=relation,
            owner_name=pl.col(owner),
            debt_related=related.fill_null(False),
            verified=verified.fill_null(False),
        )

    null = pl.lit(None, dtype=pl.String)
    self_ = pl.lit("self")
    no = pl.lit(False)
    parts = [
        part(pl.lit("mobile"), "mobile", null, self_, "name", no, pl.col("mobile_verified")),
        part(pl.col("landline_kind"), "landline", pl.col("landline_ext"), self_, "name", no, no),
        part(pl.lit("email"), "email", null, self_, "name", no, no),
        part(pl.lit("address"), "address", null, self_, "name", no, no),
    ]
    for p in ("ec1", "ec2"):
        parts.append(
            part(
                pl.col(f"{p}_kind"),
                f"{p}_phone",
                null,
                pl.col(f"{p}_relation").fill_null("emergency_contact"),
                f"{p}_name",
                pl.col(f"{p}_debt_related"),
                no,
            )
        )
    return pl.concat(parts, how="vertical_relaxed")


def write(
    session: Session,
    *,
    the_plan: Plan,
    parts: list[Path],
    portfolio_id: int,
    currency: str,
    now: datetime,
) -> MergeCounts:
    """Write the staged chunks (spilled to `parts`) into debtor, case, account, instalment, flag, contact."""
    ts = bulk.timestamp_literal(session, now)
    stamps: dict[str, bulk.Constant] = {"created_at": ts, "updated_at": ts}
    ids = the_plan.rows.select(
        "row_no", "debtor_key", "debtor_id", "case_id", "account_id", "first_of_debtor"
    )
    counts = MergeCounts()
    contacts: list[pl.DataFrame] = []
    # the file has been checked for duplicate references and the ids are new, so rebuilding the unique
    # indexes after the load finds nothing (and would fail the import if it did)
    # ids are assigned in ascending order and written so (debtors too when their key's index is deferred)
    with (
        bulk.indexes_deferred(
            session,
            WRITTEN_TABLES,
            rows=the_plan.rows.height,
            ascending={"debtor_id", "case_id", "account_id"},
            constant={"portfolio_id"},
        ) as deferred,
        bulk.copies_pipelined(session),
    ):
        for path in parts:
            stage = pl.read_ipc(path).drop("debtor_key")  # the plan's key is the resolved one
            if stage.height == 0:
                continue
            span = pl.col("row_no").is_between(stage["row_no"].min(), stage["row_no"].max())
            c = stage.join(ids.filter(span), on="row_no")
            first = c.filter(pl.col("first_of_debtor"))
            # none of these columns has a database default, so a column null in every row can be left out
            counts.debtors_created += bulk.write_frame(
                session,
                "debtor",
                first.select(
                    id="debtor_id",
                    dedup_key="debtor_key",
                    kind="debtor_kind",
                    name="name",
                    id_type=pl.when(pl.col("national_id").is_not_null()).then(pl.col("id_type")),
                    national_id="national_id",
                    date_of_birth="date_of_birth",
                    gender="gender",
                    address="address",
                    employer_name="employer_name",
                    employer_address="employer_address",
                    declared_monthly_income_minor="monthly_income_minor",
                    declared_assets="declared_assets",
                    preferred_language="preferred_language",
                    # in key order the unique key's index is filled page by page; without it, in id order
                ).sort("id" if "debtor" in deferred else "dedup_key"),
                constants=stamps,
                skip_null_columns=True,
            )
            counts.cases_created += bulk.write_frame(
                session,
                "case",
                first.select(id="case_id", debtor_id="debtor_id"),
                constants={"portfolio_id": portfolio_id, "status": "open", **stamps},
            )
            counts.accounts_created += bulk.write_frame(
                session,
                "account",
                c.select(
                    pl.col("account_id").alias("id"), "case_id", "debtor_id", "external_ref", *ACCOUNT_FIELDS
                ),
                constants={"portfolio_id": portfolio_id, "currency": currency, "status": "active", **stamps},
                skip_null_columns=True,
            )
            inst = instalment_rows(stage)
            if inst.height:
                bulk.write_frame(
                    session,
                    "instalment",
                    inst.join(c.select("row_no", "account_id"), on="row_no").select(
                        "account_id", "seq", "due_date", "amount_minor"
                    ),
                    constants=stamps,
                )
            counts.flags_created += bulk.write_frame(
                session,
                "account_flag",
                c.filter(pl.col("hold").is_not_null()).select(
                    "account_id", "case_id", kind="hold", reason="hold_reason"
                ),
                constants={"source": "import", **stamps},
            )
            contacts.append(_contact_candidates(c))
            del stage, c, first
        counts.contact_points_created = _write_contacts(session, contacts, stamps)
    return counts


def _write_contacts(session: Session, frames: list[pl.DataFrame], stamps: dict[str, bulk.Constant]) -> int:
    if not frames:
        return 0
    grouped = (
        pl.concat(frames, how="vertical_relaxed")
        .group_by("debtor_id", "kind", "value", "owner_relation")
        .agg(
            extension=pl.col("extension").min(),
            owner_name=pl.col("owner_name").min(),
            debt_related=pl.col("debt_related").max(),
            verified=pl.col("verified").max(),
        )
        .sort("debtor_id", "kind", "value", "owner_relation")
        .with_columns(
            timezone=pl.when(pl.col("value").str.starts_with("+86")).then(pl.lit("Asia/Shanghai")),
        )
    )
    frames.clear()
    constants: dict[str, bulk.Constant] = {
        "is_valid": True,
        "source": "import",
        "consent_to_contact": False,
        "opted_out": False,
        **stamps,
    }
    written = 0
    for offset in range(0, grouped.height, 200_000):
        written += bulk.write_frame(
            session,
            "contact_point",
            grouped.slice(offset, 200_000),
            constants=constants,
            skip_null_columns=True,
        )
    return written
