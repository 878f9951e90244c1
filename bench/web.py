"""The collection desk under load on PostgreSQL: p50/p95/p99 of the work queue, the case page and posting a
call outcome, for 20 simulated collectors against the real uvicorn server, beside the floor of the same
pages' bare database queries.

    python -m bench web                     # 1,000,000 accounts
    BENCH_SCALE=0.02 python -m bench web    # 2% of that (or BENCH_SCALE=20000: that many accounts)
    BENCH_WEB_SECONDS=60 BENCH_WEB_COLLECTORS=20 BENCH_WEB_WORKERS=2 BENCH_WEB_THINK=1-3 ...
    BENCH_WEB_KEEP=1 ...                    # keep the database (its name is printed) for further runs
    BENCH_WEB_DATABASE=arrears_bench_web_x  # run against a kept database: no generation, import or run

Setup (not timed): the portfolio is generated with ``bench/import_bench.py``'s generator and imported, 20
collectors get passwords and queue profiles, and the daily run fills their queues. Then uvicorn serves the
database (clock frozen at 10:00 Shanghai on the run's date) and locust, headless, drives the collectors:
sign in once, then work queue -> a case from it -> log a call outcome, pausing between clicks.

Think time: BENCH_WEB_THINK seconds between clicks, drawn uniformly (default ``1-3``). A collector on the
phone reads the case, talks, then records the outcome: several seconds between clicks, so 1-3 s is
already a busy desk; ``0.2-0.6`` (the first version of this bench) drives each simulated collector
several times faster than a person works. Because the percentiles depend on how hard the server is
driven, the bench prints the offered load it achieved: requests per second overall and per page, and the
CPU seconds the load generator (locust), the server (uvicorn workers) and the database backends used
during the load, beside the machine's load average: on a 2-core machine locust shares the cores with the
server, so its CPU is part of what the percentiles measure.

Every collector signs in within the first second (argon2: a tenth of a second of CPU and 64 MiB each; the
server verifies one password at a time per worker) and the percentiles include the pages served
meanwhile: the fewer requests a run makes (a longer think time, a shorter run), the larger their share of
the tail.

A kept database (BENCH_WEB_DATABASE) carries the attempts earlier runs recorded: more calls are then
refused by the daily caps (the 409 answer renders the case page with the gate's reasons), so compare runs
on fresh databases or on the same kept one.

The floor is measured in the same database: each page is requested once in-process while the SQL it sends
is recorded, then those statements are replayed with their parameters over one connection (inside a
transaction that is rolled back; the captured call itself is deleted first), 200 times per page; its
p50/p95 are the time the database alone needs for that page. The ratio p95(page) / p95(floor) is what the web stack adds under load.
"""

from __future__ import annotations

import csv
import os
import resource
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
THINK = os.environ.get("BENCH_WEB_THINK", "1-3")
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
        "BENCH_WEB_THINK": THINK,
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


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (0 for one that has gone)."""
    import psutil  # installed with locust

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def _server_pids(server: subprocess.Popen[bytes]) -> list[int]:
    import psutil

    return [server.pid, *(p.pid for p in psutil.Process(server.pid).children(recursive=True))]


def _backend_pids(database: str) -> list[int]:
    """The PostgreSQL backends serving ``database`` (the server's pooled connections)."""
    import psutil

    pids = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if cmd.startswith("postgres:") and f" {database} " in f"{cmd} ":
            pids.append(p.pid)
    return pids


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU jiffies of the whole machine so far, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    accounts = scale()
    admin = create_engine(
        PG_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    reuse = os.environ.get("BENCH_WEB_DATABASE", "")
    keep = bool(reuse) or os.environ.get("BENCH_WEB_KEEP", "") not in ("", "0")
    name = reuse or f"arrears_bench_web_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url = PG_URL.rsplit("/", 1)[0] + "/" + name
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        if not reuse:
            path = work / "bench.csv"
            generate(path, accounts)
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
        server = None
        try:
            if reuse:
                print(f"database {name} (kept from an earlier run: no generation, import or daily run)")
            else:
                imported, ran, items = child(SETUP, url, str(path), str(COLLECTORS), PASSWORD).split()
                print(
                    f"imported {accounts:,} accounts in {float(imported):.0f}s, daily run {float(ran):.0f}s, "
                    f"{int(items):,} calls and visits queued for {COLLECTORS} collectors (not timed)"
                )
            os.environ["ARREARS_FROZEN_NOW"] = FROZEN_NOW
            import json

            floor = json.loads(child(FLOOR, url, PASSWORD, "200").strip().splitlines()[-1])
            port = _free_port()
            server = _serve(url, port, work / "server.log")
            load_before = _load()
            served, backends = _server_pids(server), _backend_pids(name)
            cpu_server, cpu_db = _cpu_seconds(served), _cpu_seconds(backends)
            cpu_locust = resource.getrusage(resource.RUSAGE_CHILDREN)
            busy, ticks = _machine_busy()
            started = time.perf_counter()
            rows = _locust(port, work)
            elapsed = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            locust_s = (after.ru_utime + after.ru_stime) - (cpu_locust.ru_utime + cpu_locust.ru_stime)
            server_s = _cpu_seconds(served) - cpu_server
            backends = sorted(set(backends) | set(_backend_pids(name)))
            db_s = _cpu_seconds(backends) - cpu_db
            busy2, ticks2 = _machine_busy()
            machine = (busy2 - busy) / max(ticks2 - ticks, 1.0) * (os.cpu_count() or 1)
            total = rows.get("Aggregated", {})
            print(
                f"desk under load: {COLLECTORS} collectors, {SECONDS}s, uvicorn {WORKERS} workers, think time "
                f"{THINK} s; {int(total.get('Request Count', 0)):,} requests, "
                f"{int(total.get('Failure Count', 0))} failures"
            )
            pages = {page: int(rows[page]["Request Count"]) for page in PAGES if page in rows}
            print(
                f"offered load: {int(total.get('Request Count', 0)) / SECONDS:.1f} requests/s overall; "
                + ", ".join(f"{page} {n / SECONDS:.1f}/s" for page, n in pages.items())
            )
            print(
                f"CPU during the load ({elapsed:.0f}s): locust {locust_s:.1f}s, uvicorn {server_s:.1f}s, "
                f"database backends {db_s:.1f}s (of {machine * elapsed:.0f} CPU-seconds the whole machine "
                f"used, {os.cpu_count()} cores); load average {load_before} before, {_load()} after"
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
            if keep:
                print(f"kept database {name} (BENCH_WEB_DATABASE={name} runs again on it)")
            else:
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
