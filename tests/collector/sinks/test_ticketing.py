"""Ticket sinks against real HTTP receivers: the REST adapter never duplicates a ticket, even
when an answer is lost; PagerDuty gets Events v2 with our stable dedup_key."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import sqlalchemy as sa

from collector.sinks.build import SinkFactory
from collector.sinks.delivery import DeliveryRound, OutboxDelivery, RetryPolicy
from collector.store.schema import sink_tickets

from .conftest import HttpReceiver, Store, TicketSystem, customer_with_sinks, secret_file

ROUTING_KEY = "R0UT1NGKEY0123456789abcdef012345"


def deliver(store: Store, rounds: int) -> list[DeliveryRound]:
    """Rounds an hour apart: every retry is due by the next round."""
    async def scenario() -> list[DeliveryRound]:
        factory = SinkFactory(store.writer, store.clock)
        delivery = OutboxDelivery(store.writer, store.clock, lambda: store.customers,
                                  factory.build, policy=RetryPolicy(),
                                  rng=random.Random(5))  # noqa: S311 - test jitter
        done = []
        for _ in range(rounds):
            done.append(await delivery.deliver_due())
            store.clock.advance(3600)
        await factory.aclose()
        return done
    return asyncio.run(scenario())


def use_tickets(store: Store, tmp_path: Path, system: TicketSystem) -> None:
    secret_file(tmp_path, "tickets.token", "ticket-token-0123456789")
    store.use(customer_with_sinks(tmp_path, f"""\
sinks:
  - {{type: rest_ticket, name: desk-tickets, base_url: "{system.url}/",
     token_file: tickets.token, timeout_s: 5}}
"""))


def remote_ids(store: Store) -> list[tuple[int, str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(sink_tickets.c.incident_id, sink_tickets.c.sink,
                                      sink_tickets.c.remote_id)).all()
    return [tuple(row) for row in rows]


def test_one_ticket_is_created_then_updated_then_resolved(
    store: Store, tmp_path: Path, ticket_system: TicketSystem,
) -> None:
    use_tickets(store, tmp_path, ticket_system)
    store.feed(85)
    store.feed(95)
    store.feed(50)
    deliver(store, 3)
    (ticket,) = ticket_system.tickets.values()
    incident_id = store.rows()[0].incident_id
    assert ticket["external_key"] == f"acme#{incident_id}"
    assert ticket["state"] == "resolved"
    assert ticket["severity"] == "critical"
    assert ticket["patches"] == 2
    assert "Customer:     ACME Logistics (acme)" in ticket["description"]
    assert remote_ids(store) == [(incident_id, "desk-tickets", "T-1")]
    methods = [(r.method, r.path) for r in ticket_system.requests]
    assert methods == [("GET", "/tickets"), ("POST", "/tickets"),
                       ("PATCH", "/tickets/T-1"), ("PATCH", "/tickets/T-1")]
    assert all(r.headers["authorization"] == "Bearer ticket-token-0123456789"
               for r in ticket_system.requests)


def test_a_failing_ticket_system_is_retried_until_it_answers(
    store: Store, tmp_path: Path, ticket_system: TicketSystem,
) -> None:
    ticket_system.fail_first = 2
    use_tickets(store, tmp_path, ticket_system)
    store.feed(95)
    done = deliver(store, 3)
    assert [bool(r.retried) for r in done] == [True, True, False]
    assert done[2].delivered
    assert len(ticket_system.tickets) == 1
    assert store.rows()[0].attempts == 3


def test_a_create_whose_answer_was_lost_is_found_and_not_duplicated(
    store: Store, tmp_path: Path, ticket_system: TicketSystem,
) -> None:
    ticket_system.drop_after_create = 1  # the system commits T-1, the answer never arrives
    use_tickets(store, tmp_path, ticket_system)
    store.feed(95)
    store.feed(50)
    done = deliver(store, 3)
    assert done[0].retried
    assert len(ticket_system.tickets) == 1
    (ticket,) = ticket_system.tickets.values()
    assert ticket["state"] == "resolved"
    assert [r.method for r in ticket_system.requests] == ["GET", "POST", "GET", "PATCH",
                                                          "PATCH"]
    assert remote_ids(store)[0][2] == "T-1"
    assert {row.state for row in store.rows()} == {"delivered"}


def test_pagerduty_gets_trigger_then_resolve_with_our_dedup_key(
    store: Store, tmp_path: Path, receiver: HttpReceiver,
) -> None:
    receiver.status = 202
    secret_file(tmp_path, "pd.key", ROUTING_KEY)
    store.use(customer_with_sinks(tmp_path, f"""\
sinks:
  - {{type: pagerduty, name: pager, url: "{receiver.url}/v2/enqueue",
     routing_key_file: pd.key}}
"""))
    store.feed(95)
    store.feed(50)
    deliver(store, 2)
    trigger, resolve = (r.json() for r in receiver.requests)
    incident_id = store.rows()[0].incident_id
    assert trigger["routing_key"] == ROUTING_KEY
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == f"acme#{incident_id}"
    payload = trigger["payload"]
    assert payload["severity"] == "critical"
    assert payload["source"] == "web1"
    assert payload["group"] == "acme"
    assert payload["class"] == "disk-space"
    assert payload["component"] == "disk:/data"
    assert payload["summary"].startswith(f"[acme#{incident_id}] ")
    assert payload["custom_details"]["occurrences"] == 1
    assert trigger["links"] == [{"href": "https://wiki.example/acme/disk-full",
                                 "text": "Runbook"}]
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve",
                       "dedup_key": f"acme#{incident_id}"}


def test_pagerduty_refusing_an_event_as_invalid_is_permanent(
    store: Store, tmp_path: Path, receiver: HttpReceiver,
) -> None:
    receiver.status = 400
    secret_file(tmp_path, "pd.key", ROUTING_KEY)
    store.use(customer_with_sinks(tmp_path, f"""\
sinks:
  - {{type: pagerduty, name: pager, url: "{receiver.url}/v2/enqueue",
     routing_key_file: pd.key}}
"""))
    store.feed(95)
    assert deliver(store, 1)[0].dead
