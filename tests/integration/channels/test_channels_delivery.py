"""Letters in a daily print batch recorded as demands, delivery evidence that moves the limitation date
(CN-25), and signed SMS delivery receipts through the webhook. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from channel_servers import GatewayServer
from channels_db_builders import (
    make_debt,
    make_portfolio,
    queue_message,
    save_reminders,
    savepoint_factory,
    sh,
)
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from arrears import db
from arrears.api.app import create_app
from arrears.api.deps import get_session
from arrears.channels import delivery, outbox, service
from arrears.channels.gateways import load_preset
from arrears.channels.receipts import sign_payload
from arrears.channels.senders import HttpSmsSender
from arrears.compliance import service as compliance_service
from arrears.enums import Channel
from arrears.models import ContactAttempt, Document

SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture
def tx(engine: Engine) -> Iterator[tuple]:
    with savepoint_factory(engine) as (session, factory):
        yield session, factory


def test_print_batch_records_each_letter_as_a_demand_and_delivery_evidence_moves_the_limitation_date(
    tx: tuple, tmp_path: Path
) -> None:
    session, _ = tx
    portfolio = make_portfolio(session)
    debts = [make_debt(session, portfolio) for _ in range(2)]
    rows = [
        queue_message(session, d, channel="letter", planned_for=sh(2026, 3, 5, 9), template="formal_notice")
        for d in debts
    ]
    for row in rows:
        row.contact_point_id = None  # letters go to the address on file

    batch = delivery.letters_batch(
        session,
        batch_date=date(2026, 3, 5),
        now=sh(2026, 3, 5, 9, 30),
        portfolio_id=portfolio.id,
        document_dir=tmp_path,
    )

    assert batch.pdf is not None and batch.pdf.startswith(b"%PDF") and len(batch.letters) == 2
    assert session.get(Document, batch.document_id) is not None
    for row in rows:
        assert row.status == "sent" and row.contact_attempt_id is not None
    attempt = session.get(ContactAttempt, rows[0].contact_attempt_id)
    assert (
        attempt is not None and attempt.channel == "letter" and attempt.outcome == "sent" and attempt.allowed
    )
    before = compliance_service.account_limitation(
        session, account_id=debts[0].account.id, as_of=date(2026, 6, 1)
    )

    corrected = delivery.record_delivery_evidence(
        session, message_id=rows[0].id, delivered_at=sh(2026, 3, 8, 14), evidence_ref="EMS 1234567890"
    )

    assert corrected.outcome == "delivered" and corrected.evidence_ref == "EMS 1234567890"
    assert rows[0].delivery_status == "delivered"
    after = compliance_service.account_limitation(
        session, account_id=debts[0].account.id, as_of=date(2026, 6, 1)
    )
    # CN-25: the delivered demand restarts the period from the day it reached the debtor
    assert after.limitation_on == date(2029, 3, 8) and after.rule_id == "CN-25"
    assert after.set_by is not None and after.set_by.on == date(2026, 3, 8)
    assert before.limitation_on is not None and after.limitation_on > before.limitation_on
    # a second run of the day's batch prints nothing again
    again = delivery.letters_batch(
        session, batch_date=date(2026, 3, 5), now=sh(2026, 3, 5, 10), document_dir=tmp_path
    )
    assert again.pdf is None or all(p.message_id not in {r.id for r in rows} for p in again.letters)


def test_a_letter_to_a_flagged_account_is_blocked_not_printed(tx: tuple, tmp_path: Path) -> None:
    from arrears.models import AccountFlag

    session, _ = tx
    portfolio = make_portfolio(session)
    debt = make_debt(session, portfolio)
    session.add(
        AccountFlag(account_id=debt.account.id, case_id=debt.case.id, kind="dispute", reason="disputed")
    )
    row = queue_message(
        session, debt, channel="letter", planned_for=sh(2026, 3, 5, 9), template="formal_notice"
    )
    batch = delivery.letters_batch(
        session,
        batch_date=date(2026, 3, 5),
        now=sh(2026, 3, 5, 9, 30),
        portfolio_id=portfolio.id,
        document_dir=tmp_path,
    )
    assert (
        batch.pdf is None
        and batch.blocked == [(row.id, row.rule_ids)]
        and row.status == "blocked"
        and row.rule_ids
    )


def test_signed_sms_receipts_record_delivery_and_bad_signatures_are_refused(
    tx: tuple, engine: Engine, sms_gateway: GatewayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, factory = tx
    portfolio = make_portfolio(session)
    save_reminders(session, portfolio)
    debt = make_debt(session, portfolio)
    gateway = f"gw-{uuid.uuid4().hex[:8]}"
    service.set_channel_settings(
        session,
        portfolio_id=portfolio.id,
        sms={"name": gateway, "preset": "aliyun_style_json", "url": f"{sms_gateway.base_url}/aliyun",
             "webhook_secret_env": "TEST_RECEIPT_SECRET"},
    )  # fmt: skip
    monkeypatch.setenv("TEST_RECEIPT_SECRET", "s3cret")
    row = queue_message(session, debt, channel="sms", planned_for=sh(2026, 3, 5, 10))
    session.commit()
    spec = load_preset("aliyun_style_json", url=f"{sms_gateway.base_url}/aliyun")
    sent = outbox.dispatch(
        factory, now=sh(2026, 3, 5, 10), senders={Channel.SMS: HttpSmsSender(spec, {"app_code": "a", "sign_name": "b"})},
        portfolio_id=portfolio.id,
    )  # fmt: skip
    assert sent.sent == 1
    session.refresh(row)

    app = create_app(engine)

    def override() -> Iterator[Session]:
        s = factory()
        try:
            yield s
            s.commit()
        finally:
            s.close()

    app.dependency_overrides[get_session] = override
    client = TestClient(app)
    body = json.dumps(
        [
            {
                "biz_id": row.provider_message_id,
                "out_id": row.idempotency_key,
                "success": True,
                "report_time": "2026-03-05 10:00:07",
            }
        ]
    ).encode()
    url = f"/api/v1/webhooks/sms/{gateway}"
    forged = client.post(
        url, content=body, headers={"X-Arrears-Signature": sign_payload(body, "wrong", at=sh(2026, 3, 5, 10))}
    )
    assert forged.status_code == 403 and forged.json()["code"] == "bad_signature"

    from arrears import clock

    signed = {"X-Arrears-Signature": sign_payload(body, "s3cret", at=clock.now())}
    ok = client.post(url, content=body, headers=signed)
    assert ok.status_code == 200, ok.text
    assert ok.json()["delivered"] == 1
    assert client.post(url, content=body, headers=signed).json()["repeated"] == 1  # gateways resend receipts
    session.expire_all()
    versions = list(
        session.scalars(
            select(ContactAttempt).where(ContactAttempt.case_id == debt.case.id).order_by(ContactAttempt.seq)
        )
    )
    assert [v.outcome for v in versions] == ["sent", "delivered"]
    assert versions[1].evidence_ref and versions[1].delivered_at == sh(2026, 3, 5, 10, 0).replace(second=7)


def test_cli_letters_batch_and_delivered(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    with db.session_scope(engine) as s:
        portfolio = make_portfolio(s)
        row = queue_message(
            s,
            make_debt(s, portfolio),
            channel="letter",
            planned_for=sh(2026, 3, 5, 9),
            template="formal_notice",
        )
        row.contact_point_id = None
        name, message_id = portfolio.name, row.id
    engine.dispose()
    env = {
        **os.environ, "ARREARS_DATABASE_URL": url, "ARREARS_DOCUMENT_DIR": str(tmp_path / "docs"), "COLUMNS": "200",
        "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }  # fmt: skip

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "arrears.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )

    out = tmp_path / "batch.pdf"
    printed = cli("letters", "batch", "--date", "2026-03-05", "--portfolio", name, "--out", str(out))
    assert printed.returncode == 0, printed.stderr
    assert out.read_bytes().startswith(b"%PDF") and "1 letters" in printed.stdout
    delivered = cli(
        "letters", "delivered", str(message_id), "--evidence", "EMS 99", "--at", "2026-03-07T15:00:00+08:00"
    )
    assert delivered.returncode == 0, delivered.stderr
    assert "EMS 99" in delivered.stdout
    again = cli("letters", "delivered", "999999", "--evidence", "x")
    assert again.returncode == 2 and "message_not_found" in again.stderr
