"""The outbox: notifications owed to sinks, as rows committed with the incident change itself.

`enqueue()` runs in the transaction that opens, upgrades, resolves or escalates an incident,
so a committed incident always has its notifications and a rolled-back one never does: no
"incident in the store, webhook never sent" after a crash, no webhook for an incident that does
not exist. One row per (incident, event, sink) carries a JSON snapshot of the incident as it was
at that moment, so a notification sent an hour late (the sink was down) still says what was
true then, in order.

Which changes notify: opened (and reopened), upgraded (severity rose), acknowledged, marked
recovered, resolved, escalated, flapping ended. A plain repeat (one more occurrence) does not:
a disk that stays full for a week would otherwise page ten thousand times; the next
notification carries the occurrence count. A change kind not in NOTIFYING_CHANGES is not sent.

The delivery side (collector/sinks/delivery.py) claims due rows with a conditional UPDATE,
exactly one worker wins a row, and records the outcome here: delivered, rescheduled, dead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
import structlog

from collector.customers import CustomerFile
from collector.incidents.lifecycle import IncidentChange
from collector.sinks.base import OutboxMessage
from collector.store.schema import incidents, outbox

# Change kind (IncidentChange.kind.value) -> the event sinks see. Kinds are matched by value so
# that kinds added to the lifecycle later notify as soon as they exist, without an edit here.
# "suppressed" (a maintenance window: nothing was opened) is deliberately absent.
NOTIFYING_CHANGES: Mapping[str, str] = MappingProxyType({
    "opened": "opened",
    "reopened": "opened",
    "upgraded": "updated",
    "acknowledged": "updated",
    "recovered": "updated",  # the problem went away; the customer file wants a person to resolve
    "flapping_ended": "updated",
    "resolved": "resolved",
    "escalated": "escalated",
})

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
STATES = (PENDING, DELIVERED, DEAD)

def _utc(moment: datetime) -> datetime:
    # SQLite drops the offset when storing and hands back naive times: they are UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def idempotency_key(customer: str, incident_id: int, event: str, sequence: int) -> str:
    """The same for every attempt of one notification, also after a restart; different for
    every notification (the sequence), so a receiver that dedupes by it drops only repeats."""
    return hashlib.sha256(f"{customer}/{incident_id}/{event}/{sequence}".encode()).hexdigest()


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def incident_snapshot(conn: sa.Connection, incident_id: int,
                      customer: CustomerFile | None = None) -> dict[str, Any]:
    """Every column of the incident (columns later issues add come along by themselves), with
    times as ISO 8601 UTC, plus the customer's display name and timezone."""
    row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).one()
    snapshot = {key: _json_value(value) for key, value in row._mapping.items()}
    if customer is not None:
        snapshot["customer_name"] = customer.name
        snapshot["customer_timezone"] = customer.timezone
    return snapshot


def enqueue(conn: sa.Connection, change: IncidentChange, customer: CustomerFile,
            now: datetime) -> int:
    """Add the notifications change owes to customer's sinks; returns how many rows.

    Call it in the transaction that made the change. Writes through conn, never commits.
    """
    event = NOTIFYING_CHANGES.get(change.kind.value)
    if event is None:
        return 0
    return enqueue_event(conn, change.incident_id, event, customer, now,
                         change=change.kind.value)


def enqueue_event(conn: sa.Connection, incident_id: int, event: str, customer: CustomerFile,
                  now: datetime, *, change: str = "") -> int:
    """The rows for one event of one incident, one per sink that wants it."""
    sinks = [sink for sink in customer.sinks if sink.wants(event)]
    if not sinks:
        return 0
    now = _utc(now)
    sequence = int(conn.execute(
        sa.select(sa.func.coalesce(sa.func.max(outbox.c.sequence), 0) + 1)
        .where(outbox.c.incident_id == incident_id)
    ).scalar_one())
    key = idempotency_key(customer.customer, incident_id, event, sequence)
    payload = json.dumps({
        "event": event,
        "change": change or event,
        "sequence": sequence,
        "at": now.isoformat(),
        "incident_key": f"{customer.customer}#{incident_id}",
        "incident": incident_snapshot(conn, incident_id, customer),
    }, sort_keys=True)
    conn.execute(outbox.insert(), [
        {
            "incident_id": incident_id, "customer": customer.customer, "sink": sink.name,
            "event": event, "sequence": sequence, "idempotency_key": key, "payload": payload,
            "state": PENDING, "attempts": 0, "created_at": now, "next_attempt_at": now,
        }
        for sink in sinks
    ])
    return len(sinks)


