"""Delivery-receipt webhooks: signature verification and parsing per gateway preset.

Signatures use HMAC-SHA256 over ``"<timestamp>." + body`` with a shared secret, sent in one header as
``t=<unix seconds>,v1=<hex digest>`` (several ``v1`` entries allowed while a secret is rotated). A
signature whose timestamp is further than the tolerance from ``at`` is refused, which stops replays.
Receipts are delivery evidence for demands (CN-25), so the webhook handler stores what this returns.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from arrears.channels import _data
from arrears.channels.gateways import GatewaySpec, json_get, scalar_text
from arrears.channels.schemas import DeliveryReceipt, ReceiptStatus
from arrears.clock import as_utc
from arrears.errors import ConfigurationError, ValidationFailed


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """Result of a signature check; ``reason`` is ``ok`` or why it failed."""

    valid: bool
    reason: str


def default_tolerance_s() -> int:
    """Timestamp tolerance from ``data/channels.toml`` ``[webhook]``."""
    return int(_data.load_toml("channels.toml")["webhook"]["tolerance_s"])


def _digest(body: bytes, secret: str, timestamp: int) -> str:
    payload = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()


def sign_payload(body: bytes, secret: str, *, at: datetime) -> str:
    """The signature header value for ``body`` signed at ``at`` (for gateways and tests)."""
    timestamp = int(as_utc(at).timestamp())
    return f"t={timestamp},v1={_digest(body, secret, timestamp)}"


def verify_signature(
    body: bytes, header: str | None, secret: str, *, at: datetime, tolerance_s: int | None = None
) -> SignatureCheck:
    """Check a webhook's signature header against the raw body, a secret and the time of receipt ``at``."""
    if not header:
        return SignatureCheck(False, "missing_signature")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return SignatureCheck(False, "malformed_signature")
        elif key == "v1":
            candidates.append(value.strip().lower())
    if timestamp is None or not candidates:
        return SignatureCheck(False, "malformed_signature")
    tolerance = default_tolerance_s() if tolerance_s is None else tolerance_s
    if abs(as_utc(at).timestamp() - timestamp) > tolerance:
        return SignatureCheck(False, "timestamp_out_of_tolerance")
    expected = _digest(body, secret, timestamp)
    if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        return SignatureCheck(True, "ok")
    return SignatureCheck(False, "signature_mismatch")


def _records(spec: GatewaySpec, body: bytes) -> list[Mapping[str, Any]]:
    assert spec.receipt is not None
    if spec.receipt.format == "form":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationFailed("receipt is not UTF-8", code="bad_receipt") from exc
        return [dict(parse_qsl(text, keep_blank_values=True))]
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationFailed("receipt is not JSON", code="bad_receipt") from exc
    items = document if isinstance(document, list) else [document]
    if not all(isinstance(item, Mapping) for item in items):
        raise ValidationFailed("receipt entries must be objects", code="bad_receipt")
    return items


def parse_receipts(spec: GatewaySpec, body: bytes) -> list[DeliveryReceipt]:
    """Delivery receipts in a webhook body, read with the gateway's receipt rules.

    A JSON body may hold one object or a list; a form body holds one receipt. A status value that is
    neither delivered nor failed is ``pending``.
    """
    rules = spec.receipt
    if rules is None:
        raise ConfigurationError(
            f"SMS gateway {spec.name!r} has no receipt rules", code="gateway_no_receipts"
        )
    receipts = []
    for record in _records(spec, body):
        status_value = scalar_text(json_get(record, rules.status_path))
        if status_value in rules.delivered_values:
            status = ReceiptStatus.DELIVERED
        elif status_value in rules.failed_values:
            status = ReceiptStatus.FAILED
        else:
            status = ReceiptStatus.PENDING
        receipts.append(
            DeliveryReceipt(
                provider_message_id=scalar_text(json_get(record, rules.message_id_path)),
                reference=scalar_text(json_get(record, rules.reference_path))
                if rules.reference_path
                else None,
                status=status,
                error_code=scalar_text(json_get(record, rules.error_code_path))
                if rules.error_code_path
                else None,
                reported_at=scalar_text(json_get(record, rules.reported_at_path))
                if rules.reported_at_path
                else None,
            )
        )
    return receipts
