"""The customer's contract in the incident lifecycle, through the engine as ingest drives it, on
a real SQLite file and a ManualClock walked through a whole weekend: due times, maintenance
suppression, reopening, mark_recovered, related incidents."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from collector.customers import CustomerSet, load_customer_text
from collector.incidents.engine import IncidentEngine
from collector.incidents.related import related_incidents
from collector.store.schema import incident_events, incidents, suppressed_events
from probes.clock import ManualClock
from probes.result import Item, Result, Status

BERLIN = ZoneInfo("Europe/Berlin")

ACME = """\
customer: acme
name: ACME Logistics
timezone: Europe/Berlin
service_hours:
  mon: "07:00-17:00"
  tue: "07:00-17:00"
  wed: "07:00-17:00"
  thu: "07:00-17:00"
  fri: "07:00-17:00"
holidays: [2025-03-17]
severities:
  P1: {priority: 1, respond_within: 30m, resolve_within: 4h, counts: calendar}
  P3: {priority: 3, respond_within: 1h, resolve_within: 1d}
severity_map: {critical: P1, warning: P3}
maintenance:
  - reason: Saturday patching
    cron: "0 22 * * 6"
    duration: 4h
    hosts: ["db-*"]
expectations:
  - kind: threshold
    name: disk-space
    check: "disk:*"
    metric: used_percent
    warn: 80
    crit: 90
