"""The generic REST ticket adapter: the smallest API a ticketing system needs for Daybreak.

    GET   {base_url}/tickets?external_key=acme%23123  -> 200 [{"id": "T-17", ...}] (or [])
    POST  {base_url}/tickets                          -> 2xx {"id": "T-17", ...}
    PATCH {base_url}/tickets/{id}                     -> 2xx

The POST and PATCH bodies are documented in docs/sinks.md: `external_key`, `title`,
`description` (the plain-text ticket, as the e-mail sink writes it), `severity`, `state`,
`assignment_group`, `resolution` and the whole `incident` snapshot. Every request carries
`Authorization: Bearer <token_file>` when a token file is configured.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

from collector.sinks.base import OutboxMessage, SinkError, read_secret
from collector.sinks.config import RestTicketSinkConfig
from collector.sinks.email import body_text
from collector.sinks.http_delivery import json_of, raise_for_delivery, request


def ticket_fields(message: OutboxMessage) -> dict[str, Any]:
    incident = message.incident
    return {
        "title": f"[{message.incident_key}] {incident.get('title', '')}",
        "description": body_text(message),
        "severity": incident.get("severity", ""),
        "state": "resolved" if message.event == "resolved" else incident.get("state", "open"),
        "assignment_group": incident.get("assignment_group", ""),
        "resolution": incident.get("resolution", ""),
        "incident": incident,
    }


class RestTicketAdapter:
    def __init__(self, config: RestTicketSinkConfig, client: httpx.AsyncClient) -> None:
        self._config = config
        self._client = client
        self._tickets_url = config.base_url.rstrip("/") + "/tickets"
        self._what = f"rest_ticket {config.name}"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._config.token_file is not None:
            token = read_secret(self._config.token_file, "token_file")
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def _call(self, method: str, url: str, *, body: dict[str, Any] | None = None,
                    params: dict[str, str] | None = None) -> httpx.Response:
        content = json.dumps(body).encode("utf-8") if body is not None else None
        response = await request(
            self._client, method, url, what=f"{self._what}: {method}", content=content,
            params=params, headers=self._headers(), timeout_s=self._config.timeout_s,
        )
        raise_for_delivery(response, f"{self._what}: {method} {url}")
        return response

    async def find(self, external_key: str) -> str | None:
        response = await self._call("GET", self._tickets_url,
                                    params={"external_key": external_key})
        found = json_of(response, self._what)
        if isinstance(found, dict):
            found = found.get("tickets", [])
        if not isinstance(found, list):
            raise SinkError(f"{self._what}: GET /tickets answered no list")
        for ticket in found:
            if isinstance(ticket, dict) and ticket.get("id") is not None:
                return str(ticket["id"])
        return None

    async def create(self, external_key: str, message: OutboxMessage) -> str:
        body = {"external_key": external_key, **ticket_fields(message)}
        created = json_of(await self._call("POST", self._tickets_url, body=body), self._what)
        if not isinstance(created, dict) or created.get("id") is None:
            # Retrying would create a second ticket; find() will see the first next time.
            raise SinkError(f"{self._what}: POST /tickets answered without an id")
        return str(created["id"])

    async def update(self, remote_id: str, message: OutboxMessage) -> None:
        await self._call("PATCH", self._ticket_url(remote_id), body=ticket_fields(message))

    async def resolve(self, remote_id: str, message: OutboxMessage) -> None:
        await self._call("PATCH", self._ticket_url(remote_id), body=ticket_fields(message))

    def _ticket_url(self, remote_id: str) -> str:
        return f"{self._tickets_url}/{quote(remote_id, safe='')}"
