"""Escalation: an incident nobody acknowledged by its respond-by time goes to the next group.

The rule (docs/customers.md, `escalation`):

- Only an incident in state `open` escalates: acknowledged means somebody has it, resolved
  means it is done. A reopened incident starts over at level 0 (the lifecycle clears the
  fields on reopen). An incident marked recovered (`recovery: mark_recovered`) waits for the
  desk to close it; the problem is gone, so it does not page anyone further.
- When `respond_by` passes it escalates once: `escalation_level` + 1, `escalated_at` = the
  respond-by it missed (dated at the due time, not when the loop noticed: healthchecks'
  `going_down_after()`), `assignment_group` = the next group of the customer's `escalation`
  list after the current one. Without one (no list, or already at its end) the group stays and
  the escalation is still notified again: the point is that somebody hears of it.
- The next level gets the same `respond_within` again, counted in the customer's service hours
  from the missed respond-by. If that time has passed too (the collector was down), it is
  counted from now instead: a group that is told only now cannot have answered before now, and
  one outage must not page every level at once.
- It stops at level MAX_ESCALATION_LEVEL (10): an incident nobody took after ten
  notifications stays open and overdue in the queue (its respond-by is left at the one it
  missed), but pages nobody further; a 24x7 P2 would otherwise page every 30 minutes forever.
- Maintenance windows do not stop it: a window suppresses *opening*; an incident that is open
  (it opened before the window) is real work somebody must take.

Each escalation is one transaction: the conditional update (WHERE id, state 'open' and the
level read, so two collectors on one store escalate once: the second updates no row and
writes nothing), an `escalated` history row, and the `escalated` outbox rows for the sinks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import structlog

from collector.customers import CustomerFile, CustomerSet, SeverityLevel
from collector.expectations.base import Severity
from collector.incidents.service_hours import ServiceCalendar, due_at
from collector.outbox import enqueue_event
from collector.store.schema import incident_events, incidents
from probes.result import one_line

ESCALATED = "escalated"
# Incidents escalated per step; a backlog (after an outage) is worked through in such bites.
ESCALATION_BATCH = 200
# A level with respond_within 0 would escalate again at every poll: never more often than this
# (of the level's counted time).
MIN_ESCALATION_INTERVAL = timedelta(minutes=15)
# Escalations per incident at most (groups of a longer escalation list are never reached).
MAX_ESCALATION_LEVEL = 10
# An incident whose escalation throws is tried again this much later, not at every poll.
RETRY_FAILED_AFTER = timedelta(hours=1)


def _utc(moment: datetime) -> datetime:
    # SQLite hands stored times back without their offset; they are UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Unanswered:
    """An open incident whose respond-by passed: the columns the decision reads."""

    id: int
    customer: str
    severity: str
    priority: str
    assignment_group: str
    respond_by: datetime
    escalation_level: int


@dataclass(frozen=True, slots=True)
class Escalation:
    """What escalating one incident changes."""

    incident_id: int
    from_level: int  # the level read: the update applies only while it is still this
    level: int
    escalated_at: datetime  # the respond-by that was missed (UTC)
    assignment_group: str
    group_changed: bool
    respond_by: datetime  # the next level's (UTC)
    note: str


def next_group(current: str, escalation: Sequence[str]) -> str | None:
    """The group after current in the customer's escalation list, or None (stay).

    A current group not in the list (the list starts after it: `[tier2, duty_manager]` for a
    service-desk incident) goes to the list's first group. Escalation only moves down the list:
    a tier2_only customer's incident, already at tier2, never goes back to the service desk."""
    if current in escalation:
        position = escalation.index(current)
        return escalation[position + 1] if position + 1 < len(escalation) else None
    for group in escalation:
        if group != current:
            return group
    return None


def level_terms(customer: CustomerFile, incident: Unanswered) -> SeverityLevel:
    """The incident's level: the one it was given (its priority) while the file still names
    it; after a reload that removed it, the level its severity gets now."""
    found = customer.severities.get(incident.priority)
    if found is not None:
        return found
    try:
        severity = Severity(incident.severity)
    except ValueError:
        severity = Severity.CRITICAL
    return customer.level_for(severity)[1]


def decide(incident: Unanswered, customer: CustomerFile, now: datetime) -> Escalation:
    """How incident escalates, having missed its respond-by (pure: no store, no clock)."""
    missed = _utc(incident.respond_by)
    now = _utc(now)
    terms = level_terms(customer, incident)
    calendar = ServiceCalendar.for_customer(customer, terms.counts)
    within = max(terms.respond_within, MIN_ESCALATION_INTERVAL)
    level = incident.escalation_level + 1
    if level >= MAX_ESCALATION_LEVEL:
        respond_by = missed  # the last one: nothing is due any more, it stays overdue
    else:
        respond_by = due_at(missed, within, calendar)
        if respond_by <= now:
            respond_by = due_at(now, within, calendar)
    group = next_group(incident.assignment_group, customer.escalation)
    missed_local = missed.astimezone(customer.zone)
    by = f"not acknowledged by {missed_local:%H:%M} ({customer.timezone})"
    if group is not None:
        note = f"{by}: escalated to {group}"
    elif customer.escalation:
        note = f"{by}: notified {incident.assignment_group} again (end of the escalation list)"
    else:
        note = f"{by}: notified {incident.assignment_group} again (no escalation list)"
    return Escalation(
        incident_id=incident.id,
        from_level=incident.escalation_level,
        level=level,
        escalated_at=missed,
        assignment_group=group or incident.assignment_group,
        group_changed=group is not None,
        respond_by=respond_by,
        note=note,
    )


