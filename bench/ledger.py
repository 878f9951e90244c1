"""Ledger on PostgreSQL: a payment file of 1,000,000 rows and the daily accrual of 1,000,000 accounts.

    python -m bench ledger                  # 1,000,000 payments and accounts
    BENCH_SCALE=0.05 python -m bench ledger # 50,000 of each

Each figure is printed with its floor, measured in the same run on the same database:
* payments: reading, validating, resolving and allocating the file, writing the payments, the postings and
  the cached balances, against a raw COPY of the postings it wrote into a bare table of the same shape
  (target: at most 3x);
* accrual: `accrue_portfolio` for one day over every account, against one set-based UPDATE of every account
  row (targets: under 30 s and at most 3x).
Accounts are loaded straight into the tables (the account import has its own benchmark), then opened in the
ledger (`ensure_opening_postings`, timed and shown on its own). A CHECKPOINT precedes each timed step and its
floor, so that neither rides on pages the other has just written (full-page images in the WAL, pruning).
Under each figure, indented, the seconds of its phases as the ledger logs them (`bulk.Stopwatch`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import create_engine, text

PG_URL = os.environ.get("ARREARS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
ACCOUNTS = max(100, int(1_000_000 * SCALE))
PAYMENTS = max(100, int(1_000_000 * SCALE))
IMPORTED_AT = datetime(2026, 10, 31, 2, 0, tzinfo=UTC)  # 2026-10-31 in Shanghai
PAID_ON = date(2026, 11, 1)


def _copy(conn: object, table: str, df: pl.DataFrame) -> None:
    buf = df.write_csv(include_header=False, null_value="")
    cols = ", ".join(f'"{c}"' for c in df.columns)
    with conn.cursor().copy(f'COPY "{table}" ({cols}) FROM STDIN WITH (FORMAT csv)') as cp:  # type: ignore[attr-defined]
        cp.write(buf)


class _Laps(logging.Handler):
    """Prints the phases the ledger's bulk steps log (`arrears.ledger.bulk.Stopwatch`)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"    {record.getMessage()}")


def _checkpoint(engine: Any) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("CHECKPOINT")
        conn.commit()


_HOT_SQL = (
    "SELECT pg_stat_get_xact_tuples_updated('account'::regclass),"
    " pg_stat_get_xact_tuples_hot_updated('account'::regclass)"
)


def _hot(conn: Any) -> str:
    """How many of this transaction's updates of ``account`` rows were heap-only (in place, no index entries).

    PostgreSQL rewrites a row in place only when its page has room; a long transaction anywhere on the
    server keeps old row versions alive and the room taken, and every update then adds index entries too.
    """
    updated, hot = conn.execute(text(_HOT_SQL)).one()
    return (
        f"{100 * int(hot) / int(updated):.0f}% of account row updates in place" if updated else "no updates"
    )


def populate(url: str) -> int:
    """A creditor (private lender, so CN-30 applies), a portfolio, debtors, cases and accounts; returns the portfolio id."""
    import psycopg

    rng = np.random.default_rng(11)
    n = ACCOUNTS
    debtors = int(n * 0.87)
    owner = np.sort(np.concatenate([np.arange(debtors), rng.integers(0, debtors, n - debtors)]))
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        cid = conn.execute(
            "INSERT INTO creditor (name, kind, licensed_lender) VALUES ('bench lender', 'lender', false) RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        pid = conn.execute(
            "INSERT INTO portfolio (creditor_id, name, currency, timezone, rule_pack, strategy, locale)"
            " VALUES (%s, 'bench', 'CNY', 'Asia/Shanghai', 'cn', 'default', 'zh_CN') RETURNING id",
            (cid,),
        ).fetchone()[0]  # type: ignore[index]
        base = conn.execute("SELECT COALESCE(MAX(id), 0) FROM debtor").fetchone()[0]  # type: ignore[index]
        ids = np.arange(1, debtors + 1) + base
        _copy(
            conn,
            "debtor",
            pl.DataFrame(
                {"id": ids, "dedup_key": [f"bench:{i}" for i in ids], "kind": "person", "name": "张三"}
            ),
        )
        _copy(
            conn, "case", pl.DataFrame({"id": ids, "portfolio_id": pid, "debtor_id": ids, "status": "open"})
        )
        principal = rng.integers(1_000_00, 50_000_00, n)
        origination = [date(2025, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 365, n)]
        accounts = pl.DataFrame(
            {
                "id": np.arange(1, n + 1),
                "portfolio_id": pid,
                "case_id": owner + 1 + base,
                "debtor_id": owner + 1 + base,
                "external_ref": [f"JJ{i:08d}" for i in range(1, n + 1)],
                "product": "consumer_loan",
                "currency": "CNY",
                "original_principal_minor": principal,
                "interest_rate_annual_ppm": rng.choice([0, 100_000, 150_000, 240_000], n),
                "penalty_rate_annual_ppm": rng.choice([0, 50_000, 120_000], n),
                "origination_date": origination,
                "due_date": [d + timedelta(days=300) for d in origination],
                "principal_minor": principal,
                "interest_minor": rng.integers(0, 2_000_00, n),
                "penalty_minor": rng.integers(0, 500_00, n),
                "fees_minor": rng.choice([0, 50_00], n),
                "costs_minor": rng.choice([0, 0, 0, 200_00], n),
                "overdue_amount_minor": principal,
                "is_secured": rng.random(n) < 0.1,
                "status": "active",
                "created_at": IMPORTED_AT.isoformat(),
                "updated_at": IMPORTED_AT.isoformat(),
            }
        )
        _copy(conn, "account", accounts)
        for table in ("debtor", "case", "account"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), (SELECT MAX(id) FROM \"{table}\"))"
            )
            conn.execute(f'ANALYZE "{table}"')
    return int(pid)


