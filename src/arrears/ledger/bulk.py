"""Set-based reads and writes for the ledger: Polars frames in and out of the database.

PostgreSQL uses COPY both ways; SQLite uses executemany and one cursor read. Every helper runs on the
session's connection, so it joins the caller's transaction (services flush, the edge commits).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from typing import Any

import polars as pl
from sqlalchemy import text
from sqlalchemy.orm import Session

from arrears import bulk as table_bulk

_TIMING = logging.getLogger("arrears.ledger.timing")


class Stopwatch:
    """Seconds spent in each phase of a bulk step, logged on ``arrears.ledger.timing`` at DEBUG.

    ``lap(name)`` closes the phase that ended now; the benchmark prints the phases to show where the time
    goes. Costs one clock read per phase.
    """

    def __init__(self, step: str) -> None:
        self.step = step
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now

    def done(self) -> None:
        if _TIMING.isEnabledFor(logging.DEBUG):
            _TIMING.debug(
                "%s: %s",
                self.step,
                ", ".join(f"{k} {v:.2f}s" for k, v in self.laps.items()),
                extra={"laps": self.laps},
            )


_PG_TYPES = {
    pl.Int64: "BIGINT",
    pl.Int32: "INTEGER",
    pl.Date: "DATE",
    pl.Boolean: "BOOLEAN",
    pl.String: "TEXT",
}
_SQLITE_TYPES = {
    pl.Int64: "INTEGER",
    pl.Int32: "INTEGER",
    pl.Date: "DATE",
    pl.Boolean: "INTEGER",
    pl.String: "TEXT",
}


def _sql_type(dtype: pl.DataType, types: Mapping[Any, str]) -> str:
    for known, name in types.items():
        if dtype == known:
            return name
    raise TypeError(f"no SQL type for {dtype}")


def is_postgres(session: Session) -> bool:
    """Whether the session talks to PostgreSQL (else SQLite)."""
    return session.get_bind().dialect.name == "postgresql"


def roomy_joins(session: Session) -> None:
    """Let this transaction's set-based joins hash a whole portfolio in memory (PostgreSQL only).

    The default ``work_mem`` (4 MB) splits the hash of a million-row update into batches spilled to disk;
    ``SET LOCAL`` ends with the caller's transaction.
    """
    if is_postgres(session):
        session.connection().exec_driver_sql("SET LOCAL work_mem = '256MB'")


def _driver(session: Session) -> Any:
    return session.connection().connection.driver_connection


def _csv(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_csv(buf, include_header=False, null_value="")
    return buf.getvalue()


def encode_ahead(session: Session, pool: Executor, df: pl.DataFrame) -> Future[bytes] | None:
    """Start turning ``df`` into the CSV `insert_frame` sends (PostgreSQL only), on ``pool``.

    The caller passes the result to `insert_frame` and meanwhile keeps the database busy with earlier
    statements: the encoding touches no connection, and Polars runs it without holding the GIL.
    """
    if df.height == 0 or not is_postgres(session):
        return None
    return pool.submit(_csv, df)


def insert_frame(
    session: Session, table: str, df: pl.DataFrame, encoded: Future[bytes] | None = None
) -> None:
    """Append a frame's rows to ``table`` (columns by name): COPY on PostgreSQL, executemany on SQLite.

    ``encoded``: the frame's CSV from `encode_ahead`, when it was started earlier.
    """
    if df.height == 0:
        return
    columns = ", ".join(f'"{c}"' for c in df.columns)
    if is_postgres(session):
        sql = f'COPY "{table}" ({columns}) FROM STDIN WITH (FORMAT csv)'
        if encoded is None:
            table_bulk.copy_frame(_driver(session), sql, df, _csv)
            return
        with _driver(session).cursor() as cur, cur.copy(sql) as copy:
            copy.write(encoded.result())
        return
    prepared = df.with_columns(
        [pl.col(c).cast(pl.String) for c, t in df.schema.items() if t == pl.Date()]
        + [pl.col(c).cast(pl.Int8) for c, t in df.schema.items() if t == pl.Boolean()]
    )
    placeholders = ", ".join("?" for _ in df.columns)
    cur = _driver(session).cursor()
    try:
        cur.executemany(f'INSERT INTO "{table}" ({columns}) VALUES ({placeholders})', prepared.iter_rows())
    finally:
        cur.close()


def temp_table(
    session: Session, name: str, schema: Mapping[str, pl.DataType], df: pl.DataFrame, *, analyze: bool = True
) -> None:
    """(Re)create a temporary table of ``schema`` holding ``df`` (dropped at commit on PostgreSQL).

    ``analyze=False`` skips the statistics for a table only read whole (an ``UPDATE ... FROM`` it by key):
    the planner then still knows its size.

    An ``UPDATE ... FROM`` the table changes rows in the table's order (PostgreSQL hashes the target and
    probes it with these rows): callers pass the rows sorted by the target's key, so a million-row update
    walks the target table page by page instead of jumping about a table larger than the buffer cache.
    """
    types = _PG_TYPES if is_postgres(session) else _SQLITE_TYPES
    cols = ", ".join(f'"{c}" {_sql_type(t, types)}' for c, t in schema.items())
    conn = session.connection()
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    suffix = " ON COMMIT DROP" if is_postgres(session) else ""
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} ({cols}){suffix}")
    insert_frame(session, name, df.select(list(schema)))
    if analyze and is_postgres(session):
        conn.exec_driver_sql(f"ANALYZE {name}")


def drop_temp(session: Session, *names: str) -> None:
    """Drop temporary tables made by `temp_table`."""
    conn = session.connection()
    for name in names:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")


def read_frame(
    session: Session, sql: str, schema: Mapping[str, pl.DataType], params: Mapping[str, Any] | None = None
) -> pl.DataFrame:
    """Run a SELECT whose columns are ``schema`` (in order) and return them as a typed frame.

    On PostgreSQL without parameters the rows stream through ``COPY (...) TO STDOUT``.
    """
    if is_postgres(session) and not params:
        buf = io.BytesIO()
        with _driver(session).cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
            for block in copy:
                buf.write(block)
        if buf.tell() == 0:
            return pl.DataFrame(schema=dict(schema))
        buf.seek(0)
        # COPY writes booleans as t / f
        loose = {k: pl.String() if v == pl.Boolean() else v for k, v in schema.items()}
        df = pl.read_csv(buf, has_header=False, new_columns=list(schema), schema=loose, null_values=[""])
        return df.with_columns([pl.col(k) == "t" for k, v in schema.items() if v == pl.Boolean()]).cast(
            pl.Schema(schema)
        )
    rows = [tuple(r) for r in session.execute(text(sql), dict(params or {})).all()]
    if is_postgres(session):
        return pl.DataFrame(rows, schema=dict(schema), orient="row")
    # SQLite hands back dates as text and booleans as integers.
    loose = {
        k: pl.String() if v == pl.Date() else pl.Int64() if v == pl.Boolean() else v
        for k, v in schema.items()
    }
    df = pl.DataFrame(rows, schema=loose, orient="row")
    return df.with_columns(
        [pl.col(k).str.slice(0, 10).str.to_date("%Y-%m-%d") for k, v in schema.items() if v == pl.Date()]
        + [pl.col(k).cast(pl.Boolean) for k, v in schema.items() if v == pl.Boolean()]
    )


def next_ids(session: Session, table: str, count: int) -> list[int]:
    """``count`` fresh primary keys for ``table``, reserved so concurrent writers never collide.

    PostgreSQL draws them from the table's sequence; SQLite (one writer at a time) continues after the
    largest stored id, which is safe because the caller already holds the write lock once it has written.
    """
    if count == 0:
        return []
    if is_postgres(session):
        # Drawn on the server; when nobody else drew in between (the usual case) they are one run and only
        # its ends cross the wire. Otherwise they are left as a gap and a fresh set is drawn row by row.
        conn = session.connection()
        seq = conn.exec_driver_sql(f"SELECT pg_get_serial_sequence('{table}', 'id')").scalar_one()
        draw = f"SELECT nextval('{seq}') FROM generate_series(1, {int(count)})"
        low, high = conn.exec_driver_sql(f"SELECT MIN(v), MAX(v) FROM ({draw}) AS drawn(v)").one()
        if int(high) - int(low) + 1 == count:
            return list(range(int(low), int(high) + 1))
        return read_frame(session, draw, {"id": pl.Int64()})["id"].sort().to_list()
    start = int(session.execute(text(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')).scalar_one()) + 1
    return list(range(start, start + count))


def chunked(values: Sequence[int], size: int = 900) -> list[Sequence[int]]:
    """Slices of ``values`` small enough for an IN list on every dialect."""
    return [values[i : i + size] for i in range(0, len(values), size)]
