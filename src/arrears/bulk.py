"""Bulk writes of Polars frames into final tables: COPY on PostgreSQL, executemany on SQLite.

Self-contained (no domain imports) so any domain's bulk path can use it. Every helper runs on the
session's connection and so joins the caller's transaction; nothing here commits.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import polars as pl
from sqlalchemy.orm import Session


def is_postgres(session: Session) -> bool:
    """Whether the session talks to PostgreSQL (else SQLite)."""
    return session.get_bind().dialect.name == "postgresql"


def _driver(session: Session) -> Any:
    return session.connection().connection.driver_connection


def timestamp_literal(session: Session, moment: datetime) -> str:
    """A UTC timestamp as the database stores it, for a text column of a bulk write.

    SQLite keeps the text SQLAlchemy writes for a DateTime (naive UTC with microseconds); PostgreSQL
    parses ISO 8601 with its offset.
    """
    utc = moment.astimezone(UTC)
    if is_postgres(session):
        return utc.isoformat()
    return utc.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


Constant = int | str | bool | None


def _literal(value: Constant) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def write_frame(
    session: Session,
    table: str,
    df: pl.DataFrame,
    *,
    constants: Mapping[str, Constant] | None = None,
    skip_null_columns: bool = False,
) -> int:
    """Append a frame's rows to ``table`` (columns by name); returns the number of rows written.

    ``constants`` are columns with one value for every row: SQLite gets them as literals in the statement,
    so Python binds only the varying values. ``skip_null_columns`` leaves out columns that are null in every
    row (the database then applies the column's default: use it only where that is NULL).
    """
    if df.height == 0:
        return 0
    constants = dict(constants or {})
    if skip_null_columns:
        df = df.select([c for c in df.columns if df[c].null_count() < df.height])
    if is_postgres(session):
        if constants:
            df = df.with_columns([pl.lit(v).alias(k) for k, v in constants.items()])
        columns = ", ".join(f'"{c}"' for c in df.columns)
        buf = io.BytesIO()
        df.write_csv(buf, include_header=False, null_value="")
        sql = f'COPY "{table}" ({columns}) FROM STDIN WITH (FORMAT csv)'
        with _driver(session).cursor() as cur, cur.copy(sql) as copy:
            copy.write(buf.getbuffer())
        return df.height
    prepared = df.with_columns(
        [pl.col(c).cast(pl.String) for c, t in df.schema.items() if t == pl.Date()]
        + [pl.col(c).cast(pl.Int8) for c, t in df.schema.items() if t == pl.Boolean()]
    )
    columns = ", ".join(f'"{c}"' for c in [*prepared.columns, *constants])
    values = ", ".join(["?"] * prepared.width + [_literal(v) for v in constants.values()])
    cur = _driver(session).cursor()
    try:
        cur.executemany(f'INSERT INTO "{table}" ({columns}) VALUES ({values})', prepared.iter_rows())
    finally:
        cur.close()
    return df.height


def reserve_ids(session: Session, table: str, n: int) -> pl.Series:
    """``n`` new primary keys for ``table``, assigned here rather than by the database.

    PostgreSQL: taken from the table's sequence, so concurrent writers never get the same ones.
    SQLite: the ids after the largest stored one; the caller must already hold the write lock (have
    written in this transaction), so nobody else can take them before the rows are written.
    """
    if n == 0:
        return pl.Series("id", [], dtype=pl.Int64)
    conn = session.connection()
    if is_postgres(session):
        seq = conn.exec_driver_sql(f"SELECT pg_get_serial_sequence('\"{table}\"', 'id')").scalar_one()
        buf = bytearray()
        sql = f"COPY (SELECT nextval('{seq}') FROM generate_series(1, {int(n)})) TO STDOUT"
        with _driver(session).cursor() as cur, cur.copy(sql) as copy:
            for block in copy:
                buf += block
        ids = pl.read_csv(bytes(buf), has_header=False, new_columns=["id"], schema={"id": pl.Int64})
        return ids["id"]
    top = conn.exec_driver_sql(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"').scalar_one()
    return pl.int_range(int(top) + 1, int(top) + 1 + n, dtype=pl.Int64, eager=True).alias("id")
