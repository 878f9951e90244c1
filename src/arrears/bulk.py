"""Bulk writes of Polars frames into final tables: COPY on PostgreSQL, executemany on SQLite.

Self-contained (no domain imports) so any domain's bulk path can use it. Every helper runs on the
session's connection and so joins the caller's transaction; nothing here commits.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
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
        pipeline = session.info.get(_PIPELINE)
        if pipeline is not None:
            pipeline.put(sql, buf.getbuffer())
        else:
            _copy_in(_driver(session), sql, buf.getbuffer())
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


def _copy_in(driver: Any, sql: str, data: memoryview) -> None:
    with driver.cursor() as cur, cur.copy(sql) as copy:
        copy.write(data)


# Rows per slice of a large COPY (`copy_frame`).
COPY_SLICE_ROWS = 131_072


def copy_frame(driver: Any, sql: str, df: pl.DataFrame, encode: Callable[[pl.DataFrame], bytes]) -> None:
    """Run the ``COPY ... FROM STDIN`` ``sql`` with the rows of ``df``, turned into its format by ``encode``.

    A frame of more than `COPY_SLICE_ROWS` rows goes in slices, each encoded on a thread while the server
    loads the one before: Polars encodes without holding the GIL, so the encoding of a million rows (a
    second or two) no longer adds to the load.
    """
    if df.height <= COPY_SLICE_ROWS:
        _copy_in(driver, sql, memoryview(encode(df)))
        return
    slices = [df.slice(start, COPY_SLICE_ROWS) for start in range(0, df.height, COPY_SLICE_ROWS)]
    with ThreadPoolExecutor(max_workers=1) as pool, driver.cursor() as cur, cur.copy(sql) as copy:
        ahead = pool.submit(encode, slices[0])
        for later in slices[1:]:
            data = ahead.result()
            ahead = pool.submit(encode, later)
            copy.write(data)
        copy.write(ahead.result())


_PIPELINE = "arrears.bulk.copy_pipeline"


class _CopyPipeline:
    """COPY statements run in order on a thread of their own while the caller prepares the next ones."""

    def __init__(self, driver: Any, depth: int) -> None:
        self._driver = driver
        self._queue: queue.Queue[tuple[str, memoryview] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="arrears-copy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    _copy_in(self._driver, *item)
                except BaseException as exc:  # handed to the caller's thread
                    self._error = exc

    def put(self, sql: str, data: memoryview) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((sql, data))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


@contextmanager
def copies_pipelined(session: Session, *, depth: int = 2) -> Iterator[None]:
    """Within the block, `write_frame` on PostgreSQL hands each COPY to a writer thread and returns.

    The database loads one frame while Python and Polars prepare the next (at most ``depth`` waiting).
    The block must not use the session's connection otherwise; leaving it waits for every COPY, and a
    COPY that failed raises there (or at the next `write_frame`). On SQLite the block changes nothing.
    """
    if not is_postgres(session) or _PIPELINE in session.info:
        yield
        return
    pipeline = _CopyPipeline(_driver(session), depth)
    session.info[_PIPELINE] = pipeline
    try:
        yield
    except BaseException:
        del session.info[_PIPELINE]
        # the caller's exception is the one to report; the transaction is rolled back anyway
        with suppress(BaseException):
            pipeline.close()
        raise
    del session.info[_PIPELINE]
    pipeline.close()


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
        # the values come back as runs of consecutive ids (one run unless another writer took some
        # meanwhile), so only a few rows cross the wire whatever ``n`` is
        runs = conn.exec_driver_sql(
            "SELECT MIN(v), MAX(v) FROM (SELECT v, v - ROW_NUMBER() OVER (ORDER BY v) AS run"
            f" FROM (SELECT nextval('{seq}') AS v FROM generate_series(1, {int(n)})) s) r"
            " GROUP BY run ORDER BY 1"
        ).all()
        ids = pl.concat([pl.int_range(int(lo), int(hi) + 1, dtype=pl.Int64, eager=True) for lo, hi in runs])
        return ids.alias("id")
    top = conn.exec_driver_sql(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"').scalar_one()
    return pl.int_range(int(top) + 1, int(top) + 1 + n, dtype=pl.Int64, eager=True).alias("id")


# A load smaller than this is written through the indexes whatever the table's size.
DEFER_INDEXES_MIN_ROWS = 50_000


@dataclass(frozen=True)
class Index:
    """A secondary index as the database reports it, with the statements that drop and recreate it."""

    columns: tuple[str, ...]
    drop: str
    create: str


def _secondary_indexes(session: Session, table: str, *, primary: bool = False) -> list[Index]:
    """Each index of ``table`` other than its primary key (``primary``: and the primary key too, when
    no foreign key refers to it; PostgreSQL only).

    PostgreSQL: plain indexes and unique constraints that no foreign key depends on. SQLite: the indexes
    created by name (a UNIQUE constraint's automatic index belongs to the table and cannot be dropped).
    """
    conn = session.connection()
    if is_postgres(session):
        kinds = "'u', 'p'" if primary else "'u'"
        rows = conn.exec_driver_sql(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), c.conname,"
            " pg_get_constraintdef(c.oid),"
            " ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)"
            "  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord)"
            " FROM pg_index i LEFT JOIN pg_constraint c"
            f"  ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ({kinds})"
            " WHERE i.indrelid = %(t)s::regclass AND (%(primary)s OR NOT i.indisprimary)"
            "  AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid)"
            "  AND NOT EXISTS (SELECT 1 FROM pg_constraint x WHERE x.conindid = i.indexrelid"
            f"   AND x.conrelid = i.indrelid AND x.contype NOT IN ({kinds}, 'f'))"
            " ORDER BY 1",
            {"t": f'"{table}"', "primary": primary},
        ).all()
        out = []
        for index, index_def, constraint, constraint_def, columns in rows:
            if constraint is not None:
                out.append(
                    Index(
                        tuple(columns),
                        f'ALTER TABLE "{table}" DROP CONSTRAINT "{constraint}"',
                        f'ALTER TABLE "{table}" ADD CONSTRAINT "{constraint}" {constraint_def}',
                    )
                )
            else:
                out.append(Index(tuple(columns), f"DROP INDEX {index}", index_def))
        return out
    rows = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL"
        " ORDER BY name",
        (table,),
    ).all()
    return [
        Index(
            tuple(r[2] for r in conn.exec_driver_sql(f'PRAGMA index_info("{name}")').all()),
            f'DROP INDEX "{name}"',
            sql,
        )
        for name, sql in rows
    ]


def _has_rows(session: Session, table: str, at_least: int) -> bool:
    """Whether ``table`` holds ``at_least`` rows (counts no further than that)."""
    n = (
        session.connection()
        .exec_driver_sql(f'SELECT COUNT(*) FROM (SELECT 1 FROM "{table}" LIMIT {int(at_least)}) s')
        .scalar_one()
    )
    return int(n) >= at_least


@contextmanager
def indexes_deferred(
    session: Session,
    tables: Sequence[str],
    *,
    rows: int,
    ascending: Collection[str] = (),
    constant: Collection[str] = (),
) -> Iterator[list[str]]:
    """Load into ``tables`` without their secondary indexes, then build them once; yields the tables.

    Filling a B-tree one random key at a time costs far more than one sorted build, so a load of at least
    ``DEFER_INDEXES_MIN_ROWS`` rows into a table holding fewer rows than the load drops the table's indexes
    and rebuilds them after the block. A unique constraint is rebuilt as a constraint:
    a duplicate that slipped in fails the rebuild and so the whole transaction, so the guarantee holds; the
    caller should still check its rows for duplicates first, to report them by row rather than by failure.

    The trade-off: on PostgreSQL dropping an index takes an ACCESS EXCLUSIVE lock on its table until the
    transaction ends, so while such an import runs nobody else can read or write those tables (imports
    and pages of other portfolios wait). That is why only a load that at least doubles a table does it;
    a load into a large table keeps its indexes and the other users keep working. The tables are locked
    in one statement, in the order given, so two such imports queue rather than deadlock. The builds get
    a larger ``maintenance_work_mem`` for this transaction only.

    On PostgreSQL every index goes, a primary key too when no foreign key refers to it: even keys that
    arrive in ascending order cost about twice as much server time kept up row by row as built once after
    the load. On SQLite an index whose keys arrive in ascending order is cheap to keep (each key lands at
    the right edge of the B-tree, while a build reads the whole table again): the caller names the
    columns the load writes in ascending order (``ascending``, such as ids it assigned) and those with one
    value for the whole load (``constant``); an index whose first column not in ``constant`` is in
    ``ascending`` stays there.
    """
    chosen = [t for t in tables if not _has_rows(session, t, rows)] if rows >= DEFER_INDEXES_MIN_ROWS else []
    conn = session.connection()
    dropped: list[Index] = []
    if chosen and is_postgres(session):
        conn.exec_driver_sql(
            "LOCK TABLE " + ", ".join(f'"{t}"' for t in chosen) + " IN ACCESS EXCLUSIVE MODE"
        )
    postgres = is_postgres(session)
    for table in chosen:
        for index in _secondary_indexes(session, table, primary=postgres):
            leading = next((c for c in index.columns if c not in constant), None)
            if leading in ascending and not postgres:
                continue
            conn.exec_driver_sql(index.drop)
            dropped.append(index)
    yield chosen
    if not dropped:
        return
    if is_postgres(session):
        previous = conn.exec_driver_sql("SHOW maintenance_work_mem").scalar_one()
        conn.exec_driver_sql("SELECT set_config('maintenance_work_mem', '512MB', true)")
        for index in dropped:
            conn.exec_driver_sql(index.create)
        conn.exec_driver_sql("SELECT set_config('maintenance_work_mem', %(v)s, true)", {"v": previous})
    else:
        for index in dropped:
            conn.exec_driver_sql(index.create)
