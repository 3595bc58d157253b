"""The sink seam: what a sink is handed (an OutboxMessage), what it raises (SinkError).

A sink sends one notification and returns, or raises SinkError. The delivery loop does the rest:
timeouts, retries with backoff, giving up. A sink must be safe to call again with the same
message (the loop delivers at least once: a collector that dies between sending and recording
sends again after its restart), which is what the idempotency key, the Message-ID, the dedup_key
and the remote ticket lookup are for.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

# Secrets are short; a big file named as one is a mistake, not a key.
SECRET_FILE_MAX_BYTES = 64 * 1024


class SinkError(Exception):
    """A notification was not delivered.

    permanent=False (the default): worth trying again later (the receiver is down, timed out,
    said 5xx or 429). permanent=True: the receiver refused this notification for good (4xx, a
    mailbox that does not exist); retrying would only repeat the refusal, so the row goes dead.
    The shape is healthchecks' `TransportError(message, permanent=False)`.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One outbox row as a sink sees it: which event of which incident, and its snapshot."""

    outbox_id: int
    incident_id: int
    customer: str
    sink: str
    event: str  # opened | updated | resolved | escalated
    sequence: int  # 1, 2, 3 ... per incident: the order of its notifications
    idempotency_key: str
    # The incident as it was when the change was committed (docs/sinks.md lists the fields).
    payload: dict[str, Any]
    attempts: int
    created_at: datetime

    @property
    def incident_key(self) -> str:
        """The stable key of the incident in every sink: `acme#123` (subject, dedup_key,
        external ticket key). Incident ids are unique in one store, customers keep them apart
        when several stores feed one desk."""
        return f"{self.customer}#{self.incident_id}"

    @property
    def incident(self) -> dict[str, Any]:
        found: dict[str, Any] = self.payload.get("incident", {})
        return found


class Sink(Protocol):
    """Send one notification, or raise SinkError. Called from the delivery loop's task."""

    async def send(self, message: OutboxMessage) -> None: ...


def read_secret(path: Path, field: str) -> str:
    """A secret from its file, stripped; read at each send so a rotated secret needs no restart.

    A file every user may read is refused (a secret that is not secret): the notification waits
    until the operator fixes the mode, it is not lost.
    """
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IROTH | stat.S_IWOTH):
            raise SinkError(f"{field}: {path} is readable or writable by every user; "
                            f"run `chmod 600 {path}`")
        raw = path.read_bytes()[: SECRET_FILE_MAX_BYTES + 1]
    except OSError as exc:
        raise SinkError(f"{field}: cannot read {path}: {exc.strerror}") from exc
    if len(raw) > SECRET_FILE_MAX_BYTES:
        raise SinkError(f"{field}: {path} is too big to be a secret file")
    secret = raw.decode("utf-8", errors="replace").strip()
    if not secret:
        raise SinkError(f"{field}: {path} is empty")
    return secret
