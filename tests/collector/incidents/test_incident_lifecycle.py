"""The incident lifecycle, driven through the engine as ingest drives it, on a real SQLite file."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from collector.customers import CustomerSet, load_customer_text
from collector.incidents.engine import IncidentEngine
from collector.store.schema import incident_events, incidents
from probes.clock import ManualClock
from probes.result import Item, JobOutcome, JobRun, Result, Status

ACME = """\
customer: acme
name: ACME Logistics
timezone: Europe/Berlin
access: tier2_only
runbook_base_url: https://wiki.example/acme/
expectations:
  - kind: threshold
    name: disk-space
    check: "disk:*"
    metric: used_percent
    warn: 80
    crit: 90
    runbook: disk-full
  - kind: threshold
    name: service-up
    check: "service:*"
  - kind: job_must_not_fail
    name: export-fails
    job: nightly-export
    hosts: ["db-*"]
"""

START = datetime(2025, 3, 4, 2, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def engine(clock: ManualClock) -> IncidentEngine:
    acme = load_customer_text(ACME, Path("acme.yaml"))
    return IncidentEngine(CustomerSet({"acme": acme}), clock)


def disk(used: float, at: datetime, mount: str = "/data") -> Result:
    status = Status.CRIT if used > 90 else Status.WARN if used > 80 else Status.OK
    return Result(probe="disk", check=f"disk:{mount}", status=status,
                  summary=f"{mount} {used:g}% used", observed_at=at,
                  metrics={"used_percent": used})


def export_run(run_id: str, outcome: JobOutcome, at: datetime) -> JobRun:
    return JobRun(probe="joblog", job="nightly-export", run_id=run_id, outcome=outcome,
                  observed_at=at, started_at=at, finished_at=at,
                  exit_code=3 if outcome is JobOutcome.FAILED else 0,
                  excerpt="exporting orders\nERROR: connection to warehouse refused\n",
                  source="/var/log/export.log:1234")


def feed(db: sa.Engine, engine: IncidentEngine, host: str, *items: Item) -> None:
    with db.begin() as conn:
        engine.on_items(conn, "agent-1", "acme", host, items)


def all_incidents(db: sa.Engine) -> Sequence[sa.Row[Any]]:
    with db.connect() as conn:
        return conn.execute(sa.select(incidents).order_by(incidents.c.id)).all()


def events_of(db: sa.Engine, incident_id: int) -> list[str]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(incident_events.c.kind)
                            .where(incident_events.c.incident_id == incident_id)
                            .order_by(incident_events.c.id))
        return [row.kind for row in rows]


def test_an_ok_result_opens_nothing(db: sa.Engine, engine: IncidentEngine) -> None:
    feed(db, engine, "web-01", disk(40, START))
    assert all_incidents(db) == []


def test_the_first_bad_result_opens_a_filled_in_incident(
    db: sa.Engine, engine: IncidentEngine,
) -> None:
    feed(db, engine, "web-01", disk(85, START))
    [incident] = all_incidents(db)
    assert incident.dedup_key == "acme/web-01/disk-space/disk:/data"
    assert (incident.customer, incident.host, incident.subject) == ("acme", "web-01", "disk:/data")
    assert incident.state == "open"
    assert incident.severity == "warning"
    assert incident.occurrences == 1
    assert incident.assignment_group == "tier2"
    assert incident.runbook == "https://wiki.example/acme/disk-full"
    assert "used_percent 85 is above 80" in incident.title
    assert incident.expected == "used_percent not above 80 (warning) or 90 (critical)"
    assert incident.observed.startswith("used_percent = 85")
    assert incident.opened_at.replace(tzinfo=UTC) == START
    assert events_of(db, incident.id) == ["opened"]


def test_results_that_arrive_late_keep_the_time_the_host_saw_them(
    db: sa.Engine, engine: IncidentEngine, clock: ManualClock,
) -> None:
    # The run failed at 02:00 and waited in the agent's spool until the link came back at 06:30.
    clock.advance(4.5 * 3600)
    feed(db, engine, "db-01", export_run("42", JobOutcome.FAILED, START))
    [incident] = all_incidents(db)
    assert incident.opened_at.replace(tzinfo=UTC) == START + timedelta(hours=4, minutes=30)
    assert incident.first_observed_at.replace(tzinfo=UTC) == START
    # A later occurrence moves last_seen_at, never the first observation.
    clock.advance(0.5 * 3600)
    feed(db, engine, "db-01", export_run("43", JobOutcome.FAILED, START + timedelta(hours=5)))
    [incident] = all_incidents(db)
    assert incident.occurrences == 2
    assert incident.first_observed_at.replace(tzinfo=UTC) == START


def test_repeats_add_occurrences_to_one_incident_without_event_rows(
    db: sa.Engine, engine: IncidentEngine, clock: ManualClock,
) -> None:
    feed(db, engine, "web-01", disk(85, START))
    for used in (86, 87, 88):
        clock.advance(60)
        feed(db, engine, "web-01", disk(used, clock.now()))
    [incident] = all_incidents(db)
    assert incident.occurrences == 4
    assert incident.observed.startswith("used_percent = 88")
    assert incident.last_seen_at.replace(tzinfo=UTC) == clock.now()
    assert incident.opened_at.replace(tzinfo=UTC) == START
    assert events_of(db, incident.id) == ["opened"]


def test_recovery_resolves_the_incident(
    db: sa.Engine, engine: IncidentEngine, clock: ManualClock,
) -> None:
    feed(db, engine, "web-01", disk(85, START))
    clock.advance(300)
    feed(db, engine, "web-01", disk(50, clock.now()))
    [incident] = all_incidents(db)
    assert incident.state == "resolved"
    assert incident.resolved_at.replace(tzinfo=UTC) == clock.now()
    assert incident.resolution == "recovered: used_percent = 50"
    assert events_of(db, incident.id) == ["opened", "resolved"]


def test_a_problem_after_resolution_is_a_new_incident(
    db: sa.Engine, engine: IncidentEngine, clock: ManualClock,
) -> None:
    feed(db, engine, "web-01", disk(85, START))
    clock.advance(60)
    feed(db, engine, "web-01", disk(50, clock.now()))
    clock.advance(60)
    feed(db, engine, "web-01", disk(95, clock.now()))
    first, second = all_incidents(db)
    assert first.state == "resolved"
    assert second.state == "open"
    assert second.severity == "critical"
    assert second.occurrences == 1
    assert first.dedup_key == second.dedup_key


def test_a_warning_that_gets_worse_is_upgraded_on_the_same_incident(
    db: sa.Engine, engine: IncidentEngine, clock: ManualClock,
) -> None:
    feed(db, engine, "web-01", disk(85, START))
    clock.advance(60)
    feed(db, engine, "web-01", disk(93, clock.now()))
    clock.advance(60)
    feed(db, engine, "web-01", disk(86, clock.now()))  # better, but still a problem
    [incident] = all_incidents(db)
    assert incident.severity == "critical"
    assert incident.occurrences == 3
    assert "93 is above 90" in incident.title
    assert events_of(db, incident.id) == ["opened", "severity"]


def test_each_mount_and_each_host_is_its_own_incident(
    db: sa.Engine, engine: IncidentEngine,
) -> None:
    feed(db, engine, "web-01", disk(85, START, "/data"), disk(85, START, "/var"))
    feed(db, engine, "web-02", disk(85, START, "/data"))
    assert len(all_incidents(db)) == 3


def test_a_failed_job_run_opens_and_a_later_success_resolves(
    db: sa.Engine, engine: IncidentEngine, clock: ManualClock,
) -> None:
    feed(db, engine, "db-01", export_run("41", JobOutcome.FAILED, START))
    clock.advance(3600)
    feed(db, engine, "db-01", export_run("42", JobOutcome.FAILED, clock.now()))
    [incident] = all_incidents(db)
    assert incident.state == "open"
    assert incident.severity == "critical"
    assert incident.occurrences == 2
    assert incident.evidence_source == "/var/log/export.log:1234"
    assert "connection to warehouse refused" in incident.evidence
    assert "exit code 3" in incident.observed
    assert incident.observed.startswith("run 42")

    clock.advance(3600)
    feed(db, engine, "db-01", export_run("43", JobOutcome.SUCCEEDED, clock.now()))
    [incident] = all_incidents(db)
    assert incident.state == "resolved"
    assert incident.resolution == "recovered: run 43 succeeded"


def test_one_failed_run_reported_twice_is_one_occurrence_told_better(
    db: sa.Engine, engine: IncidentEngine, clock: ManualClock,
) -> None:
    # A log says ERROR first and the exit code later: two FAILED updates of one run.
    error_line = JobRun(probe="joblog", job="nightly-export", run_id="42",
                        outcome=JobOutcome.FAILED, observed_at=START,
                        excerpt="ERROR: connection to warehouse refused\n")
    feed(db, engine, "db-01", error_line)
    clock.advance(1)
    feed(db, engine, "db-01", export_run("42", JobOutcome.FAILED, clock.now()))
    [incident] = all_incidents(db)
    assert incident.occurrences == 1
    assert incident.title == "job nightly-export failed on db-01 (exit code 3)"

    clock.advance(86400)
    feed(db, engine, "db-01", export_run("43", JobOutcome.FAILED, clock.now()))
    [incident] = all_incidents(db)
    assert incident.occurrences == 2


def test_a_running_job_and_a_job_on_an_unwatched_host_say_nothing(
    db: sa.Engine, engine: IncidentEngine,
) -> None:
    feed(db, engine, "db-01", export_run("41", JobOutcome.RUNNING, START))
    feed(db, engine, "web-01", export_run("41", JobOutcome.FAILED, START))
    assert all_incidents(db) == []


def test_status_following_threshold_opens_on_crit_and_ignores_unknown(
    db: sa.Engine, engine: IncidentEngine, clock: ManualClock,
) -> None:
    def service(status: Status) -> Result:
        return Result(probe="service", check="service:nginx", status=status,
                      summary=f"nginx {status.name}", observed_at=clock.now())

    feed(db, engine, "web-01", service(Status.CRIT))
    clock.advance(60)
    feed(db, engine, "web-01", service(Status.UNKNOWN))
    [incident] = all_incidents(db)
    assert (incident.state, incident.severity, incident.occurrences) == ("open", "critical", 1)
    clock.advance(60)
    feed(db, engine, "web-01", service(Status.OK))
    [incident] = all_incidents(db)
    assert incident.state == "resolved"


def test_a_restarted_engine_still_resolves_incidents_opened_before(
    db: sa.Engine, engine: IncidentEngine, clock: ManualClock,
) -> None:
    feed(db, engine, "web-01", disk(85, START))
    restarted = IncidentEngine(engine.customers, clock)
    clock.advance(60)
    feed(db, restarted, "web-01", disk(40, clock.now()))
    [incident] = all_incidents(db)
    assert incident.state == "resolved"


def test_a_rolled_back_resolution_is_retried_after_invalidate(
    db: sa.Engine, engine: IncidentEngine, clock: ManualClock,
) -> None:
    feed(db, engine, "web-01", disk(85, START))
    clock.advance(60)
    with db.connect() as conn:
        conn.begin()
        engine.on_items(conn, "agent-1", "acme", "web-01", [disk(40, clock.now())])
        conn.rollback()
    engine.invalidate()
    feed(db, engine, "web-01", disk(40, clock.now()))
    [incident] = all_incidents(db)
    assert incident.state == "resolved"


def test_items_of_an_unknown_customer_are_ignored(
    db: sa.Engine, engine: IncidentEngine,
) -> None:
    with db.begin() as conn:
        engine.on_items(conn, "agent-9", "initech", "web-01", [disk(99, START)])
    assert all_incidents(db) == []
