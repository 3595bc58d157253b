"""Ticketing systems without idempotency: never open a second ticket for one incident.

A webhook receiver can deduplicate by our Idempotency-Key; most ticketing APIs cannot: a create
whose answer was lost (the system committed the ticket, then the connection dropped) looks like
a failure, and a blind retry opens a duplicate. So a ticket sink works in three steps:

1. the remote ticket id we stored for (incident, sink) answers "is there a ticket?";
2. without one, the adapter looks the ticket up by our stable key (`acme#123`, stored in the
   ticket when it was created) before creating it: this is what catches the lost answer;
3. the id is stored (`sink_tickets`), and later events update or resolve that ticket.

An adapter only speaks its system's API; this module owns the order of the steps.
"""

from __future__ import annotations

from typing import Protocol

from collector.sinks.base import OutboxMessage
from collector.sinks.ticket_ids import RemoteTicketIds


class TicketAdapter(Protocol):
    """One ticketing system's API. Each call raises SinkError when it did not work."""

    async def find(self, external_key: str) -> str | None:
        """The remote id of the ticket created with external_key, or None."""
        ...

    async def create(self, external_key: str, message: OutboxMessage) -> str:
        """Open a ticket that carries external_key (so find() sees it); returns its id."""
        ...

    async def update(self, remote_id: str, message: OutboxMessage) -> None:
        """Bring the ticket up to the incident's snapshot (severity, occurrences, state)."""
        ...

    async def resolve(self, remote_id: str, message: OutboxMessage) -> None: ...


class TicketSink:
    def __init__(self, sink_name: str, adapter: TicketAdapter, ids: RemoteTicketIds) -> None:
        self._sink_name = sink_name
        self._adapter = adapter
        self._ids = ids

    async def send(self, message: OutboxMessage) -> None:
        remote_id = await self._ids.get(message.incident_id, self._sink_name)
        created = False
        if remote_id is None:
            remote_id = await self._adapter.find(message.incident_key)
            if remote_id is None:
                remote_id = await self._adapter.create(message.incident_key, message)
                created = True
            # Lost if the collector stops right here: the next attempt finds the ticket by key.
            await self._ids.put(message.incident_id, self._sink_name, remote_id)
        if message.event == "resolved":
            await self._adapter.resolve(remote_id, message)
        elif not created:
            await self._adapter.update(remote_id, message)