def payment_file(path: Path) -> None:
    """A bank file: one row per payment, paying a random account, from a few yuan to more than owed."""
    rng = np.random.default_rng(5)
    accounts = rng.integers(1, ACCOUNTS + 1, PAYMENTS)
    amounts = rng.integers(1_00, 60_000_00, PAYMENTS)
    pl.DataFrame(
        {
            "借据号": [f"JJ{i:08d}" for i in accounts],
            "还款金额": [f"{a // 100}.{a % 100:02d}" for a in amounts],
            "还款日期": PAID_ON.isoformat(),
            "流水号": [f"BANK{i:09d}" for i in range(PAYMENTS)],
        }
    ).write_csv(path)


def main() -> None:
    from arrears import db
    from arrears.ledger import service
    from arrears.ledger.payments_import import import_payments

    timing = logging.getLogger("arrears.ledger.timing")
    timing.setLevel(logging.DEBUG)
    timing.addHandler(_Laps())
    timing.propagate = False
    admin = create_engine(
        PG_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    name = f"arrears_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
        t = time.perf_counter()
        pid = populate(url)
        print(f"ledger bench: {ACCOUNTS:,} accounts loaded in {time.perf_counter() - t:.1f}s")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bank.csv"
            payment_file(path)
            with db.session_scope(engine) as s:
                t = time.perf_counter()
                opened = service.ensure_opening_postings(s, portfolio_id=pid)
            print(f"  opening postings for {opened:,} accounts: {time.perf_counter() - t:.1f}s")

            _checkpoint(engine)
            t = time.perf_counter()
            with db.session_scope(engine) as s:
                report = import_payments(
                    s, path=path, portfolio_id=pid, now=datetime(2026, 11, 1, 9, tzinfo=UTC)
                )
                hot_payments = _hot(s)
            seconds = time.perf_counter() - t
            assert report.status == "applied", report.issues.head()
        with engine.begin() as conn:
            conn.exec_driver_sql('CREATE TABLE floor_posting (LIKE "posting")')
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            buf = bytearray()
            with conn.cursor().copy(
                "COPY (SELECT * FROM posting WHERE payment_id IS NOT NULL) TO STDOUT"
            ) as cp:
                for block in cp:
                    buf += block
            conn.execute("CHECKPOINT")
            t = time.perf_counter()
            with conn.cursor().copy("COPY floor_posting FROM STDIN") as cp:
                cp.write(bytes(buf))
            floor = time.perf_counter() - t
        print(
            f"  payments: {PAYMENTS:,} rows -> {report.postings:,} postings in {seconds:.1f}s "
            f"= {PAYMENTS / seconds:,.0f} payments/s; COPY floor {floor:.1f}s; ratio {seconds / floor:.2f}x "
            f"(target <= 3x); {hot_payments}"
        )

        _checkpoint(engine)
        with db.session_scope(engine) as s:
            t = time.perf_counter()
            run = service.accrue_portfolio(s, portfolio_id=pid, as_of=date(2026, 11, 1))
            accrual = time.perf_counter() - t
            hot_accrual = _hot(s)
        _checkpoint(engine)
        with engine.begin() as conn:
            t = time.perf_counter()
            conn.exec_driver_sql(
                f"UPDATE account SET interest_minor = interest_minor + 0 WHERE portfolio_id = {pid}"
            )
            update_floor = time.perf_counter() - t
            hot_floor = _hot(conn)
        print(
            f"  accrual: {run.accounts:,} accounts, {run.postings:,} postings in {accrual:.1f}s (target < 30 s); "
            f"UPDATE floor {update_floor:.1f}s; ratio {accrual / update_floor:.2f}x (target <= 3x); "
            f"accrual: {hot_accrual}; floor: {hot_floor}"
        )
        with db.session_scope(engine) as s:
            bad = service.verify_balances(s, portfolio_id=pid)
        print(f"  verify_balances: {len(bad)} mismatches")
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
