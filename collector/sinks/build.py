"""From a sink's configuration to a sink that sends: the one place that knows every type.

`SinkFactory` owns what sinks share: one HTTP connection pool (httpx, so sends to one receiver
reuse connections) and the remote ticket id table. Sinks are built per notification, cheaply,
from the customer set in force, so a reload changes a URL or address for the next send.
"""

from __future__ import annotations

import httpx

from collector.sinks.base import Sink
from collector.sinks.config import (
    EmailSinkConfig,
    PagerDutySinkConfig,
    RestTicketSinkConfig,
    SinkConfig,
    WebhookSinkConfig,
)
from collector.sinks.email import EmailSink
from collector.sinks.pagerduty import PagerDutySink
from collector.sinks.rest_ticket import RestTicketAdapter
from collector.sinks.ticket_ids import RemoteTicketIds
from collector.sinks.ticketing import TicketSink
from collector.sinks.webhook import WebhookSink
from collector.store.writer import StoreWriter
from probes.clock import Clock

# Receivers are few (a desk's webhook, a mail relay, a ticketing system); a small pool suffices.
HTTP_MAX_CONNECTIONS = 20


class SinkFactory:
    def __init__(self, writer: StoreWriter, clock: Clock) -> None:
        # follow_redirects stays off: a signed body is not chased to wherever a 3xx points.
        self._http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=HTTP_MAX_CONNECTIONS),
            follow_redirects=False,
        )
        self._ticket_ids = RemoteTicketIds(writer, clock)

    def build(self, config: SinkConfig) -> Sink:
        if isinstance(config, WebhookSinkConfig):
            return WebhookSink(config, self._http)
        if isinstance(config, EmailSinkConfig):
            return EmailSink(config)
        if isinstance(config, PagerDutySinkConfig):
            return PagerDutySink(config, self._http)
        if isinstance(config, RestTicketSinkConfig):
            return TicketSink(config.name, RestTicketAdapter(config, self._http),
                              self._ticket_ids)
        raise TypeError(f"no sink for {type(config).__name__}")  # a new type without a line here

    async def aclose(self) -> None:
        await self._http.aclose()
