"""Shapes that cross the channels domain's boundary: a message to send, a send result, a delivery receipt."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from arrears.channels.retry import SendOutcome
from arrears.enums import Channel

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One rendered message ready for a sender.

    ``idempotency_key`` identifies the message across retries (the outbox row's key): the e-mail
    Message-ID and the gateway's client reference are derived from it, so a resend can be recognised.
    ``to`` is an e-mail address or an E.164 phone number. ``opt_out`` asks for the US-13 footer.
    ``template_code`` / ``template_params`` serve gateways that send pre-registered templates.
    """

    idempotency_key: str
    channel: Channel
    to: str
    text: str
    subject: str | None = None
    html: str | None = None
    to_name: str | None = None
    locale: str = "zh_CN"
    opt_out: bool = False
    opt_out_link: str | None = None
    template_code: str | None = None
    template_params: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class SendResult:
    """How a send attempt ended: sent, failed (permanent) or retryable, with the reason and provider id."""

    status: SendOutcome
    reason: str | None = None
    provider_message_id: str | None = None
    provider_code: str | None = None

    @property
    def retryable(self) -> bool:
        """True when another attempt may succeed."""
        return self.status is SendOutcome.RETRYABLE


class ReceiptStatus(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """A provider's delivery report for one message (CN-25: delivery evidence for a demand)."""

    provider_message_id: str | None
    reference: str | None
    status: ReceiptStatus
    error_code: str | None = None
    reported_at: str | None = None
