"""The daily run on PostgreSQL: end-to-end time, peak memory and the ratio to a COPY floor.

    python -m bench run                 # 1,000,000 accounts
    BENCH_SCALE=0.05 python -m bench run   # 5% of that (or BENCH_SCALE=20000: that many accounts)

A portfolio is generated and imported (not timed), 50 collectors get queue profiles, then three runs are
timed, each in a child process (so its peak memory, max RSS, is its own): the first run after the import
(opening postings, every case staged and allocated), the same date again (it must change nothing) and the
next day (a day's accrual, and what changed). Each run prints its phases and its ratio to a floor measured
in the same database right after it: COPY out of the run's inputs (accounts, cases, debtors, contact
points, flags, instalments, strategy state, action history, limitation rows, promises, plans) plus COPY in
of every row the run wrote (appended decisions, outbox, work items, allocation events, postings; touched
strategy state, action history, limitation rows, cases, accounts; the earlier outbox rows and work items it
updated: cancelled, expired, moved to another collector) into bare tables without indexes.

``BENCH_DATABASE=sqlite`` runs the same three runs on a SQLite file (there is no COPY, so no floor).

The phases are the run's own (`arrears.strategy.run`). ``accrue`` is the ledger's opening postings and
daily accrual, an update of every account row each day; its share of each run is printed on its own
line, since it is the ledger's cost rather than the strategy's. ``limitation`` rewrites only the rows
whose limitation date or status changed, so after the first run it writes the accounts that became
time-barred that day; ``write`` appends a decision per account and writes the strategy states that
moved (another stage, entry date or strategy; both in the floor); ``allocate`` writes only the cases
whose stage or collector changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.import_bench import AS_OF, PG_URL, generate

# What the run reads: the portfolio's accounts, cases, debtors, contact points, flags and instalments, its
# strategy state and action history, limitation rows, promises and plans.
INPUTS = [
    "account",
    "case",
    "debtor",
    "contact_point",
    "account_flag",
    "instalment",
    "account_strategy_state",
    "account_action_state",
    "account_limitation",
    "promise",
    "arrangement_account",
]
# Appended by the run: rows with an id above the largest id before it (decisions: the run's date).
APPENDED = ["outbox_message", "work_item", "allocation_event", "posting"]
# Appended tables whose earlier rows the run also updates (messages and items cancelled, calls and visits
# expired, items moved to their case's collector): those rows carry the run's time.
UPDATED_TOO = ["outbox_message", "work_item"]
# Inserted or updated by the run: the rows it touched, told by the run's date or time.
TOUCHED = {
    "strategy_decision": "as_of_date = '{day}'",
    "account_strategy_state": "changed_on = '{day}'",
    "account_action_state": "last_on = '{day}'",
    "account_limitation": "as_of = '{day}'",
    "case": "updated_at = '{now}'",
    "account": "accrued_through_date = '{day}' OR ledger_opened_on = '{day}'",
}


def scale() -> int:
    """Accounts to generate: BENCH_SCALE as a fraction of a million (<= 1) or as a count."""
    raw = float(os.environ.get("BENCH_SCALE", "1"))
    return int(raw * 1_000_000) if raw <= 1 else int(raw)


SETUP = """
import sys, time
from pathlib import Path
from datetime import UTC, date, datetime
from arrears.db import make_engine, upgrade, session_scope
from arrears.models import AppUser
from arrears.portfolios import service
from arrears.strategy import queue_service
eng = make_engine(sys.argv[1]); upgrade(eng)
with session_scope(eng) as s:
    service.create_portfolio(s, name='bench', creditor='bench')
t = time.perf_counter()
with session_scope(eng) as s:
    r = service.import_accounts(
        s, path=Path(sys.argv[2]), portfolio_name='bench', as_of=date(2026, 11, 1),
        now=datetime(2026, 11, 1, 1, 0, tzinfo=UTC),
    )
    assert r.status == 'applied', r.errors.head(5)
with session_scope(eng) as s:
    for k in range(50):
        u = AppUser(username=f'agent{k}', display_name=f'agent {k}', role='collector')
        s.add(u); s.flush()
        queue_service.set_collector(s, user=u.id, queues=['early', 'late', 'legal'], cap=100_000)
print(time.perf_counter() - t)
"""

RUN = """
import json, sys, time, resource
from datetime import date, datetime, UTC
from arrears.db import make_engine, session_scope
from arrears.models import StrategyRun
from arrears.strategy import run as daily
eng = make_engine(sys.argv[1])
as_of = date.fromisoformat(sys.argv[2])
now = datetime.fromisoformat(sys.argv[3])
t = time.perf_counter()
with session_scope(eng) as s:
    r = daily.run_portfolio(s, portfolio='bench', as_of=as_of, now=now)
dt = time.perf_counter() - t
with session_scope(eng) as s:
    phases = [(p['name'], p.get('seconds')) for p in s.get(StrategyRun, r.run_id).phases if p.get('seconds') is not None]
