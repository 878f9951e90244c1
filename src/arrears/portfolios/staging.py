"""Temporary staging tables and the bulk load into them (COPY on PostgreSQL, executemany on SQLite)."""

from __future__ import annotations

import io

import polars as pl
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Session

from arrears.portfolios.validate import STAGE_SCHEMA

_meta = MetaData()


def _sa_type(dtype: pl.DataType) -> object:
    if dtype == pl.Int64():
        return BigInteger()
    if dtype == pl.Date():
        return Date()
    if dtype == pl.Boolean():
        return Boolean()
    return Text()


stage_account = Table(
    "stage_account",
    _meta,
    *[Column(name, _sa_type(dtype)) for name, dtype in STAGE_SCHEMA.items()],  # type: ignore[arg-type]
    prefixes=["TEMPORARY"],
)

# The merge resolves each row to stored rows here: a narrow table, so its many updates stay cheap
# (rewriting the wide staged rows at every step would cost more than the inserts themselves).
stage_link = Table(
    "stage_link",
    _meta,
    Column("row_no", BigInteger, primary_key=True),
    Column("external_ref", Text),
    Column("id_type", Text),
    Column("national_id", Text),
    Column("mobile", Text),
    Column("mobile_verified", Boolean),
    Column("debtor_key", Text),
    Column("debtor_id", BigInteger),
    Column("case_id", BigInteger),
    Column("account_id", BigInteger),
    Column("new_debtor", Boolean),
    Column("new_account", Boolean),
    prefixes=["TEMPORARY"],
)

stage_instalment = Table(
    "stage_instalment",
    _meta,
    Column("row_no", BigInteger),
    Column("seq", Integer),
    Column("due_date", Date),
    Column("amount_minor", BigInteger),
    prefixes=["TEMPORARY"],
)

stage_contact = Table(
    "stage_contact",
    _meta,
    Column("debtor_id", BigInteger),
    Column("kind", String(16)),
    Column("value", Text),
    Column("extension", String(16)),
    Column("owner_relation", String(24)),
    Column("owner_name", Text),
    Column("debt_related", Boolean),
    Column("verified", Boolean),
    Column("new_debtor", Boolean),
    prefixes=["TEMPORARY"],
)

STAGE_TABLES = [stage_account, stage_link, stage_instalment, stage_contact]


def create(session: Session) -> None:
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # Temporary tables live in temp_buffers (8 MB by default); a big import spills to disk at every step.
        # The setting can only change before the connection's first temporary table, so try and move on.
        conn.exec_driver_sql("SAVEPOINT temp_buffers")
        try:
            conn.exec_driver_sql("SET temp_buffers = '512MB'")
            conn.exec_driver_sql("RELEASE SAVEPOINT temp_buffers")
        except Exception:  # already used temporary tables on this connection
            conn.exec_driver_sql("ROLLBACK TO SAVEPOINT temp_buffers")
    for table in STAGE_TABLES:
        table.drop(conn, checkfirst=True)
        table.create(conn)
    if conn.dialect.name == "postgresql":
        # room on each page lets the merge's updates of unindexed columns stay heap-only (no index writes)
        conn.exec_driver_sql("ALTER TABLE stage_link SET (fillfactor = 40)")


def drop(session: Session) -> None:
    conn = session.connection()
    conn.exec_driver_sql("DROP VIEW IF EXISTS stage_v")
    for table in STAGE_TABLES:
        table.drop(conn, checkfirst=True)


def load(session: Session, table: Table, df: pl.DataFrame) -> None:
    """Append a frame to a staging table as fast as the dialect allows."""
    if df.height == 0:
        return
    conn = session.connection()
    columns = df.columns
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        buf = io.BytesIO()
        df.write_csv(buf, include_header=False, null_value="")
        names = ", ".join(f'"{c}"' for c in columns)
        sql = f"COPY {table.name} ({names}) FROM STDIN WITH (FORMAT csv)"
        with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
            copy.write(buf.getvalue())
        return
    prepared = df.with_columns(
        [pl.col(c).cast(pl.String) for c, t in df.schema.items() if t == pl.Date()]
        + [pl.col(c).cast(pl.Int8) for c, t in df.schema.items() if t == pl.Boolean()]
    )
    placeholders = ", ".join("?" for _ in columns)
    names = ", ".join(f'"{c}"' for c in columns)
    dbapi = conn.connection.driver_connection
    cur = dbapi.cursor()  # type: ignore[union-attr]
    try:
        cur.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({placeholders})", prepared.iter_rows())
    finally:
        cur.close()


def analyze(session: Session) -> None:
    """Temporary tables get no automatic statistics on PostgreSQL; without them joins go quadratic."""
    conn = session.connection()
    for table in STAGE_TABLES:
        conn.exec_driver_sql(f"ANALYZE {table.name}")
