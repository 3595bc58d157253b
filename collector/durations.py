"""Durations as people write them in customer files: "90s", "15m", "2h", "1h30m", "2d", and
as titles and tickets show them ("2h 05m").

Its own module because both the customer file (service levels, windows) and the expectation
kinds (deadlines, freshness) read them, and customers.py imports the expectation catalog.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator

_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: object) -> timedelta:
    """ "15m", "2h", "1h30m", "90s", "1d", "0m" (or a timedelta) -> timedelta; else ValueError."""
    if isinstance(value, timedelta):
        return value
    text = value.strip() if isinstance(value, str) else ""
    found = _DURATION_RE.match(text) if text else None
    if found is None or not any(found.groups()):
        raise ValueError(f"{value!r} is not a duration: write e.g. 90s, 15m, 2h, 1h30m or 2d")
    days, hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def format_duration(span: timedelta | float) -> str:
    """2h 05m, 14m 10s, 3s: how long something ran, for titles."""
    seconds = int(span.total_seconds() if isinstance(span, timedelta) else span)
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
