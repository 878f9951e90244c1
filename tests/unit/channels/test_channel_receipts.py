"""Delivery-receipt webhooks: HMAC-SHA256 signatures with timestamp tolerance, receipt parsing per preset."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from arrears.channels.gateways import load_preset
from arrears.channels.receipts import parse_receipts, sign_payload, verify_signature
from arrears.channels.schemas import ReceiptStatus
from arrears.errors import ValidationFailed

AT = datetime(2025, 3, 5, 9, 0, tzinfo=UTC)
BODY = b'[{"biz_id": "9001^0", "out_id": "outbox-42", "success": true}]'


def test_a_correct_signature_is_accepted() -> None:
    header = sign_payload(BODY, "s3cret", at=AT)
    assert verify_signature(BODY, header, "s3cret", at=AT + timedelta(seconds=10)).valid


def test_a_tampered_body_is_refused() -> None:
    header = sign_payload(BODY, "s3cret", at=AT)
    check = verify_signature(BODY.replace(b"true", b"false"), header, "s3cret", at=AT)
    assert (check.valid, check.reason) == (False, "signature_mismatch")


def test_a_wrong_secret_is_refused() -> None:
    assert not verify_signature(BODY, sign_payload(BODY, "a", at=AT), "b", at=AT).valid


def test_a_stale_signature_is_refused_as_a_replay() -> None:
    header = sign_payload(BODY, "s3cret", at=AT)
    check = verify_signature(BODY, header, "s3cret", at=AT + timedelta(minutes=10), tolerance_s=300)
    assert check.reason == "timestamp_out_of_tolerance"


def test_a_signature_from_the_future_beyond_tolerance_is_refused() -> None:
    header = sign_payload(BODY, "s3cret", at=AT + timedelta(hours=1))
    assert not verify_signature(BODY, header, "s3cret", at=AT).valid


def test_any_of_several_signatures_may_match_during_secret_rotation() -> None:
    new = sign_payload(BODY, "new", at=AT)
    old = sign_payload(BODY, "old", at=AT).split(",")[1]
    assert verify_signature(BODY, f"{new},{old}", "old", at=AT).valid


@pytest.mark.parametrize("header", [None, "", "garbage", "t=abc,v1=00", "t=1"])
def test_missing_or_malformed_headers_are_refused(header: str | None) -> None:
    assert not verify_signature(BODY, header, "s3cret", at=AT).valid


def test_aliyun_style_receipts_are_parsed_from_a_json_array() -> None:
    body = json.dumps(
        [
            {"biz_id": "1^0", "out_id": "k1", "success": True, "err_code": "DELIVERED", "report_time": "t"},
            {"biz_id": "2^0", "out_id": "k2", "success": False, "err_code": "MK:0001"},
        ]
    ).encode()
    receipts = parse_receipts(load_preset("aliyun_style_json"), body)
    assert [(r.provider_message_id, r.reference, r.status) for r in receipts] == [
        ("1^0", "k1", ReceiptStatus.DELIVERED),
        ("2^0", "k2", ReceiptStatus.FAILED),
    ]
    assert receipts[1].error_code == "MK:0001"


def test_form_receipts_are_parsed() -> None:
    body = b"msgid=77&client_ref=outbox-1&status=UNDELIV&errcode=MN%3A0001"
    (receipt,) = parse_receipts(load_preset("generic_form"), body)
    assert (receipt.provider_message_id, receipt.status, receipt.error_code) == (
        "77",
        ReceiptStatus.FAILED,
        "MN:0001",
    )


def test_unknown_status_is_pending() -> None:
    body = b'{"id": "x", "reference": "k", "status": "queued"}'
    (receipt,) = parse_receipts(load_preset("generic_json_bearer"), body)
    assert receipt.status is ReceiptStatus.PENDING


def test_a_receipt_that_is_not_json_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        parse_receipts(load_preset("aliyun_style_json"), b"not json")
