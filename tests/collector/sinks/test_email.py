"""The e-mail sink against a real SMTP server (aiosmtpd on 127.0.0.1): one thread per incident."""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path

from collector.sinks.build import SinkFactory
from collector.sinks.delivery import DeliveryRound, OutboxDelivery, RetryPolicy

from .conftest import SmtpServer, Store, customer_with_sinks


def mail_sink(port: int, to: str = "desk@acme.example") -> str:
    return f"""\
sinks:
  - type: email
    name: desk-mail
    host: 127.0.0.1
    port: {port}
    from_address: daybreak@collector.example
    to: ["{to}"]
    timeout_s: 5
"""


def deliver(store: Store, *, steps: int = 1) -> list[DeliveryRound]:
    async def scenario() -> list[DeliveryRound]:
        factory = SinkFactory(store.writer, store.clock)
        delivery = OutboxDelivery(store.writer, store.clock, lambda: store.customers,
                                  factory.build, policy=RetryPolicy(),
                                  rng=random.Random(3))  # noqa: S311 - test jitter
        done = []
        for _ in range(steps):
            done.append(await delivery.deliver_due())
            store.clock.advance(3600)
        await factory.aclose()
        return done
    return asyncio.run(scenario())


def test_opened_updated_resolved_make_one_thread(
    store: Store, tmp_path: Path, smtp_server: SmtpServer,
) -> None:
    store.use(customer_with_sinks(tmp_path, mail_sink(smtp_server.port)))
    store.feed(85)   # opened
    store.feed(95)   # upgraded: updated
    store.feed(50)   # resolved
    deliver(store, steps=3)  # one event per round: each waits for the one before it

    opened, updated, resolved = smtp_server.messages
    incident_id = store.rows()[0].incident_id
    root = f"<incident-{incident_id}-opened-1@collector.example>"
    assert opened["Message-ID"] == root
    assert opened["In-Reply-To"] is None
    assert updated["Message-ID"] == f"<incident-{incident_id}-updated-2@collector.example>"
    assert resolved["Message-ID"] == f"<incident-{incident_id}-resolved-3@collector.example>"
    for reply in (updated, resolved):
        assert reply["In-Reply-To"] == root
        assert reply["References"] == root
    key = f"[DAYBREAK acme#{incident_id}]"
    assert opened["Subject"].startswith(f"{key} OPENED WARNING: ")
    assert updated["Subject"].startswith(f"{key} UPDATED CRITICAL: ")
    assert resolved["Subject"].startswith(f"{key} RESOLVED CRITICAL: ")
    assert opened["Subject"].endswith("(web1)")
    assert all(m["Auto-Submitted"] == "auto-generated" for m in smtp_server.messages)
    assert smtp_server.envelopes[0] == ("daybreak@collector.example", ["desk@acme.example"])


def test_the_body_reads_like_a_ticket_in_the_customers_time(
    store: Store, tmp_path: Path, smtp_server: SmtpServer,
) -> None:
    store.use(customer_with_sinks(tmp_path, mail_sink(smtp_server.port)))
    store.feed(95)
    deliver(store)
    body = smtp_server.messages[0].get_content()
    assert "Customer:     ACME Logistics (acme)" in body
    assert "Host:         web1" in body
    assert "Severity:     critical" in body
    # 01:30 UTC on 2 March is 02:30 in Berlin (CET).
    assert "Opened:       2026-03-02 02:30 CET (01:30 UTC)" in body
    assert "Runbook: https://wiki.example/acme/disk-full" in body


def test_a_mail_server_that_is_down_delays_the_mail(store: Store, tmp_path: Path) -> None:
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        store.use(customer_with_sinks(tmp_path, mail_sink(reserved.getsockname()[1])))
        store.feed(95)
        (done,) = deliver(store)
    assert done.retried
    assert store.rows()[0].state == "pending"


def test_a_mailbox_that_does_not_exist_is_a_permanent_refusal(
    store: Store, tmp_path: Path, smtp_server: SmtpServer,
) -> None:
    smtp_server.refused_recipients.add("nobody@acme.example")
    store.use(customer_with_sinks(tmp_path, mail_sink(smtp_server.port, "nobody@acme.example")))
    store.feed(95)
    (done,) = deliver(store)
    assert done.dead
    row = store.rows()[0]
    assert row.state == "dead"
    assert "550" in row.last_error
