"""Due times in a customer's service hours: when an incident must be answered and fixed.

A contract says "respond within 1 h" and means one hour of *service* time: an incident at 02:00
on Saturday for a Mon-Fri 07:00-17:00 customer starts its clock on Monday 07:00 and is due at
08:00. Nights, weekends and the customer's holidays do not count, unless the severity level
says `counts: calendar` (a P1 is worked around the clock).

Daylight saving: service hours are wall-clock hours of the customer's zone. "07:00-17:00" opens
at 07:00 local whatever the UTC offset is that day, so a 07:00-17:00 day is 10 h on a DST-change
day too (the change happens at night, outside the range). That is why each range's ends are
turned into UTC instants on their own date, never computed as "local midnight + 7 h" (which is
08:00 on a spring-forward day). Inside a range the time counted is real elapsed time, so a
range that contains the change itself (00:00-24:00 on that night) is 23 or 25 h long, and a
24x7 calendar is plain addition in UTC.

Everything here is pure: the start time is handed in, as `CronSim(expr, dt)` takes its `dt`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from collector.customers import Counts, CustomerFile, ServiceHours
from collector.expectations.base import Severity

# A calendar always has service on some weekday, so an open range comes within a week plus its
# holidays; scanning ten years without one means the holidays list every day (a broken file).
MAX_SCAN_DAYS = 3660


@dataclass(frozen=True, slots=True)
class ServiceCalendar:
    """When a customer's clock runs. `hours` None: every hour counts (24x7, no holidays)."""

    zone: ZoneInfo
    hours: ServiceHours | None = None
    holidays: frozenset[date] = frozenset()

    @classmethod
    def for_customer(cls, customer: CustomerFile, counts: Counts) -> ServiceCalendar:
        if counts is Counts.CALENDAR:
            return cls(customer.zone)
        return cls(customer.zone, customer.service_hours, frozenset(customer.holidays))

    @property
    def is_always_open(self) -> bool:
        return self.hours is None or (self.hours.is_24x7 and not self.holidays)

    def intervals_from(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Service intervals [opens, closes) in UTC, in order, the first clipped to start."""
        start = start.astimezone(UTC)
        if self.hours is None:
            yield start, datetime.max.replace(tzinfo=UTC)
            return
        # From the day before: a range's UTC instants can reach back over a DST gap.
        first_day = start.astimezone(self.zone).date() - timedelta(days=1)
        for offset in range(MAX_SCAN_DAYS):
            day = first_day + timedelta(days=offset)
            if day in self.holidays:
                continue
            for service in self.hours.ranges_on(day.weekday()):
                opens = local_instant(day, service.start, self.zone)
                closes = local_instant(day, service.end, self.zone)
                opens = max(opens, start)
                if closes > opens:
                    yield opens, closes
        raise ValueError(f"no service hours within {MAX_SCAN_DAYS} days of {start.isoformat()} "
                         "(do the holidays cover every day?)")

    def is_in_service(self, at: datetime) -> bool:
        opens, _closes = next(self.intervals_from(at))
        return opens == at.astimezone(UTC)


def local_instant(day: date, minute_of_day: int, zone: ZoneInfo) -> datetime:
    """The UTC instant of `minute_of_day` (0-1440) on `day` in zone; 1440 is the next midnight."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute_of_day)
    return wall_to_utc(wall, zone)


def wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive wall-clock time of zone as an aware UTC instant.

    A time repeated when the clocks go back is its first occurrence; a time skipped when they
    go forward means the first instant after the gap (Debian cron's rule, which cronsim
    follows: a 02:30 job on a spring-forward night runs at 03:00)."""
    first = wall.replace(tzinfo=zone, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return utc
    # In the gap. fold=0 read it with the offset from before the change (an instant after the
    # change), fold=1 with the offset from after it (an instant before the change): the change
    # lies between them; find it to the second.
    after_change = int(utc.timestamp())
    before_change = int(wall.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp())
    offset_after = utc.astimezone(zone).utcoffset()
    while after_change - before_change > 1:
        middle = (after_change + before_change) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(zone).utcoffset() == offset_after:
            after_change = middle
        else:
            before_change = middle
    return datetime.fromtimestamp(after_change, UTC)


def service_start(start: datetime, calendar: ServiceCalendar) -> datetime:
    """When the clock of something that happened at start begins to run (UTC): start itself
    inside service hours, else the next opening (Saturday 02:00 -> Monday 07:00)."""
    if calendar.is_always_open:
        return start.astimezone(UTC)
    opens, _closes = next(calendar.intervals_from(start))
    return opens


def due_at(start: datetime, within: timedelta, calendar: ServiceCalendar) -> datetime:
    """start plus `within` of service time, in UTC. within 0 is due at start itself."""
    if within < timedelta(0):
        raise ValueError(f"within must not be negative, got {within}")
    start = start.astimezone(UTC)
    if not within or calendar.is_always_open:
        return start + within
    remaining = within
    for opens, closes in calendar.intervals_from(start):
        span = closes - opens
        if remaining <= span:
            return opens + remaining
        remaining -= span
    raise AssertionError("intervals_from ends only by raising")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class SlaTimes:
    """What an incident of one severity gets from the customer's contract."""

    priority: str  # the customer's level name, e.g. P2
    respond_by: datetime  # UTC
    resolve_by: datetime  # UTC


def sla_times(customer: CustomerFile, severity: Severity, opened_at: datetime) -> SlaTimes:
    """The customer's level for severity, and its due times for an incident opened then."""
    name, level = customer.level_for(severity)
    calendar = ServiceCalendar.for_customer(customer, level.counts)
    return SlaTimes(
        priority=name,
        respond_by=due_at(opened_at, level.respond_within, calendar),
        resolve_by=due_at(opened_at, level.resolve_within, calendar),
    )
