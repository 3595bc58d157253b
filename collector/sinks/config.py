"""The `sinks:` of a customer file: where that customer's incidents are sent, one model per type.

    sinks:
      - type: webhook
        name: desk-webhook
        url: https://desk.example/hooks/daybreak
        secret_file: /etc/daybreak/secrets/acme-webhook.key
      - type: email
        name: desk-mail
        host: smtp.example
        from_address: daybreak@collector.example
        to: [desk@example.com]

Secrets are never in YAML: a sink names a `*_file` (relative paths are relative to the customer
file), read when a notification is sent, so a rotated secret needs no restart and `daybreak check`
works on a machine that does not hold it. Validation never touches the network or the files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from probes.configfile import relative_to_config

# Sink names are stored with every outbox row and appear in the remote ticket table.
SINK_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# A generous upper bound; a sink that takes longer than this is down as far as we care.
MAX_TIMEOUT_S = 120.0
# Address syntax is the mail server's business; this only catches an obvious typo early.
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")

Event = Literal["opened", "updated", "resolved", "escalated"]
ALL_EVENTS: tuple[Event, ...] = ("opened", "updated", "resolved", "escalated")


def _http_url(url: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise ValueError("must start with https:// or http://")
    return url


def _address(address: str) -> str:
    if not _ADDRESS.match(address):
        raise ValueError(f"{address!r} is not an e-mail address (name@domain)")
    return address


HttpUrl = Annotated[str, AfterValidator(_http_url)]
Address = Annotated[str, AfterValidator(_address)]
# A file holding a secret; relative to the customer file it is named in.
SecretFile = Annotated[Path, AfterValidator(relative_to_config)]


class _SinkBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SINK_NAME_PATTERN)
    # Which events this sink gets; all of them unless narrowed (e.g. a pager: opened, resolved).
    events: tuple[Event, ...] = ALL_EVENTS
    timeout_s: float = Field(default=10.0, gt=0, le=MAX_TIMEOUT_S)

    @field_validator("events")
    @classmethod
    def _some_events(cls, events: tuple[Event, ...]) -> tuple[Event, ...]:
        if not events:
            raise ValueError("name at least one event, or remove the sink")
        return events

    def wants(self, event: str) -> bool:
        return event in self.events



class WebhookSinkConfig(_SinkBase):
    """POST the incident as JSON, signed with an HMAC of the body (docs/sinks.md)."""

    type: Literal["webhook"]
    url: HttpUrl
    secret_file: SecretFile



class EmailSinkConfig(_SinkBase):
    """One mail thread per incident to a service-desk mailbox, over SMTP."""

    type: Literal["email"]
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(default=25, ge=1, le=65535)
    # STARTTLS after connecting; without it, only on a trusted network (or 127.0.0.1).
    starttls: bool = False
    username: str | None = None
    password_file: SecretFile | None = None
    from_address: Address
    to: tuple[Address, ...] = Field(min_length=1)
    # The right-hand side of our Message-IDs; the from address's domain unless given.
    message_id_domain: str | None = Field(default=None, pattern=r"^[A-Za-z0-9.-]{1,253}$")


    @field_validator("password_file")
    @classmethod
    def _password_needs_username(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is not None and not info.data.get("username"):
            raise ValueError("a password_file needs a username too")
        return path

    @property
    def domain(self) -> str:
        return self.message_id_domain or self.from_address.rpartition("@")[2]


class PagerDutySinkConfig(_SinkBase):
    """PagerDuty Events API v2: trigger, acknowledge and resolve by our stable dedup_key."""

    type: Literal["pagerduty"]
    url: HttpUrl = "https://events.pagerduty.com/v2/enqueue"
    routing_key_file: SecretFile



class RestTicketSinkConfig(_SinkBase):
    """A ticketing system without idempotency, through the generic REST adapter."""

    type: Literal["rest_ticket"]
    base_url: HttpUrl
    # Sent as `Authorization: Bearer <content>` when given.
    token_file: SecretFile | None = None



def _names_unique(sinks: tuple[SinkConfig, ...]) -> tuple[SinkConfig, ...]:
    seen: set[str] = set()
    for sink in sinks:
        if sink.name in seen:
            # The name keys the outbox rows and the remote ticket ids of that sink.
            raise ValueError(f"two sinks are named {sink.name!r}")
        seen.add(sink.name)
    return sinks


SinkConfig = Annotated[
    WebhookSinkConfig | EmailSinkConfig | PagerDutySinkConfig | RestTicketSinkConfig,
    Field(discriminator="type"),
]
# What `CustomerFile.sinks` is: a list of sinks with distinct names.
SinkList = Annotated[tuple[SinkConfig, ...], AfterValidator(_names_unique)]
