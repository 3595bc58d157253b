"""Real receivers for the sink tests, all on 127.0.0.1 with a port the system chooses:

- `HttpReceiver`: an http.server that records every request; it can refuse the first N
  requests, answer with a chosen status, answer slowly, or not listen at all (a receiver that
  is down: its port is bound, never listened on, so connecting is refused);
- `TicketSystem`: a small ticketing REST API (GET/POST /tickets, PATCH /tickets/{id}) that can
  commit a ticket and then drop the connection, the answer lost;
- `SmtpServer`: aiosmtpd's SMTP protocol on a loop of its own thread, recording each message.

Plus a store with the incident engine, so notifications come from real incident changes.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI

from collector.customers import CustomerFile, CustomerSet, load_customer_text
from collector.incidents.engine import IncidentEngine
from collector.store.engine import open_store
from collector.store.schema import outbox
from collector.store.writer import StoreWriter
from probes.clock import ManualClock
from probes.result import Result, Status

START = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
WEBHOOK_SECRET = "webhook-secret-0123456789abcdef"  # noqa: S105 - a test secret
DEADLINE_S = 10.0


def wait_until(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# ---- HTTP ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        received = Received(self.command, url.path, parse_qs(url.query),
                            {k.lower(): v for k, v in self.headers.items()}, body)
        status, answer = self.server.owner.answer(received)
        if status is None:
            # Committed, then the connection drops before any answer: the lost response.
            self.close_connection = True
            return
        payload = json.dumps(answer).encode() if answer is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: HttpReceiver


class HttpReceiver:
    """Answers `status` (default 200) after refusing the first `fail_first` requests with
    `fail_status`. `listening=False` binds the port without listening: connections are refused
    until `start_listening()`."""

    def __init__(self, *, listening: bool = True) -> None:
        self.requests: list[Received] = []
        self.fail_first = 0
        self.fail_status = 503
        self.status = 200
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        self._server.owner = self
        self._server.server_bind()
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None
        if listening:
            self.start_listening()

    def start_listening(self) -> None:
        self._server.server_activate()
        # A short poll: shutdown() waits up to one poll interval.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()

    def answer(self, received: Received) -> tuple[int | None, Any]:
        with self._lock:
            self.requests.append(received)
            failing = len(self.requests) <= self.fail_first
        if self.delay_s:
            time.sleep(self.delay_s)
        if failing:
            return self.fail_status, {"error": "not now"}
        return self.route(received)

    def route(self, received: Received) -> tuple[int | None, Any]:
        return self.status, {"ok": True}

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


class TicketSystem(HttpReceiver):
    """A ticketing system without idempotency: every POST /tickets opens a new ticket."""

    def __init__(self) -> None:
        super().__init__()
        self.tickets: dict[str, dict[str, Any]] = {}
        self.drop_after_create = 0  # how many creates commit, then lose their answer

    def route(self, received: Received) -> tuple[int | None, Any]:
        if received.path == "/tickets" and received.method == "GET":
            key = received.query.get("external_key", [""])[0]
            return 200, [t for t in self.tickets.values() if t["external_key"] == key]
        if received.path == "/tickets" and received.method == "POST":
            ticket = {**received.json(), "id": f"T-{len(self.tickets) + 1}", "patches": 0}
            self.tickets[ticket["id"]] = ticket
            if self.drop_after_create > 0:
                self.drop_after_create -= 1
                return None, None
            return 201, {"id": ticket["id"]}
        if received.path.startswith("/tickets/") and received.method == "PATCH":
            ticket_id = received.path.rsplit("/", 1)[1]
            if ticket_id not in self.tickets:
                return 404, {"error": "no such ticket"}
            self.tickets[ticket_id].update(received.json())
            self.tickets[ticket_id]["patches"] += 1
            return 200, self.tickets[ticket_id]
        return 404, {"error": "no such route"}


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    found = HttpReceiver()
    yield found
    found.close()


@pytest.fixture
def ticket_system() -> Iterator[TicketSystem]:
    found = TicketSystem()
    yield found
    found.close()


@contextmanager
def live_api(app: FastAPI) -> Iterator[str]:
    """The API on a real uvicorn server on a free loopback port, in a thread; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), "the API server to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# ---- SMTP ---------------------------------------------------------------------------------

class SmtpServer:
    """aiosmtpd on 127.0.0.1:0, on its own loop in a thread (its Controller cannot use port 0)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refused_recipients: set[str] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _start(self) -> asyncio.Server:
        return await self._loop.create_server(
            lambda: SMTP(self, hostname="smtp.test", loop=self._loop), "127.0.0.1", 0)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refused_recipients:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            await self._server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    found = SmtpServer()
    yield found
    found.close()


# ---- the store and the incident engine ----------------------------------------------------

CUSTOMER_HEAD = """\
customer: acme
name: ACME Logistics
timezone: Europe/Berlin
expectations:
  - kind: threshold
    name: disk-space
    check: "disk:*"
    metric: used_percent
    warn: 80
    crit: 90
    runbook: https://wiki.example/acme/disk-full
"""


def secret_file(directory: Path, name: str, content: str) -> Path:
    path = directory / name
    path.write_text(content + "\n")
    path.chmod(0o600)
    return path


def customer_with_sinks(directory: Path, sinks_yaml: str) -> CustomerFile:
    """acme, with the given `sinks:` block; relative secret files resolve in directory."""
    text = CUSTOMER_HEAD + sinks_yaml
    path = directory / "acme.yaml"
    path.write_text(text)
    return load_customer_text(text, path)


def disk(used: float, at: datetime) -> Result:
    status = Status.CRIT if used > 90 else Status.WARN if used > 80 else Status.OK
    return Result(probe="disk", check="disk:/data", status=status,
                  summary=f"/data {used:g}% used", observed_at=at,
                  metrics={"used_percent": used})


@dataclass
class Store:
    """A migrated SQLite store, its writer, and the incident engine writing through it."""

    engine: sa.Engine
    writer: StoreWriter
    clock: ManualClock
    customers: CustomerSet = field(default_factory=lambda: CustomerSet({}))
    incident_engine: IncidentEngine | None = None

    def use(self, customer: CustomerFile) -> None:
        self.customers = CustomerSet({customer.customer: customer})
        self.incident_engine = IncidentEngine(self.customers, self.clock)

    def feed(self, used: float) -> None:
        """One disk result for web1, judged in the writer as ingest does."""
        engine = self.incident_engine
        assert engine is not None
        item = disk(used, self.clock.now())
        self.writer.submit(
            lambda conn: engine.on_items(conn, "agent-1", "acme", "web1", [item])).result(10)

    def rows(self) -> list[sa.Row[Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(outbox).order_by(outbox.c.id)).all())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    engine = open_store(f"sqlite:///{tmp_path / 'daybreak.db'}")
    writer = StoreWriter(engine)
    yield Store(engine, writer, ManualClock(START))
    writer.close()
    engine.dispose()
