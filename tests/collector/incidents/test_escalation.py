"""Escalation on a real store, driven by the due-time loop on a ManualClock: a weekend incident
of a weekday customer escalates on Monday at its respond-by, level after level down the
customer's list; an acknowledgement (through the real API) stops it; it is dated at the missed
due time; two collectors escalate once; a reopened incident starts over; maintenance does not
stop it, a recovered incident does not page."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from collector.api.app import create_app
from collector.api.deps import ApiToken
from collector.cli.incidents import ticket_text
from collector.customers import CustomerSet, load_customer_text
from collector.incidents.engine import IncidentEngine
from collector.incidents.escalation import (
    MAX_ESCALATION_LEVEL,
    Unanswered,
    decide,
    due_unanswered,
    next_group,
    store_escalation,
)
from collector.store.engine import WRITER, open_store
from collector.store.schema import incident_events, incidents
from collector.store.writer import StoreWriter
from collector.timers import DueTimers
from probes.result import Status
from tests.collector.cli.conftest import live_server
from tests.collector.night_kit import HEARTBEAT_INTERVAL, Night, utc

CUSTOMER = """\
customer: acme
name: ACME Logistics
timezone: Europe/Berlin
service_hours:
  mon: "07:00-17:00"
  tue: "07:00-17:00"
  wed: "07:00-17:00"
  thu: "07:00-17:00"
  fri: "07:00-17:00"
severities:
  P1: {priority: 1, respond_within: 30m, resolve_within: 4h, counts: calendar}
  P3: {priority: 3, respond_within: 1h, resolve_within: 1d}
severity_map: {critical: P1, warning: P3}
escalation: [service_desk, tier2, duty_manager]
sinks:
  - type: webhook
    name: desk
    url: http://127.0.0.1:9/hook
    secret_file: hook.secret
expectations:
  - kind: threshold
    name: queue-up
    check: "service:*"
