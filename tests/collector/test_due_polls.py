"""The due-time loop looks only at what is due (stale checks, silent agents, open incidents),
and still resolves what comes back, also after a restart emptied its memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
    check: "disk:*"
    max_age: 5m
"""


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Night]:
    night = Night(tmp_path, ACME, utc("2025-03-04 01:00"),
                  [("agent-1", "web1"), ("agent-2", "web2")])
    night.reporting["agent-1"] = ("web1", ("disk:/data", "disk:/logs"))
    night.reporting["agent-2"] = ("web2", ("disk:/data",))
    yield night
    night.close()


def test_an_agent_back_after_a_restart_resolves_its_open_silence(kit: Night) -> None:
    kit.run_until(utc("2025-03-04 01:14"))
    kit.alive.discard("agent-1")
    kit.run_until(utc("2025-03-04 01:30"))
    (silent,) = kit.incidents(incidents.c.expectation == "agents-alive")
    assert silent.state == "open"
    kit.restart()  # the loop no longer remembers who was silent; the store does
    kit.alive.add("agent-1")
    kit.run_until(utc("2025-03-04 01:31"))
    (back,) = kit.incidents(incidents.c.expectation == "agents-alive")
    assert back.state == "resolved"
    assert back.resolution.startswith("agent agent-1 back at 02:3")


def test_a_check_fresh_again_after_a_restart_resolves_its_open_staleness(kit: Night) -> None:
    kit.tick()
    kit.reporting["agent-1"] = ("web1", ("disk:/data",))
    kit.run_until(utc("2025-03-04 01:20"))
    (stale,) = kit.incidents(incidents.c.expectation == "fresh")
    assert (stale.host, stale.subject, stale.state) == ("web1", "disk:/logs", "open")
    kit.restart()
    kit.send("agent-1", "web1", kit.result("disk:/logs", Status.OK))
    kit.run_until(utc("2025-03-04 01:21"))
    (resolved,) = kit.incidents(incidents.c.expectation == "fresh")
    assert resolved.state == "resolved"


def test_a_stale_check_the_glob_leaves_out_does_not_make_the_loop_spin(kit: Night) -> None:
    kit.send("agent-2", "web2", kit.result("service:nginx", Status.OK))  # never again
    kit.run_until(utc("2025-03-04 01:30"))
    next_due = kit.tick()
    assert next_due is not None
    assert next_due > kit.clock.now()
    assert kit.incidents() == []


def test_a_silent_agent_is_told_once_while_the_others_report(kit: Night) -> None:
    kit.tick()
    kit.alive.discard("agent-2")
    kit.run_until(utc("2025-03-04 01:10"))
    (silent,) = kit.incidents()
    assert (silent.host, silent.expectation, silent.occurrences) == ("web2", "agents-alive", 1)
    assert "1 check(s) without data held back" in silent.observed
