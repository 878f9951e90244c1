"""The HTTP SMS sender against a real local gateway: success, 500, 429, rejected number, slow answers."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from channel_servers import SLOW_SECONDS, GatewayServer, free_port

from arrears.channels.gateways import load_preset
from arrears.channels.retry import RetryAction, SendOutcome, decide_retry, default_policy
from arrears.channels.schemas import OutboundMessage
from arrears.channels.senders import HttpSmsSender
from arrears.channels.templates import default_template, render_parts, sms_length
from arrears.enums import Channel

ALIYUN_SECRETS = {"app_code": "app-code-123", "sign_name": "某某银行"}
FORM_SECRETS = {"account": "acct", "password": "pw"}


def sms(to: str, key: str = "outbox-501") -> OutboundMessage:
    context = {
        "debtor_name": "张三",
        "amount_due": "¥1,234.50",
        "due_date": "3月5日",
        "overdue_days": "1",
        "creditor_name": "某某银行",
        "institution_name": "某某银行",
        "institution_phone": "400-800-1234",
        "payment_instructions": "App还款",
        "self_service_link": "https://pay.example.cn/c/AB12",
    }
    text = render_parts(default_template("day1_reminder", "zh_CN"), context)["body"]
    return OutboundMessage(
        idempotency_key=key,
        channel=Channel.SMS,
        to=to,
        text=text,
        template_code="SMS_DAY1",
        template_params={"name": "张三", "amount": "¥1,234.50"},
    )


def aliyun_sender(gateway: GatewayServer, **overrides: object) -> HttpSmsSender:
    spec = load_preset("aliyun_style_json", url=f"{gateway.base_url}/aliyun", **overrides)
    return HttpSmsSender(spec, ALIYUN_SECRETS)


def form_sender(gateway: GatewayServer, **overrides: object) -> HttpSmsSender:
    spec = load_preset("generic_form", url=f"{gateway.base_url}/form", **overrides)
    return HttpSmsSender(spec, FORM_SECRETS)


def test_aliyun_style_send_succeeds_with_the_provider_id(sms_gateway: GatewayServer) -> None:
    with aliyun_sender(sms_gateway) as sender:
        result = sender.send(sms("+8613800138000"))
    assert result.status is SendOutcome.SENT
    assert result.provider_message_id == "biz-1"
    (request,) = sms_gateway.log.requests
    assert request["headers"]["Authorization"] == "APPCODE app-code-123"
    assert request["body"]["PhoneNumbers"] == "13800138000"
    assert request["body"]["OutId"] == "outbox-501"
    assert request["body"]["SignName"] == "某某银行"


def test_form_gateway_receives_the_chinese_text_intact(sms_gateway: GatewayServer) -> None:
    message = sms("+8613800138000")
    with form_sender(sms_gateway) as sender:
        result = sender.send(message)
    assert result.status is SendOutcome.SENT
    (request,) = sms_gateway.log.requests
    assert request["body"]["content"] == message.text
    assert request["body"]["account"] == "acct"
    assert sms_length(message.text).segments == 2


def test_a_retry_reuses_the_client_reference_so_the_gateway_can_deduplicate(
    sms_gateway: GatewayServer,
) -> None:
    with aliyun_sender(sms_gateway) as sender:
        first = sender.send(sms("+8613800138000", key="outbox-9"))
        second = sender.send(sms("+8613800138000", key="outbox-9"))
    assert first.provider_message_id == second.provider_message_id
    assert [r["body"]["OutId"] for r in sms_gateway.log.requests] == ["outbox-9", "outbox-9"]


def test_server_error_is_retryable_and_scheduled_again(sms_gateway: GatewayServer) -> None:
    with aliyun_sender(sms_gateway) as sender:
        result = sender.send(sms("+8613800000500"))
    assert result.status is SendOutcome.RETRYABLE
    assert result.reason == "http_500"
    at = datetime(2025, 3, 5, 9, 0, tzinfo=UTC)
    decision = decide_retry(default_policy(), outcome=result.status, attempts_made=1, failed_at=at, seed="k")
    assert decision.action is RetryAction.RETRY


def test_rate_limit_is_retryable(sms_gateway: GatewayServer) -> None:
    with form_sender(sms_gateway) as sender:
        result = sender.send(sms("+8613800000429"))
    assert result.status is SendOutcome.RETRYABLE
    assert result.reason == "rate_limited"


@pytest.mark.parametrize("make_sender", [aliyun_sender, form_sender], ids=["aliyun_style", "form"])
def test_rejected_number_is_permanent(sms_gateway: GatewayServer, make_sender: object) -> None:
    with make_sender(sms_gateway) as sender:  # type: ignore[operator]
        result = sender.send(sms("+8613800000400"))
    assert result.status is SendOutcome.FAILED
    assert (result.reason or "").startswith("rejected:")


def test_slow_answer_times_out_as_retryable(sms_gateway: GatewayServer) -> None:
    started = time.monotonic()
    with aliyun_sender(sms_gateway, read_timeout_s=0.3) as sender:
        result = sender.send(sms("+8613800000999"))
    assert result.status is SendOutcome.RETRYABLE
    assert (result.reason or "").startswith("timeout:")
    assert time.monotonic() - started < SLOW_SECONDS


def test_unreachable_gateway_is_retryable() -> None:
    spec = load_preset("aliyun_style_json", url=f"http://127.0.0.1:{free_port()}/aliyun")
    with HttpSmsSender(spec, ALIYUN_SECRETS) as sender:
        result = sender.send(sms("+8613800138000"))
    assert result.status is SendOutcome.RETRYABLE
    assert (result.reason or "").startswith("transport:")