"""
# Saturday 2025-03-08 02:00 in Berlin (CET, UTC+1).
SATURDAY_0200 = utc("2025-03-08 01:00")
# Monday 08:00 Berlin: Monday 07:00 opens the clock, one hour of service time later.
MONDAY_0800 = utc("2025-03-10 07:00")


def night(tmp_path: Path, extra: str = "", start: datetime = SATURDAY_0200) -> Night:
    return Night(tmp_path, CUSTOMER + extra, start, [("agent-1", "app1")])


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Night]:
    found = night(tmp_path)
    yield found
    found.close()


def problem(kit: Night, status: Status = Status.WARN, check: str = "service:queue") -> Any:
    """The check goes bad; returns its incident."""
    kit.send("agent-1", "app1", kit.result(check, status))
    return kit.incidents(incidents.c.subject == check)[-1]


def naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)  # as SQLite hands stored UTC times back


def escalated_events(kit: Night) -> list[sa.Row[Any]]:
    with kit.db.connect() as conn:
        return list(conn.execute(sa.select(incident_events)
                                 .where(incident_events.c.kind == "escalated")
                                 .order_by(incident_events.c.id)).all())


def escalated_rows(kit: Night) -> list[dict[str, Any]]:
    return [json.loads(row.payload) for row in kit.outbox() if row.event == "escalated"]


def test_a_saturday_incident_of_a_weekday_customer_escalates_on_monday_at_its_respond_by(
    kit: Night,
) -> None:
    incident = problem(kit)
    assert incident.priority == "P3"
    assert incident.respond_by == naive(MONDAY_0800)

    kit.run_until(MONDAY_0800 - timedelta(seconds=1))  # the whole weekend, hour by hour
    (waiting,) = kit.incidents()
    assert (waiting.escalation_level, waiting.escalated_at) == (0, None)
    assert escalated_events(kit) == []

    kit.run_until(MONDAY_0800 + timedelta(minutes=30))
    (escalated,) = kit.incidents()
    assert escalated.state == "open"
    assert escalated.escalation_level == 1
    assert escalated.escalated_at == naive(MONDAY_0800)
    assert escalated.assignment_group == "tier2"
    # The next level gets the same hour of service time: due Monday 09:00 Berlin.
    assert escalated.respond_by == naive(MONDAY_0800 + timedelta(hours=1))
    (event,) = escalated_events(kit)
    assert event.at == naive(MONDAY_0800)
    assert event.note == "not acknowledged by 08:00 (Europe/Berlin): escalated to tier2"
    (sent,) = escalated_rows(kit)
    assert sent["change"] == "escalated"
    assert sent["incident"]["escalation_level"] == 1
    assert sent["incident"]["assignment_group"] == "tier2"


def test_each_level_escalates_once_down_the_list_then_notifies_the_last_group_again(
    kit: Night,
) -> None:
    problem(kit)
    kit.run_until(MONDAY_0800 + timedelta(hours=2, minutes=30))
    (incident,) = kit.incidents()
    assert incident.escalation_level == 3
    assert incident.assignment_group == "duty_manager"
    assert [(e.at, e.note) for e in escalated_events(kit)] == [
        (naive(MONDAY_0800), "not acknowledged by 08:00 (Europe/Berlin): escalated to tier2"),
        (naive(MONDAY_0800 + timedelta(hours=1)),
         "not acknowledged by 09:00 (Europe/Berlin): escalated to duty_manager"),
        (naive(MONDAY_0800 + timedelta(hours=2)),
         "not acknowledged by 10:00 (Europe/Berlin): notified duty_manager again "
         "(end of the escalation list)"),
    ]
    assert [row["incident"]["escalation_level"] for row in escalated_rows(kit)] == [1, 2, 3]


def test_a_level_due_after_closing_time_waits_for_the_next_service_day(kit: Night) -> None:
    # Friday 16:30 Berlin: one hour of service time is 30 minutes on Friday and 30 on Monday,
    # due Monday 07:30; missed then, the next level is due Monday 08:30.
    friday = utc("2025-03-14 15:30")
    kit.run_until(friday)
    incident = problem(kit)
    monday_0730 = utc("2025-03-17 06:30")
    assert incident.respond_by == naive(monday_0730)
    kit.run_until(monday_0730 + timedelta(minutes=5))
    (escalated,) = kit.incidents()
    assert escalated.escalated_at == naive(monday_0730)
    assert escalated.respond_by == naive(monday_0730 + timedelta(hours=1))


def test_the_loop_wakes_at_the_earliest_respond_by(kit: Night) -> None:
    # A P1 counts every hour: 30 minutes after Saturday 02:00, weekend or not.
    kit.tick()
    incident = problem(kit, Status.CRIT)
    assert incident.priority == "P1"
    assert incident.respond_by == naive(SATURDAY_0200 + timedelta(minutes=30))
    assert kit.tick() == SATURDAY_0200 + timedelta(minutes=30)


def test_an_incident_acknowledged_before_its_respond_by_never_escalates(kit: Night) -> None:
    incident = problem(kit)
    kit.run_until(MONDAY_0800 - timedelta(minutes=20))
    acknowledge(kit, incident.id)
    kit.run_until(MONDAY_0800 + timedelta(days=2))
    (acknowledged,) = kit.incidents()
    assert acknowledged.state == "acknowledged"
    assert (acknowledged.escalation_level, acknowledged.assignment_group) == (0, "service_desk")
    assert escalated_events(kit) == []
    assert escalated_rows(kit) == []


def test_an_acknowledgement_stops_further_escalation_and_show_prints_the_level(
    kit: Night,
) -> None:
    incident = problem(kit)
    kit.run_until(MONDAY_0800 + timedelta(minutes=10))
    shown = acknowledge(kit, incident.id)
    kit.run_until(MONDAY_0800 + timedelta(hours=5))
    (acknowledged,) = kit.incidents()
    assert (acknowledged.state, acknowledged.escalation_level) == ("acknowledged", 1)
    assert len(escalated_events(kit)) == 1
    text = ticket_text(shown)
    assert "level 1, 2025-03-10 07:00:00 UTC (08:00:00 Europe/Berlin)" in text
    assert "escalated to tier2" in text  # the history


def test_an_escalation_is_dated_at_the_missed_respond_by_and_an_outage_pages_once(
    kit: Night,
) -> None:
    problem(kit)
    kit.run_until(MONDAY_0800 - timedelta(minutes=1))
    # The collector was down from Monday 07:59 to 12:20 Berlin: one step at 11:20 UTC.
    kit.clock.advance(timedelta(hours=4, minutes=21).total_seconds())
    kit.tick()
    (incident,) = kit.incidents()
    assert incident.escalation_level == 1
    assert incident.escalated_at == naive(MONDAY_0800)
    # Counted from when the next group was told, not from the missed time (long past).
    assert incident.respond_by == naive(utc("2025-03-10 12:20"))
    assert len(escalated_events(kit)) == 1


def test_two_collectors_on_one_store_escalate_once(kit: Night) -> None:
    problem(kit)
    kit.run_until(MONDAY_0800 - timedelta(minutes=1))
    kit.clock.advance(120)
    now = kit.clock.now()
    other_db = open_store(kit.url)
    other_writer = StoreWriter(other_db)
    try:
        other_engine = IncidentEngine(CustomerSet({"acme": kit.customer}), kit.clock)
        other = DueTimers(other_writer, other_engine, kit.clock,
                          heartbeat_interval=HEARTBEAT_INTERVAL)
        # Each writer has its own thread and connection: both steps are under way at once.
        # On SQLite the write lock orders them (the second reads what the first committed);
        # the stale-read test below covers a store without that lock.
        first = kit.writer.submit(lambda conn: kit.timers.run_due(conn, now))
        second = other_writer.submit(lambda conn: other.run_due(conn, now))
        first.result(20)
        second.result(20)
    finally:
        other_writer.close()
        other_db.dispose()
    (incident,) = kit.incidents()
    assert incident.escalation_level == 1
    assert len(escalated_events(kit)) == 1
    assert len(escalated_rows(kit)) == 1


def test_an_escalation_decided_on_a_stale_read_writes_nothing(kit: Night) -> None:
    problem(kit)
    kit.run_until(MONDAY_0800 - timedelta(minutes=1))
    now = MONDAY_0800 + timedelta(minutes=1)
    with kit.db.connect().execution_options(**WRITER) as conn, conn.begin():
        (stale,) = due_unanswered(conn, {"acme"}, now)
        assert store_escalation(conn, decide(stale, kit.customer, now), kit.customer, now)
        # Another worker read the same row before that commit: its update matches nothing.
        assert not store_escalation(conn, decide(stale, kit.customer, now), kit.customer, now)
    assert [row.escalation_level for row in kit.incidents()] == [1]
    assert len(escalated_events(kit)) == 1
    assert len(escalated_rows(kit)) == 1


def test_a_reopened_incident_starts_over(tmp_path: Path) -> None:
    kit = night(tmp_path, "reopen_within: 1d\n")
    try:
        first = problem(kit)
        kit.run_until(MONDAY_0800 + timedelta(hours=1, minutes=5))
        assert kit.incidents()[0].assignment_group == "duty_manager"
        kit.send("agent-1", "app1", kit.result("service:queue", Status.OK))
        kit.run_until(MONDAY_0800 + timedelta(hours=1, minutes=10))
        again = problem(kit)
        assert again.id == first.id
        assert again.state == "open"
        assert (again.escalation_level, again.escalated_at) == (0, None)
        assert again.assignment_group == "service_desk"
        reopened_at = kit.clock.now()
        assert again.respond_by == naive(reopened_at + timedelta(hours=1))
        kit.run_until(reopened_at + timedelta(hours=1, minutes=1))
        (escalated,) = kit.incidents()
        assert (escalated.escalation_level, escalated.assignment_group) == (1, "tier2")
    finally:
        kit.close()


def test_maintenance_does_not_stop_an_incident_that_was_already_open(tmp_path: Path) -> None:
    kit = night(tmp_path, """\
