"""PagerDuty Events API v2 (developer.pagerduty.com, "Send an Alert Event"): one alert per
incident, keyed by our stable `dedup_key`.

    POST https://events.pagerduty.com/v2/enqueue
    {"routing_key": "...", "event_action": "trigger" | "acknowledge" | "resolve",
     "dedup_key": "acme#123",
     "payload": {"summary": ..., "source": host, "severity": "critical" | "warning",
                 "timestamp": ..., "component": check or job, "group": customer,
                 "class": expectation, "custom_details": {the incident snapshot}},
     "links": [{"href": runbook, "text": "Runbook"}], "client": "Daybreak"}

PagerDuty deduplicates by dedup_key itself: a trigger for an alert that is already open adds to
it rather than opening another, so a retry after a lost answer is harmless and no lookup is
needed. An answer of 202 is accepted; 400 (an invalid event) is permanent; 429 and 5xx are
retried, as its documentation asks.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from collector.sinks.base import OutboxMessage, read_secret
from collector.sinks.config import PagerDutySinkConfig
from collector.sinks.http_delivery import raise_for_delivery, request

# Limits from the Events API v2 reference.
SUMMARY_MAX_CHARS = 1024
DEDUP_KEY_MAX_CHARS = 255
_SEVERITIES = {"critical": "critical", "warning": "warning"}


def event_action(message: OutboxMessage) -> str:
    if message.event == "resolved":
        return "resolve"
    if message.event == "updated" and message.incident.get("state") == "acknowledged":
        return "acknowledge"
    return "trigger"


def pagerduty_event(routing_key: str, message: OutboxMessage) -> dict[str, Any]:
    incident = message.incident
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": event_action(message),
        "dedup_key": message.incident_key[:DEDUP_KEY_MAX_CHARS],
    }
    if event["event_action"] != "trigger":
        return event  # acknowledge and resolve take no payload
    summary = f"[{message.incident_key}] {incident.get('title', '')} ({incident.get('host', '')})"
    event["payload"] = {
        "summary": summary[:SUMMARY_MAX_CHARS],
        "source": incident.get("host") or message.customer,
        "severity": _SEVERITIES.get(str(incident.get("severity")), "error"),
        "timestamp": message.created_at.isoformat(),
        "component": incident.get("subject", ""),
        "group": message.customer,
        "class": incident.get("expectation", ""),
        "custom_details": incident,
    }
    event["client"] = "Daybreak"
    runbook = str(incident.get("runbook") or "")
    if runbook.startswith(("https://", "http://")):
        event["links"] = [{"href": runbook, "text": "Runbook"}]
    return event


class PagerDutySink:
    def __init__(self, config: PagerDutySinkConfig, client: httpx.AsyncClient) -> None:
        self._config = config
        self._client = client

    async def send(self, message: OutboxMessage) -> None:
        config = self._config
        routing_key = read_secret(config.routing_key_file, "routing_key_file")
        body = json.dumps(pagerduty_event(routing_key, message)).encode("utf-8")
        what = f"pagerduty {config.name}"
        response = await request(
            self._client, "POST", config.url, what=what, timeout_s=config.timeout_s,
            content=body, headers={"Content-Type": "application/json"},
        )
        raise_for_delivery(response, what)
