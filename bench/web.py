"""The collection desk under load on PostgreSQL: p50/p95/p99 of the work queue, the case page and posting a
call outcome, for 20 simulated collectors against the real uvicorn server, beside the floor of the same
pages' bare database queries.

    python -m bench web                     # 1,000,000 accounts
    BENCH_SCALE=0.02 python -m bench web    # 2% of that (or BENCH_SCALE=20000: that many accounts)
    BENCH_WEB_SECONDS=60 BENCH_WEB_COLLECTORS=20 ...

Setup (not timed): the portfolio is generated with ``bench/import_bench.py``'s generator and imported, 20
collectors get passwords and queue profiles, and the daily run fills their queues. Then uvicorn serves the
database (clock frozen at 10:00 Shanghai on the run's date) and locust, headless, drives the collectors:
sign in once, then work queue -> a case from it -> log a call outcome, with a short think time.

The floor is measured in the same database: each page is requested once in-process while the SQL it sends
is recorded, then those statements are replayed with their parameters over one connection (inside a
transaction that is rolled back; the captured call itself is deleted first), 200 times per page; its p50/p95 are the time the database alone needs
for that page. The ratio p95(page) / p95(floor) is what the web stack adds under load.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bench.import_bench import AS_OF, PG_URL, generate
from bench.run import child, scale

PASSWORD = "bench-password-1"
FROZEN_NOW = f"{AS_OF.isoformat()}T10:00:00+08:00"
SECONDS = int(os.environ.get("BENCH_WEB_SECONDS", "60"))
COLLECTORS = int(os.environ.get("BENCH_WEB_COLLECTORS", "20"))
WORKERS = int(os.environ.get("BENCH_WEB_WORKERS", "2"))
PAGES = ("work queue", "case page", "post outcome")

SETUP = """
import sys, time
from pathlib import Path
from datetime import date, datetime, UTC
from arrears.db import make_engine, upgrade, session_scope
from arrears.models import AppUser
from arrears.portfolios import service
from arrears.strategy import queue_service, run as daily
from arrears.users.service import hash_password
eng = make_engine(sys.argv[1]); upgrade(eng)
collectors = int(sys.argv[3])
with session_scope(eng) as s:
    service.create_portfolio(s, name='bench', creditor='bench')
t = time.perf_counter()
with session_scope(eng) as s:
    r = service.import_accounts(s, path=Path(sys.argv[2]), portfolio_name='bench', as_of=date(2026, 11, 1))
    assert r.status == 'applied', r.errors.head(5)
digest = hash_password(sys.argv[4])
with session_scope(eng) as s:
    for k in range(collectors):
        u = AppUser(username=f'agent{k}', display_name=f'agent {k}', role='collector', password_hash=digest)
        s.add(u); s.flush()
        queue_service.set_collector(s, user=u.id, queues=['early', 'late', 'legal'], cap=1_000_000)
imported = time.perf_counter() - t
t = time.perf_counter()
with session_scope(eng) as s:
    rep = daily.run_portfolio(s, portfolio='bench', as_of=date(2026, 11, 1), now=datetime(2026, 11, 1, 1, tzinfo=UTC))
print(imported, time.perf_counter() - t, rep.outcome.work_items)
"""

FLOOR = """
import os, re, sys, time, json
from sqlalchemy import event, text
from fastapi.testclient import TestClient
from arrears.db import make_engine
from arrears.api.app import create_app
eng = make_engine(sys.argv[1])
recorded = []
recording = [False]
@event.listens_for(eng, "before_cursor_execute")
def _record(conn, cursor, statement, parameters, context, executemany):
    if recording[0] and not executemany:
        recorded.append((statement, parameters))
client = TestClient(create_app(eng))
page = client.get('/login')
token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
client.post('/login', data={'username': 'agent0', 'password': sys.argv[2], 'csrf_token': token, 'next': '/queue'})
def capture(fn):
    recorded.clear(); recording[0] = True
    fn(); recording[0] = False
    return list(recorded)
out = {}
holder = {}
def queue():
    holder['html'] = client.get('/queue').text
out['work queue'] = capture(queue)
case_id = int(re.search(r'href="/cases/(\\d+)', holder['html']).group(1))
def case():
    holder['case'] = client.get(f'/cases/{case_id}').text
