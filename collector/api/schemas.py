"""The API's JSON shapes: what `/api/v1` returns and what `daybreak ... --json` prints.

These are the documented, stable shapes (docs/api.md): fields are only ever added, never
renamed or removed. Times are ISO 8601 in UTC (`2025-03-04T02:00:00Z`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _assume_utc(value: datetime) -> datetime:
    # The store keeps UTC; SQLite hands it back without an offset.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_assume_utc)]


class _Shape(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class Incident(_Shape):
    """One incident, as listed; `GET /incidents/{id}` adds the evidence and the events."""

    id: int
    customer: str
    # The customer's IANA zone when the collector knows the customer, for display.
    customer_timezone: str | None = None
    host: str
    expectation: str
    subject: str = Field(description="the check key or job the incident is about")
    state: Literal["open", "acknowledged", "resolved"]
    severity: Literal["warning", "critical"]
    title: str
    summary: str
    expected: str
    observed: str
    evidence_source: str = Field(description="where the evidence comes from, e.g. file:offset")
    assignment_group: str = Field(description="service_desk, or tier2 for tier2_only customers")
    runbook: str
    occurrences: int
    opened_at: UtcDateTime
    last_seen_at: UtcDateTime
    first_observed_at: UtcDateTime | None = Field(
        None, description="when the host saw the first occurrence; earlier than opened_at when "
        "its results arrived late")
    resolved_at: UtcDateTime | None
    resolution: str
    # The customer's contract (issue 5). Due times are counted in the customer's service hours.
    priority: str = Field("", description="the customer's level for this incident, e.g. P2")
    respond_by: UtcDateTime | None = Field(None, description="acknowledge by then, or it escalates")
    resolve_by: UtcDateTime | None = None
    acknowledged_at: UtcDateTime | None = None
    acknowledged_by: str | None = None
    escalated_at: UtcDateTime | None = None
    escalation_level: int = Field(0, description="0, or how far down the escalation list")
    recovered_at: UtcDateTime | None = Field(
        None, description="recovery: mark_recovered: the problem went away; the desk resolves")


class RelatedIncident(_Shape):
    """Another incident of the same customer on the same host or about the same subject."""

    id: int
    state: Literal["open", "acknowledged", "resolved"]
    severity: Literal["warning", "critical"]
    title: str
    host: str
    subject: str
    opened_at: UtcDateTime
    resolved_at: UtcDateTime | None


class IncidentEvent(_Shape):
    at: UtcDateTime
    kind: str = Field(description="opened | severity | resolved (later: acknowledged, ...)")
    actor: str
    note: str


class IncidentDetail(Incident):
    evidence: str = Field(description="the log excerpt or probe detail, capped at 16 KiB")
    events: list[IncidentEvent]
    related: list[RelatedIncident] = Field(
        default_factory=list,
        description="same host or subject, opened in the 30 days before (or since), newest "
                    "first, at most 20")


class IncidentList(_Shape):
    incidents: list[Incident]
    # True when more incidents matched than `limit`; the newest are returned.
    truncated: bool


class Agent(_Shape):
    agent_id: str
    customer: str
    host: str
    version: str
    connected: bool
    last_seen_at: UtcDateTime | None
    spool_depth: int
    results_dropped: int


class AgentList(_Shape):
    agents: list[Agent]


class Health(_Shape):
    status: Literal["ok"]


class ReloadOutcome(_Shape):
    message: str


class Problem(_Shape):
    """Every error: FastAPI's shape, a status code and `{"detail": ...}`."""

    detail: str
