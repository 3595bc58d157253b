"""The webhook sink: POST each notification as JSON, signed, with a stable idempotency key.

The body is `{"idempotency_key": ..., **the outbox payload}` as compact JSON with sorted keys, so
a retry sends the same bytes and the same signature (docs/sinks.md documents every field).
Headers:
- `Idempotency-Key`: the row's key, equal across retries and collector restarts; a receiver
  that has seen it answers 2xx and does nothing (the IETF httpapi idempotency-key draft);
- `X-Daybreak-Signature: sha256=<hex>`: HMAC-SHA256 of the exact body bytes with the secret
  from `secret_file` (the GitHub webhook convention); the receiver recomputes it and compares
  in constant time;
- `X-Daybreak-Event`: opened | updated | resolved | escalated.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from collector.sinks.base import OutboxMessage, read_secret
from collector.sinks.config import WebhookSinkConfig
from collector.sinks.http_delivery import raise_for_delivery, request

SIGNATURE_HEADER = "X-Daybreak-Signature"
USER_AGENT = "daybreak-collector"


def webhook_body(message: OutboxMessage) -> bytes:
    document = {**message.payload, "idempotency_key": message.idempotency_key}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    """The header value a receiver recomputes: `sha256=` and the hex HMAC of the body."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookSink:
    def __init__(self, config: WebhookSinkConfig, client: httpx.AsyncClient) -> None:
        self._config = config
        self._client = client

    async def send(self, message: OutboxMessage) -> None:
        config = self._config
        secret = read_secret(config.secret_file, "secret_file")
        body = webhook_body(message)
        what = f"webhook {config.name}"
        response = await request(
            self._client, "POST", config.url, what=what, timeout_s=config.timeout_s,
            content=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "Idempotency-Key": message.idempotency_key,
                SIGNATURE_HEADER: signature(secret, body),
                "X-Daybreak-Event": message.event,
            },
        )
        raise_for_delivery(response, what)
