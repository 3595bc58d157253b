"""agent_heartbeat: silence is an incident, once, and the checks of a silent agent are held back
and counted in it (driven through the due-time loop on a real store)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from collector.expectations.heartbeat import AgentHeartbeatExpectation
from collector.store.schema import incidents
from probes.result import Status
from tests.collector.night_kit import Night, utc

ACME = """\
customer: acme
name: ACME
timezone: Europe/Berlin
expectations:
  - kind: agent_heartbeat
    name: agents-alive
  - kind: check_freshness
    name: fresh
    check: "*"
    max_age: 5m
"""


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Night]:
    night = Night(tmp_path, ACME, utc("2025-03-04 01:00"), [("agent-1", "web1")])
    night.reporting["agent-1"] = ("web1", ("disk:/data", "disk:/logs", "service:nginx"))
    yield night
    night.close()


def test_the_default_allowance_is_three_heartbeat_intervals() -> None:
    watch = AgentHeartbeatExpectation.model_validate({"kind": "agent_heartbeat", "name": "a"})
    assert watch.allowance(timedelta(seconds=15)) == timedelta(seconds=45)
    assert watch.model_copy(update={"allow": timedelta(minutes=2)}).allowance(
        timedelta(seconds=15)) == timedelta(minutes=2)


def test_an_agent_silent_past_its_allowance_opens_one_incident_saying_since_when(
    kit: Night,
) -> None:
    kit.run_until(utc("2025-03-04 01:14"))
    kit.alive.discard("agent-1")
    kit.run_until(utc("2025-03-04 01:14:40"))
    assert kit.incidents() == []  # 40 s is within 3 x 15 s
    kit.run_until(utc("2025-03-04 02:00"))
    (silent,) = kit.incidents()
    assert silent.title == "agent agent-1 on web1 silent since 02:14"
    assert silent.occurrences == 1


def test_checks_of_a_silent_agent_are_held_back_and_counted_then_released(kit: Night) -> None:
    kit.run_until(utc("2025-03-04 01:14"))
    kit.alive.discard("agent-1")
    kit.run_until(utc("2025-03-04 01:30"))
    (silent,) = kit.incidents()
    assert "3 check(s) without data held back" in silent.observed
    kit.alive.add("agent-1")
    kit.run_until(utc("2025-03-04 01:31"))
    (back,) = kit.incidents()
    assert back.state == "resolved"
    assert back.resolution == "agent agent-1 back at 02:30; 3 held-back check(s) released"
    assert kit.incidents(incidents.c.expectation == "fresh") == []


def test_a_stale_check_of_a_live_agent_is_not_held_back(kit: Night) -> None:
    kit.tick()
    kit.reporting["agent-1"] = ("web1", ("disk:/data",))  # the others stop reporting
    kit.run_until(utc("2025-03-04 01:20"))
    stale = kit.incidents(incidents.c.expectation == "fresh")
    assert sorted(row.subject for row in stale) == ["disk:/logs", "service:nginx"]
    assert stale[0].title.startswith("no data from ")
    kit.send("agent-1", "web1", kit.result("disk:/logs", Status.OK),
             kit.result("service:nginx", Status.OK))
    kit.run_until(utc("2025-03-04 01:21"))
    assert all(row.state == "resolved" for row in kit.incidents(incidents.c.expectation == "fresh"))
