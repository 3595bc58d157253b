"""An incident's life in the store: opened, repeated (occurrences), upgraded, resolved; and with
the customer's contract (issue 5): suppressed by maintenance, recovered, reopened.

One open incident per dedup key (customer/host/expectation/subject): the store's partial unique
index `uq_incidents_open_dedup_key` makes that a rule rather than a hope. Every change goes
through the caller's connection and transaction; nothing here commits, so an incident is
written together with whatever else the caller writes, or not at all.

The events table gets a row when something a person would want in the history happens (opened,
severity changed, resolved), not on every repeat: a disk that stays full for a week would
otherwise add ten thousand rows that say nothing new. The repeat count lives on the incident.

What the customer file decides here:
- opening computes the incident's priority and respond-by / resolve-by in the customer's
  service hours (service_hours.sla_times);
- a maintenance window covering (host, expectation) when the problem was observed opens
  nothing: a `suppressed_events` row says what was hidden, and by which window;
- `reopen_within`: a problem whose key's last incident was resolved less than that ago reopens
  it (one ticket for one recurring fault) instead of opening a new one;
- `recovery: mark_recovered`: a recovery leaves the incident open with `recovered_at` set, for
  the desk to resolve; the default `auto_resolve` resolves it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import sqlalchemy as sa

from collector.customers import CustomerFile, Recovery
from collector.expectations.base import Severity, Verdict
from collector.incidents.maintenance import Window, active_window
from collector.incidents.service_hours import sla_times
from collector.store.schema import incident_events, incidents, suppressed_events
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
    REOPENED = "reopened"  # a resolved incident came back within reopen_within
    RECOVERED = "recovered"  # recovery: mark_recovered; still open, for the desk to resolve
    SUPPRESSED = "suppressed"  # a maintenance window covered it: nothing was opened
    # The key stopped flapping (collector/incidents/flapping.py): its current state is sent once
    # more, so a ticket whose flips were not notified does not stay open forever.
    FLAPPING_ENDED = "flapping_ended"


@dataclass(frozen=True, slots=True)
class IncidentChange:
    """What happened to which incident: what the engine logs (and issue 5's sinks will send).
    SUPPRESSED opened no incident: its incident_id is 0."""

    incident_id: int
    kind: ChangeKind
    dedup_key: str
    # False while the key flaps (collector/incidents/flapping.py): the state still changed, but
    # sinks are not told of every flip. The end of flapping is always notified.
    notify: bool = True


class _OpenIncident(NamedTuple):
    """What a repeat needs to know of the open incident (the columns record_problem reads)."""

    id: int
    severity: str
    last_occurrence: str
    recovered_at: datetime | None
    respond_by: datetime | None
    resolve_by: datetime | None


def _utc(moment: datetime) -> datetime:
    # SQLite hands stored times back without their offset; they are UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
            sa.select(incidents.c.id, incidents.c.severity, incidents.c.last_occurrence,
                      incidents.c.recovered_at, incidents.c.respond_by, incidents.c.resolve_by)
            .where(incidents.c.dedup_key == key, _is_open())
        ).first()
        if current is None:
            return self._open(conn, key, customer, host, verdict)
        same_occurrence = bool(verdict.occurrence) and verdict.occurrence == current.last_occurrence
        return self._repeat(conn, key, _OpenIncident(*current), customer, verdict,
                            same_occurrence=same_occurrence)

    def _open(self, conn: sa.Connection, key: str, customer: CustomerFile, host: str,
              verdict: Verdict) -> IncidentChange:
        # Maintenance is judged at the time the problem was observed, not when it arrived: a
        # result spooled through a network outage is judged by the window it happened in.
        window = active_window(customer, host, verdict.expectation, verdict.observed_at)
        if window is not None:
            return self._suppress(conn, key, customer, host, verdict, window)
        reopened = self._reopen(conn, key, customer, host, verdict)
        if reopened is not None:
            return reopened
        now = self._now()
        sla = sla_times(customer, verdict.severity, now)
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
                first_observed_at=_utc(verdict.observed_at),
                priority=sla.priority,
                respond_by=sla.respond_by,
                resolve_by=sla.resolve_by,
            ).returning(incidents.c.id)
        ).scalar_one()
        self._event(conn, incident_id, now, "opened", one_line(verdict.title))
        return IncidentChange(incident_id, ChangeKind.OPENED, key)

    def _suppress(self, conn: sa.Connection, key: str, customer: CustomerFile, host: str,
                  verdict: Verdict, window: Window) -> IncidentChange:
        conn.execute(suppressed_events.insert().values(
            customer=customer.customer,
            host=host,
            expectation=verdict.expectation,
            subject=verdict.subject,
            severity=verdict.severity.value,
            title=one_line(verdict.title),
            at=_utc(verdict.observed_at),
            window_reason=one_line(window.reason),
            window_end=window.end,
        ))
        return IncidentChange(0, ChangeKind.SUPPRESSED, key)

    def _reopen(self, conn: sa.Connection, key: str, customer: CustomerFile, host: str,
                verdict: Verdict) -> IncidentChange | None:
        """Reopen key's incident if it was resolved less than reopen_within ago."""
        if customer.reopen_within is None:
            return None
        now = self._now()
        last = conn.execute(
            sa.select(incidents.c.id)
            # customer and host first: the (customer, host, opened_at) index narrows the scan.
            .where(incidents.c.customer == customer.customer,
                   incidents.c.host == host,
                   incidents.c.dedup_key == key,
                   incidents.c.state == "resolved",
                   incidents.c.resolved_at >= now - customer.reopen_within)
            .order_by(incidents.c.resolved_at.desc(), incidents.c.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if last is None:
            return None
        sla = sla_times(customer, verdict.severity, now)
        values: dict[str, object] = {
            "state": "open",
            "resolved_at": None,
            "resolution": "",
            "severity": verdict.severity.value,
            "title": one_line(verdict.title),
            "summary": one_line(verdict.summary),
            "observed": cap_text(verdict.observed, TEXT_MAX_BYTES),
            "occurrences": incidents.c.occurrences + 1,
            "last_occurrence": verdict.occurrence,
            "last_seen_at": now,
            # Back in the queue as new work: due again, and nobody has it yet.
            "priority": sla.priority,
            "respond_by": sla.respond_by,
            "resolve_by": sla.resolve_by,
            "acknowledged_at": None,
            "acknowledged_by": None,
            "escalated_at": None,
            "escalation_level": 0,
            # Escalation starts over too: back to the group the customer file gives it.
            "assignment_group": customer.assignment_group,
            "recovered_at": None,
        }
        if verdict.evidence:
            values["evidence"] = cap_text(verdict.evidence, EVIDENCE_MAX_BYTES)
            values["evidence_source"] = cap_text(verdict.evidence_source, TEXT_MAX_BYTES)
        conn.execute(incidents.update().where(incidents.c.id == last).values(values))
        self._event(conn, last, now, "reopened", one_line(verdict.title))
        return IncidentChange(last, ChangeKind.REOPENED, key)

    def _repeat(self, conn: sa.Connection, key: str, current: _OpenIncident,
                customer: CustomerFile, verdict: Verdict, *,
                same_occurrence: bool) -> IncidentChange:
        now = self._now()
        incident_id: int = current.id
        severity = Severity(current.severity)
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
            # The more urgent level's terms, counted from now, unless the old ones come sooner.
            sla = sla_times(customer, verdict.severity, now)
            values["priority"] = sla.priority
            values["respond_by"] = _sooner(current.respond_by, sla.respond_by)
            values["resolve_by"] = _sooner(current.resolve_by, sla.resolve_by)
        if current.recovered_at is not None:
            values["recovered_at"] = None
        conn.execute(incidents.update().where(incidents.c.id == incident_id).values(values))
        if current.recovered_at is not None:
            self._event(conn, incident_id, now, "recurred", one_line(verdict.title))
        if upgraded:
            self._event(conn, incident_id, now, "severity",
                        f"{severity.value} -> {verdict.severity.value}: {one_line(verdict.title)}")
            return IncidentChange(incident_id, ChangeKind.UPGRADED, key)
        return IncidentChange(incident_id, ChangeKind.REPEATED, key)

    def record_recovery(self, conn: sa.Connection, customer: CustomerFile | str, host: str,
                        verdict: Verdict) -> IncidentChange | None:
        """Resolve the open incident for verdict's key, if there is one, or mark it recovered
        when the customer file says `recovery: mark_recovered`. Pass the CustomerFile; a bare
        customer id (the issue 3 form) always resolves."""
        if isinstance(customer, CustomerFile) and customer.recovery is Recovery.MARK_RECOVERED:
            return self._mark_recovered(conn, customer.customer, host, verdict)
        customer_id = customer if isinstance(customer, str) else customer.customer
        key = dedup_key(customer_id, host, verdict.expectation, verdict.subject)
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

    def _mark_recovered(self, conn: sa.Connection, customer: str, host: str,
                        verdict: Verdict) -> IncidentChange | None:
        key = dedup_key(customer, host, verdict.expectation, verdict.subject)
        now = self._now()
        recovered_id = conn.execute(
            incidents.update()
            .where(incidents.c.dedup_key == key, _is_open(), incidents.c.recovered_at.is_(None))
            .values(recovered_at=now)
            .returning(incidents.c.id)
        ).scalar_one_or_none()
        if recovered_id is None:
            return None  # nothing open, or already marked
        self._event(conn, recovered_id, now, "recovered", one_line(verdict.note))
        return IncidentChange(recovered_id, ChangeKind.RECOVERED, key)

    @staticmethod
    def _event(conn: sa.Connection, incident_id: int, at: datetime, kind: str,
               note: str) -> None:
        conn.execute(incident_events.insert().values(
            incident_id=incident_id, at=at, kind=kind, actor="daybreak", note=note,
        ))


def _sooner(stored: datetime | None, computed: datetime) -> datetime:
    return computed if stored is None else min(_utc(stored), computed)