"""


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


class Desk:
    """The engine, its store and its clock, fed as ingest feeds them."""

    def __init__(self, db: sa.Engine, text: str, start: datetime) -> None:
        self.db = db
        self.clock = ManualClock(start)
        customer = load_customer_text(text, Path("acme.yaml"))
        self.engine = IncidentEngine(CustomerSet({"acme": customer}), self.clock)

    def at(self, moment: datetime) -> None:
        self.clock.advance((moment - self.clock.now()).total_seconds())

    def disk(self, host: str, used: float, mount: str = "/data") -> None:
        status = Status.CRIT if used > 90 else Status.WARN if used > 80 else Status.OK
        result = Result(probe="disk", check=f"disk:{mount}", status=status,
                        summary=f"{mount} {used:g}% used", observed_at=self.clock.now(),
                        metrics={"used_percent": used})
        self.feed(host, result)

    def feed(self, host: str, *items: Item) -> None:
        with self.db.begin() as conn:
            self.engine.on_items(conn, "agent-1", "acme", host, items)

    def incidents(self) -> Sequence[sa.Row[Any]]:
        with self.db.connect() as conn:
            return conn.execute(sa.select(incidents).order_by(incidents.c.id)).all()

    def events_of(self, incident_id: int) -> list[str]:
        with self.db.connect() as conn:
            return list(conn.execute(
                sa.select(incident_events.c.kind)
                .where(incident_events.c.incident_id == incident_id)
                .order_by(incident_events.c.id)).scalars())


@pytest.fixture
def desk(db: sa.Engine) -> Desk:
    return Desk(db, ACME, berlin(2025, 3, 14, 16, 0))  # Friday afternoon


def test_a_weekend_of_incidents_gets_due_times_from_the_calendar(desk: Desk) -> None:
    # Friday 16:00 warning (P3, 1 h of service): due 17:00 the same day.
    desk.disk("web-01", 85, "/a")
    # Friday 16:30 warning: 30 min on Friday, 30 min on Monday... which is a holiday: Tuesday.
    desk.at(berlin(2025, 3, 14, 16, 30))
    desk.disk("web-01", 85, "/b")
    # Saturday 02:00 warning: due Tuesday 08:00 (Monday 17 March is a holiday).
    desk.at(berlin(2025, 3, 15, 2, 0))
    desk.disk("web-01", 85, "/c")
    # Saturday 02:00 critical: P1 counts the calendar, due 02:30 that night.
    desk.disk("web-02", 95, "/c")
    # Sunday 23:00 warning: Tuesday 08:00; resolve within 1d = 24 service hours: Tuesday,
    # Wednesday and 4 h of Thursday.
    desk.at(berlin(2025, 3, 16, 23, 0))
    desk.disk("web-01", 85, "/d")
    rows = desk.incidents()
    assert [(r.priority, utc(r.respond_by)) for r in rows] == [
        ("P3", berlin(2025, 3, 14, 17, 0)),
        ("P3", berlin(2025, 3, 18, 7, 30)),
        ("P3", berlin(2025, 3, 18, 8, 0)),
        ("P1", berlin(2025, 3, 15, 2, 30)),
        ("P3", berlin(2025, 3, 18, 8, 0)),
    ]
    assert utc(rows[3].resolve_by) == berlin(2025, 3, 15, 6, 0)
    assert utc(rows[4].resolve_by) == berlin(2025, 3, 20, 11, 0)


def test_an_upgrade_takes_the_more_urgent_level_and_its_sooner_due_times(desk: Desk) -> None:
    desk.at(berlin(2025, 3, 15, 2, 0))
    desk.disk("web-01", 85)
    desk.at(berlin(2025, 3, 15, 3, 0))
    desk.disk("web-01", 95)
    [row] = desk.incidents()
    assert (row.severity, row.priority) == ("critical", "P1")
    assert utc(row.respond_by) == berlin(2025, 3, 15, 3, 30)


def test_maintenance_suppresses_opening_and_records_what_it_hid(desk: Desk) -> None:
    desk.at(berlin(2025, 3, 15, 23, 0))  # Saturday night, inside 22:00-02:00
    desk.disk("db-01", 95)
    desk.disk("web-01", 95)  # not covered by the window
    assert [r.host for r in desk.incidents()] == ["web-01"]
    with desk.db.connect() as conn:
        [hidden] = conn.execute(sa.select(suppressed_events)).all()
    assert (hidden.host, hidden.expectation, hidden.subject, hidden.severity) == (
        "db-01", "disk-space", "disk:/data", "critical")
    assert hidden.window_reason == "Saturday patching"
    assert utc(hidden.window_end) == berlin(2025, 3, 16, 2, 0)
    assert utc(hidden.at) == berlin(2025, 3, 15, 23, 0)
    # After the window the same problem opens an incident.
    desk.at(berlin(2025, 3, 16, 2, 0))
    desk.disk("db-01", 95)
    assert sorted(r.host for r in desk.incidents()) == ["db-01", "web-01"]


def test_a_recurrence_within_reopen_within_reopens_the_incident(db: sa.Engine) -> None:
    desk = Desk(db, ACME + "reopen_within: 2h\n", berlin(2025, 3, 14, 10, 0))
    desk.disk("web-01", 85)
    desk.at(berlin(2025, 3, 14, 10, 30))
    desk.disk("web-01", 50)
    desk.at(berlin(2025, 3, 14, 12, 29))  # 1 h 59 min after the resolution
    desk.disk("web-01", 85)
    [row] = desk.incidents()
    assert row.state == "open"
    assert row.occurrences == 2
    assert row.resolved_at is None
    assert utc(row.respond_by) == berlin(2025, 3, 14, 13, 29)
    assert desk.events_of(row.id) == ["opened", "resolved", "reopened"]


def test_a_recurrence_after_reopen_within_opens_a_new_incident(db: sa.Engine) -> None:
    desk = Desk(db, ACME + "reopen_within: 2h\n", berlin(2025, 3, 14, 10, 0))
    desk.disk("web-01", 85)
    desk.at(berlin(2025, 3, 14, 10, 30))
    desk.disk("web-01", 50)
    desk.at(berlin(2025, 3, 14, 12, 31))
    desk.disk("web-01", 85)
    assert [r.state for r in desk.incidents()] == ["resolved", "open"]


def test_without_reopen_within_a_recurrence_always_opens_anew(desk: Desk) -> None:
    desk.disk("web-01", 85)
    desk.at(berlin(2025, 3, 14, 16, 5))
    desk.disk("web-01", 50)
    desk.disk("web-01", 85)
    assert [r.state for r in desk.incidents()] == ["resolved", "open"]


def test_mark_recovered_leaves_the_incident_for_the_desk(db: sa.Engine) -> None:
    desk = Desk(db, ACME + "recovery: mark_recovered\n", berlin(2025, 3, 14, 10, 0))
    desk.disk("web-01", 85)
    desk.at(berlin(2025, 3, 14, 10, 30))
    desk.disk("web-01", 50)
    desk.disk("web-01", 40)  # a second OK adds nothing
    [row] = desk.incidents()
    assert row.state == "open"
    assert utc(row.recovered_at) == berlin(2025, 3, 14, 10, 30)
    assert row.resolved_at is None
    # It comes back while still open: the same incident, no longer marked recovered.
    desk.at(berlin(2025, 3, 14, 11, 0))
    desk.disk("web-01", 85)
    [row] = desk.incidents()
    assert (row.state, row.recovered_at, row.occurrences) == ("open", None, 2)
    assert desk.events_of(row.id) == ["opened", "recovered", "recurred"]


def test_related_incidents_share_the_host_or_the_subject(desk: Desk) -> None:
    desk.disk("web-01", 85, "/a")  # 1
    desk.at(berlin(2025, 3, 14, 16, 10))
    desk.disk("web-02", 85, "/a")  # 2: same subject, other host
    desk.disk("web-03", 85, "/z")  # 3: unrelated to 1
    desk.at(berlin(2025, 3, 14, 16, 20))
    desk.disk("web-01", 85, "/b")  # 4: same host
    with desk.db.connect() as conn:
        first = conn.execute(sa.select(incidents).where(incidents.c.id == 1)).one()
        assert [r["id"] for r in related_incidents(conn, first)] == [4, 2]
        fourth = conn.execute(sa.select(incidents).where(incidents.c.id == 4)).one()
        assert [r["id"] for r in related_incidents(conn, fourth)] == [1]


def test_related_incidents_reach_back_thirty_days(desk: Desk) -> None:
    desk.disk("web-01", 85, "/a")  # 1
    desk.at(berlin(2025, 3, 14, 16, 5))
    desk.disk("web-01", 50, "/a")
    desk.at(berlin(2025, 3, 14, 16, 0) + timedelta(days=31))
    desk.disk("web-01", 85, "/b")  # 2, 31 days later
    with desk.db.connect() as conn:
        second = conn.execute(sa.select(incidents).where(incidents.c.id == 2)).one()
        assert related_incidents(conn, second) == []
        assert [r["id"] for r in related_incidents(conn, second, days=40)] == [1]
