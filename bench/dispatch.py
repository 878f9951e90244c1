"""Outbox dispatch throughput: messages per second through the outbox to a local SMTP server and a local
SMS gateway, with 1 and 2 dispatcher processes, beside the floor of the same servers fed directly.

    python -m bench dispatch                      # 10,000 messages (half e-mail, half SMS), SQLite file
    BENCH_MESSAGES=2000 python -m bench dispatch
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench python -m bench dispatch

Each outbox message is claimed, rendered with its case's data, passed through the compliance gate, recorded
on the contact record (hash chain) and sent; the floor only sends. The receiving servers count messages by
key, and the bench checks that every message arrived exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration" / "channels"))  # the counting servers and builders

from channels_db_builders import bulk_outbox  # noqa: E402
from counting_servers import CountingGateway, CountingSmtp  # noqa: E402

from arrears import db  # noqa: E402
from arrears.channels.gateways import load_preset  # noqa: E402
from arrears.channels.schemas import OutboundMessage  # noqa: E402
from arrears.channels.senders import HttpSmsSender, SmtpConfig, SmtpSender  # noqa: E402
from arrears.enums import Channel  # noqa: E402

AT = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def _settings(smtp: CountingSmtp, gateway: CountingGateway) -> dict[str, object]:
    return {
        "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "none", "password_env": None,
                 "from_address": "notice@bank.example", "message_id_domain": "bank.example"},
        "sms": {"name": "bench", "preset": "generic_json_bearer", "url": gateway.url},
    }  # fmt: skip


def floor(messages: int, smtp: CountingSmtp, gateway: CountingGateway, threads: int) -> float:
    """Messages per second from the senders straight to the servers (no database)."""
    mail = SmtpSender(
        SmtpConfig(host="127.0.0.1", port=smtp.port, security="none", from_address="a@bank.example")
    )
    sms = HttpSmsSender(load_preset("generic_json_bearer", url=gateway.url), {"token": "t"})
    tag = f"floor{threads}-{time.time_ns()}"

    def send(i: int) -> None:
        if i % 2:
            message = OutboundMessage(
                f"{tag}:{i}", Channel.SMS, f"+86139{i:08d}", "【信达银行】您好，请尽快还款。"
            )
            sms.send(message)
        else:
            message = OutboundMessage(
                f"{tag}:{i}", Channel.EMAIL, f"d{i}@bench.example", "您好，请尽快还款。", subject="还款提醒"
            )
            mail.send(message)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(send, range(messages)))
    elapsed = time.perf_counter() - started
    sms.close()
    return messages / elapsed


def through_outbox(
    url: str, messages: int, smtp: CountingSmtp, gateway: CountingGateway, workers: int
) -> float:
    """Messages per second from queued outbox rows to the servers with ``workers`` dispatcher processes."""
    engine = db.make_engine(url)
    with Session(engine) as session:
        portfolio, rows = bulk_outbox(session, cases=messages // 2, planned_for=AT)
        session.commit()
        name = portfolio.name
    engine.dispose()
    before = smtp.tally.distinct + gateway.tally.distinct
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "ARREARS_DATABASE_URL": url,
        "ARREARS_CHANNELS": json.dumps(_settings(smtp, gateway)),
        "ARREARS_SMS_SECRETS": json.dumps({"token": "t"}),
    }
    command = [sys.executable, "-m", "arrears.cli", "dispatch", "--portfolio", name, "--at", AT.isoformat()]
    started = time.perf_counter()
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) for _ in range(workers)]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"dispatcher failed with {proc.returncode}")
    elapsed = time.perf_counter() - started
    arrived = smtp.tally.distinct + gateway.tally.distinct - before
    if arrived != len(rows):
        raise SystemExit(f"{arrived} of {len(rows)} messages arrived")
    return messages / elapsed


def main() -> None:
    messages = int(os.environ.get("BENCH_MESSAGES", "10000"))
    url = os.environ.get("BENCH_DATABASE_URL")
    tmp = tempfile.TemporaryDirectory(prefix="arrears-bench-dispatch-")
    if not url:
        url = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    db.upgrade(db.make_engine(url))
    smtp, gateway = CountingSmtp().start(), CountingGateway().start()
    try:
        rows = [
            ("floor: senders fed directly, 1 thread", floor(messages, smtp, gateway, 1)),
            ("floor: senders fed directly, 2 threads", floor(messages, smtp, gateway, 2)),
            ("outbox: 1 dispatcher", through_outbox(url, messages, smtp, gateway, 1)),
            ("outbox: 2 dispatchers", through_outbox(url, messages, smtp, gateway, 2)),
        ]
    finally:
        smtp.stop()
        gateway.stop()
        tmp.cleanup()
    dialect = url.split(":", 1)[0]
    print(f"dispatch bench: {messages} messages (half e-mail, half SMS), {dialect}")
    for label, rate in rows:
        print(f"  {label:<42} {rate:8.0f} messages/s")
    print(f"  outbox / floor (1 worker): {rows[2][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()
