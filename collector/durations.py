"""Durations as people write them in customer files: "90s", "15m", "2h", "1h30m", "2d".

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
