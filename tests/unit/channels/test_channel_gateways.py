"""SMS gateways as data: request building per preset and classification of answers."""

from __future__ import annotations

import json

import pytest

from arrears.channels.gateways import (
    GatewaySpec,
    build_request,
    classify_response,
    json_get,
    load_preset,
    national_number,
    preset_names,
)
from arrears.channels.retry import SendOutcome
from arrears.channels.schemas import OutboundMessage
from arrears.enums import Channel
from arrears.errors import ConfigurationError, NotFound, ValidationFailed

MESSAGE = OutboundMessage(
    idempotency_key="outbox-42",
    channel=Channel.SMS,
    to="+8613800138000",
    text="【某某银行】张三您好，请按时还款。",
    template_code="SMS_0001",
    template_params={"name": "张三", "amount": "¥100.00"},
)


def body(document: object) -> bytes:
    return json.dumps(document).encode()


def test_shipped_presets_cover_aliyun_style_and_form_post() -> None:
    assert {"aliyun_style_json", "generic_form", "generic_json_bearer"} <= set(preset_names())


def test_aliyun_style_request_carries_national_number_template_and_idempotency_key() -> None:
    spec = load_preset("aliyun_style_json", url="http://127.0.0.1:9/send")
    req = build_request(spec, MESSAGE, {"app_code": "abc", "sign_name": "某某银行"})
    assert req.url == "http://127.0.0.1:9/send"
    assert req.headers["Authorization"] == "APPCODE abc"
    assert req.json_body == {
        "PhoneNumbers": "13800138000",
        "SignName": "某某银行",
        "TemplateCode": "SMS_0001",
        "TemplateParam": json.dumps({"amount": "¥100.00", "name": "张三"}, ensure_ascii=False),
        "OutId": "outbox-42",
    }


def test_generic_form_request_is_a_flat_form_with_the_text() -> None:
    req = build_request(load_preset("generic_form"), MESSAGE, {"account": "u", "password": "p"})
    assert req.json_body is None
    assert req.form_body is not None
    assert req.form_body["content"] == MESSAGE.text
    assert req.form_body["client_ref"] == "outbox-42"


def test_missing_secret_is_a_configuration_error_not_a_blank_field() -> None:
    with pytest.raises(ConfigurationError):
        build_request(load_preset("generic_form"), MESSAGE, {"account": "u"})


def test_unknown_preset_is_not_found() -> None:
    with pytest.raises(NotFound):
        load_preset("nope")


def test_query_body_format_puts_fields_in_the_query() -> None:
    spec = GatewaySpec(
        name="q", url="http://h/send", method="GET", body_format="query", fields={"m": "{{ to }}"}
    )
    assert build_request(spec, MESSAGE, {}).query == {"m": "+8613800138000"}


def test_national_number_refuses_garbage() -> None:
    assert national_number("+14155550100") == "4155550100"
    with pytest.raises(ValidationFailed):
        national_number("not a number")


def test_json_get_walks_objects_and_lists() -> None:
    doc = {"a": {"b": [{"c": 1}]}}
    assert json_get(doc, "a.b.0.c") == 1
    assert json_get(doc, "a.b.5.c") is None
    assert json_get(doc, "a.x") is None


ALIYUN = load_preset("aliyun_style_json")


def test_ok_answer_is_sent_with_the_provider_message_id() -> None:
    result = classify_response(ALIYUN, 200, body({"Code": "OK", "BizId": "9001^0"}))
    assert result.status is SendOutcome.SENT
    assert result.provider_message_id == "9001^0"


def test_rejected_number_is_a_permanent_failure() -> None:
    result = classify_response(ALIYUN, 200, body({"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "bad"}))
    assert result.status is SendOutcome.FAILED
    assert result.reason == "rejected:isv.MOBILE_NUMBER_ILLEGAL"


def test_gateway_throttling_code_is_retryable() -> None:
    result = classify_response(ALIYUN, 200, body({"Code": "isv.BUSINESS_LIMIT_CONTROL"}))
    assert result.status is SendOutcome.RETRYABLE


def test_unknown_error_code_is_permanent_so_nothing_is_sent_twice_on_a_guess() -> None:
    assert classify_response(ALIYUN, 200, body({"Code": "isv.SOMETHING_NEW"})).status is SendOutcome.FAILED


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 408])
def test_rate_limit_and_server_errors_are_retryable(status: int) -> None:
    assert classify_response(ALIYUN, status, b"").status is SendOutcome.RETRYABLE


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_client_errors_are_permanent(status: int) -> None:
    assert classify_response(ALIYUN, status, b"").status is SendOutcome.FAILED


def test_unreadable_success_answer_is_not_retried_blindly() -> None:
    assert classify_response(ALIYUN, 200, b"<html>").status is SendOutcome.FAILED


def test_error_code_in_a_4xx_body_is_classified_by_the_lists() -> None:
    bearer = load_preset("generic_json_bearer")
    result = classify_response(bearer, 400, body({"error": {"code": "rejected_number"}}))
    assert result.status is SendOutcome.FAILED
    assert result.provider_code == "rejected_number"
    assert classify_response(bearer, 409, body({"error": {"code": "throttled"}})).retryable
