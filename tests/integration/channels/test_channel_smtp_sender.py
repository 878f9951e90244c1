"""The SMTP sender against a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import pytest
from channel_servers import SMTP_PASSWORD, SMTP_USER, SmtpServer, free_port

from arrears.channels.retry import SendOutcome
from arrears.channels.schemas import OutboundMessage
from arrears.channels.senders import SmtpConfig, SmtpSender, message_id_for
from arrears.channels.templates import default_template, render_parts
from arrears.enums import Channel

CONTEXT = {
    "debtor_name": "张三",
    "amount_due": "¥1,234.50",
    "due_date": "2025年3月5日",
    "balance": "¥5,000.00",
    "creditor_name": "某某银行",
    "institution_name": "某某银行信用卡中心",
    "institution_phone": "400-800-1234",
    "payment_instructions": "登录App还款",
    "self_service_link": "https://pay.example.cn/c/AB12",
    "case_reference": "C-2025-0001",
}

# The loopback test server takes AUTH without TLS on purpose (the STARTTLS server covers TLS).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


def config(server: SmtpServer, **kw: object) -> SmtpConfig:
    base: dict[str, object] = dict(
        host=server.host,
        port=server.port,
        security="none",
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        from_address="notices@lender.example",
        from_name="某某银行信用卡中心",
        message_id_domain="lender.example",
        timeout_s=5,
    )
    base.update(kw)
    return SmtpConfig(**base)  # type: ignore[arg-type]


def reminder(to: str = "zhang.san@example.cn", **kw: object) -> OutboundMessage:
    parts = render_parts(default_template("email_reminder", "zh_CN"), CONTEXT)
    base: dict[str, object] = dict(
        idempotency_key="outbox-1001",
        channel=Channel.EMAIL,
        to=to,
        to_name="张三",
        subject=parts["subject"],
        text=parts["text"],
        html=parts["html"],
        locale="zh_CN",
    )
    base.update(kw)
    return OutboundMessage(**base)  # type: ignore[arg-type]


def test_reminder_arrives_with_plain_and_html_parts_and_headers(smtp_server: SmtpServer) -> None:
    result = SmtpSender(config(smtp_server)).send(reminder())
    assert result.status is SendOutcome.SENT
    assert result.provider_message_id == message_id_for("outbox-1001", "lender.example")
    (received,) = smtp_server.mailbox.messages
    assert received["Subject"] == "某某银行信用卡中心：您在某某银行的账单将于2025年3月5日到期"
    assert received["Message-ID"] == result.provider_message_id
    assert received["X-Arrears-Idempotency-Key"] == "outbox-1001"
    assert "zhang.san@example.cn" in received["To"]
    assert "notices@lender.example" in received["From"]
    plain = received.get_body(("plain",))
    html = received.get_body(("html",))
    assert plain is not None and "应还金额为¥1,234.50" in plain.get_content()
    assert html is not None and "<strong>¥1,234.50</strong>" in html.get_content()
    assert smtp_server.mailbox.envelopes[0].rcpt_tos == ["zhang.san@example.cn"]


def test_us13_opt_out_footer_arrives_in_both_parts(smtp_server: SmtpServer) -> None:
    link = "https://lender.example/optout/t0k3n"
    SmtpSender(config(smtp_server)).send(reminder(opt_out=True, opt_out_link=link))
    (received,) = smtp_server.mailbox.messages
    assert link in received.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f'<a href="{link}">' in received.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert received["List-Unsubscribe"] == f"<{link}>"


def test_a_resend_carries_the_same_message_id(smtp_server: SmtpServer) -> None:
    sender = SmtpSender(config(smtp_server))
    sender.send(reminder())
    sender.send(reminder())
    first, second = smtp_server.mailbox.messages
    assert first["Message-ID"] == second["Message-ID"]


def test_unknown_recipient_is_a_permanent_failure(smtp_server: SmtpServer) -> None:
    result = SmtpSender(config(smtp_server)).send(reminder(to="nobody@example.cn"))
    assert result.status is SendOutcome.FAILED
    assert result.provider_code == "550"
    assert smtp_server.mailbox.messages == []


def test_temporary_refusal_is_retryable(smtp_server: SmtpServer) -> None:
    result = SmtpSender(config(smtp_server)).send(reminder(to="busy@example.cn"))
    assert result.status is SendOutcome.RETRYABLE
    assert result.provider_code == "451"


def test_wrong_password_is_a_permanent_failure(smtp_server: SmtpServer) -> None:
    result = SmtpSender(config(smtp_server, password="wrong")).send(reminder())
    assert result.status is SendOutcome.FAILED
    assert result.provider_code == "535"


def test_server_down_is_retryable() -> None:
    server = SmtpServer("127.0.0.1", free_port(), mailbox=None)  # type: ignore[arg-type]
    result = SmtpSender(config(server)).send(reminder())
    assert result.status is SendOutcome.RETRYABLE


def test_starttls_with_auth_delivers(starttls_smtp_server: SmtpServer) -> None:
    cfg = config(starttls_smtp_server, security="starttls", ca_file=starttls_smtp_server.cert_file)
    result = SmtpSender(cfg).send(reminder())
    assert result.status is SendOutcome.SENT
    assert len(starttls_smtp_server.mailbox.messages) == 1


def test_plain_connection_to_a_starttls_only_server_is_refused(starttls_smtp_server: SmtpServer) -> None:
    result = SmtpSender(config(starttls_smtp_server, security="none")).send(reminder())
    assert result.status is not SendOutcome.SENT
    assert starttls_smtp_server.mailbox.messages == []


def test_untrusted_certificate_is_refused(starttls_smtp_server: SmtpServer) -> None:
    result = SmtpSender(config(starttls_smtp_server, security="starttls")).send(reminder())
    assert result.status is SendOutcome.FAILED
    assert (result.reason or "").startswith("tls:")
