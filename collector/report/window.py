"""The report's window: from `--since` (a wall-clock time in each customer's zone, or one
absolute moment) to now.

`18:00` means the most recent 18:00 on the customer's own clock before now: yesterday evening
when the report runs in the morning, this evening when it runs at 23:00. The day is stepped on
the calendar, never by subtracting 24 hours: the night of a daylight-saving change is 23 or 25
hours long, and "now minus a day" would then start the window an hour off.

A wall time is read as the first instant the customer's clock showed it or later:
- in the hour skipped in spring (02:30 in Europe/Berlin on the last Sunday of March) that is the
  end of the gap, 03:00 summer time, the moment the clock first passed 02:30;
- in the hour repeated in autumn, the first of the two 02:30s (fold=0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_SINCE = "18:00"
_WALL_TIME = re.compile(r"^(?P<hour>[01]?\d|2[0-3]):(?P<minute>[0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Since:
    """What `--since` asked for: a wall time in each customer's zone, or one absolute moment."""

    wall_time: time | None = None
    moment: datetime | None = None

    def __str__(self) -> str:
        if self.wall_time is not None:
            return self.wall_time.strftime("%H:%M")
        assert self.moment is not None  # noqa: S101 - parse_since sets exactly one
        return self.moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_since(text: str) -> Since:
    """`HH:MM` (in each customer's zone) or an ISO 8601 time with an offset; ValueError else."""
    value = text.strip()
    matched = _WALL_TIME.match(value)
    if matched:
        return Since(wall_time=time(int(matched["hour"]), int(matched["minute"])))
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(f"since must be a time of day like 18:00 (in each customer's zone) or "
                         f"an ISO 8601 time with an offset like 2025-03-03T17:00:00Z; "
                         f"got {text!r}")
    return Since(moment=moment.astimezone(UTC))


def first_instant_at(day: date, wall_time: time, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) on `day` at which the clock in zone showed wall_time or later."""
    wall = datetime.combine(day, wall_time)
    earlier = wall.replace(tzinfo=zone, fold=0)
    if earlier.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return earlier.astimezone(UTC)  # it exists; fold=0 is the first of a repeated hour
    # In a gap: fold=0 reads it with the offset before the change and lands after the gap,
    # fold=1 with the offset after and lands before it. The change lies between; transitions
    # fall on whole seconds, so halving the interval finds it in a few steps.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = earlier.astimezone(UTC)
    while after - before > timedelta(seconds=1):
        middle = before + (after - before) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            after = middle
        else:
            before = middle
    return after.replace(microsecond=0)


def window_start(since: Since, now: datetime, zone: ZoneInfo) -> datetime:
    """Where the window of a customer in zone begins, for a report made at now."""
    if since.moment is not None:
        return since.moment
    assert since.wall_time is not None  # noqa: S101 - parse_since sets exactly one
    today = now.astimezone(zone).date()
    start = first_instant_at(today, since.wall_time, zone)
    if start > now:
        start = first_instant_at(today - timedelta(days=1), since.wall_time, zone)
    return start
