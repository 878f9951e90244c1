"""Account import: rows/s, peak memory and the ratio to a raw PostgreSQL COPY of the same rows.

    python -m bench import_bench                   # 1,000,000 rows
    BENCH_SCALE=0.1 python -m bench import_bench   # 100,000 (BENCH_ROWS=n for an exact count)

The floor is measured in the same run: the rows the import wrote are copied out and COPY-ed into bare
tables of the same shape without indexes. Two floors are printed: debtors, contact points and accounts
(the product owner's definition), and every table the import writes (those plus cases and instalments).
The import is run in a child process so its peak memory (max RSS) and CPU time are its own; on a shared
machine the ratio to the floor, measured under the same load, is the number to compare.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

PG_URL = os.environ.get("ARREARS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ROWS = int(os.environ.get("BENCH_ROWS") or 1_000_000 * float(os.environ.get("BENCH_SCALE", "1")))
AS_OF = date(2026, 11, 1)
HEADERS = [
    "借据号",
    "姓名",
    "身份证号",
    "手机号",
    "产品类型",
    "本金",
    "利息",
    "罚息",
    "费用",
    "到期日",
    "放款日期",
    "期数",
    "每期金额",
    "首期还款日",
    "紧急联系人",
    "紧急联系人关系",
    "紧急联系人电话",
]
REGIONS = ["110105", "310101", "440305", "510104", "330106", "320102", "420102", "610113"]
PREFIXES = ["138", "139", "150", "151", "186", "187", "188", "135", "136", "137"]
WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
CHECK = np.array(list("10X98765432"))


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """A lender-style file: 85% of debtors hold one account, the rest two."""
    rng = np.random.default_rng(seed)
    debtors = int(rows * 0.87)
    owner = np.sort(np.concatenate([np.arange(debtors), rng.integers(0, debtors, rows - debtors)]))
    region = np.array(REGIONS)[rng.integers(0, len(REGIONS), debtors)]
    birth = date(1960, 1, 1) + np.array([timedelta(days=int(d)) for d in rng.integers(0, 40 * 365, debtors)])
    births = np.array([b.strftime("%Y%m%d") for b in birth])
    seq = rng.integers(0, 1000, debtors)
    body = np.char.add(np.char.add(region, births), np.char.zfill(seq.astype(str), 3))
    digits = np.array([list(map(int, b)) for b in body])
    ids = np.char.add(body, CHECK[(digits @ WEIGHTS) % 11])
    mobiles = np.char.add(
        np.array(PREFIXES)[rng.integers(0, len(PREFIXES), debtors)],
        np.char.zfill(rng.integers(0, 10**8, debtors).astype(str), 8),
    )
    names = np.array(["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄强"])[
        rng.integers(0, 8, debtors)
    ]
    product = rng.choice(["信用卡", "消费贷", "分期"], size=rows, p=[0.4, 0.4, 0.2])
    dpd = rng.integers(-5, 400, rows)
    principal = rng.integers(50_000, 8_000_000, rows)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADERS)
        for i in range(rows):
            o = owner[i]
            due = AS_OF - timedelta(days=int(dpd[i]))
            inst = product[i] == "分期"
            p = int(principal[i])
            w.writerow(
                [
                    f"B{i:08d}",
                    names[o],
                    ids[o],
                    mobiles[o],
                    product[i],
                    f"{p // 100}.{p % 100:02d}",
                    f"{p // 2000}.00",
                    "0",
                    "50.00",
                    due.isoformat(),
                    (due - timedelta(days=200)).isoformat(),
                    "12" if inst else "",
                    f"{p // 1200}.00" if inst else "",
                    (due - timedelta(days=90)).isoformat() if inst else "",
                    "联系人" if i % 3 else "",
                    "朋友" if i % 3 else "",
                    f"1390000{i % 10000:04d}" if i % 3 else "",
                ]
            )


def run_import(url: str, path: Path) -> tuple[float, float, float, str]:
    """Import in a child process; returns (seconds, peak MB, CPU seconds, counts)."""
    code = (
        "import sys, time, resource\n"
        "from pathlib import Path\n"
        "from datetime import date\n"
        "from arrears.db import make_engine, upgrade, session_scope\n"
        "from arrears.portfolios import service\n"
        "eng = make_engine(sys.argv[1]); upgrade(eng)\n"
        "with session_scope(eng) as s: service.create_portfolio(s, name='bench', creditor='bench')\n"
        "u = resource.getrusage(resource.RUSAGE_SELF); c0 = u.ru_utime + u.ru_stime\n"
        "t = time.perf_counter()\n"
        "with session_scope(eng) as s:\n"
        "    r = service.import_accounts(s, path=Path(sys.argv[2]), portfolio_name='bench', as_of=date(2026, 11, 1))\n"
        "    assert r.status == 'applied', r.errors.head(5)\n"
        "dt = time.perf_counter() - t\n"
        "u = resource.getrusage(resource.RUSAGE_SELF)\n"
        "print(dt, u.ru_maxrss / 1024, u.ru_utime + u.ru_stime - c0, r.counts)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url, str(path)], capture_output=True, text=True, check=True
    )
    seconds, peak, cpu, *rest = out.stdout.split(maxsplit=3)
    return float(seconds), float(peak), float(cpu), " ".join(rest)


FLOOR_TABLES = ["debtor", "contact_point", "account", "instalment", "case"]
SPEC_TABLES = {"debtor", "contact_point", "account"}


def copy_floor(url: str) -> dict[str, float]:
    """Seconds per table to COPY the rows the import wrote into bare, index-free tables of the same shape."""
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        dumps = {}
        for table in FLOOR_TABLES:
            buf = bytearray()
            with conn.cursor().copy(f'COPY "{table}" TO STDOUT') as cp:
                for block in cp:
                    buf += block
            dumps[table] = bytes(buf)
            conn.execute(f'CREATE TABLE floor_{table} (LIKE "{table}")')
        seconds = {}
        for table in FLOOR_TABLES:
            start = time.perf_counter()
            with conn.cursor().copy(f"COPY floor_{table} FROM STDIN") as cp:
                cp.write(dumps[table])
            seconds[table] = time.perf_counter() - start
        return seconds


def main() -> None:
    admin = create_engine(
        PG_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        t = time.perf_counter()
        generate(path, ROWS)
        print(
            f"generated {ROWS:,} rows ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s"
        )
        name = f"arrears_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_URL.rsplit("/", 1)[0] + "/" + name
        try:
            seconds, peak, cpu, _counts = run_import(url, path)
            floor = copy_floor(url)
            spec = sum(v for k, v in floor.items() if k in SPEC_TABLES)
            every = sum(floor.values())
            print(
                f"postgresql: import {seconds:.1f}s = {ROWS / seconds:,.0f} rows/s (client CPU {cpu:.1f}s), "
                f"peak {peak:,.0f} MB; COPY floor {spec:.1f}s (debtor, contact_point, account) -> "
                f"ratio {seconds / spec:.2f}x; {every:.1f}s (+ case, instalment) -> ratio {seconds / every:.2f}x "
                "(target <= 3x, peak < 1,500 MB)"
            )
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        db = Path(tmp) / "bench.db"
        seconds, peak, cpu, _ = run_import(f"sqlite:///{db}", path)
        print(
            f"sqlite: import {seconds:.1f}s = {ROWS / seconds:,.0f} rows/s (target >= 50,000); CPU {cpu:.1f}s"
            f" = {ROWS / cpu:,.0f} rows per CPU second; peak {peak:,.0f} MB"
        )
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