def _message(row: sa.Row[Any], attempts: int) -> OutboxMessage:
    return OutboxMessage(
        outbox_id=row.id, incident_id=row.incident_id, customer=row.customer, sink=row.sink,
        event=row.event, sequence=row.sequence, idempotency_key=row.idempotency_key,
        payload=json.loads(row.payload), attempts=attempts, created_at=_utc(row.created_at),
    )


def claim_due(conn: sa.Connection, now: datetime, *, limit: int,
              lease: timedelta) -> list[OutboxMessage]:
    """Claim up to limit due rows, earliest first, for one delivery round.

    A claim counts the attempt and moves next_attempt_at a lease ahead: if this collector dies
    while sending, the row is due again when the lease ends and another round (here or in
    another collector) sends it again; the idempotency key makes that harmless.

    A row waits while an earlier notification of the same incident to the same sink is still
    pending, so a sink never hears "resolved" before "opened". A dead row does not block.
    """
    now = _utc(now)
    earlier = outbox.alias("earlier")
    earlier_pending = (
        sa.select(earlier.c.id)
        .where(earlier.c.incident_id == outbox.c.incident_id, earlier.c.sink == outbox.c.sink,
               earlier.c.state == PENDING, earlier.c.sequence < outbox.c.sequence)
        .exists()
    )
    due = conn.execute(
        sa.select(outbox)
        .where(outbox.c.state == PENDING, outbox.c.next_attempt_at <= now, ~earlier_pending)
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
    ).all()
    claimed: list[OutboxMessage] = []
    for row in due:
        # Conditional on what we read (healthchecks' sendalerts): with several collectors on
        # one PostgreSQL, two may read the same due row; exactly one update matches.
        taken = conn.execute(
            outbox.update()
            .where(outbox.c.id == row.id, outbox.c.state == PENDING,
                   outbox.c.next_attempt_at == row.next_attempt_at,
                   outbox.c.attempts == row.attempts)
            .values(attempts=row.attempts + 1, next_attempt_at=now + lease)
        ).rowcount
        if taken != 1:
            structlog.get_logger("collector.outbox").info("outbox.claim_lost", outbox_id=row.id,
                      reason="another worker got there first")
            continue
        claimed.append(_message(row, row.attempts + 1))
    return claimed


def mark_delivered(conn: sa.Connection, outbox_id: int, now: datetime) -> None:
    conn.execute(outbox.update().where(outbox.c.id == outbox_id, outbox.c.state == PENDING)
                 .values(state=DELIVERED, delivered_at=_utc(now), last_error=""))


def reschedule(conn: sa.Connection, outbox_id: int, next_attempt_at: datetime,
               error: str) -> None:
    conn.execute(outbox.update().where(outbox.c.id == outbox_id, outbox.c.state == PENDING)
                 .values(next_attempt_at=_utc(next_attempt_at), last_error=error))


def mark_dead(conn: sa.Connection, outbox_id: int, error: str) -> None:
    conn.execute(outbox.update().where(outbox.c.id == outbox_id, outbox.c.state == PENDING)
                 .values(state=DEAD, last_error=error))


def outbox_rows(conn: sa.Connection, *, state: str | None, customer_filter: sa.ColumnElement[bool],
                limit: int) -> Sequence[sa.Row[Any]]:
    """Rows for the API, newest first; the payload stays in the store (it may be large)."""
    columns = [column for column in outbox.c if column.name != "payload"]
    query = sa.select(*columns).where(customer_filter)
    if state is not None:
        query = query.where(outbox.c.state == state)
    return conn.execute(query.order_by(outbox.c.id.desc()).limit(limit)).all()
