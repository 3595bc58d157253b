"""When a scheduled job should run: the slots of a cron expression in the customer's timezone.

cronsim is the engine (the one behind healthchecks.io): `CronSim(expr, dt)` is handed its start
and never reads the clock. Its daylight-saving rule is Debian cron's, and it is ours:

- a job in the hour that is skipped in spring (`30 2 * * *` in Europe/Berlin on 2025-03-30, when
  02:00 jumps to 03:00) runs right after the gap, at 03:00 CEST, once;
- a job in the hour that is repeated in autumn (`30 2 * * *` on 2025-10-26, when 03:00 CEST goes
  back to 02:00 CET) runs once, in the first 02:30 (CEST);
- jobs with a `*` in the minute or hour field (`*/15 * * * *`, `0 * * * *`) are not "at a time"
  but "every so often", and follow the real clock: none in the skipped hour, both copies of the
  repeated one.

Slots are computed in the zone, then turned into UTC instants ("Important: convert from the local
timezone back to UTC", as healthchecks' `get_grace_start()` says after a DST bug): the store and
every comparison use UTC; the zone serves only the schedule and what a person reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta, tzinfo

from cronsim import CronSim, CronSimError

# A schedule is five fields, as in a crontab. cronsim also takes a sixth (seconds, first), but
# a night job "at second 30" is a typo, and 6-field expressions skip Debian's DST handling.
CRON_FIELDS = 5
_CLOCK_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")




def parse_clock_time(value: str) -> time | None:
    """ "06:30" -> time(6, 30); None when value is not a clock time (then it is a duration)."""
    found = _CLOCK_RE.match(value.strip())
    return time(int(found.group(1)), int(found.group(2))) if found else None


def next_wall_time(after: datetime, at: time, zone: tzinfo) -> datetime:
    """The first moment at or after `after` when the customer's clock shows `at`, in UTC.

    A wall time in the spring gap (02:30 on 2025-03-30 in Berlin) does not exist: zoneinfo
    reads it with the offset from before the gap, which lands 30 minutes after the gap (03:30
    CEST), the same "late rather than never" as the schedules. A wall time in the repeated
    autumn hour is its first copy (fold=0), the earlier deadline.
    """
    local = after.astimezone(zone)
    candidate = datetime.combine(local.date(), at, tzinfo=zone)
    while candidate.astimezone(UTC) < after.astimezone(UTC):
        candidate = datetime.combine(candidate.date() + timedelta(days=1), at, tzinfo=zone)
    return candidate.astimezone(UTC)


def check_schedule(expr: str) -> str:
    """The expression, if cronsim accepts it as a five-field schedule; else ValueError naming the
    field, in cronsim's words ("Bad minute")."""
    fields = expr.split()
    if len(fields) != CRON_FIELDS:
        raise ValueError(f"a schedule has 5 fields (minute hour day-of-month month day-of-week), "
                         f"{expr!r} has {len(fields)}")
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValueError(f"{exc} in {expr!r}") from exc
    return " ".join(fields)


def fire_times(expr: str, after: datetime) -> Iterator[datetime]:
    """Every time the expression fires strictly after `after`, in after's zone (or naive wall
    time when `after` is naive), in order. Ends when the expression can never fire again."""
    try:
        yield from CronSim(expr, after)
    except CronSimError:  # pragma: no cover - a checked expression has no bad fields
        return


def latest_slot_at_or_before(expr: str, zone: tzinfo, moment: datetime) -> datetime | None:
    """The latest slot at or before `moment` (aware), as a UTC instant; None if there is none
    in the last 400 days (a yearly job is the rarest one a schedule should describe).

    Searched forwards over a growing look-back rather than with cronsim's reverse iteration,
    whose DST handling differs from its forward one (in the repeated autumn hour it skipped
    that night's 02:30 altogether): forward is the rule every other answer here follows.
    """
    for lookback_days in (1, 8, 32, 400):
        found = slots_between(expr, zone, moment - timedelta(days=lookback_days), moment)
        if found:
            return found[-1]
    return None


def slots_between(expr: str, zone: tzinfo, after: datetime, until: datetime) -> list[datetime]:
    """The slots in (after, until], as aware UTC instants; `after`/`until` are any aware times.

    The iteration starts in the customer's zone: the fields mean the customer's wall clock.
    """
    if after.tzinfo is None or until.tzinfo is None:
        raise ValueError("slots_between needs aware datetimes")
    found: list[datetime] = []
    for local in fire_times(expr, after.astimezone(zone)):
        instant = local.astimezone(UTC)
        if instant > until.astimezone(UTC):
            break
        found.append(instant)
    return found


def local_label(instant: datetime, zone: tzinfo) -> str:
    """A slot as a customer reads it and as dedup keys carry it: `2025-03-04T02:00+01:00`.

    The offset is kept: in the repeated autumn hour, 02:30+02:00 and 02:30+01:00 differ.
    """
    return instant.astimezone(zone).isoformat(timespec="minutes")


def clock_time(instant: datetime, zone: tzinfo) -> str:
    """`06:30` in the customer's zone, for titles."""
    return instant.astimezone(zone).strftime("%H:%M")
