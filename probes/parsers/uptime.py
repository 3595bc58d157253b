"""The `uptime` command's line: time since boot, users and the load averages.

    10:25:20 up 16:03,  2 users,  load average: 0.00, 0.01, 0.05
    09:01:02 up 12 days,  3:04,  1 user,  load average: 1.10, 0.90, 0.80
    09:01:02 up 1 day, 5 min,  0 users,  load average: 0.10, 0.20, 0.30
    09:01:02 up 23 min,  load average: 0.00, 0.00, 0.00        (busybox: no users field)

The time since boot has minute resolution only; `/proc/uptime` is better where it exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from probes.parsers.procfs import LoadAverage

_LINE = re.compile(
    r"\bup\s+(?P<up>.*?),\s+(?:(?P<users>\d+)\s+users?,\s+)?"
    r"load averages?:\s+(?P<one>[\d.]+),?\s+(?P<five>[\d.]+),?\s+(?P<fifteen>[\d.]+)"
)
_DAYS = re.compile(r"^(\d+)\s+days?$")
_HOURS_MINUTES = re.compile(r"^(\d+):(\d{2})$")
_MINUTES = re.compile(r"^(\d+)\s+min(?:ute)?s?$")
_HOURS = re.compile(r"^(\d+)\s+hours?$")


@dataclass(frozen=True, slots=True)
class UptimeLine:
    uptime_s: float
    users: int | None
    load: LoadAverage


def _duration_seconds(text: str) -> float:
    seconds = 0.0
    for part in (p.strip() for p in text.split(",")):
        if match := _DAYS.match(part):
            seconds += int(match[1]) * 86400
        elif match := _HOURS_MINUTES.match(part):
            seconds += int(match[1]) * 3600 + int(match[2]) * 60
        elif match := _MINUTES.match(part):
            seconds += int(match[1]) * 60
        elif match := _HOURS.match(part):
            seconds += int(match[1]) * 3600
        else:
            raise ValueError(f"could not parse uptime {text!r}")
    return seconds


def parse_uptime_line(text: str) -> UptimeLine:
    match = _LINE.search(text)
    if match is None:
        raise ValueError(f"could not parse uptime output {text.strip()[:200]!r}")
    return UptimeLine(
        uptime_s=_duration_seconds(match["up"]),
        users=int(match["users"]) if match["users"] is not None else None,
        load=LoadAverage(float(match["one"]), float(match["five"]), float(match["fifteen"])),
    )
