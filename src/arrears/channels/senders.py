"""Senders: one small interface, ``Sender.send(message) -> SendResult``, over e-mail (SMTP) and SMS (HTTP).

A sender never raises for a delivery problem: it returns ``sent``, ``failed`` (permanent: retrying
cannot help) or ``retryable`` (timeouts, connection errors, 5xx, 429), with a reason and the provider's
message id. The outbox decides what to do next with `retry.decide_retry`.

Idempotency: every message carries an idempotency key. The e-mail ``Message-ID`` is derived from it and
SMS gateways receive it as their client reference, so a resend after a crash is recognisable downstream.
"""

from __future__ import annotations

import base64
import hashlib
import json
import smtplib
import ssl
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from email import message_from_bytes, policy
from email.header import Header
from email.message import EmailMessage
from email.utils import formataddr
from functools import lru_cache
from typing import Literal, Protocol
from urllib.parse import urlencode

import urllib3
from markupsafe import escape
from pydantic import BaseModel, ConfigDict
from urllib3.exceptions import NewConnectionError

from arrears.channels import _data
from arrears.channels.gateways import GatewaySpec, build_request, classify_response
from arrears.channels.retry import SendOutcome
from arrears.channels.schemas import DeliveryReceipt, OutboundMessage, ReceiptStatus, SendResult
from arrears.channels.templates import opt_out_text
from arrears.enums import Channel
from arrears.errors import ArrearsError, ValidationFailed

__all__ = [
    "DeliveryReceipt",
    "HttpSmsSender",
    "OutboundMessage",
    "ReceiptStatus",
    "SendOutcome",
    "SendPool",
    "SendResult",
    "Sender",
    "SmtpConfig",
    "SmtpSender",
    "build_email",
    "email_bytes",
    "message_id_for",
    "send_safely",
]


class Sender(Protocol):
    """Anything that can send one outbound message."""

    def send(self, message: OutboundMessage) -> SendResult:
        """Send once; report the outcome instead of raising for delivery problems."""
        ...


# ---------------------------------------------------------------------------------------------------------
# E-mail


class SmtpConfig(BaseModel):
    """How to reach the SMTP server and whom mail comes from.

    ``security``: ``none`` (plain, for a local relay), ``starttls`` (upgrade on port 587) or ``tls``
    (implicit TLS on port 465). ``ca_file`` trusts a private CA (or a test certificate).
    """

    model_config = ConfigDict(frozen=True)

    host: str
    port: int = 587
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: str | None = None
    timeout_s: float = 30.0
    from_address: str
    from_name: str | None = None
    reply_to: str | None = None
    message_id_domain: str | None = None
    ca_file: str | None = None
    verify_tls: bool = True


