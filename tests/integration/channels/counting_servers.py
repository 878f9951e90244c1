"""Receiving servers that count what arrives per message key: an SMTP server (aiosmtpd) counting Message-IDs
and an HTTP SMS gateway counting client references. The gateway can fail a message's first try (503) and
answer some messages slowly; like a provider honouring idempotency keys, it accepts a reference it has
already accepted without delivering it again (the answer repeats the first one; ``tally.duplicates``
counts such repeats). Used by the crash test and by ``bench/dispatch.py``."""

from __future__ import annotations

import json
import multiprocessing
import re
import resource
import socket
import sys
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from typing import Any

from aiosmtpd.controller import Controller

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass
class Tally:
    """Deliveries per key; ``total`` counts every accepted delivery, repeats included."""

    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rejected: int = 0
    duplicates: Counter[str] = field(default_factory=Counter)  # repeats recognised and not delivered again
    first_at: float | None = None  # perf_counter of the first and the last accepted delivery
    last_at: float | None = None

    def add(self, key: str) -> None:
        moment = time.perf_counter()
        with self.lock:
            self.counts[key] += 1
            if self.first_at is None:
                self.first_at = moment
            self.last_at = moment

    def add_once(self, key: str) -> bool:
        """Count ``key`` unless it was counted before (then it is a recognised duplicate): True if new."""
        with self.lock:
            if key in self.counts:
                self.duplicates[key] += 1
                return False
        self.add(key)
        return True

    def restart_clock(self) -> None:
        """Forget the first and last delivery times (a new measurement begins)."""
        with self.lock:
            self.first_at = self.last_at = None

    @property
    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    @property
    def distinct(self) -> int:
        with self.lock:
            return len(self.counts)


class _CountingHandler:
    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        found = _MESSAGE_ID.search(envelope.original_content or b"")
        self.tally.add(found.group(1).decode() if found else "<none>")
        return "250 OK queued"


class CountingSmtp:
    """aiosmtpd on a free port, counting messages by Message-ID."""

    def __init__(self) -> None:
        self.tally = Tally()
        with socket.socket() as sock:  # aiosmtpd needs the port up front
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self._controller = Controller(_CountingHandler(self.tally), hostname="127.0.0.1", port=self.port)

    def start(self) -> CountingSmtp:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


class _QuietServer(ThreadingHTTPServer):
    """A connection reset by a killed client is expected here, not a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class CountingGateway:
    """A JSON SMS gateway (the ``generic_json_bearer`` preset's shape) counting messages by reference.

    ``fail_first_every``: every n-th reference (by checksum) gets a 503 on its first try.
    ``slow_every``: every n-th reference is answered after ``slow_s`` seconds.
    """

    def __init__(self, *, fail_first_every: int = 0, slow_every: int = 0, slow_s: float = 0.05) -> None:
        self.tally = Tally()
        self.seen_failures: set[str] = set()
        tally, failures = self.tally, self.seen_failures
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, no delayed-ACK stall

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                reference = str(json.loads(raw)["reference"])
                bucket = zlib.crc32(reference.encode())
                if fail_first_every and bucket % fail_first_every == 0:
                    with lock:
                        first = reference not in failures
                        failures.add(reference)
                    if first:
                        tally.rejected += 1
                        return self._answer(503, {"error": {"code": "temporarily_unavailable"}})
                if slow_every and bucket % slow_every == 1:
                    time.sleep(slow_s)
                tally.add_once(reference)  # a repeat of an accepted reference is answered, not delivered
                return self._answer(202, {"id": f"m-{reference[-12:]}", "status": "accepted"})

            def _answer(self, status: int, document: dict[str, Any]) -> None:
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> CountingGateway:
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/messages"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _RemoteTally:
    """The parts of a `Tally` the bench reads, asked of a server in another process."""

    def __init__(self, conn: Connection, lock: threading.Lock) -> None:
        self._conn, self._lock = conn, lock

    def _ask(self, command: str) -> Any:
        with self._lock:
            self._conn.send(command)
            return self._conn.recv()

    @property
    def distinct(self) -> int:
        return int(self._ask("distinct"))

    @property
    def first_at(self) -> float | None:
        return self._ask("first_at")  # type: ignore[no-any-return]

    @property
    def last_at(self) -> float | None:
        return self._ask("last_at")  # type: ignore[no-any-return]

    def restart_clock(self) -> None:
        self._ask("restart")

    @property
    def cpu_s(self) -> float:
        """CPU seconds (user and system) the server's process has used so far."""
        return float(self._ask("cpu"))


def _serve(kind: str, conn: Connection) -> None:
    server: CountingSmtp | CountingGateway = CountingSmtp() if kind == "smtp" else CountingGateway()
    server.start()
    conn.send(server.port if isinstance(server, CountingSmtp) else server.url)
    tally = server.tally
    while True:
        command = conn.recv()
        if command == "stop":
            server.stop()
            conn.send(None)
            return
        if command == "cpu":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            conn.send(usage.ru_utime + usage.ru_stime)
        elif command == "restart":
            tally.restart_clock()
            conn.send(None)
        else:
            conn.send(tally.distinct if command == "distinct" else getattr(tally, command))


class ServerProcess:
    """A counting server (``"smtp"`` or ``"gateway"``) in a process of its own, so that what it costs to
    receive does not share an interpreter lock with the other server or with the caller. Offers what the
    bench reads: ``tally.distinct``, ``tally.first_at`` / ``last_at`` (``perf_counter``, one clock for
    every process on the machine), ``tally.restart_clock()``, and ``port`` or ``url``."""

    def __init__(self, kind: str) -> None:
        if kind not in ("smtp", "gateway"):
            raise ValueError(f"unknown server kind {kind!r}")
        context = multiprocessing.get_context("fork")  # before the caller starts threads
        mine, theirs = context.Pipe()
        self._process = context.Process(target=_serve, args=(kind, theirs), daemon=True)
        self._conn = mine
        self.kind = kind
        self.port = 0
        self.url = ""
        self.tally = _RemoteTally(mine, threading.Lock())

    def start(self) -> ServerProcess:
        self._process.start()
        address = self._conn.recv()
        if self.kind == "smtp":
            self.port = int(address)
        else:
            self.url = str(address)
        return self

    def stop(self) -> None:
        if self._process.is_alive():
            self.tally._ask("stop")
        self._process.join(timeout=10)
