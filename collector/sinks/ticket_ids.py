"""The remote ticket id of each (incident, ticket sink): table `sink_tickets`.

Reads and writes both go through the store writer: a ticket sink asks once per notification,
and the writer's thread keeps every store access of the collector in one place.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from collector.store.schema import sink_tickets
from collector.store.writer import StoreWriter
from probes.clock import Clock


def remote_ticket_id(conn: sa.Connection, incident_id: int, sink: str) -> str | None:
    found: str | None = conn.execute(
        sa.select(sink_tickets.c.remote_id)
        .where(sink_tickets.c.incident_id == incident_id, sink_tickets.c.sink == sink)
    ).scalar_one_or_none()
    return found


def remember_remote_ticket(conn: sa.Connection, incident_id: int, sink: str, remote_id: str,
                           at: datetime) -> None:
    # A second put for the same pair (two collectors raced on PostgreSQL) keeps the first id:
    # both found or created the same ticket, looked up by the same key.
    if remote_ticket_id(conn, incident_id, sink) is None:
        conn.execute(sink_tickets.insert().values(
            incident_id=incident_id, sink=sink, remote_id=remote_id, created_at=at,
        ))


class RemoteTicketIds:
    def __init__(self, writer: StoreWriter, clock: Clock) -> None:
        self._writer = writer
        self._clock = clock

    async def get(self, incident_id: int, sink: str) -> str | None:
        return await self._writer.run(lambda conn: remote_ticket_id(conn, incident_id, sink))

    async def put(self, incident_id: int, sink: str, remote_id: str) -> None:
        at = self._clock.now().astimezone(UTC)
        await self._writer.run(
            lambda conn: remember_remote_ticket(conn, incident_id, sink, remote_id, at))