# ---- the store ---------------------------------------------------------------------------------


def _may_escalate(customer_ids: Iterable[str]) -> sa.ColumnElement[bool]:
    # state first: the (state, respond_by) index narrows the scan to open incidents by due time.
    return sa.and_(incidents.c.state == "open",
                   incidents.c.respond_by.is_not(None),
                   incidents.c.recovered_at.is_(None),
                   incidents.c.escalation_level < MAX_ESCALATION_LEVEL,
                   # A customer gone from the files has no terms and no sinks: left as it is.
                   incidents.c.customer.in_(sorted(customer_ids)))


def due_unanswered(conn: sa.Connection, customer_ids: Iterable[str], now: datetime, *,
                   limit: int = ESCALATION_BATCH,
                   skip: Iterable[int] = ()) -> list[Unanswered]:
    """Open incidents of these customers whose respond-by passed, earliest first."""
    query = (
        sa.select(incidents.c.id, incidents.c.customer, incidents.c.severity,
                  incidents.c.priority, incidents.c.assignment_group, incidents.c.respond_by,
                  incidents.c.escalation_level)
        .where(_may_escalate(customer_ids), incidents.c.respond_by <= _utc(now))
        .order_by(incidents.c.respond_by, incidents.c.id)
        .limit(limit)
    )
    skipped = sorted(skip)
    if skipped:
        query = query.where(incidents.c.id.not_in(skipped))
    return [Unanswered(row.id, row.customer, row.severity, row.priority, row.assignment_group,
                       _utc(row.respond_by), row.escalation_level)
            for row in conn.execute(query)]


def next_respond_by(conn: sa.Connection, customer_ids: Iterable[str],
                    now: datetime) -> datetime | None:
    """The earliest respond-by still to come: when the next escalation is due."""
    found = conn.execute(
        sa.select(sa.func.min(incidents.c.respond_by))
        .where(_may_escalate(customer_ids), incidents.c.respond_by > _utc(now))
    ).scalar_one_or_none()
    return None if found is None else _utc(found)


def store_escalation(conn: sa.Connection, escalation: Escalation, customer: CustomerFile,
                     now: datetime) -> bool:
    """Write escalation with its history row and notifications; False when the incident changed
    meanwhile (acknowledged, resolved, or escalated by another collector): nothing is written.
    Writes through conn, never commits."""
    changed = conn.execute(
        incidents.update()
        .where(incidents.c.id == escalation.incident_id,
               incidents.c.state == "open",
               incidents.c.escalation_level == escalation.from_level)
        .values(escalation_level=escalation.level,
                escalated_at=escalation.escalated_at,
                assignment_group=escalation.assignment_group,
                respond_by=escalation.respond_by)
    ).rowcount
    if changed != 1:
        return False
    conn.execute(incident_events.insert().values(
        incident_id=escalation.incident_id, at=escalation.escalated_at, kind=ESCALATED,
        actor="daybreak", note=one_line(escalation.note),
    ))
    enqueue_event(conn, escalation.incident_id, ESCALATED, customer, now, change=ESCALATED)
    return True


class Escalator:
    """The due-time loop's escalation pass (collector/timers.py calls `run_due`)."""

    def __init__(self, logger: structlog.typing.FilteringBoundLogger | None = None) -> None:
        self._log = logger or structlog.get_logger("collector.incidents.escalation")
        # Incident id -> when to try again, for escalations that threw. In memory: after a
        # restart each is tried once more.
        self._retry_at: dict[int, datetime] = {}

    def run_due(self, conn: sa.Connection, customers: CustomerSet,
                now: datetime) -> datetime | None:
        """Escalate every incident due at now; returns when the next one is due."""
        now = _utc(now)
        self._retry_at = {k: at for k, at in self._retry_at.items() if at > now}
        due = due_unanswered(conn, customers.ids, now, skip=self._retry_at)
        for incident in due:
            customer = customers.get(incident.customer)
            if customer is not None:
                self._escalate(conn, customer, incident, now)
        if len(due) >= ESCALATION_BATCH:
            return now  # more are due: the loop comes back at once
        retry = min(self._retry_at.values(), default=None)
        upcoming = next_respond_by(conn, customers.ids, now)
        found = [at for at in (retry, upcoming) if at is not None]
        return min(found) if found else None

    def _escalate(self, conn: sa.Connection, customer: CustomerFile, incident: Unanswered,
                  now: datetime) -> None:
        try:
            with conn.begin_nested():
                escalation = decide(incident, customer, now)
                stored = store_escalation(conn, escalation, customer, now)
        except Exception as exc:  # noqa: BLE001 - one bad incident must not stop the others
            self._retry_at[incident.id] = now + RETRY_FAILED_AFTER
            self._log.exception("escalation.failed", incident_id=incident.id,
                                customer=incident.customer, error=str(exc))
            return
        if not stored:
            self._log.info("escalation.lost", incident_id=incident.id,
                           customer=incident.customer,
                           reason="changed meanwhile: acknowledged, resolved or escalated "
                                  "by another worker")
            return
        self._log.info("incident.escalated", incident_id=incident.id,
                       customer=incident.customer, level=escalation.level,
                       assignment_group=escalation.assignment_group,
                       missed_respond_by=escalation.escalated_at.isoformat(),
                       respond_by=escalation.respond_by.isoformat())