def message_id_for(idempotency_key: str, domain: str) -> str:
    """A stable ``Message-ID`` for an idempotency key: the same message always gets the same id."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:40]
    return f"<{digest}@{domain}>"


def _html_with_footer(html: str, footer: str, link: str | None) -> str:
    text = str(escape(footer))
    if link:
        safe = str(escape(link))
        text = text.replace(safe, f'<a href="{safe}">{safe}</a>')
    block = f'<hr><p style="font-size: small; color: #666;">{text}</p>'
    lower = html.lower()
    index = lower.rfind("</body>")
    if index == -1:
        return html + block
    return html[:index] + block + "\n" + html[index:]


_CRLF = b"\r\n"


@lru_cache(maxsize=512)
def _header_text(value: str) -> str:
    """An unstructured header value (Subject, a display name): RFC 2047 encoded words (UTF-8) when it is
    not plain ASCII, folded at 76 characters; line breaks become spaces (no header injection)."""
    value = " ".join(value.splitlines())
    if value.isascii() and len(value) < 900:
        return value
    return Header(value, "utf-8", header_name="Subject").encode(linesep="\r\n")


@lru_cache(maxsize=64)
def _mailbox(name: str | None, address: str) -> str:
    """``Name <address>`` (the name RFC 2047 encoded when needed), or the bare address."""
    _check_address(address)
    return formataddr((" ".join((name or "").splitlines()), address), charset="utf-8")


def _check_address(address: str) -> None:
    if (
        not address.isascii()
        or address.count("@") != 1
        or any(c.isspace() or c in '<>,;"()[]\\' for c in address)
        or address.startswith("@")
        or address.endswith("@")
    ):
        raise ValidationFailed(f"not an e-mail address: {address!r}", code="bad_email_address")


def _part(content_type: str, body: str) -> bytes:
    # Canonical CRLF line ends, UTF-8, base64 (lines of 76): safe for any text and any server.
    canonical = "\r\n".join(body.splitlines()) + "\r\n"
    encoded = base64.encodebytes(canonical.encode("utf-8")).replace(b"\n", _CRLF)
    return (
        f'Content-Type: {content_type}; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    ).encode("ascii") + encoded


def email_bytes(message: OutboundMessage, config: SmtpConfig) -> bytes:
    """The MIME message for an e-mail as the bytes sent over SMTP: plain text, plus an HTML alternative
    when given (both UTF-8, base64).

    ``Message-ID`` comes from the idempotency key. With ``opt_out`` the US-13 opt-out footer is added
    to both parts, and a ``List-Unsubscribe`` header when an opt-out link is known. Built straight from
    header lines and base64 parts: the standard library's ``EmailMessage`` costs about a millisecond of
    CPU per message, more than the SMTP exchange itself. `build_email` parses these bytes back.
    """
    if message.channel is not Channel.EMAIL:
        raise ValidationFailed("not an e-mail message", code="wrong_channel")
    domain = config.message_id_domain or str(_data.load_toml("channels.toml")["email"]["message_id_domain"])
    text = message.text
    html = message.html
    headers: list[str] = []
    if message.opt_out:
        # US-13: every electronic message carries a simple opt-out.
        footer = opt_out_text(message.locale, message.opt_out_link)
        text = f"{text.rstrip()}\n\n-- \n{footer}\n"
        if html is not None:
            html = _html_with_footer(html, footer, message.opt_out_link)
        if message.opt_out_link:
            headers.append(f"List-Unsubscribe: <{' '.join(message.opt_out_link.split())}>")
    message_id = message_id_for(message.idempotency_key, domain)
    headers.append(f"Subject: {_header_text(message.subject or '')}")
    headers.append(f"From: {_mailbox(config.from_name, config.from_address)}")
    headers.append(f"To: {_mailbox(message.to_name, message.to)}")
    if config.reply_to:
        headers.append(f"Reply-To: {_mailbox(None, config.reply_to)}")
    headers.append(f"Message-ID: {message_id}")
    headers.append(f"X-Arrears-Idempotency-Key: {_header_text(message.idempotency_key)}")
    headers.append("MIME-Version: 1.0")
    if html is None:
        head = "\r\n".join(headers).encode("utf-8") + _CRLF
        return head + _part("text/plain", text)
    boundary = f"==arrears-{message_id[1:21]}"
    headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    head = "\r\n".join(headers).encode("utf-8") + _CRLF + _CRLF
    mark = f"--{boundary}\r\n".encode("ascii")
    return b"".join(
        (
            head,
            mark,
            _part("text/plain", text),
            mark,
            _part("text/html", html),
            f"--{boundary}--\r\n".encode(),
        )
    )


def build_email(message: OutboundMessage, config: SmtpConfig) -> EmailMessage:
    """The e-mail of `email_bytes` as an ``EmailMessage`` (parsed back from exactly the bytes sent)."""
    parsed = message_from_bytes(email_bytes(message, config), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _smtp_code_result(code: int, reason: str, message_id: str | None = None) -> SendResult:
    status = SendOutcome.RETRYABLE if 400 <= code < 500 else SendOutcome.FAILED
    return SendResult(
        status, reason=f"smtp_{code}:{reason}", provider_message_id=message_id, provider_code=str(code)
    )


class SmtpSender:
    """Sends e-mail through an SMTP server with the standard library's smtplib.

    Connections are kept open and reused: a sender holds a small pool of idle connections, each send takes
    one (or opens one) and gives it back, so a `SendPool` of n threads uses at most n connections. Opening,
    greeting and authenticating once per message would cost more than the message itself. A kept
    connection the server has meanwhile closed is reopened once; any other error drops the connection so
    the next message starts on a clean one.
    """

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._idle: list[smtplib.SMTP] = []
        self._lock = threading.Lock()
        self._domain = config.message_id_domain or str(
            _data.load_toml("channels.toml")["email"]["message_id_domain"]
        )

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.config.ca_file)
        if not self.config.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        if cfg.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                cfg.host, cfg.port, timeout=cfg.timeout_s, context=self._tls_context()
            )
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
        try:
            smtp.ehlo()
            if cfg.security == "starttls":
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
            if cfg.username:
                smtp.login(cfg.username, cfg.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _take(self) -> smtplib.SMTP | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            self._idle.append(smtp)

    def close(self) -> None:
        """Say QUIT on every idle connection."""
        with self._lock:
            connections, self._idle = self._idle, []
        for smtp in connections:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def _deliver(self, to: str, raw: bytes) -> None:
        smtp = self._take()
        if smtp is not None:
            try:
                smtp.sendmail(self.config.from_address, [to], raw)
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                # The server closed the kept connection (idle timeout, restart): open a new one, once. The
                # message keeps its Message-ID, so even a repeat is recognised downstream as the same one.
                smtp.close()
            except BaseException:
                smtp.close()
                raise
            else:
                self._give(smtp)
                return
        smtp = self._connect()
        try:
            smtp.sendmail(self.config.from_address, [to], raw)
        except BaseException:
            smtp.close()
            raise
        self._give(smtp)

    def send(self, message: OutboundMessage) -> SendResult:
        """Send one e-mail; SMTP 4xx and connection problems are retryable, 5xx permanent."""
        raw = email_bytes(message, self.config)
        message_id = message_id_for(message.idempotency_key, self._domain)
        try:
            self._deliver(message.to, raw)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return _smtp_code_result(code, _decode(text), message_id)
        except smtplib.SMTPNotSupportedError as exc:
            return SendResult(
                SendOutcome.FAILED, reason=f"smtp_not_supported:{exc}", provider_message_id=message_id
            )
        except smtplib.SMTPConnectError as exc:
            return SendResult(SendOutcome.RETRYABLE, reason=f"smtp_connect:{exc.smtp_code}")
        except smtplib.SMTPResponseException as exc:  # includes authentication, sender refused, data errors
            return _smtp_code_result(exc.smtp_code, _decode(exc.smtp_error), message_id)
        except (smtplib.SMTPServerDisconnected, TimeoutError, ConnectionError) as exc:
            return SendResult(SendOutcome.RETRYABLE, reason=f"connection:{type(exc).__name__}")
        except ssl.SSLError as exc:
            return SendResult(SendOutcome.FAILED, reason=f"tls:{exc.reason}")
        except OSError as exc:
            return SendResult(SendOutcome.RETRYABLE, reason=f"network:{type(exc).__name__}")
        return SendResult(SendOutcome.SENT, provider_message_id=message_id)


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


# ---------------------------------------------------------------------------------------------------------
# SMS over an HTTP gateway


class HttpSmsSender:
    """Sends SMS through an HTTP gateway described by a `GatewaySpec`, with urllib3.

    One connection pool per sender keeps its connections alive (HTTP/1.1 keep-alive, TLS verified by
    default) and is shared by the threads of a `SendPool`, so each message costs one request on a kept
    connection. urllib3 rather than httpx: about a quarter of the CPU per request, which at hundreds of
    messages a second is most of what sending costs. Redirects and automatic retries are off: the outbox
    decides about retries (`retry.decide_retry`), and a POST is never repeated behind its back.
    """

    def __init__(self, spec: GatewaySpec, secrets: Mapping[str, str], *, max_connections: int = 16) -> None:
        self.spec = spec
        self._secrets = dict(secrets)
        self._http = urllib3.PoolManager(maxsize=max_connections, retries=False)
        self._timeout = urllib3.Timeout(connect=spec.connect_timeout_s, read=spec.read_timeout_s)

    def close(self) -> None:
        """Close the kept connections."""
        self._http.clear()

    def __enter__(self) -> HttpSmsSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, message: OutboundMessage) -> SendResult:
        """Send one SMS; timeouts, connection errors, 429 and 5xx are retryable, other rejections not."""
        if message.channel is not Channel.SMS:
            raise ValidationFailed("not an SMS message", code="wrong_channel")
        request = build_request(self.spec, message, self._secrets)
        headers = dict(request.headers)
        url = request.url
        body: bytes | None = None
        if request.json_body is not None:
            body = json.dumps(request.json_body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        elif request.form_body is not None:
            body = urlencode(dict(request.form_body)).encode("ascii")
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if request.query is not None:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(dict(request.query))}"
        try:
            response = self._http.request(
                request.method, url, body=body, headers=headers, timeout=self._timeout, redirect=False
            )
        except NewConnectionError as exc:  # refused or unreachable (urllib3 files it under timeouts)
            return SendResult(SendOutcome.RETRYABLE, reason=f"transport:{type(exc).__name__}")
        except urllib3.exceptions.TimeoutError as exc:
            return SendResult(SendOutcome.RETRYABLE, reason=f"timeout:{type(exc).__name__}")
        except urllib3.exceptions.HTTPError as exc:
            return SendResult(SendOutcome.RETRYABLE, reason=f"transport:{type(exc).__name__}")
        return classify_response(self.spec, response.status, response.data)


# ---------------------------------------------------------------------------------------------------------
# Sending many messages at once


def send_safely(sender: Sender, message: OutboundMessage) -> SendResult:
    """``sender.send(message)``, with a refusal to build the message (`ArrearsError`) as ``failed`` and any
    other exception as ``retryable``: one bad message must not stop a batch."""
    try:
        return sender.send(message)
    except ArrearsError as exc:  # a message the sender refuses to build (bad number, wrong channel)
        return SendResult(SendOutcome.FAILED, reason=f"{exc.code}: {exc.message}")
    except Exception as exc:  # an unknown error: the message may or may not have left
        return SendResult(SendOutcome.RETRYABLE, reason=f"error:{type(exc).__name__}")


class SendPool:
    """A fixed set of sending threads, kept for the life of a dispatcher.

    Sending is waiting on the network, so a few threads keep a few messages in flight; each thread keeps
    its own SMTP connection open (`SmtpSender`) and the SMS senders share their connection pool's keep-alive
    connections. The outbox and the floor of ``bench/dispatch.py`` send through the same pool.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValidationFailed("workers must be at least 1", code="bad_concurrency")
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="arrears-send")

    def send(self, jobs: Sequence[tuple[Sender, OutboundMessage]]) -> Iterator[tuple[int, SendResult]]:
        """Send every job; yields ``(index in jobs, result)`` as each send finishes."""
        futures = {
            self._pool.submit(send_safely, sender, message): i for i, (sender, message) in enumerate(jobs)
        }
        for future in as_completed(futures):
            yield futures[future], future.result()

    def close(self) -> None:
        """Wait for the threads to finish and stop them."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> SendPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
