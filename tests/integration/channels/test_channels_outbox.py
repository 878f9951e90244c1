"""Outbox dispatch against real local servers: aiosmtpd receives the e-mails, an HTTP server plays the SMS
gateway (failures, throttling, slow answers). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from channel_servers import SMTP_PASSWORD, SMTP_USER, GatewayServer, SmtpServer
from channels_db_builders import (
    make_debt,
    make_portfolio,
    queue_message,
    save_reminders,
    savepoint_factory,
    sh,
)
from sqlalchemy import Engine, event, select

from arrears.channels import outbox
from arrears.channels.gateways import load_preset
from arrears.channels.retry import RetryPolicy
from arrears.channels.schemas import OutboundMessage, SendResult
from arrears.channels.senders import HttpSmsSender, SmtpConfig, SmtpSender, message_id_for
from arrears.enums import Channel
from arrears.models import ContactAttempt, OutboxMessage

SECRETS = {"app_code": "code-1", "sign_name": "信达银行"}


def smtp_sender(server: SmtpServer) -> SmtpSender:
    return SmtpSender(
        SmtpConfig(
            host=server.host,
            port=server.port,
            security="none",
            username=SMTP_USER,
            password=SMTP_PASSWORD,
            from_address="notice@bank.example",
            message_id_domain="bank.example",
            timeout_s=5,
        )
    )


def sms_sender(gateway: GatewayServer, read_timeout_s: float = 5.0) -> HttpSmsSender:
    spec = load_preset("aliyun_style_json", url=f"{gateway.base_url}/aliyun", read_timeout_s=read_timeout_s)
    return HttpSmsSender(spec, SECRETS)


@pytest.fixture
def world(engine: Engine) -> Iterator[tuple]:
    with savepoint_factory(engine) as (session, factory):
        portfolio = make_portfolio(session)
        save_reminders(session, portfolio)
        session.commit()
        yield session, factory, portfolio


def _attempts(session, row: OutboxMessage) -> list[ContactAttempt]:
    return list(
        session.scalars(
            select(ContactAttempt).where(ContactAttempt.case_id == row.case_id).order_by(ContactAttempt.seq)
        )
    )


def test_outbox_sends_email_and_sms_once_and_records_one_attempt_each(
    world: tuple, smtp_server: SmtpServer, sms_gateway: GatewayServer
) -> None:
    session, factory, portfolio = world
    debts = [make_debt(session, portfolio, n=i) for i in range(3)]
    rows = [queue_message(session, d, channel="email", planned_for=sh(2026, 3, 5, 10)) for d in debts]
    rows += [queue_message(session, d, channel="sms", planned_for=sh(2026, 3, 5, 10)) for d in debts]
    session.commit()
    senders = {Channel.EMAIL: smtp_sender(smtp_server), Channel.SMS: sms_sender(sms_gateway)}

    report = outbox.drain(factory, now=sh(2026, 3, 5, 10, 5), senders=senders, portfolio_id=portfolio.id)

    assert report.sent == 6 and report.blocked == 0 and report.claimed == 6
    got_ids = sorted(str(m["Message-ID"]) for m in smtp_server.mailbox.messages)
    assert got_ids == sorted(message_id_for(r.idempotency_key, "bank.example") for r in rows[:3])
    body = smtp_server.mailbox.messages[0].get_body(("plain",)).get_content()
    assert "王小明" in body and "¥500.00" in body.replace("￥", "¥")  # rendered with the case's data
    assert sorted(r["body"]["OutId"] for r in sms_gateway.log.requests) == sorted(
        r.idempotency_key for r in rows[3:]
    )
    for row in rows:
        session.refresh(row)
        assert row.status == "sent" and row.sent_at is not None and row.contact_attempt_id is not None
        attempts = [a for a in _attempts(session, row) if a.channel == row.channel]
        assert len(attempts) == 1 and attempts[0].outcome == "sent" and attempts[0].allowed
    # a second pass finds nothing to send: no message twice
    again = outbox.drain(factory, now=sh(2026, 3, 5, 11), senders=senders, portfolio_id=portfolio.id)
    assert (
        again.claimed == 0 and len(smtp_server.mailbox.messages) == 3 and len(sms_gateway.log.requests) == 3
    )


def test_cn1_message_planned_2150_claimed_2201_is_blocked_not_sent(
    world: tuple, sms_gateway: GatewayServer
) -> None:
    session, factory, portfolio = world
    debt = make_debt(session, portfolio)
    row = queue_message(session, debt, channel="sms", planned_for=sh(2026, 3, 5, 21, 50))
    session.commit()

    report = outbox.dispatch(
        factory,
        now=sh(2026, 3, 5, 22, 1),
        senders={Channel.SMS: sms_sender(sms_gateway)},
        portfolio_id=portfolio.id,
    )

    session.refresh(row)
    assert report.blocked >= 1 and sms_gateway.log.requests == []
    assert row.status == "blocked" and "CN-1" in row.rule_ids and "CN-1" in (row.last_reason or "")
    attempts = _attempts(session, row)
    assert len(attempts) == 1 and attempts[0].outcome == "blocked" and "CN-1" in attempts[0].rule_ids


def test_gateway_errors_retry_with_backoff_then_dead_letter(world: tuple, sms_gateway: GatewayServer) -> None:
    session, factory, portfolio = world
    failing = make_debt(session, portfolio, mobile="+8613800000500")  # gateway answers 500
    rejected = make_debt(session, portfolio, mobile="+8613800000400")  # permanent rejection
    busy = queue_message(session, failing, channel="sms", planned_for=sh(2026, 3, 5, 10))
    bad = queue_message(session, rejected, channel="sms", planned_for=sh(2026, 3, 5, 10))
    session.commit()
    policy = RetryPolicy(max_attempts=3, base_delay_s=60, multiplier=2.0, max_delay_s=3600, jitter=0.0)
    senders = {Channel.SMS: sms_sender(sms_gateway)}

    now = sh(2026, 3, 5, 10, 0)
    first = outbox.dispatch(factory, now=now, senders=senders, policy=policy, portfolio_id=portfolio.id)
    assert first.retry_scheduled == 1 and first.dead_lettered == 1
    session.refresh(busy)
    session.refresh(bad)
    assert busy.status == "queued" and busy.next_attempt_at == now + timedelta(seconds=60)
    assert bad.status == "dead_letter" and "rejected" in (bad.last_reason or "")
    # not due yet: nothing is claimed before the backoff ends
    assert (
        outbox.dispatch(
            factory,
            now=now + timedelta(seconds=30),
            senders=senders,
            policy=policy,
            portfolio_id=portfolio.id,
        ).claimed
        == 0
    )
    second = outbox.dispatch(
        factory, now=now + timedelta(seconds=60), senders=senders, policy=policy, portfolio_id=portfolio.id
    )
    session.refresh(busy)
    assert second.retry_scheduled == 1 and busy.next_attempt_at == now + timedelta(seconds=60 + 120)
    outbox.dispatch(
        factory, now=now + timedelta(seconds=180), senders=senders, policy=policy, portfolio_id=portfolio.id
    )
    session.refresh(busy)
    assert busy.status == "dead_letter" and busy.attempts == 3 and "max_attempts" in (busy.last_reason or "")
    # one attempt per message, corrected to failed once the message is given up
    attempts = _attempts(session, busy)
    assert [a.outcome for a in attempts] == ["sent", "failed"] and attempts[1].corrects_id == attempts[0].id


def test_slow_gateway_answer_is_a_retryable_timeout(world: tuple, sms_gateway: GatewayServer) -> None:
    session, factory, portfolio = world
    slow = make_debt(session, portfolio, mobile="+8613800000999")  # answers after 1.5 s
    row = queue_message(session, slow, channel="sms", planned_for=sh(2026, 3, 5, 10))
    session.commit()
    report = outbox.dispatch(
        factory,
        now=sh(2026, 3, 5, 10),
        senders={Channel.SMS: sms_sender(sms_gateway, read_timeout_s=0.3)},
        portfolio_id=portfolio.id,
    )
    session.refresh(row)
    assert report.retry_scheduled == 1 and row.status == "queued" and "timeout" in (row.last_reason or "")
    # the next try, with patience, sends it under the same reference (the gateway sees one message id)
    report = outbox.dispatch(
        factory,
        now=sh(2026, 3, 5, 11),
        senders={Channel.SMS: sms_sender(sms_gateway)},
        portfolio_id=portfolio.id,
    )
    session.refresh(row)
    assert report.sent == 1 and row.status == "sent"
    assert {r["body"]["OutId"] for r in sms_gateway.log.requests} == {row.idempotency_key}
    assert len(_attempts(session, row)) == 1


class ForgetfulSender:
    """A sender whose receiving side does not recognise repeats (no idempotency key)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message.idempotency_key)
        return SendResult(outbox.SendOutcome.SENT)


