"""Outbox dispatch throughput: messages per second through the outbox to a local SMTP server and a local
SMS gateway, with 1 and 2 dispatcher processes, beside the floor of the same servers fed directly.

    python -m bench dispatch                      # 10,000 messages (half e-mail, half SMS), SQLite file
    BENCH_MESSAGES=2000 BENCH_REPEATS=3 python -m bench dispatch   # smaller, median of 3 interleaved runs
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench python -m bench dispatch  # and PostgreSQL
    BENCH_DATABASES=postgresql BENCH_DATABASE_URL=...  # PostgreSQL only

Through the outbox, each message is claimed, rendered with its case's data, passed through the compliance
gate at send time, recorded on the contact record (hash chain), sent and its result recorded. The floor
sends the same kind of messages with the same senders (built from the same settings by
`channels.service.build_senders`) through the same `SendPool` with the same concurrency, from the same
number of separate processes -- it only leaves out the database. The receiving servers (aiosmtpd and the
threaded HTTP gateway of `counting_servers`) run in two processes of their own, so neither shares an
interpreter lock with the other or with this process: the floor measures the senders, not a starved
receiver. They count messages by key; the bench checks that every message arrived.

Each block of the output gives one database (SQLite always; PostgreSQL when ``BENCH_DATABASE_URL`` names
one), the 1-minute load average over its runs, messages/s (wall clock from starting the processes to their
exit, and first to last arrival at the servers), and the CPU per message of the sending processes
(dispatchers or floor processes, start-up included; on PostgreSQL the database server's own work is not
in it) and of the two servers. The CPU figures move much less with the machine's load than the rates.

Where the CPU goes (py-spy and process CPU times):

- Sending, per message in the dispatcher or floor process: an e-mail costs about 0.3 ms (MIME bytes built
  from header lines and base64 parts, one SMTP transaction on a kept connection), an SMS about 0.2 ms
  alone or 0.4 ms among 8 threads (urllib3 on kept connections).
- Receiving: aiosmtpd about 0.35-0.45 ms per e-mail, the threaded gateway 0.15 ms per SMS.
- The outbox adds, per message and without sending: the prepare step (claim, render, gate, contact-record
  append with its hash) is about four fifths of it -- the gate's `decide` about a quarter (its text lint,
  one regular-expression scan per forbidden-phrase list, about half of that), rendering with the case data
  a quarter, the contact-record append a tenth -- and recording results the rest. Reading the claimed rows
  once, writing their template and attempt ids in one statement and formatting amounts without Babel's
  per-call cost (0.1 ms an amount, two per message) took about a fifth off it: a dispatcher's own CPU
  for 2,000 messages to senders that do nothing, SQLite, load 2, went from 1.70-1.78 to 1.36-1.43 ms per
  message (both versions run in turn).
- Each process's start (imports: SQLAlchemy and the models are most of it; polars is no longer loaded by
  a dispatcher) costs about 0.5 s of CPU on a quiet machine, 2.5 s and several seconds of wall clock at
  a load of 12-16; it counts in the wall-clock rate and in the CPU per message (compare the first-to-last-arrival
  rate, and use 10,000 messages).

Measured with the servers in their own processes, 4,000 messages, one run each, load 2-5: SQLite, 1
dispatcher 218/s (floor 396), 2 dispatchers 151/s (floor 413); PostgreSQL 307/s (floor 479) and 236/s
(floor 376), floor/outbox 1.6. Before the servers had processes of their own the floor with 2 processes
was below the floor with 1 (272 against 381 on SQLite); now it is not. Two dispatchers were slower than
one in these runs on both databases (each pays its start-up; on SQLite they also queue for the write lock).

Through the outbox a message costs about 1.5 ms of CPU across the processes on a quiet machine: 1,000
messages/s with 2 dispatchers needs both cores to itself, so the target (at least 1,000/s with 2
dispatchers and at most twice the floor, wall clock) can only be met on PostgreSQL on an otherwise idle
2-core machine, and it was not met on the shared machine these figures come from (load average 12-16,
where every rate is several times lower and follows the share of the cores the bench gets). On SQLite the
prepare and result transactions of two dispatchers take the single write lock in turn, so a second
dispatcher adds little there; on PostgreSQL they overlap.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration" / "channels"))  # the counting servers and builders

from channels_db_builders import bulk_outbox  # noqa: E402
from counting_servers import ServerProcess  # noqa: E402

from arrears import db  # noqa: E402
from arrears.channels import outbox, service  # noqa: E402
from arrears.channels.schemas import OutboundMessage  # noqa: E402
from arrears.channels.senders import SendPool  # noqa: E402
from arrears.enums import Channel  # noqa: E402

AT = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
TARGET_RATE = 1000  # messages/s with 2 dispatchers
TARGET_RATIO = 2.0  # floor / outbox at most


#: One measurement: messages/s wall clock, messages/s first to last arrival, and ms of CPU per message in
#: the sending processes (dispatchers or floor processes, start-up included) and in the two servers.
Run = tuple[float, float, float, float]


class _Cpu:
    """CPU used from now on by the processes this one starts and waits for, and by the servers."""

    def __init__(self, smtp: ServerProcess, gateway: ServerProcess) -> None:
        self._servers = (smtp, gateway)
        self._children = self._children_now()
        self._received = self._servers_now()

    def _children_now(self) -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def _servers_now(self) -> float:
        return sum(server.tally.cpu_s for server in self._servers)

    def per_message(self, messages: int) -> tuple[float, float]:
        """ms of CPU per message: (senders, receivers)."""
        sending = self._children_now() - self._children
        receiving = self._servers_now() - self._received
        return sending * 1000 / messages, receiving * 1000 / messages


def _settings(smtp_port: int, gateway_url: str) -> dict[str, object]:
    return {
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "password_env": None,
                 "from_address": "notice@bank.example", "message_id_domain": "bank.example"},
        "sms": {"name": "bench", "preset": "generic_json_bearer", "url": gateway_url},
    }  # fmt: skip


def _env(url: str, smtp: ServerProcess, gateway: ServerProcess) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "ARREARS_DATABASE_URL": url,
        "ARREARS_CHANNELS": json.dumps(_settings(smtp.port, gateway.url)),
        "ARREARS_SMS_SECRETS": json.dumps({"token": "t"}),
    }


def floor_worker(tag: str, start: int, count: int) -> None:
    """One floor process: ``count`` messages from ``start`` straight to the servers (``ARREARS_CHANNELS``)."""
    settings = service.ChannelSettings.model_validate(json.loads(os.environ["ARREARS_CHANNELS"]))
    senders = service.build_senders(settings)
    jobs = []
    for i in range(start, start + count):
        if i % 2:
            text = f"【信达银行】债务人{i}您好，您应于2026年3月1日归还的¥200.00尚未到账，请尽快还款。咨询：400-800-1234"
            message = OutboundMessage(f"{tag}:{i}", Channel.SMS, f"+86139{i:08d}", text)
        else:
            text = (
                f"债务人{i}您好：\n信达银行提醒您，应还金额 ¥200.00，余额 ¥1,000.00。\n咨询电话：400-800-1234"
            )
            message = OutboundMessage(
                f"{tag}:{i}", Channel.EMAIL, f"d{i}@bench.example", text, subject="信达银行：还款提醒",
                html=f"<p>债务人{i}您好：</p><p>信达银行提醒您，应还金额 ¥200.00。</p>", opt_out=True,
            )  # fmt: skip
        jobs.append((senders[message.channel], message))
    with SendPool(outbox.default_concurrency()) as pool:
        for _ in pool.send(jobs):
            pass
    for sender in senders.values():
        sender.close()  # type: ignore[attr-defined]


def _arrival_rate(arrived: int, smtp: ServerProcess, gateway: ServerProcess) -> float:
    """Messages per second between the first and the last arrival at the servers (no process start-up)."""
    firsts = [t.first_at for t in (smtp.tally, gateway.tally) if t.first_at is not None]
    lasts = [t.last_at for t in (smtp.tally, gateway.tally) if t.last_at is not None]
    return (arrived - 1) / max(max(lasts) - min(firsts), 1e-9)


def _restart(smtp: ServerProcess, gateway: ServerProcess) -> int:
    smtp.tally.restart_clock()
    gateway.tally.restart_clock()
    return smtp.tally.distinct + gateway.tally.distinct


def floor(messages: int, smtp: ServerProcess, gateway: ServerProcess, workers: int) -> Run:
    """Messages per second from ``workers`` processes sending straight to the servers (no database):
    wall clock from starting the processes to their exit, and between the first and last arrival."""
    tag = f"floor{workers}-{time.time_ns()}"
    share = messages // workers
    before = _restart(smtp, gateway)
    env = _env("sqlite://", smtp, gateway)
    cpu = _Cpu(smtp, gateway)
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.dispatch", "floor", tag, str(k * share), str(share)],
            env=env,
            cwd=ROOT,
        )
        for k in range(workers)
    ]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"floor process failed with {proc.returncode}")
    elapsed = time.perf_counter() - started
    arrived = smtp.tally.distinct + gateway.tally.distinct - before
    if arrived != share * workers:
        raise SystemExit(f"floor: {arrived} of {share * workers} messages arrived")
    return share * workers / elapsed, _arrival_rate(arrived, smtp, gateway), *cpu.per_message(arrived)


def through_outbox(url: str, messages: int, smtp: ServerProcess, gateway: ServerProcess, workers: int) -> Run:
    """Messages per second from queued outbox rows to the servers with ``workers`` dispatcher processes
    (wall clock, and between the first and last arrival)."""
    engine = db.make_engine(url)
    with Session(engine) as session:
        portfolio, rows = bulk_outbox(session, cases=messages // 2, planned_for=AT)
        session.commit()
        name = portfolio.name
    engine.dispose()
    before = _restart(smtp, gateway)
    command = [sys.executable, "-m", "arrears.cli", "dispatch", "--portfolio", name, "--at", AT.isoformat()]
    env = _env(url, smtp, gateway)
    cpu = _Cpu(smtp, gateway)
    started = time.perf_counter()
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) for _ in range(workers)]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"dispatcher failed with {proc.returncode}")
    elapsed = time.perf_counter() - started
    arrived = smtp.tally.distinct + gateway.tally.distinct - before
    if arrived != len(rows):
        raise SystemExit(f"{arrived} of {len(rows)} messages arrived")
    return len(rows) / elapsed, _arrival_rate(arrived, smtp, gateway), *cpu.per_message(arrived)


def _databases() -> list[tuple[str, str | None]]:
    """SQLite (a file) always; PostgreSQL too when ``BENCH_DATABASE_URL`` names one (``BENCH_DATABASES``
    = ``sqlite`` or ``postgresql`` picks one)."""
    url = os.environ.get("BENCH_DATABASE_URL")
    wanted = os.environ.get("BENCH_DATABASES", "sqlite,postgresql").split(",")
    found: list[tuple[str, str | None]] = []
    if "sqlite" in wanted and not (url and url.startswith("sqlite")):
        found.append(("sqlite", None))
    if url and url.split(":", 1)[0].split("+")[0] in wanted:
        found.append((url.split(":", 1)[0].split("+")[0], url))
    return found


def _ensure_database(url: str) -> None:
    """Create the PostgreSQL database ``url`` names when it does not exist yet (the bench's own rows go in
    a portfolio of their own, so an existing database is used as it is)."""
    if not url.startswith("postgresql"):
        return
    from sqlalchemy import create_engine, text

    base, name = url.rsplit("/", 1)
    admin = create_engine(
        f"{base}/postgres".replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}) is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            print(f"  created database {name}")
    admin.dispose()


def _load() -> float:
    return os.getloadavg()[0]


def _report(
    dialect: str, messages: int, repeats: int, runs: dict[str, list[Run]], loads: list[float]
) -> None:
    wall = {k: median(r[0] for r in v) for k, v in runs.items()}
    steady = {k: median(r[1] for r in v) for k, v in runs.items()}
    sending = {k: median(r[2] for r in v) for k, v in runs.items()}
    receiving = {k: median(r[3] for r in v) for k, v in runs.items()}
    print(
        f"dispatch bench: {messages} messages (half e-mail, half SMS), {dialect}, "
        f"{outbox.default_concurrency()} sends in flight per process, median of {repeats}; "
        f"load average (1 min) {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores"
    )
    print("  messages/s: wall clock (processes started to done) | at the servers (first to last arrival)")
    for workers in (1, 2):
        label = "dispatcher " if workers == 1 else "dispatchers"
        f, o = wall[f"floor {workers}"], wall[f"outbox {workers}"]
        fs, os_ = steady[f"floor {workers}"], steady[f"outbox {workers}"]
        print(
            f"  {workers} {label}  outbox {o:6.0f} | {os_:6.0f}   floor {f:6.0f} | {fs:6.0f}   "
            f"floor/outbox {f / o:4.2f} | {fs / os_:4.2f}"
        )
    print("  CPU ms per message: senders (dispatchers or floor processes, start-up included) + servers")
    for workers in (1, 2):
        o, f = f"outbox {workers}", f"floor {workers}"
        print(
            f"  {workers} process{'es' if workers > 1 else '  '}    outbox {sending[o]:5.2f} + {receiving[o]:4.2f}"
            f"   floor {sending[f]:5.2f} + {receiving[f]:4.2f}"
        )
    two = wall["outbox 2"]
    ratio = wall["floor 2"] / two
    verdict = "met" if two >= TARGET_RATE and ratio <= TARGET_RATIO else "NOT met"
    print(
        f"  target (2 dispatchers >= {TARGET_RATE}/s, floor/outbox <= {TARGET_RATIO}, wall clock): {verdict}"
    )
    print(f"  2 dispatchers / 1 dispatcher (wall clock): {two / wall['outbox 1']:.2f}")
    if dialect == "sqlite":
        print(
            "  (SQLite: the dispatchers' gate and result transactions share one write lock; rendering reads only)"
        )


def main() -> None:
    messages = int(os.environ.get("BENCH_MESSAGES", "10000"))
    repeats = int(os.environ.get("BENCH_REPEATS", "1"))
    # The receiving servers run in processes of their own (started before anything else), so the floor
    # measures the senders and not a receiver starved of its interpreter lock.
    smtp, gateway = ServerProcess("smtp").start(), ServerProcess("gateway").start()
    tmp = tempfile.TemporaryDirectory(prefix="arrears-bench-dispatch-")
    try:
        for dialect, given in _databases():
            url = given or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
            _ensure_database(url)
            db.upgrade(db.make_engine(url))
            runs: dict[str, list[Run]] = {}
            loads = [_load()]
            for _ in range(repeats):  # interleaved, so the floor and the outbox see the same machine load
                for workers in (1, 2):
                    runs.setdefault(f"floor {workers}", []).append(floor(messages, smtp, gateway, workers))
                    runs.setdefault(f"outbox {workers}", []).append(
                        through_outbox(url, messages, smtp, gateway, workers)
                    )
                    loads.append(_load())
            _report(dialect, messages, repeats, runs, loads)
        if not any(dialect == "postgresql" for dialect, _ in _databases()):
            print(
                "  PostgreSQL not run: BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/<db> adds it"
            )
    finally:
        smtp.stop()
        gateway.stop()
        tmp.cleanup()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "floor":
        floor_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
