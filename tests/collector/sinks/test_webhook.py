"""The webhook sink against a real receiver: the documented body, the signature, the headers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from collector.sinks.base import OutboxMessage, SinkError
from collector.sinks.config import WebhookSinkConfig
from collector.sinks.webhook import WebhookSink

from .conftest import WEBHOOK_SECRET, HttpReceiver, secret_file

# Every field of the ticket, as docs/sinks.md lists them.
TICKET_FIELDS = {
    "id", "customer", "customer_name", "customer_timezone", "host", "expectation", "subject",
    "state", "severity", "title", "summary", "expected", "observed", "evidence",
    "evidence_source", "assignment_group", "runbook", "occurrences", "opened_at",
    "last_seen_at", "resolved_at", "resolution",
}


def message(event: str = "opened", sequence: int = 1) -> OutboxMessage:
    incident = {field: "" for field in TICKET_FIELDS} | {
        "id": 7, "customer": "acme", "state": "open", "severity": "critical", "occurrences": 1,
        "title": "/data 95% used", "host": "web1", "resolved_at": None,
    }
    return OutboxMessage(
        outbox_id=1, incident_id=7, customer="acme", sink="desk-hook", event=event,
        sequence=sequence, idempotency_key="ab" * 32,
        payload={"event": event, "change": event, "sequence": sequence,
                 "at": "2026-03-02T01:30:00+00:00", "incident_key": "acme#7",
                 "incident": incident},
        attempts=1, created_at=datetime(2026, 3, 2, 1, 30, tzinfo=UTC),
    )


def send(config: WebhookSinkConfig, outgoing: OutboxMessage) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient() as client:
            await WebhookSink(config, client).send(outgoing)
    asyncio.run(scenario())


def config_for(receiver: HttpReceiver, tmp_path: Path) -> WebhookSinkConfig:
    key = secret_file(tmp_path, "hook.key", WEBHOOK_SECRET)
    return WebhookSinkConfig(type="webhook", name="desk-hook", url=f"{receiver.url}/hook",
                             secret_file=key)


def test_the_body_is_signed_with_an_hmac_the_receiver_can_recompute(
    receiver: HttpReceiver, tmp_path: Path,
) -> None:
    send(config_for(receiver, tmp_path), message())
    (received,) = receiver.requests
    expected = hmac.new(WEBHOOK_SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    assert received.headers["x-daybreak-signature"] == f"sha256={expected}"
    assert received.headers["idempotency-key"] == "ab" * 32
    assert received.headers["x-daybreak-event"] == "opened"
    assert received.headers["content-type"] == "application/json"
    assert (received.method, received.path) == ("POST", "/hook")


def test_the_body_carries_event_key_and_every_ticket_field(
    receiver: HttpReceiver, tmp_path: Path,
) -> None:
    send(config_for(receiver, tmp_path), message("resolved", 3))
    body = receiver.requests[0].json()
    assert body["event"] == "resolved"
    assert body["sequence"] == 3
    assert body["idempotency_key"] == "ab" * 32
    assert body["incident_key"] == "acme#7"
    assert set(body["incident"]) >= TICKET_FIELDS


def test_a_retry_sends_the_same_bytes(receiver: HttpReceiver, tmp_path: Path) -> None:
    config = config_for(receiver, tmp_path)
    send(config, message())
    send(config, message())
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["x-daybreak-signature"] == second.headers["x-daybreak-signature"]


@pytest.mark.parametrize(("status", "permanent"), [
    (400, True), (401, True), (404, True), (410, True), (408, False), (429, False),
    (500, False), (503, False), (301, False),
])
def test_what_each_answer_means(receiver: HttpReceiver, tmp_path: Path, status: int,
                                permanent: bool) -> None:
    receiver.status = status
    with pytest.raises(SinkError) as raised:
        send(config_for(receiver, tmp_path), message())
    assert raised.value.permanent is permanent
    assert f"HTTP {status}" in raised.value.message


def test_a_secret_file_every_user_may_read_is_refused_and_retried_later(
    receiver: HttpReceiver, tmp_path: Path,
) -> None:
    config = config_for(receiver, tmp_path)
    config.secret_file.chmod(0o644)
    with pytest.raises(SinkError) as raised:
        send(config, message())
    assert raised.value.permanent is False
    assert "chmod 600" in raised.value.message
    assert receiver.requests == []
