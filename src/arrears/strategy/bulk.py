"""Bulk reads and writes between the database and Polars frames, for the daily run.

PostgreSQL moves rows with COPY (out as CSV into Polars, in from CSV through a temporary table where rows
must be merged); SQLite uses its cursor directly (``executemany``). Queries given to `read_frame` are
complete SQL text: callers only inline integers and ISO dates they formatted themselves.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from itertools import count

import polars as pl
from sqlalchemy.orm import Session

from arrears import bulk as table_bulk

_TEMP = count()


def dialect(session: Session) -> str:
    """The session's database dialect name (``postgresql`` or ``sqlite``)."""
    return session.get_bind().dialect.name


def read_frame(session: Session, sql: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Run a SELECT and return its rows as a frame with exactly ``schema`` (column order and types)."""
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    text_schema = {name: _wire_type(dtype, postgres) for name, dtype in schema.items()}
    if postgres:
        raw = conn.connection.driver_connection
        buf = io.BytesIO()
        with raw.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)") as cp:  # type: ignore[union-attr]
            for block in cp:
                buf.write(block)
        if buf.tell() == 0:
            return pl.DataFrame(schema=schema)
        buf.seek(0)
        frame = pl.read_csv(buf, schema=text_schema, has_header=True)
    else:
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.execute(sql)
            rows = cur.fetchall()
        finally:
            cur.close()
        frame = pl.DataFrame(rows, schema=text_schema, orient="row")
    return frame.with_columns(_from_wire(name, dtype) for name, dtype in schema.items())


def _wire_type(dtype: pl.DataType, postgres: bool) -> pl.DataType:
    """How a column arrives: PostgreSQL's CSV spells booleans t/f, SQLite stores them as 0/1."""
    if dtype == pl.Date():
        return pl.String()
    if dtype == pl.Boolean():
        return pl.String() if postgres else pl.Int64()
    return dtype


def _from_wire(name: str, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if dtype == pl.Date():
        return column.str.slice(0, 10).str.to_date("%Y-%m-%d").alias(name)
    if dtype == pl.Boolean():
        return column.cast(pl.String()).is_in(["t", "true", "1"]).fill_null(False).alias(name)
    return column


def _sqlite_rows(df: pl.DataFrame) -> pl.DataFrame:
    """A frame whose cells sqlite3 accepts as they are: dates and timestamps as text, booleans as 0/1."""
    casts: list[pl.Expr] = []
    for name, dtype in df.schema.items():
        if dtype == pl.Date():
            casts.append(pl.col(name).dt.strftime("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            casts.append(pl.col(name).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M:%S.%6f"))
        elif dtype == pl.Boolean():
            casts.append(pl.col(name).cast(pl.Int8))
    return df.with_columns(casts) if casts else df


def _csv(df: pl.DataFrame) -> bytes:
    casts = [
        pl.col(name).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        for name, dtype in df.schema.items()
        if isinstance(dtype, pl.Datetime)
    ]
    out = df.with_columns(casts) if casts else df
    buf = io.BytesIO()
    out.write_csv(buf, include_header=False, null_value="")
    return buf.getvalue()


def _copy_in(session: Session, table: str, df: pl.DataFrame) -> None:
    raw = session.connection().connection.driver_connection
    names = ", ".join(f'"{c}"' for c in df.columns)
    table_bulk.copy_frame(raw, f'COPY "{table}" ({names}) FROM STDIN WITH (FORMAT csv)', df, _csv)


def _temp_like(session: Session, table: str, columns: Sequence[str]) -> str:
    name = f"tmp_{table}_{next(_TEMP)}"
    names = ", ".join(f'"{c}"' for c in columns)
    session.connection().exec_driver_sql(
        f'CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS SELECT {names} FROM "{table}" WITH NO DATA'
    )
    return name


def insert_frame(
    session: Session,
    table: str,
    df: pl.DataFrame,
    *,
    conflict: Sequence[str] = (),
    update: Sequence[str] = (),
) -> None:
    """Insert every row of ``df`` into ``table`` (columns by name).

    With ``conflict`` columns, rows that collide with a stored row update its ``update`` columns, or are
    skipped when ``update`` is empty (``ON CONFLICT ... DO UPDATE / DO NOTHING``, on both dialects).
    """
    if df.height == 0:
        return
    names = ", ".join(f'"{c}"' for c in df.columns)
    on_conflict = ""
    if conflict:
        target = ", ".join(f'"{c}"' for c in conflict)
        if update:
            sets = ", ".join(f'"{c}" = excluded."{c}"' for c in update)
            on_conflict = f" ON CONFLICT ({target}) DO UPDATE SET {sets}"
        else:
            on_conflict = f" ON CONFLICT ({target}) DO NOTHING"
    if dialect(session) == "postgresql":
        if not conflict:
            _copy_in(session, table, df)
            return
        temp = _temp_like(session, table, df.columns)
        _copy_in(session, temp, df)
        # read once, whole, in one scan: its statistics would change no plan
        session.connection().exec_driver_sql(
            f'INSERT INTO "{table}" ({names}) SELECT {names} FROM {temp}{on_conflict}'
        )
        session.connection().exec_driver_sql(f"DROP TABLE {temp}")
        return
    marks = ", ".join("?" for _ in df.columns)
    if not conflict:
        _sqlite_many(session, f'INSERT INTO "{table}" ({names}) VALUES ({marks})', df)
        return
    temp = _sqlite_temp(session, table, df, index=conflict)
    # ``WHERE true`` tells SQLite's parser the ON CONFLICT belongs to the INSERT, not to a join
    session.connection().exec_driver_sql(
        f'INSERT INTO "{table}" ({names}) SELECT {names} FROM {temp} WHERE true{on_conflict}'
    )
    session.connection().exec_driver_sql(f"DROP TABLE {temp}")


def update_frame(session: Session, table: str, df: pl.DataFrame, *, key: str) -> None:
    """Set the other columns of ``df`` on the rows of ``table`` whose ``key`` matches."""
    if df.height == 0:
        return
    others = [c for c in df.columns if c != key]
    if dialect(session) == "postgresql":
        temp = _temp_like(session, table, df.columns)
        _copy_in(session, temp, df)
        # not analysed: the planner sizes an unanalysed table by its pages, which is enough to join it
        # to the table by key (a hash join, or probes of the key's index when it is small)
        sets = ", ".join(f'"{c}" = t."{c}"' for c in others)
        session.connection().exec_driver_sql(
            f'UPDATE "{table}" SET {sets} FROM {temp} t WHERE "{table}"."{key}" = t."{key}"'
        )
        session.connection().exec_driver_sql(f"DROP TABLE {temp}")
        return
    temp = _sqlite_temp(session, table, df, index=(key,))
    sets = ", ".join(f'"{c}" = t."{c}"' for c in others)
    session.connection().exec_driver_sql(
        f'UPDATE "{table}" SET {sets} FROM {temp} t WHERE "{table}"."{key}" = t."{key}"'
    )
    session.connection().exec_driver_sql(f"DROP TABLE {temp}")


def _sqlite_temp(session: Session, table: str, df: pl.DataFrame, *, index: Sequence[str]) -> str:
    """The frame in a temporary table of ``table``'s column types, indexed on ``index``.

    One set-based statement from it then replaces a statement per row: inside the run's savepoint every
    statement of SQLite's pays for the pages the transaction has already changed, so a row-by-row update
    of a hundred thousand rows late in a run takes minutes.
    """
    name = f"tmp_{table}_{next(_TEMP)}"
    names = ", ".join(f'"{c}"' for c in df.columns)
    conn = session.connection()
    conn.exec_driver_sql(f'CREATE TEMPORARY TABLE {name} AS SELECT {names} FROM "{table}" WHERE 0')
    keys = ", ".join(f'"{c}"' for c in index)
    conn.exec_driver_sql(f"CREATE INDEX ix_{name} ON {name} ({keys})")
    marks = ", ".join("?" for _ in df.columns)
    _sqlite_many(session, f"INSERT INTO {name} ({names}) VALUES ({marks})", df)
    return name


def _sqlite_many(session: Session, sql: str, df: pl.DataFrame) -> None:
    dbapi = session.connection().connection.driver_connection
    cur = dbapi.cursor()  # type: ignore[union-attr]
    try:
        cur.executemany(sql, _sqlite_rows(df).iter_rows())
    finally:
        cur.close()
