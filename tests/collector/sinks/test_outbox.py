"""The outbox: rows written with the incident change, which changes notify, claims and order."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector.outbox import claim_due, idempotency_key, mark_delivered
from collector.store.schema import incidents, outbox

from .conftest import Store, customer_with_sinks, disk, secret_file

TWO_SINKS = """\
sinks:
  - {type: webhook, name: desk-hook, url: "http://127.0.0.1:9/hook", secret_file: hook.key}
  - type: email
    name: desk-mail
    host: 127.0.0.1
    from_address: daybreak@collector.example
    to: [desk@acme.example]
    events: [opened, resolved]
"""


@pytest.fixture
def acme(store: Store, tmp_path: Path) -> Store:
    secret_file(tmp_path, "hook.key", "k" * 32)
    store.use(customer_with_sinks(tmp_path, TWO_SINKS))
    return store


def test_an_opened_incident_has_one_pending_row_per_sink_written_with_it(acme: Store) -> None:
    acme.feed(95)
    rows = acme.rows()
    assert [(r.sink, r.event, r.sequence, r.state) for r in rows] == [
        ("desk-hook", "opened", 1, "pending"), ("desk-mail", "opened", 1, "pending")]
    with acme.engine.connect() as conn:
        incident_id = conn.execute(sa.select(incidents.c.id)).scalar_one()
    assert {r.incident_id for r in rows} == {incident_id}
    assert rows[0].idempotency_key == rows[1].idempotency_key == hashlib.sha256(
        f"acme/{incident_id}/opened/1".encode()).hexdigest()


def test_a_rolled_back_incident_change_leaves_no_notification(acme: Store) -> None:
    engine = acme.incident_engine
    assert engine is not None

    def judge_then_fail(conn: sa.Connection) -> None:
        engine.on_items(conn, "agent-1", "acme", "web1", [disk(95, acme.clock.now())])
        raise RuntimeError("the batch failed after the incident was written")

    with pytest.raises(RuntimeError):
        acme.writer.submit(judge_then_fail).result(10)
    engine.invalidate()
    with acme.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(incidents)).scalar() == 0
    assert acme.rows() == []


def test_a_plain_repeat_does_not_notify_an_upgrade_and_the_resolution_do(acme: Store) -> None:
    acme.feed(85)   # opened, warning
    acme.feed(86)   # repeat: nothing to say
    acme.feed(87)   # repeat
    acme.feed(95)   # upgraded to critical
    acme.feed(50)   # resolved
    hook_rows = [r for r in acme.rows() if r.sink == "desk-hook"]
    assert [(r.event, r.sequence) for r in hook_rows] == [
        ("opened", 1), ("updated", 2), ("resolved", 3)]
    assert len({r.idempotency_key for r in hook_rows}) == 3
    # The mail sink asked for opened and resolved only.
    assert [(r.event, r.sequence) for r in acme.rows() if r.sink == "desk-mail"] == [
        ("opened", 1), ("resolved", 3)]


def test_each_payload_is_the_incident_as_it_was_at_that_moment(acme: Store) -> None:
    acme.feed(85)
    acme.clock.advance(60)
    acme.feed(86)
    acme.feed(95)
    acme.clock.advance(60)
    acme.feed(50)
    payloads = [json.loads(r.payload) for r in acme.rows() if r.sink == "desk-hook"]
    opened, updated, resolved = (p["incident"] for p in payloads)
    assert (opened["state"], opened["severity"], opened["occurrences"]) == ("open", "warning", 1)
    assert (updated["state"], updated["severity"], updated["occurrences"]) == \
        ("open", "critical", 3)
    assert resolved["state"] == "resolved"
    assert resolved["resolved_at"] == "2026-03-02T01:32:00+00:00"
    assert opened["customer_name"] == "ACME Logistics"
    assert opened["customer_timezone"] == "Europe/Berlin"
    assert opened["runbook"] == "https://wiki.example/acme/disk-full"
    assert payloads[1]["change"] == "upgraded"
    assert payloads[0]["incident_key"] == f"acme#{opened['id']}"


def test_a_customer_without_sinks_gets_no_rows(store: Store, tmp_path: Path) -> None:
    store.use(customer_with_sinks(tmp_path, ""))
    store.feed(95)
    store.feed(50)
    assert store.rows() == []


def test_a_claimed_row_is_not_claimed_again_until_its_lease_ends(acme: Store) -> None:
    acme.feed(95)
    now = acme.clock.now()
    lease = timedelta(minutes=5)
    with acme.engine.begin() as conn:
        first = claim_due(conn, now, limit=10, lease=lease)
        again = claim_due(conn, now + timedelta(minutes=4), limit=10, lease=lease)
        after_lease = claim_due(conn, now + lease, limit=10, lease=lease)
    assert [m.attempts for m in first] == [1, 1]
    assert again == []
    assert [m.attempts for m in after_lease] == [2, 2]


def test_a_later_event_waits_while_an_earlier_one_to_the_same_sink_is_pending(
    acme: Store,
) -> None:
    acme.feed(95)
    acme.feed(50)
    now = acme.clock.now()
    with acme.engine.begin() as conn:
        claimed = claim_due(conn, now, limit=10, lease=timedelta(0))
        assert {(m.sink, m.event) for m in claimed} == {
            ("desk-hook", "opened"), ("desk-mail", "opened")}
        for message in claimed:
            if message.sink == "desk-hook":
                mark_delivered(conn, message.outbox_id, now)
        claimed = claim_due(conn, now, limit=10, lease=timedelta(0))
    # The hook's opened is delivered, so its resolved may go; the mail's opened is pending.
    assert {(m.sink, m.event) for m in claimed} == {
        ("desk-hook", "resolved"), ("desk-mail", "opened")}


def test_the_idempotency_key_depends_on_customer_incident_event_and_sequence() -> None:
    keys = {idempotency_key("acme", 1, "opened", 1), idempotency_key("acme", 1, "updated", 2),
            idempotency_key("acme", 2, "opened", 1), idempotency_key("globex", 1, "opened", 1)}
    assert len(keys) == 4
    assert idempotency_key("acme", 1, "opened", 1) == idempotency_key("acme", 1, "opened", 1)


def test_delivered_rows_stay_as_the_record_of_what_was_sent(acme: Store) -> None:
    acme.feed(95)
    now = acme.clock.now()
    with acme.engine.begin() as conn:
        for message in claim_due(conn, now, limit=10, lease=timedelta(0)):
            mark_delivered(conn, message.outbox_id, now)
        states = conn.execute(sa.select(outbox.c.state, outbox.c.attempts)).all()
    assert sorted(states) == [("delivered", 1), ("delivered", 1)]
