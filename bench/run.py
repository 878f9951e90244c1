"""The daily run on PostgreSQL: end-to-end time, peak memory and the ratio to a COPY floor.

    python -m bench run                 # 1,000,000 accounts
    BENCH_SCALE=0.05 python -m bench run   # 5% of that (or BENCH_SCALE=20000: that many accounts)

A portfolio is generated and imported (not timed), 50 collectors get queue profiles, then the run for one
as-of date is timed in a child process (so its peak memory, max RSS, is its own), and the same date is run
again (it must change nothing). The floor is measured in the same database right after: COPY out of the
run's inputs (accounts, cases, debtors, contact points, flags, strategy state) plus COPY in of tables as
large as its outputs (decisions, strategy state, action history, outbox, work items, allocation events)
into bare tables without indexes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.import_bench import AS_OF, PG_URL, generate

INPUTS = ["account", "case", "debtor", "contact_point", "account_flag", "account_strategy_state"]
OUTPUTS = [
    "strategy_decision",
    "account_strategy_state",
    "account_action_state",
    "outbox_message",
    "work_item",
    "allocation_event",
]


def scale() -> int:
    """Accounts to generate: BENCH_SCALE as a fraction of a million (<= 1) or as a count."""
    raw = float(os.environ.get("BENCH_SCALE", "1"))
    return int(raw * 1_000_000) if raw <= 1 else int(raw)


SETUP = """
import sys, time
from pathlib import Path
from datetime import date
from arrears.db import make_engine, upgrade, session_scope
from arrears.models import AppUser
from arrears.portfolios import service
from arrears.strategy import queue_service
eng = make_engine(sys.argv[1]); upgrade(eng)
with session_scope(eng) as s:
    service.create_portfolio(s, name='bench', creditor='bench')
t = time.perf_counter()
with session_scope(eng) as s:
    r = service.import_accounts(s, path=Path(sys.argv[2]), portfolio_name='bench', as_of=date(2026, 11, 1))
    assert r.status == 'applied', r.errors.head(5)
with session_scope(eng) as s:
    for k in range(50):
        u = AppUser(username=f'agent{k}', display_name=f'agent {k}', role='collector')
        s.add(u); s.flush()
        queue_service.set_collector(s, user=u.id, queues=['early', 'late', 'legal'], cap=100_000)
print(time.perf_counter() - t)
"""

RUN = """
import sys, time, resource
from datetime import date, datetime, UTC
from arrears.db import make_engine, session_scope
from arrears.strategy import run as daily
eng = make_engine(sys.argv[1])
as_of = date.fromisoformat(sys.argv[2])
t = time.perf_counter()
with session_scope(eng) as s:
    r = daily.run_portfolio(s, portfolio='bench', as_of=as_of, now=datetime(2026, 11, 1, tzinfo=UTC))
dt = time.perf_counter() - t
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, r.changes, r.outcome.accounts_evaluated)
"""


def child(code: str, *args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-4000:])
    return out.stdout.split()


def copy_floor(url: str) -> tuple[float, float, int]:
    """(seconds to COPY the inputs out, seconds to COPY the outputs into bare tables, output rows)."""
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        start = time.perf_counter()
        for table in INPUTS:
            with conn.cursor().copy(f'COPY "{table}" TO STDOUT') as cp:
                for _block in cp:
                    pass
        out_seconds = time.perf_counter() - start
        dumps: dict[str, bytes] = {}
        for table in OUTPUTS:
            buf = bytearray()
            with conn.cursor().copy(f'COPY "{table}" TO STDOUT') as cp:
                for block in cp:
                    buf += block
            dumps[table] = bytes(buf)
            conn.execute(f'CREATE TABLE floor_{table} (LIKE "{table}")')
        rows = sum(d.count(b"\n") for d in dumps.values())
        start = time.perf_counter()
        for table in OUTPUTS:
            with conn.cursor().copy(f"COPY floor_{table} FROM STDIN") as cp:
                cp.write(dumps[table])
        return out_seconds, time.perf_counter() - start, rows


def main() -> None:
    accounts = scale()
    admin = create_engine(
        PG_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    name = f"arrears_bench_run_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        generate(path, accounts)
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_URL.rsplit("/", 1)[0] + "/" + name
        try:
            (setup,) = child(SETUP, url, str(path))
            print(f"imported {accounts:,} accounts in {float(setup):.1f}s (not part of the run)")
            day: date = AS_OF
            seconds, peak, changes, evaluated = child(RUN, url, day.isoformat())
            again, _peak, changes_again, _ = child(RUN, url, day.isoformat())
            copy_out, copy_in, out_rows = copy_floor(url)
            floor = copy_out + copy_in
            run_s = float(seconds)
            print(
                f"postgresql: run {run_s:.1f}s for {int(evaluated):,} accounts = {int(evaluated) / run_s:,.0f} "
                f"accounts/s, peak {float(peak):,.0f} MB, {int(changes):,} rows changed"
            )
            print(
                f"floor: COPY out of inputs {copy_out:.1f}s + COPY in of {out_rows:,} output rows {copy_in:.1f}s "
                f"= {floor:.1f}s; ratio {run_s / floor:.2f}x"
            )
            print(f"same date again: {float(again):.1f}s, {int(changes_again)} changes (must be 0)")
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