def test_rows_stuck_in_sending_are_requeued_only_for_idempotent_senders(
    world: tuple, sms_gateway: GatewayServer
) -> None:
    session, factory, portfolio = world
    a, b = make_debt(session, portfolio), make_debt(session, portfolio)
    sms = queue_message(session, a, channel="sms", planned_for=sh(2026, 3, 5, 10))
    mail = queue_message(session, b, channel="email", planned_for=sh(2026, 3, 5, 10))
    for row in (sms, mail):  # a dispatcher claimed them and died
        row.status, row.claimed_by, row.claimed_at = "sending", "dead-worker", sh(2026, 3, 5, 10)
    session.commit()
    forgetful = ForgetfulSender()
    senders = {Channel.SMS: sms_sender(sms_gateway), Channel.EMAIL: forgetful}

    early = outbox.dispatch(factory, now=sh(2026, 3, 5, 10, 5), senders=senders, portfolio_id=portfolio.id)
    assert early.requeued == 0 and early.claimed == 0  # within the lease: maybe still sending
    later = outbox.dispatch(factory, now=sh(2026, 3, 5, 10, 30), senders=senders, portfolio_id=portfolio.id)
    session.refresh(sms)
    session.refresh(mail)
    assert later.requeued == 1 and later.stuck == 1 and later.sent == 1
    assert sms.status == "sent" and mail.status == "sending" and forgetful.sent == []


