"""An incident's life in the store: opened, repeated (occurrences), upgraded, resolved.

One open incident per dedup key (customer/host/expectation/subject): the store's partial unique
index `uq_incidents_open_dedup_key` makes that a rule rather than a hope. Every change goes
through the caller's connection and transaction; nothing here commits, so an incident is
written together with whatever else the caller writes, or not at all.

The events table gets a row when something a person would want in the history happens (opened,
severity changed, resolved), not on every repeat: a disk that stays full for a week would
otherwise add ten thousand rows that say nothing new. The repeat count lives on the incident.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from collector.customers import CustomerFile
from collector.expectations.base import Severity, Verdict
from collector.store.schema import incident_events, incidents
from probes.clock import Clock
from probes.result import EXCERPT_MAX_BYTES, cap_text, one_line

# What one incident may carry as evidence: the agent already caps excerpts at this size, and a
# ticket body bigger than this is not read by anyone anyway.
EVIDENCE_MAX_BYTES = EXCERPT_MAX_BYTES
TEXT_MAX_BYTES = 4096

OPEN_STATES = ("open", "acknowledged")


def dedup_key(customer: str, host: str, expectation: str, subject: str) -> str:
    return f"{customer}/{host}/{expectation}/{subject}"


class ChangeKind(enum.Enum):
    OPENED = "opened"
    REPEATED = "repeated"
    UPGRADED = "upgraded"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class IncidentChange:
    """What happened to which incident: what the engine logs (and issue 5's sinks will send)."""

    incident_id: int
    kind: ChangeKind
    dedup_key: str


def _is_open() -> sa.ColumnElement[bool]:
    # The same expression as the partial unique index's WHERE, so SQLite can use that index.
    return incidents.c.state != "resolved"


class IncidentLifecycle:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def _now(self) -> datetime:
        # SQLite drops the offset when storing: write UTC so reading it back as UTC is right.
        return self._clock.now().astimezone(UTC)

    def open_dedup_keys(self, conn: sa.Connection) -> set[str]:
        rows = conn.execute(sa.select(incidents.c.dedup_key).where(_is_open()))
        return {row.dedup_key for row in rows}

    def record_problem(self, conn: sa.Connection, customer: CustomerFile, host: str,
                       verdict: Verdict) -> IncidentChange:
        """Open an incident for verdict, or count it as one more occurrence of the open one."""
        key = dedup_key(customer.customer, host, verdict.expectation, verdict.subject)
        current = conn.execute(
            sa.select(incidents.c.id, incidents.c.severity, incidents.c.last_occurrence)
            .where(incidents.c.dedup_key == key, _is_open())
        ).first()
        if current is None:
            return self._open(conn, key, customer, host, verdict)
        same_occurrence = bool(verdict.occurrence) and verdict.occurrence == current.last_occurrence
        return self._repeat(conn, key, current.id, Severity(current.severity), verdict,
                            same_occurrence=same_occurrence)

    def _open(self, conn: sa.Connection, key: str, customer: CustomerFile, host: str,
              verdict: Verdict) -> IncidentChange:
        now = self._now()
        incident_id = conn.execute(
            incidents.insert().values(
                dedup_key=key,
                customer=customer.customer,
                host=host,
                expectation=verdict.expectation,
                subject=verdict.subject,
                state="open",
                severity=verdict.severity.value,
                title=one_line(verdict.title),
                summary=one_line(verdict.summary),
                expected=cap_text(verdict.expected, TEXT_MAX_BYTES),
                observed=cap_text(verdict.observed, TEXT_MAX_BYTES),
                evidence=cap_text(verdict.evidence, EVIDENCE_MAX_BYTES),
                evidence_source=cap_text(verdict.evidence_source, TEXT_MAX_BYTES),
                assignment_group=customer.assignment_group,
                runbook=customer.runbook_url(verdict.runbook),
                occurrences=1,
                last_occurrence=verdict.occurrence,
                opened_at=now,
                last_seen_at=now,
            ).returning(incidents.c.id)
        ).scalar_one()
        self._event(conn, incident_id, now, "opened", one_line(verdict.title))
        return IncidentChange(incident_id, ChangeKind.OPENED, key)

    def _repeat(self, conn: sa.Connection, key: str, incident_id: int, severity: Severity,
                verdict: Verdict, *, same_occurrence: bool) -> IncidentChange:
        now = self._now()
        values: dict[str, object] = {
            "last_seen_at": now,
            "summary": one_line(verdict.summary),
            "observed": cap_text(verdict.observed, TEXT_MAX_BYTES),
            "last_occurrence": verdict.occurrence,
        }
        if same_occurrence:
            # The same failed run told again with more detail (its exit code): say it better.
            values["title"] = one_line(verdict.title)
        else:
            values["occurrences"] = incidents.c.occurrences + 1
        if verdict.evidence:
            # The latest failure's excerpt is the one that matches `observed`.
            values["evidence"] = cap_text(verdict.evidence, EVIDENCE_MAX_BYTES)
            values["evidence_source"] = cap_text(verdict.evidence_source, TEXT_MAX_BYTES)
        # Severity only rises while open: a disk going from 95 % back to 85 % is still a
        # problem, and a ticket that downgrades itself on every wobble is noise.
        upgraded = verdict.severity.rank > severity.rank
        if upgraded:
            values["severity"] = verdict.severity.value
            values["title"] = one_line(verdict.title)
        conn.execute(incidents.update().where(incidents.c.id == incident_id).values(values))
        if upgraded:
            self._event(conn, incident_id, now, "severity",
                        f"{severity.value} -> {verdict.severity.value}: {one_line(verdict.title)}")
            return IncidentChange(incident_id, ChangeKind.UPGRADED, key)
        return IncidentChange(incident_id, ChangeKind.REPEATED, key)

    def record_recovery(self, conn: sa.Connection, customer: str, host: str,
                        verdict: Verdict) -> IncidentChange | None:
        """Resolve the open incident for verdict's key, if there is one."""
        key = dedup_key(customer, host, verdict.expectation, verdict.subject)
        now = self._now()
        resolved_id = conn.execute(
            incidents.update()
            .where(incidents.c.dedup_key == key, _is_open())
            .values(state="resolved", resolved_at=now, resolution=one_line(verdict.note))
            .returning(incidents.c.id)
        ).scalar_one_or_none()
        if resolved_id is None:
            return None
        self._event(conn, resolved_id, now, "resolved", one_line(verdict.note))
        return IncidentChange(resolved_id, ChangeKind.RESOLVED, key)

    @staticmethod
    def _event(conn: sa.Connection, incident_id: int, at: datetime, kind: str,
               note: str) -> None:
        conn.execute(incident_events.insert().values(
            incident_id=incident_id, at=at, kind=kind, actor="daybreak", note=note,
        ))