maintenance:
  - reason: Monday morning patching
    hosts: ["app*"]
    start: "2025-03-10 06:00"
    end: "2025-03-10 12:00"
""")
    try:
        problem(kit)  # Saturday: before the window
        kit.run_until(MONDAY_0800 + timedelta(minutes=5))
        (incident,) = kit.incidents()
        assert (incident.escalation_level, incident.assignment_group) == (1, "tier2")
    finally:
        kit.close()


def test_a_recovered_incident_waiting_to_be_resolved_does_not_escalate(tmp_path: Path) -> None:
    kit = night(tmp_path, "recovery: mark_recovered\n")
    try:
        problem(kit)
        kit.run_until(SATURDAY_0200 + timedelta(hours=1))
        kit.send("agent-1", "app1", kit.result("service:queue", Status.OK))
        kit.run_until(MONDAY_0800 + timedelta(hours=3))
        (incident,) = kit.incidents()
        assert incident.state == "open"
        assert incident.recovered_at is not None
        assert incident.escalation_level == 0
        assert escalated_events(kit) == []
    finally:
        kit.close()


def test_escalation_ends_at_the_last_level_and_leaves_the_incident_overdue(kit: Night) -> None:
    problem(kit, Status.CRIT)  # P1: every 30 minutes, around the clock
    kit.run_until(SATURDAY_0200 + timedelta(hours=12))
    (incident,) = kit.incidents()
    assert incident.escalation_level == MAX_ESCALATION_LEVEL
    last = SATURDAY_0200 + timedelta(minutes=30 * MAX_ESCALATION_LEVEL)
    assert incident.escalated_at == naive(last)
    assert incident.respond_by == naive(last)
    assert len(escalated_rows(kit)) == MAX_ESCALATION_LEVEL


@pytest.mark.parametrize(("current", "groups", "expected"), [
    ("service_desk", ("service_desk", "tier2", "duty_manager"), "tier2"),
    ("tier2", ("service_desk", "tier2", "duty_manager"), "duty_manager"),
    ("duty_manager", ("service_desk", "tier2", "duty_manager"), None),
    ("service_desk", ("tier2", "duty_manager"), "tier2"),
    ("service_desk", (), None),
    ("service_desk", ("service_desk",), None),
])
def test_the_next_group_is_the_one_after_the_current_in_the_list(
    current: str, groups: tuple[str, ...], expected: str | None,
) -> None:
    assert next_group(current, groups) == expected


def test_without_an_escalation_list_the_same_group_is_notified_again(tmp_path: Path) -> None:
    customer = load_customer_text(CUSTOMER.replace(
        "escalation: [service_desk, tier2, duty_manager]\n", ""), tmp_path / "acme.yaml")
    incident = Unanswered(id=7, customer="acme", severity="warning", priority="P3",
                          assignment_group="service_desk", respond_by=MONDAY_0800,
                          escalation_level=0)
    escalation = decide(incident, customer, MONDAY_0800)
    assert (escalation.level, escalation.assignment_group, escalation.group_changed) == (
        1, "service_desk", False)
    assert escalation.note == ("not acknowledged by 08:00 (Europe/Berlin): notified "
                               "service_desk again (no escalation list)")


# ---- helpers -------------------------------------------------------------------------------


def acknowledge(kit: Night, incident_id: int) -> dict[str, Any]:
    """Acknowledge through the real API (as `daybreak incidents ack` does); returns the
    incident as `daybreak incidents show` gets it."""
    secret = secrets.token_urlsafe(24)
    token = ApiToken(name="admin", role="admin", customers=frozenset({"*"}),
                     token_sha256=hashlib.sha256(secret.encode()).hexdigest())
    customers = CustomerSet({"acme": kit.customer})
    app = create_app(kit.db, [token], kit.clock, customers=lambda: customers)
    headers = {"Authorization": f"Bearer {secret}"}
    with live_server(app) as url, httpx.Client(base_url=url, timeout=5) as http:
        answer = http.post(f"/api/v1/incidents/{incident_id}/ack", json={"note": "on it"},
                           headers=headers)
        assert answer.status_code == 200, answer.text
        shown = http.get(f"/api/v1/incidents/{incident_id}", headers=headers)
        assert shown.status_code == 200, shown.text
        result: dict[str, Any] = shown.json()
        return result