out['case page'] = capture(case)
csrf = re.search(r'name="csrf_token" value="([^"]+)"', holder['case']).group(1)
point = re.search(r'<select name="contact_point_id"[^>]*>\\s*<option value="(\\d+)"', holder['case']).group(1)
def post():
    r = client.post(f'/cases/{case_id}/attempts', data={'csrf_token': csrf, 'contact_point_id': point, 'outcome': 'no_answer'}, follow_redirects=False)
    assert r.status_code in (303, 409), r.status_code
out['post outcome'] = capture(post)
# the captured call was committed: take it out again so the replay inserts the same row (then rolls back)
with eng.begin() as conn:
    conn.execute(text("DELETE FROM contact_attempt WHERE id = (SELECT max(id) FROM contact_attempt WHERE case_id = :c)"), {"c": case_id})
result = {}
for name, statements in out.items():
    samples = []
    with eng.connect() as conn:
        for _ in range(int(sys.argv[3])):
            tx = conn.begin()
            t = time.perf_counter()
            for sql, params in statements:
                conn.exec_driver_sql(sql, params)
            samples.append(time.perf_counter() - t)
            tx.rollback()
    samples.sort()
    n = len(samples)
    result[name] = [len(statements), samples[n // 2] * 1000, samples[int(n * 0.95)] * 1000]
print(json.dumps(result))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ARREARS_DATABASE_URL": url, "ARREARS_FROZEN_NOW": FROZEN_NOW}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "arrears.api.app:create_app", "--factory", "--port", str(port),
         "--workers", str(WORKERS), "--log-level", "warning", "--no-access-log"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"the server did not start: {log.read_text()[-2000:]}")


def _locust(port: int, out: Path) -> dict[str, dict[str, Any]]:
    env = {
        **os.environ,
        "BENCH_WEB_USERS": ",".join(f"agent{k}" for k in range(COLLECTORS)),
        "BENCH_WEB_PASSWORD": PASSWORD,
    }
    locustfile = Path(__file__).with_name("web_locustfile.py")
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", str(COLLECTORS),
         "-r", str(COLLECTORS), "-t", f"{SECONDS}s", "--host", f"http://127.0.0.1:{port}",
         "--csv", str(out / "desk"), "--only-summary", "--loglevel", "WARNING"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    stats = out / "desk_stats.csv"
    if not stats.exists():
        raise SystemExit(f"locust failed: {done.stderr[-3000:]}")
    if "Traceback" in done.stderr or "Error" in done.stderr:
        print(done.stderr[-3000:])
    with stats.open() as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def main() -> None:
    accounts = scale()
    admin = create_engine(
        PG_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    name = f"arrears_bench_web_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        path = work / "bench.csv"
        generate(path, accounts)
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_URL.rsplit("/", 1)[0] + "/" + name
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        server = None
        try:
            imported, ran, items = child(SETUP, url, str(path), str(COLLECTORS), PASSWORD)
            print(
                f"imported {accounts:,} accounts in {float(imported):.0f}s, daily run {float(ran):.0f}s, "
                f"{int(items):,} calls and visits queued for {COLLECTORS} collectors (not timed)"
            )
            os.environ["ARREARS_FROZEN_NOW"] = FROZEN_NOW
            import json

            floor = json.loads(" ".join(child(FLOOR, url, PASSWORD, "200")))
            port = _free_port()
            server = _serve(url, port, work / "server.log")
            rows = _locust(port, work)
            total = rows.get("Aggregated", {})
            print(
                f"desk under load: {COLLECTORS} collectors, {SECONDS}s, uvicorn {WORKERS} workers; "
                f"{int(total.get('Request Count', 0)):,} requests, {int(total.get('Failure Count', 0))} failures"
            )
            print(
                f"{'page':<14}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}   {'floor p50':>9}{'floor p95':>10}  ratio p95"
            )
            for page in PAGES:
                row = rows.get(page)
                statements, f50, f95 = floor[page]
                if row is None:
                    print(f"{page:<14} (no requests)")
                    continue
                p50, p95, p99 = (float(row[k]) for k in ("50%", "95%", "99%"))
                print(
                    f"{page:<14}{p50:>8.0f}{p95:>8.0f}{p99:>8.0f}   {f50:>9.1f}{f95:>10.1f}  "
                    f"{p95 / max(f95, 0.001):.1f}x ({statements} SQL statements)"
                )
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
