"""SMS gateways described as data: the request to send, and how to read the answer.

A `GatewaySpec` says where and how to post a message (URL, method, headers, JSON / form / query body
with Jinja field templates), what a success looks like (status codes plus a JSON path and value), how to
find the provider's message id and error code, which error codes are permanent or transient, and the
timeouts. Presets for common domestic gateway styles ship in ``data/gateways.toml``.

Pure: `build_request` and `classify_response` do no I/O; `senders.HttpSmsSender` does the HTTP call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field

from arrears.channels import _data
from arrears.channels.retry import SendOutcome
from arrears.channels.schemas import OutboundMessage, SendResult
from arrears.channels.templates import render
from arrears.errors import ConfigurationError, NotFound, ValidationFailed

# 429 and every 5xx are transient; these 4xx are too (request timeout, too early).
_TRANSIENT_4XX = frozenset({408, 425, 429})


class SuccessRule(BaseModel):
    """A send succeeded when the status is one of ``status_codes`` and, if given, the JSON value matches."""

    model_config = ConfigDict(frozen=True)

    status_codes: list[int] = Field(default_factory=lambda: [200])
    json_path: str | None = None
    json_value: str | None = None


class ReceiptSpec(BaseModel):
    """Where a delivery report keeps the message id, our reference, the status and the error code."""

    model_config = ConfigDict(frozen=True)

    format: Literal["json", "form"] = "json"
    message_id_path: str
    reference_path: str | None = None
    status_path: str
    delivered_values: list[str]
    failed_values: list[str]
    error_code_path: str | None = None
    reported_at_path: str | None = None


class GatewaySpec(BaseModel):
    """The request shape and answer rules of one SMS gateway."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    url: str
    method: Literal["POST", "GET", "PUT"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body_format: Literal["json", "form", "query"] = "json"
    fields: dict[str, Any] = Field(default_factory=dict)
    success: SuccessRule = Field(default_factory=SuccessRule)
    message_id_path: str | None = None
    error_code_path: str | None = None
    error_message_path: str | None = None
    permanent_error_codes: list[str] = Field(default_factory=list)
    retryable_error_codes: list[str] = Field(default_factory=list)
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    receipt: ReceiptSpec | None = None


@dataclass(frozen=True, slots=True)
class GatewayRequest:
    """A fully rendered HTTP request: exactly one of json_body / form_body / query is used."""

    method: str
    url: str
    headers: Mapping[str, str]
    json_body: Any = None
    form_body: Mapping[str, str] | None = None
    query: Mapping[str, str] | None = None


@cache
def _presets_raw() -> dict[str, Any]:
    presets: dict[str, Any] = _data.load_toml("gateways.toml")["presets"]
    return presets


def preset_names() -> list[str]:
    """Names of the shipped gateway presets."""
    return sorted(_presets_raw())


def load_preset(name: str, **overrides: Any) -> GatewaySpec:
    """A shipped preset as a GatewaySpec, with top-level fields overridden (e.g. ``url=...``)."""
    raw = _presets_raw().get(name)
    if raw is None:
        raise NotFound(f"no SMS gateway preset {name!r}", code="gateway_preset_not_found")
    return GatewaySpec.model_validate({"name": name, **raw, **overrides})


def json_get(document: Any, path: str) -> Any:
    """Value at a dotted path (``a.b.0.c``; digits index lists); None when any step is missing."""
    current = document
    for step in path.split("."):
        if isinstance(current, Mapping):
            if step not in current:
                return None
            current = current[step]
        elif isinstance(current, list) and step.lstrip("-").isdigit():
            index = int(step)
            if not -len(current) <= index < len(current):
                return None
            current = current[index]
        else:
            return None
    return current


def scalar_text(value: Any) -> str | None:
    """A JSON scalar as text for comparisons: booleans as ``true``/``false``, None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def national_number(e164: str) -> str:
    """The national significant number of an E.164 phone number (``+8613800138000`` -> ``13800138000``)."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException as exc:
        raise ValidationFailed(f"not an E.164 phone number: {e164!r}", code="bad_phone_number") from exc
    return str(phonenumbers.national_significant_number(parsed))


def _render_value(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, Mapping):
        return {k: _render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_value(v, context) for v in value]
    return value


def request_context(message: OutboundMessage, secrets: Mapping[str, str]) -> dict[str, Any]:
    """The names a gateway's field templates may use."""
    return {
        "to": message.to,
        "to_national": national_number(message.to),
        "text": message.text,
        "subject": message.subject or "",
        "idempotency_key": message.idempotency_key,
        "template_code": message.template_code or "",
        "template_params_json": json.dumps(dict(message.template_params), ensure_ascii=False, sort_keys=True),
        "secrets": dict(secrets),
    }


def build_request(spec: GatewaySpec, message: OutboundMessage, secrets: Mapping[str, str]) -> GatewayRequest:
    """Render the spec's URL, headers and fields for one message.

    A field that names a missing secret or value raises ConfigurationError (never sends a blank field).
    """
    context = request_context(message, secrets)
    try:
        url = render(spec.url, context)
        headers = {k: render(v, context) for k, v in spec.headers.items()}
        fields = _render_value(spec.fields, context)
    except ValidationFailed as exc:
        raise ConfigurationError(
            f"SMS gateway {spec.name!r}: {exc.message}", code="gateway_misconfigured"
        ) from exc
    if spec.body_format == "json":
        return GatewayRequest(spec.method, url, headers, json_body=fields)
    flat = {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in fields.items()}
    if spec.body_format == "form":
        return GatewayRequest(spec.method, url, headers, form_body=flat)
    return GatewayRequest(spec.method, url, headers, query=flat)


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _error_code(spec: GatewaySpec, document: Any) -> str | None:
    if spec.error_code_path is None or document is None:
        return None
    return scalar_text(json_get(document, spec.error_code_path))


def classify_response(spec: GatewaySpec, status_code: int, body: bytes) -> SendResult:
    """Read a gateway's answer: sent, failed (permanent) or retryable.

    429, 408, 425 and 5xx are retryable; a 2xx/expected status whose JSON says otherwise is classified by
    its error code (permanent list, retryable list; an unknown code is permanent so a message is never
    sent twice on a guess); any other 4xx is permanent.
    """
    document = _parse_json(body)
    code = _error_code(spec, document)
    if status_code in _TRANSIENT_4XX or status_code >= 500:
        reason = "rate_limited" if status_code == 429 else f"http_{status_code}"
        return SendResult(SendOutcome.RETRYABLE, reason=reason, provider_code=code)
    if status_code in spec.success.status_codes:
        if spec.success.json_path is not None:
            if document is None:
                return SendResult(SendOutcome.FAILED, reason="unreadable_response")
            value = scalar_text(json_get(document, spec.success.json_path))
            if value != spec.success.json_value:
                return _classify_error_code(spec, code or value)
        message_id = None
        if spec.message_id_path is not None and document is not None:
            message_id = scalar_text(json_get(document, spec.message_id_path))
        return SendResult(SendOutcome.SENT, reason=None, provider_message_id=message_id, provider_code=code)
    if code is not None:
        return _classify_error_code(spec, code, default_reason=f"http_{status_code}")
    return SendResult(SendOutcome.FAILED, reason=f"http_{status_code}")


def _classify_error_code(
    spec: GatewaySpec, code: str | None, default_reason: str | None = None
) -> SendResult:
    if code is not None and code in spec.retryable_error_codes:
        return SendResult(SendOutcome.RETRYABLE, reason=f"gateway_busy:{code}", provider_code=code)
    if code is not None and code in spec.permanent_error_codes:
        return SendResult(SendOutcome.FAILED, reason=f"rejected:{code}", provider_code=code)
    return SendResult(
        SendOutcome.FAILED, reason=default_reason or f"gateway_error:{code}", provider_code=code
    )
