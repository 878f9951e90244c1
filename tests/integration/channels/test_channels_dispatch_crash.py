"""A dispatcher killed with SIGKILL in the middle of a batch of 10,000 messages, then restarted as two
dispatchers at once: every message arrives, each counted once by its key at the receiving servers (an
aiosmtpd SMTP server counting Message-IDs and an HTTP SMS gateway counting client references, which fails
some first tries, answers some slowly and accepts a repeated reference without delivering it again); a key
arrives a second time only for a message that was in flight at the kill (the gateway then delivers it
once), and every message has exactly one contact attempt on an intact hash chain."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from channels_db_builders import bulk_outbox, sh
from counting_servers import CountingGateway, CountingSmtp
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from arrears.channels.senders import message_id_for
from arrears.contacts import service as contacts_service
from arrears.models import ContactAttempt, OutboxMessage

SRC = Path(__file__).resolve().parents[3] / "src"
CASES = 5000  # two messages each: 10,000 messages
AT = sh(2026, 3, 5, 10, 0)


@pytest.fixture
def servers() -> Iterator[tuple[CountingSmtp, CountingGateway]]:
    smtp = CountingSmtp().start()
    gateway = CountingGateway(fail_first_every=20, slow_every=25, slow_s=0.02).start()
    try:
        yield smtp, gateway
    finally:
        smtp.stop()
        gateway.stop()


def _dispatcher(
    engine: Engine, portfolio: str, smtp: CountingSmtp, gateway: CountingGateway, at: str
) -> subprocess.Popen[bytes]:
    """``arrears dispatch`` in its own process with the shipped batch size and concurrency."""
    settings = {
        "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "none", "password_env": None,
                 "from_address": "notice@bank.example", "message_id_domain": "bank.example", "timeout_s": 10},
        "sms": {"name": "bench", "preset": "generic_json_bearer", "url": gateway.url},
    }  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "ARREARS_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "ARREARS_CHANNELS": json.dumps(settings),
        "ARREARS_SMS_SECRETS": json.dumps({"token": "t-1"}),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "arrears.cli",
            "dispatch",
            "--portfolio",
            portfolio,
            "--at",
            at,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_dispatcher_killed_mid_batch_restarts_and_every_message_arrives_exactly_once(
    engine: Engine, servers: tuple[CountingSmtp, CountingGateway]
) -> None:
    smtp, gateway = servers
    with Session(engine) as session:
        portfolio, rows = bulk_outbox(session, cases=CASES, planned_for=AT)
        session.commit()
        name, pid = portfolio.name, portfolio.id
        emails = {message_id_for(r.idempotency_key, "bank.example") for r in rows if r.channel == "email"}
        sms = {r.idempotency_key for r in rows if r.channel == "sms"}

    started = time.monotonic()
    first = _dispatcher(engine, name, smtp, gateway, AT.isoformat())
    deadline = time.monotonic() + 300
    while smtp.tally.total + gateway.tally.total < 3000 and time.monotonic() < deadline:
        assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)  # no cleanup of any kind: mid-batch, mid-send
    first.wait(timeout=30)
    arrived_before = smtp.tally.total + gateway.tally.total
    assert 3000 <= arrived_before < 2 * CASES
    with Session(engine) as session:
        in_flight = set(
            session.scalars(
                select(OutboxMessage.idempotency_key).where(
                    OutboxMessage.portfolio_id == pid, OutboxMessage.status == "sending"
                )
            )
        )
    assert in_flight  # the kill left claimed rows behind

    # restarted later than the lease, as two dispatchers at once: the abandoned rows go back to the queue
    # (both senders are idempotent by key) and the two share the rest without taking each other's rows
    at = (AT + timedelta(hours=1)).isoformat()
    second = [_dispatcher(engine, name, smtp, gateway, at) for _ in range(2)]
    for proc in second:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
    # the gateway's 503s are retried after their backoff: a later pass sends them
    later = _dispatcher(engine, name, smtp, gateway, (AT + timedelta(hours=2)).isoformat())
    _, err = later.communicate(timeout=600)
    assert later.returncode == 0, err.decode()
    elapsed = time.monotonic() - started
    assert gateway.tally.rejected > 0  # failures did happen on the way

    assert set(smtp.tally.counts) == emails  # none missing, nothing else
    assert set(gateway.tally.counts) == sms
    # a key arrives twice only if its message was in flight at the kill (sent, result not yet recorded):
    # the resend carries the same Message-ID / client reference: the receiving side sees the same message
    repeats = {k: n for k, n in smtp.tally.counts.items() if n > 1}
    in_flight_ids = {message_id_for(k, "bank.example") for k in in_flight}
    assert set(repeats) <= in_flight_ids and all(n == 2 for n in repeats.values())
    # the gateway recognises a resent client reference: the debtor gets the SMS once, and only a message in
    # flight at the kill was offered twice
    assert all(n == 1 for n in gateway.tally.counts.values())
    assert set(gateway.tally.duplicates) <= in_flight and all(
        n == 1 for n in gateway.tally.duplicates.values()
    )
    repeats.update(gateway.tally.duplicates)
    with Session(engine) as session:
        statuses = dict(
            session.execute(
                select(OutboxMessage.status, func.count())
                .where(OutboxMessage.portfolio_id == pid)
                .group_by(OutboxMessage.status)
            ).all()
        )
        assert statuses == {"sent": 2 * CASES}
        case_ids = select(OutboxMessage.case_id).where(OutboxMessage.portfolio_id == pid)
        attempts = session.scalar(
            select(func.count()).where(
                ContactAttempt.case_id.in_(case_ids), ContactAttempt.corrects_id.is_(None)
            )
        )
        assert attempts == 2 * CASES  # one contact attempt per message
        assert contacts_service.verify_chain(session, case_ids=list(session.scalars(case_ids))).ok
    print(f"crash test: {2 * CASES} messages, {len(repeats)} repeated keys, {elapsed:.0f} s after the data")
