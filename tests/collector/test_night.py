"""Whole nights in seconds on a ManualClock: schedules across both DST transitions of
Europe/Berlin in 2025 (spring forward 2025-03-30 02:00 CET -> 03:00 CEST, i.e. 01:00 UTC; fall
back 2025-10-26 03:00 CEST -> 02:00 CET, i.e. 01:00 UTC), jobs that run fine, fail, never start,
complete late and end too fast, a silent agent whose checks are held back, a flapping check
damped and its end announced, and the collector restarted in the middle of the night.

Times below are UTC (`utc("2025-03-30 01:15")`); comments give the Berlin wall time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.store.schema import incidents, job_slots, outbox
from probes.result import JobOutcome, Status
from tests.collector.night_kit import Night, utc

ACME = """\
customer: acme
name: ACME Logistics
timezone: Europe/Berlin
sinks:
  - type: webhook
    name: desk
    url: http://127.0.0.1:9/hook
    secret_file: hook.secret
expectations:
  - kind: job_schedule
    name: backup-on-time
    job: backup
    hosts: ["db1"]
    schedule: "0 1 * * *"
    start_by: 10m
    complete_by: "04:00"
    min_runtime: 1m
  - kind: job_schedule
    name: export-on-time
    job: nightly-export
    hosts: ["db1"]
    schedule: "30 2 * * *"
    start_by: 15m
    complete_by: "06:30"
  - kind: job_schedule
    name: report-on-time
    job: report
    hosts: ["db1"]
    schedule: "0 3 * * *"
    start_by: 15m
    complete_by: "05:00"
  - kind: agent_heartbeat
    name: agents-alive
    hosts: ["web1"]
    allow: 2m
  - kind: check_freshness
    name: disks-fresh
    check: "disk:*"
    hosts: ["web1"]
    max_age: 10m
  - kind: threshold
    name: queue-up
    check: "service:queue"
    hosts: ["app1"]
