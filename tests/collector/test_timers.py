"""The due-time loop on a real store: slots materialised ahead, deadlines judged once and dated
at their due time, a failing row moved an hour ahead instead of crash-looping, a deadline inside
a maintenance window judged again when it ends, the conditional update, and the async loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector.expectations.deadline import JobScheduleExpectation
from collector.store.schema import incidents, job_slots
from collector.timers import RETRY_FAILED_AFTER, DueTimers
from probes.result import JobOutcome
from tests.collector.night_kit import HEARTBEAT_INTERVAL, Night, utc

ACME = """\
customer: acme
name: ACME
timezone: Europe/Berlin
maintenance:
  - reason: database upgrade
    hosts: ["db2"]
    start: "2025-03-04 03:00"
    end: "2025-03-04 04:00"
expectations:
  - kind: job_schedule
    name: report-on-time
    job: report
    hosts: ["db*"]
    schedule: "0 3 * * *"
    start_by: 15m
    complete_by: "05:00"
  - kind: job_schedule
    name: export-on-time
    job: export
    hosts: ["db*"]
    schedule: "30 3 * * *"
    start_by: 15m
    complete_by: "05:00"
"""
AGENTS = (("agent-db1", "db1"), ("agent-db2", "db2"))


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Night]:
    # 2025-03-04 01:00 CET.
    night = Night(tmp_path, ACME, utc("2025-03-04 00:00"), AGENTS)
    yield night
    night.close()


def test_slots_are_materialised_a_day_ahead_for_known_hosts(kit: Night) -> None:
    kit.tick()
    slots = kit.slots()
    assert {(s.host, s.expectation) for s in slots} == {
        (h, e) for h in ("db1", "db2") for e in ("report-on-time", "export-on-time")}
    assert all(s.state == "waiting" for s in slots)
    kit.tick()
    assert len(kit.slots()) == len(slots)  # materialising again adds nothing


def test_a_deadline_is_judged_once_and_dated_at_its_due_time(kit: Night) -> None:
    kit.run_until(utc("2025-03-04 02:40"))  # 03:40 CET: report due 03:15, checked late
    report = kit.incidents(incidents.c.expectation == "report-on-time",
                           incidents.c.host == "db1")
    assert len(report) == 1
    with kit.db.connect() as conn:
        slot = conn.execute(sa.select(job_slots).where(
            job_slots.c.host == "db1", job_slots.c.expectation == "report-on-time",
            job_slots.c.slot_at == utc("2025-03-04 02:00"))).one()
    assert slot.state == "missed"
    assert slot.evaluated_at == utc("2025-03-04 02:15").replace(tzinfo=None)
    kit.run_until(utc("2025-03-04 03:50"))
    assert len(kit.incidents(incidents.c.expectation == "report-on-time",
                             incidents.c.host == "db1")) == 1


def test_a_deadline_inside_maintenance_is_judged_again_when_the_window_ends(kit: Night) -> None:
    # db2 is in maintenance 03:00-04:00 CET: report's 03:15 and export's 03:45 fall inside.
    kit.run_until(utc("2025-03-04 02:50"))
    assert kit.incidents(incidents.c.host == "db2") == []
    # The export ran during the window after all; the report did not.
    kit.send("agent-db2", "db2", kit.run("export", "x-1", JobOutcome.SUCCEEDED,
                                         utc("2025-03-04 02:35"), utc("2025-03-04 02:50")))
    kit.run_until(utc("2025-03-04 03:01"))
    db2 = kit.incidents(incidents.c.host == "db2")
    assert [row.expectation for row in db2] == ["report-on-time"]
    assert db2[0].title == "job report did not start by 03:15 on db2 (run of 03:00)"


def test_a_slot_whose_evaluation_fails_moves_an_hour_ahead_and_the_others_go_on(
    kit: Night,
) -> None:
    kit.tick()
    with kit.db.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse_report BEFORE INSERT ON incidents "
            "WHEN NEW.subject LIKE 'report@%' AND NEW.host = 'db1' "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    kit.run_until(utc("2025-03-04 02:16"))
    with kit.db.connect() as conn:
        failing = conn.execute(sa.select(job_slots).where(
            job_slots.c.host == "db1", job_slots.c.expectation == "report-on-time",
            job_slots.c.slot_at == utc("2025-03-04 02:00"))).one()
    assert failing.state == "waiting"  # rolled back with its incident
    assert failing.next_check_at == (utc("2025-03-04 02:15") + RETRY_FAILED_AFTER).replace(
        tzinfo=None)
    # db2 is in maintenance until 04:00 CET; db1's export is judged normally meanwhile.
    kit.run_until(utc("2025-03-04 02:46"))
    assert [row.subject for row in kit.incidents(incidents.c.host == "db1")] == [
        "export@2025-03-04T03:30+01:00"]


def test_a_slot_changed_meanwhile_is_left_alone(kit: Night) -> None:
    kit.tick()
    with kit.db.begin() as conn:
        row = conn.execute(sa.select(job_slots).where(
            job_slots.c.host == "db1", job_slots.c.expectation == "report-on-time")
            .order_by(job_slots.c.slot_at)).first()
        assert row is not None
        conn.execute(job_slots.update().where(job_slots.c.id == row.id)
                     .values(state="started"))
        expectation = kit.customer.expectations[0]
        assert isinstance(expectation, JobScheduleExpectation)
        assert kit.engine.slots.evaluate(conn, row, kit.customer.zone, expectation,
                                         utc("2025-03-04 02:20")) is None


def test_the_loop_runs_until_cancelled_and_judges_what_is_due(kit: Night) -> None:
    kit.tick()
    kit.clock.advance((utc("2025-03-04 02:16") - kit.clock.now()).total_seconds())
    timers = DueTimers(kit.writer, kit.engine, kit.clock, heartbeat_interval=HEARTBEAT_INTERVAL,
                       max_sleep_s=0.05)

    async def run_until_opened() -> int:
        task = asyncio.create_task(timers.run())
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                found = len(kit.incidents(incidents.c.expectation == "report-on-time"))
                if found:
                    return found
                timers.wake()
                await asyncio.sleep(0.02)
            return 0
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    assert asyncio.run(run_until_opened()) == 1