def test_rendering_a_claimed_batch_only_reads_and_the_gate_step_settles_what_could_not_render(
    world: tuple,
) -> None:
    """The read half of the prepare step (senders, templates, case data) sends no statement that writes,
    so on SQLite it needs no write lock; a row that cannot be rendered is dead-lettered in the write half."""
    session, factory, portfolio = world
    debts = [make_debt(session, portfolio, n=i) for i in range(3)]
    good = [queue_message(session, d, channel="sms", planned_for=sh(2026, 3, 5, 10)) for d in debts]
    bad = queue_message(session, debts[0], channel="email", planned_for=sh(2026, 3, 5, 10), template="nope")
    session.commit()
    now = sh(2026, 3, 5, 10, 5)
    token = "render-test"
    senders = outbox.FixedSenders({Channel.SMS: _NullSender(), Channel.EMAIL: _NullSender()})
    with factory() as claiming, claiming.begin():
        rows = outbox.claim(
            claiming, token=token, now=now, limit=10, channels=(Channel.SMS, Channel.EMAIL),
            portfolio_id=portfolio.id,
        )  # fmt: skip
    assert len(rows) == 4

    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement.lstrip().split(None, 1)[0].upper())

    work = factory()
    engine = work.get_bind().engine
    with work.begin():
        claimed = list(
            work.scalars(
                select(OutboxMessage).where(OutboxMessage.claimed_by == token).order_by(OutboxMessage.id)
            )
        )
        event.listen(engine, "before_cursor_execute", seen)
        try:
            with work.no_autoflush:
                rendered = outbox._render_batch(work, claimed, now=now, senders=senders)
            work.flush()  # nothing is pending either
        finally:
            event.remove(engine, "before_cursor_execute", seen)
    assert statements and set(statements) <= {"SELECT", "SAVEPOINT", "RELEASE", "WITH"}
    assert sorted(d.row.id for d in rendered.drafts) == sorted(r.id for r in good)
    assert [row.id for row, _ in rendered.dead] == [bad.id]
    assert all(d.parts and "王小明" in d.parts["body"] for d in rendered.drafts)

    report = outbox.DispatchReport()
    with work.begin():
        ready = outbox._prepare_batch(work, rendered, now=now, collector="in_house", report=report)
    work.close()
    assert len(ready) == 3 and report.dead_lettered == 1
    session.expire_all()
    assert session.get(OutboxMessage, bad.id).status == "dead_letter"
    assert {session.get(OutboxMessage, r.id).contact_attempt_id is not None for r in good} == {True}


class _NullSender:
    idempotent = True

    def send(self, message: OutboundMessage) -> SendResult:  # pragma: no cover - never sent here
        raise AssertionError("nothing is sent in this test")
