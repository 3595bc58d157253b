"""Maintenance windows from the customer file: one-off and cron-recurring, in the customer's
zone, driven with a ManualClock through both DST nights of Europe/Berlin 2025
(2025-03-30 02:00 CET -> 03:00 CEST; 2025-10-26 03:00 CEST -> 02:00 CET)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from collector.customers import CustomerFile, load_customer_text
from collector.incidents.maintenance import active_window, window_end_after
from probes.clock import ManualClock

BERLIN = ZoneInfo("Europe/Berlin")

CUSTOMER = """\
customer: acme
name: ACME Logistics
timezone: Europe/Berlin
maintenance:
  - reason: Saturday night patching
    cron: "0 22 * * 6"
    duration: 4h
    hosts: ["db-*"]
  - reason: nightly backup
    cron: "30 2 * * *"
    duration: 1h
    hosts: ["backup-01"]
    expectations: ["disk-*"]
  - reason: datacenter move
    start: 2025-05-10 20:00
    end: "2025-05-11 06:00"
    hosts: ["app-*"]
"""


def acme(text: str = CUSTOMER) -> CustomerFile:
    return load_customer_text(text, Path("acme.yaml"))


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
           fold: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN, fold=fold)


def covered_instants(customer: CustomerFile, host: str, expectation: str, clock: ManualClock,
                     until: datetime, step: timedelta = timedelta(minutes=15)) -> list[str]:
    """Walk the clock to `until`; the local times (with offset) at which maintenance ran."""
    seen = []
    while clock.now() < until:
        if active_window(customer, host, expectation, clock.now()) is not None:
            seen.append(clock.now().astimezone(BERLIN).isoformat(timespec="minutes"))
        clock.advance(step.total_seconds())
    return seen


def test_a_one_off_window_runs_from_start_to_end_in_local_time() -> None:
    customer = acme()
    window = active_window(customer, "app-7", "disk-space", berlin(2025, 5, 10, 20, 0))
    assert window is not None
    assert window.reason == "datacenter move"
    assert (window.start, window.end) == (berlin(2025, 5, 10, 20, 0), berlin(2025, 5, 11, 6, 0))
    assert not window.recurring
    assert active_window(customer, "app-7", "disk-space", berlin(2025, 5, 11, 6, 0)) is None
    assert active_window(customer, "app-7", "disk-space", berlin(2025, 5, 10, 19, 59)) is None


def test_hosts_and_expectations_must_both_match() -> None:
    customer = acme()
    at = berlin(2025, 5, 6, 2, 45)  # the backup window
    assert active_window(customer, "backup-01", "disk-space", at) is not None
    assert active_window(customer, "backup-01", "nightly-export", at) is None
    assert active_window(customer, "backup-02", "disk-space", at) is None


def test_a_recurring_window_that_started_earlier_is_still_running() -> None:
    # Looked up at 01:00 Sunday, the window opened at 22:00 Saturday: three hours back.
    window = active_window(acme(), "db-01", "anything", berlin(2025, 5, 11, 1, 0))
    assert window is not None
    assert (window.start, window.end) == (berlin(2025, 5, 10, 22, 0), berlin(2025, 5, 11, 2, 0))
    assert window.recurring


def test_a_window_starting_exactly_now_is_running() -> None:
    assert active_window(acme(), "db-01", "x", berlin(2025, 5, 10, 22, 0)) is not None
    assert active_window(acme(), "db-01", "x", berlin(2025, 5, 11, 2, 0)) is None


def test_a_whole_saturday_night_on_a_manual_clock() -> None:
    clock = ManualClock(berlin(2025, 5, 10, 21, 0))
    seen = covered_instants(acme(), "db-01", "disk-space", clock, berlin(2025, 5, 11, 3, 0))
    assert seen[0] == "2025-05-10T22:00+02:00"
    assert seen[-1] == "2025-05-11T01:45+02:00"
    assert len(seen) == 16  # four hours in 15-minute steps


def test_four_hours_on_the_spring_forward_night_end_at_three_local() -> None:
    # 22:00 CET + 4 real hours = 02:00 UTC = 04:00 CEST? No: 21:00 UTC + 4 h = 01:00 UTC,
    # which is 03:00 CEST. The duration is elapsed time, the start is wall-clock.
    clock = ManualClock(berlin(2025, 3, 29, 21, 0))
    seen = covered_instants(acme(), "db-01", "disk-space", clock, berlin(2025, 3, 30, 5, 0))
    assert seen[0] == "2025-03-29T22:00+01:00"
    assert seen[-1] == "2025-03-30T01:45+01:00"
    assert len(seen) == 16
    assert active_window(acme(), "db-01", "x", berlin(2025, 3, 30, 3, 0)) is None


def test_a_window_in_the_skipped_hour_starts_right_after_the_gap() -> None:
    # 02:30 does not exist on 2025-03-30: cron (and cronsim) start it at 03:00 CEST.
    clock = ManualClock(berlin(2025, 3, 30, 0, 0))
    seen = covered_instants(acme(), "backup-01", "disk-data", clock, berlin(2025, 3, 30, 6, 0))
    assert seen == ["2025-03-30T03:00+02:00", "2025-03-30T03:15+02:00",
                    "2025-03-30T03:30+02:00", "2025-03-30T03:45+02:00"]


def test_a_window_in_the_repeated_hour_runs_once() -> None:
    # 02:30 happens twice on 2025-10-26; the window opens at the first 02:30 (CEST) only and
    # lasts one real hour, ending at 02:30 CET, the second time the clock shows 02:30.
    clock = ManualClock(berlin(2025, 10, 26, 0, 0))
    seen = covered_instants(acme(), "backup-01", "disk-data", clock, berlin(2025, 10, 26, 6, 0))
    assert seen == ["2025-10-26T02:30+02:00", "2025-10-26T02:45+02:00",
                    "2025-10-26T02:00+01:00", "2025-10-26T02:15+01:00"]


def test_the_end_of_maintenance_follows_overlapping_windows() -> None:
    customer = acme(CUSTOMER + """\
  - reason: extended patching
    start: 2025-05-11 01:00
    end: 2025-05-11 05:00
    hosts: ["db-01"]
  - reason: follow-up checks
    cron: "0 5 * * 0"
    duration: 30m
    hosts: ["db-*"]
""")
    # 22:00-02:00, then 01:00-05:00, then 05:00-05:30 (touching counts).
    end = window_end_after(customer, "db-01", "disk-space", berlin(2025, 5, 10, 23, 0))
    assert end == berlin(2025, 5, 11, 5, 30)
    assert window_end_after(customer, "db-02", "disk-space",
                            berlin(2025, 5, 10, 23, 0)) == berlin(2025, 5, 11, 2, 0)
    assert window_end_after(customer, "db-01", "disk-space", berlin(2025, 5, 11, 12, 0)) is None


def test_of_two_running_windows_the_one_ending_last_is_named() -> None:
    customer = acme(CUSTOMER + """\
  - reason: long patching
    start: 2025-05-10 21:00
    end: 2025-05-11 08:00
    hosts: ["db-01"]
""")
    window = active_window(customer, "db-01", "x", berlin(2025, 5, 10, 23, 0))
    assert window is not None
    assert window.reason == "long patching"
    assert window.end.astimezone(UTC) == datetime(2025, 5, 11, 6, 0, tzinfo=UTC)