"""

FOUR_MINUTES = utc("2025-01-01 00:04") - utc("2025-01-01 00:00")
AGENTS = (("agent-db1", "db1"), ("agent-web1", "web1"), ("agent-app1", "app1"))


@pytest.fixture
def night(tmp_path: Path) -> Iterator[Night]:
    # Saturday 2025-03-29 22:00 CET.
    kit = Night(tmp_path, ACME, utc("2025-03-29 21:00"), AGENTS)
    yield kit
    kit.close()


def _by_subject(kit: Night, prefix: str) -> list[str]:
    return [row.subject for row in kit.incidents(incidents.c.subject.startswith(prefix))]


def test_a_spring_forward_night_and_the_next_one(night: Night) -> None:
    kit = night
    # web1's disks report at every step while its agent is alive (max_age is 10m).
    kit.reporting["agent-web1"] = ("web1", ("disk:/data", "disk:/logs"))
    kit.tick()

    # 22:00-23:00 CET: service:queue on app1 goes CRIT and OK every 4 minutes: it flaps.
    for flip in range(12):
        kit.run_until(utc("2025-03-29 21:04") + FOUR_MINUTES * flip)
        status = Status.CRIT if flip % 2 == 0 else Status.OK
        kit.send("agent-app1", "app1", kit.result("service:queue", status))
    queue = kit.incidents(incidents.c.expectation == "queue-up")
    assert len(queue) == 6  # the state still follows the check: six opened, six resolved
    assert all(row.state == "resolved" for row in queue)
    assert len(kit.events("flapping")) == 1
    sent_while_flapping = len(kit.outbox())
    # Opened and resolved were sent for the first flips only: the rest were damped.
    assert sent_while_flapping < 12

    # Backup (01:00 CET = 00:00 UTC) starts at once...
    kit.run_until(utc("2025-03-30 00:01"))
    kit.send("agent-db1", "db1", kit.run("backup", "b-1", JobOutcome.RUNNING,
                                         utc("2025-03-30 00:01")))
    # ...web1's agent speaks for the last time at 01:14 CET (00:14 UTC), its disks with it...
    kit.run_until(utc("2025-03-30 00:14"))
    kit.alive.discard("agent-web1")
    # ...and the backup fails: opened at once.
    kit.run_until(utc("2025-03-30 00:20"))
    kit.send("agent-db1", "db1", kit.run("backup", "b-1", JobOutcome.FAILED,
                                         utc("2025-03-30 00:01"), utc("2025-03-30 00:20"), 2))
    backup = kit.incidents(incidents.c.expectation == "backup-on-time")
    assert [row.subject for row in backup] == ["backup@2025-03-30T01:00+01:00"]
    assert backup[0].state == "open"
    assert "failed" in backup[0].title

    # web1 silent since 01:14 CET: 2 min later the agent is an incident; its disks go stale at
    # 00:24 UTC and are held back, counted in the agent's incident.
    kit.run_until(utc("2025-03-30 00:40"))
    silent = kit.incidents(incidents.c.expectation == "agents-alive")
    assert len(silent) == 1
    assert silent[0].title == "agent agent-web1 on web1 silent since 01:14"
    assert "2 check(s) without data held back" in silent[0].observed
    assert kit.incidents(incidents.c.expectation == "disks-fresh") == []

    # Export's 02:30 does not exist tonight: it runs right after the gap, 03:00 CEST (01:00).
    export_slots = kit.slots(job_slots.c.expectation == "export-on-time")
    assert utc("2025-03-30 01:00") in [s.slot_at.replace(tzinfo=utc("2025-03-30 01:00").tzinfo)
                                       for s in export_slots]
    kit.run_until(utc("2025-03-30 01:01"))
    kit.send("agent-db1", "db1", kit.run("nightly-export", "e-1", JobOutcome.RUNNING,
                                         utc("2025-03-30 01:01")))

    # Report (03:00 CEST = 01:00 UTC) never starts: "did not start by 03:15".
    kit.run_until(utc("2025-03-30 01:16"))
    report = kit.incidents(incidents.c.expectation == "report-on-time")
    assert len(report) == 1
    assert report[0].title == "job report did not start by 03:15 on db1 (run of 03:00)"

    # The collector restarts in the middle of the night.
    open_before = {row.dedup_key for row in kit.incidents(incidents.c.state == "open")}
    kit.restart()
    kit.run_until(utc("2025-03-30 01:40"))
    kit.send("agent-db1", "db1", kit.run("nightly-export", "e-1", JobOutcome.SUCCEEDED,
                                         utc("2025-03-30 01:01"), utc("2025-03-30 01:40")))
    assert {row.dedup_key for row in kit.incidents(incidents.c.state == "open")} == open_before
    assert kit.incidents(incidents.c.expectation == "export-on-time") == []

    # Still not run at 05:00 CEST: the same incident, now "did not complete by 05:00".
    kit.run_until(utc("2025-03-30 03:10"))
    report = kit.incidents(incidents.c.expectation == "report-on-time")
    assert len(report) == 1
    assert report[0].title == "job report did not complete by 05:00 on db1 (run of 03:00)"
    assert report[0].occurrences == 1

    # web1 is back at 05:10 CEST: its incident resolves, no stale-check incident ever opened.
    kit.alive.add("agent-web1")
    kit.run_until(utc("2025-03-30 03:11"))
    silent = kit.incidents(incidents.c.expectation == "agents-alive")
    assert silent[0].state == "resolved"
    assert "2 held-back check(s) released" in silent[0].resolution
    assert kit.incidents(incidents.c.expectation == "disks-fresh") == []

    # Flapping ended long ago: its current state (resolved) was sent once more.
    assert len(kit.events("flapping_ended")) == 1
    final = kit.outbox(outbox.c.payload.contains('"change": "flapping_ended"'))
    assert [row.event for row in final] == ["resolved"]

    # The next night (CEST, UTC+2). Backup at 01:00 CEST ends after 5 s: suspiciously fast.
    kit.run_until(utc("2025-03-30 23:00"))
    kit.send("agent-db1", "db1", kit.run("backup", "b-2", JobOutcome.SUCCEEDED,
                                         utc("2025-03-30 23:00"),
                                         utc("2025-03-30 23:00:05")))
    fast = kit.incidents(incidents.c.subject == "backup@2025-03-31T01:00+02:00")
    assert len(fast) == 1
    assert "suspiciously fast" in fast[0].title

    # Export 02:30 CEST starts at 02:33, is not done by 06:30, completes at 06:52: late success.
    kit.run_until(utc("2025-03-31 00:33"))
    kit.send("agent-db1", "db1", kit.run("nightly-export", "e-2", JobOutcome.RUNNING,
                                         utc("2025-03-31 00:33")))
    kit.run_until(utc("2025-03-31 04:31"))
    late = kit.incidents(incidents.c.subject == "nightly-export@2025-03-31T02:30+02:00")
    assert [row.title for row in late] == [
        "job nightly-export did not complete by 06:30 on db1 (run of 02:30)"]
    kit.run_until(utc("2025-03-31 04:52"))
    kit.send("agent-db1", "db1", kit.run("nightly-export", "e-2", JobOutcome.SUCCEEDED,
                                         utc("2025-03-31 00:33"), utc("2025-03-31 04:52")))
    late = kit.incidents(incidents.c.subject == "nightly-export@2025-03-31T02:30+02:00")
    assert late[0].state == "resolved"
    assert late[0].resolution == "completed late at 06:52 (due 06:30)"
    slot = kit.slots(job_slots.c.expectation == "export-on-time",
                     job_slots.c.run_id == "e-2")
    assert slot[0].state == "late"

    # Report misses again: tonight's miss is its own incident, last night's is untouched, and
    # polling all night added no duplicates and no extra occurrences.
    kit.run_until(utc("2025-03-31 06:00"))
    assert _by_subject(kit, "report@") == [
        "report@2025-03-30T03:00+02:00", "report@2025-03-31T03:00+02:00"]
    assert all(row.occurrences == 1 for row in kit.incidents(
        incidents.c.expectation == "report-on-time"))


def test_an_autumn_night_runs_the_job_of_the_repeated_hour_once(tmp_path: Path) -> None:
    # Saturday 2025-10-25 22:00 CEST.
    kit = Night(tmp_path, ACME, utc("2025-10-25 20:00"), AGENTS)
    try:
        kit.run_until(utc("2025-10-26 00:31"))
        # 02:30 CEST, the first copy of the repeated hour.
        kit.send("agent-db1", "db1", kit.run("nightly-export", "e-1", JobOutcome.RUNNING,
                                             utc("2025-10-26 00:31")))
        kit.run_until(utc("2025-10-26 01:10"))
        kit.send("agent-db1", "db1", kit.run("nightly-export", "e-1", JobOutcome.SUCCEEDED,
                                             utc("2025-10-26 00:31"), utc("2025-10-26 01:10")))
        # 02:31 CET, the second copy: a manual rerun, not a second slot.
        kit.run_until(utc("2025-10-26 01:31"))
        kit.send("agent-db1", "db1", kit.run("nightly-export", "e-2", JobOutcome.SUCCEEDED,
                                             utc("2025-10-26 01:31"), utc("2025-10-26 01:50")))
        kit.run_until(utc("2025-10-26 07:00"))
        export = kit.slots(job_slots.c.expectation == "export-on-time",
                           job_slots.c.slot_at < utc("2025-10-26 12:00"))
        assert [(s.state, s.run_id) for s in export] == [("succeeded", "e-1")]
        assert kit.incidents(incidents.c.expectation == "export-on-time") == []
        # Report at 03:00 CET (02:00 UTC) did not start by 03:15: once, with CET in its subject.
        assert _by_subject(kit, "report@") == ["report@2025-10-26T03:00+01:00"]
    finally:
        kit.close()


RELAYED = """\
customer: acme
name: ACME Logistics
timezone: Europe/Berlin
expectations:
  - kind: job_schedule
    name: report-on-time
    job: report
    hosts: ["db-*"]
    schedule: "0 3 * * *"
    start_by: 15m
    complete_by: "05:00"
"""


def test_a_host_first_heard_of_between_two_hourly_passes_gets_its_slots_at_once(
    tmp_path: Path,
) -> None:
    # 04:40 CEST: the due-time loop's hourly pass knows no db-* host yet. At 04:45 a relay
    # reports db-9 for the first time; the next hourly pass (05:40) would come after tonight's
    # 05:00 deadline, so the slot is made when db-9 is first heard of.
    kit = Night(tmp_path, RELAYED, utc("2025-06-12 02:40"), (("relay", "relay"),))
    try:
        kit.tick()
        assert kit.slots() == []
        kit.run_until(utc("2025-06-12 02:45"))
        kit.send("relay", "db-9", kit.result("disk:/", Status.OK))
        assert [(s.host, s.slot_at) for s in kit.slots()][:1] == [
            ("db-9", utc("2025-06-12 01:00").replace(tzinfo=None))]
        kit.run_until(utc("2025-06-12 03:01"))
        [report] = kit.incidents(incidents.c.expectation == "report-on-time")
        assert report.host == "db-9"
        assert report.title == "job report did not complete by 05:00 on db-9 (run of 03:00)"
    finally:
        kit.close()
