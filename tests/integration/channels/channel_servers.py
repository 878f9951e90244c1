"""Real local servers for the channels integration tests: an SMTP server (aiosmtpd) and an SMS gateway.

Fixtures are re-exported by this folder's conftest.py; test modules import helpers from here by this
unique module name."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

SMTP_USER = "mailer"
SMTP_PASSWORD = "correct horse"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mailbox:
    """What the SMTP server received."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)


class RecordingHandler:
    """Accepts mail; refuses some recipients the way real servers do."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        if address.startswith("busy@"):
            return "451 4.3.0 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.mailbox.envelopes.append(envelope)
        self.mailbox.messages.append(message_from_bytes(raw, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK queued"


def authenticator(
    server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    host: str
    port: int
    mailbox: Mailbox
    cert_file: str | None = None


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server that requires AUTH (allowed without TLS on loopback)."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        RecordingHandler(mailbox),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, mailbox)
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def self_signed_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A throwaway certificate for 127.0.0.1, made with the openssl command line."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


@pytest.fixture
def starttls_smtp_server(self_signed_cert: tuple[str, str]) -> Iterator[SmtpServer]:
    """An SMTP server that insists on STARTTLS before anything else."""
    cert, key = self_signed_cert
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        RecordingHandler(mailbox),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, mailbox, cert_file=cert)
    finally:
        controller.stop()


# --------------------------------------------------------------------------------------------------------
# SMS gateway


@dataclass
class GatewayLog:
    requests: list[dict[str, Any]] = field(default_factory=list)
    ids_by_reference: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


SLOW_SECONDS = 1.5


def make_handler(log: GatewayLog) -> type[BaseHTTPRequestHandler]:
    class GatewayHandler(BaseHTTPRequestHandler):
        """Plays an Aliyun-style JSON gateway on /aliyun and a form gateway on /form.

        The number decides the answer: ...0500 -> 500, ...0429 -> 429, ...0400 -> rejected number,
        ...0999 -> a slow answer. Others succeed; the same client reference gets the same message id.
        """

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            return

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/aliyun":
                body: dict[str, Any] = json.loads(raw)
                number, reference = body["PhoneNumbers"], body["OutId"]
            else:
                body = dict(parse_qsl(raw.decode()))
                number, reference = body["mobile"], body["client_ref"]
            with log.lock:
                log.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if number.endswith("0999"):
                time.sleep(SLOW_SECONDS)
            if number.endswith("0500"):
                return self._answer(500, {"Code": "isp.SYSTEM_ERROR"})
            if number.endswith("0429"):
                return self._answer(429, {"Code": "Throttling.User"})
            if number.endswith("0400"):
                if self.path == "/aliyun":
                    return self._answer(
                        200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "invalid number"}
                    )
                return self._answer(200, {"code": "103", "msg": "rejected number"})
            with log.lock:
                message_id = log.ids_by_reference.setdefault(
                    reference, f"biz-{len(log.ids_by_reference) + 1}"
                )
            if self.path == "/aliyun":
                return self._answer(200, {"Code": "OK", "BizId": message_id, "RequestId": "r"})
            return self._answer(200, {"code": 0, "msgid": message_id})

        def _answer(self, status: int, document: dict[str, Any]) -> None:
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client gave up (timeout test)
                self.wfile.write(payload)

    return GatewayHandler


@dataclass
class GatewayServer:
    base_url: str
    log: GatewayLog


@pytest.fixture
def sms_gateway() -> Iterator[GatewayServer]:
    log = GatewayLog()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(log))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield GatewayServer(f"http://127.0.0.1:{server.server_address[1]}", log)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
