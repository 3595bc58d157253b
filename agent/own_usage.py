"""The agent's own memory and CPU, for its heartbeats.

On Linux this reads /proc/self/statm and os.times() directly: psutil would cost about 1.5 MiB
of resident memory on every host for two numbers, and the agent's budget is 55 MiB. Elsewhere
psutil is imported on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

from probes.clock import Clock

_STATM = Path("/proc/self/statm")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def resident_bytes() -> int:
    try:
        # statm: size resident shared text lib data dt, in pages.
        resident_pages = int(_STATM.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        import psutil  # not Linux: pay for psutil only here

        return int(psutil.Process().memory_info().rss)
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


class OwnUsage:
    """cpu_percent() is the share of one core used since the previous call (or since start),
    as psutil's Process.cpu_percent(None) reports it."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last_wall = clock.monotonic()
        self._last_cpu = _own_cpu_seconds()

    def cpu_percent(self) -> float:
        now_wall = self._clock.monotonic()
        now_cpu = _own_cpu_seconds()
        elapsed = now_wall - self._last_wall
        used = now_cpu - self._last_cpu
        self._last_wall, self._last_cpu = now_wall, now_cpu
        if elapsed <= 0:
            return 0.0
        return max(0.0, 100.0 * used / elapsed)

    def resident_bytes(self) -> int:
        return resident_bytes()
