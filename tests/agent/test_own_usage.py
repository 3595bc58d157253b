from __future__ import annotations

import os
from datetime import UTC, datetime

import psutil

from agent.own_usage import OwnUsage
from probes.clock import ManualClock


def test_resident_memory_matches_what_psutil_reports() -> None:
    usage = OwnUsage(ManualClock(datetime(2026, 11, 24, tzinfo=UTC)))
    ours = usage.resident_bytes()
    theirs = psutil.Process().memory_info().rss
    assert ours > 1024 * 1024
    # Both read the same kernel counter a moment apart.
    assert abs(ours - theirs) < 4 * 1024 * 1024


def test_cpu_percent_is_the_cpu_time_used_over_the_time_passed() -> None:
    clock = ManualClock(datetime(2026, 11, 24, tzinfo=UTC))
    usage = OwnUsage(clock)
    start = os.times()
    while (os.times().user + os.times().system) - (start.user + start.system) < 0.05:
        pass  # burn at least 50 ms of CPU
    clock.advance(1.0)
    percent = usage.cpu_percent()
    assert 5.0 <= percent <= 100.0
    # Nothing used and no time passed: no division by zero.
    assert usage.cpu_percent() >= 0.0
