"""Flapping damps notifications, never state; its end is always announced. And thresholds with
open_after / close_after do not flap in the first place. Driven through ingest on a real store,
with a webhook sink configured so the outbox shows what would be sent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from collector.incidents.flapping import ENTER_FLIPS, FlapPolicy
from collector.store.schema import incidents, outbox
from probes.result import Result, Status
from tests.collector.night_kit import Night, utc

ACME = """\
customer: acme
name: ACME
timezone: Europe/Berlin
sinks:
  - type: webhook
    name: desk
    url: http://127.0.0.1:9/hook
    secret_file: hook.secret
expectations:
  - kind: threshold
    name: queue-up
    check: "service:queue"
  - kind: threshold
    name: disk-space
    check: "disk:*"
    metric: used_percent
    warn: 80
    clear_below: 75
    open_after: 3
    close_after: 2
"""


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Night]:
    night = Night(tmp_path, ACME, utc("2025-03-04 01:00"), [("agent-1", "app1")])
    yield night
    night.close()


def flip(kit: Night, flips: int, every: timedelta = timedelta(minutes=3)) -> None:
    for n in range(flips):
        kit.run_until(kit.clock.now() + every)
        status = Status.CRIT if n % 2 == 0 else Status.OK
        kit.send("agent-1", "app1", kit.result("service:queue", status))


def test_the_policy_needs_a_gap_between_entering_and_leaving() -> None:
    with pytest.raises(ValueError, match="below enter_flips"):
        FlapPolicy(enter_flips=3, leave_flips=3)


def test_a_few_flips_are_all_notified(kit: Night) -> None:
    flip(kit, 4)
    assert [row.event for row in kit.outbox()] == ["opened", "resolved", "opened", "resolved"]
    assert kit.events("flapping") == []


def test_flapping_damps_notifications_but_state_follows_the_check(kit: Night) -> None:
    flip(kit, 11)  # ends CRIT: the sixth incident is open
    rows = kit.incidents()
    assert len(rows) == 6
    assert [row.state for row in rows][-1] == "open"
    # Notified up to the flip that made it flapping, not after it.
    assert len(kit.outbox()) == ENTER_FLIPS - 1
    assert len(kit.events("flapping")) == 1


def test_when_flapping_ends_the_current_state_is_sent(kit: Night) -> None:
    flip(kit, 11)
    open_incident = kit.incidents()[-1]
    kit.run_until(kit.clock.now() + timedelta(hours=2))
    assert len(kit.events("flapping_ended")) == 1
    # The last row of the change: the open incident also escalates meanwhile (nobody
    # acknowledged it within its 30 minutes), which is notified too.
    final = [row for row in kit.outbox() if '"change": "flapping_ended"' in row.payload][-1]
    assert final.incident_id == open_incident.id
    assert final.event == "updated"
    assert '"change": "flapping_ended"' in final.payload


def test_flapping_survives_a_restart(kit: Night) -> None:
    flip(kit, 8)
    kit.restart()
    flip(kit, 2)
    assert len(kit.outbox()) == ENTER_FLIPS - 1  # still damped after the restart
    kit.run_until(kit.clock.now() + timedelta(hours=2))
    assert len(kit.events("flapping_ended")) == 1


def disk(kit: Night, used: float) -> Result:
    return Result(probe="disk", check="disk:/data", status=Status.OK, summary=f"{used}%",
                  observed_at=kit.clock.now(), metrics={"used_percent": used})


def test_a_value_hovering_at_the_line_needs_open_after_results_in_a_row(kit: Night) -> None:
    # 74 is below clear_below; a value between 75 and 80 would say nothing, not break a streak.
    for used in (81, 74, 81, 81, 74, 81, 81):
        kit.send("agent-1", "app1", disk(kit, used))
    assert kit.incidents(incidents.c.expectation == "disk-space") == []
    kit.send("agent-1", "app1", disk(kit, 82))
    assert len(kit.incidents(incidents.c.expectation == "disk-space")) == 1


def test_it_resolves_after_close_after_results_below_the_clear_level(kit: Night) -> None:
    for used in (85, 85, 85):
        kit.send("agent-1", "app1", disk(kit, used))
    for used in (78, 78, 74):  # below warn but above clear_below: no change; then one clear
        kit.send("agent-1", "app1", disk(kit, used))
    (still_open,) = kit.incidents(incidents.c.expectation == "disk-space")
    assert still_open.state == "open"
    kit.send("agent-1", "app1", disk(kit, 70))
    (resolved,) = kit.incidents(incidents.c.expectation == "disk-space")
    assert resolved.state == "resolved"
    assert len(kit.outbox(outbox.c.event == "opened")) == 1