print(json.dumps({'seconds': dt, 'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  'changes': r.changes, 'evaluated': r.outcome.accounts_evaluated, 'phases': phases}))
"""


def child(code: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-4000:])
    return out.stdout


def _conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def max_ids(url: str) -> dict[str, int]:
    """The largest id of each appended table (before a run)."""
    import psycopg

    with psycopg.connect(_conninfo(url), autocommit=True) as conn:
        return {t: conn.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{t}"').fetchone()[0] for t in APPENDED}  # type: ignore[index]


def copy_floor(
    url: str, *, before: dict[str, int], day: date, now: datetime, outputs: bool = True
) -> tuple[float, float, int]:
    """(seconds to COPY the inputs out, seconds to COPY the run's outputs into bare tables, output rows).

    The outputs are the rows the run appended or touched; they are read out untimed, then COPY-ed into
    tables of the same columns without indexes, constraints or triggers.
    """
    import psycopg

    with psycopg.connect(_conninfo(url), autocommit=True) as conn:
        start = time.perf_counter()
        for table in INPUTS:
            with conn.cursor().copy(f'COPY "{table}" TO STDOUT') as cp:
                for _block in cp:
                    pass
        out_seconds = time.perf_counter() - start
        where = {t: f"id > {before[t]}" for t in APPENDED}
        where.update({t: f"id > {before[t]} OR updated_at = '{now.isoformat()}'" for t in UPDATED_TOO})
        where.update({t: w.format(day=day.isoformat(), now=now.isoformat()) for t, w in TOUCHED.items()})
        if not outputs:
            where = {}
        dumps: dict[str, bytes] = {}
        for table, predicate in where.items():
            buf = bytearray()
            with conn.cursor().copy(f'COPY (SELECT * FROM "{table}" WHERE {predicate}) TO STDOUT') as cp:
                for block in cp:
                    buf += block
            dumps[table] = bytes(buf)
            conn.execute(f'DROP TABLE IF EXISTS "floor_{table}"')
            conn.execute(f'CREATE TABLE "floor_{table}" (LIKE "{table}")')
        rows = sum(d.count(b"\n") for d in dumps.values())
        start = time.perf_counter()
        for table, dump in dumps.items():
            with conn.cursor().copy(f'COPY "floor_{table}" FROM STDIN') as cp:
                cp.write(dump)
        in_seconds = time.perf_counter() - start
        for table in dumps:
            conn.execute(f'DROP TABLE "floor_{table}"')
        return out_seconds, in_seconds, rows


def timed_run(url: str, label: str, day: date) -> float:
    """Run ``day`` in a child process, print its time, memory, changes, phases and (PostgreSQL) its ratio
    to the floor."""
    now = datetime.combine(day, dt_time(16), tzinfo=UTC)
    postgres = url.startswith("postgresql")
    before = max_ids(url) if postgres else {}
    result = json.loads(child(RUN, url, day.isoformat(), now.isoformat()))
    run_s = float(result["seconds"])
    evaluated = int(result["evaluated"])
    print(
        f"{label} ({day}): run {run_s:.1f}s, {evaluated:,} accounts evaluated, peak {result['peak_mb']:,.0f} MB,"
        f" {int(result['changes']):,} rows changed",
        flush=True,
    )
    print(
        "  phases: " + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in result["phases"]), flush=True
    )
    accrual = sum(seconds for name, seconds in result["phases"] if name == "accrue")
    print(f"  accrual (ledger): {accrual:.1f}s, {100 * accrual / run_s:.0f}% of the run", flush=True)
    if postgres:
        # a run that changed nothing wrote nothing: its floor is the COPY out of its inputs alone
        written = int(result["changes"]) > 0
        copy_out, copy_in, out_rows = copy_floor(url, before=before, day=day, now=now, outputs=written)
        floor = copy_out + copy_in
        print(
            f"  floor: COPY out of inputs {copy_out:.1f}s + COPY in of {out_rows:,} output rows {copy_in:.1f}s"
            f" = {floor:.1f}s; ratio {run_s / floor:.2f}x",
            flush=True,
        )
    return run_s


def _runs(url: str, accounts: int, path: Path) -> None:
    setup = child(SETUP, url, str(path)).split()[-1]
    print(f"imported {accounts:,} accounts in {float(setup):.1f}s (not part of the run)", flush=True)
    day: date = AS_OF
    timed_run(url, "first run after the import", day)
    timed_run(url, "same date again (must change nothing)", day)
    timed_run(url, "next day", day + timedelta(days=1))


def main() -> None:
    """PostgreSQL by default; ``BENCH_DATABASE=sqlite`` runs the same on a SQLite file (no floor)."""
    accounts = scale()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        generate(path, accounts)
        if os.environ.get("BENCH_DATABASE", "postgresql") == "sqlite":
            print("sqlite:", flush=True)
            _runs(f"sqlite:///{Path(tmp) / 'bench.db'}", accounts, path)
            return
        admin = create_engine(
            PG_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
        )
        name = f"arrears_bench_run_{uuid.uuid4().hex[:8]}"
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_URL.rsplit("/", 1)[0] + "/" + name
        try:
            print("postgresql:", flush=True)
            _runs(url, accounts, path)
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
