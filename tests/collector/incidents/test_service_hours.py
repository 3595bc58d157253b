"""Due times counted in a customer's service hours, across weekends, holidays and both DST
transitions of Europe/Berlin and America/New_York.

The transitions used below (from the tz database):
- Europe/Berlin 2025: 2025-03-30 02:00 CET -> 03:00 CEST; 2025-10-26 03:00 CEST -> 02:00 CET.
- America/New_York 2025: 2025-03-09 02:00 EST -> 03:00 EDT; 2025-11-02 02:00 EDT -> 01:00 EST.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.customers import Counts, CustomerFile, ServiceHours, load_customer_text
from collector.expectations.base import Severity
from collector.incidents.service_hours import (
    ServiceCalendar,
    due_at,
    service_start,
    sla_times,
    wall_to_utc,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS_7_TO_17 = ServiceHours.model_validate(
    {day: "07:00-17:00" for day in ("mon", "tue", "wed", "thu", "fri")})
EVERY_DAY_7_TO_17 = ServiceHours.model_validate(
    {day: "07:00-17:00" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")})
SPLIT_DAYS = ServiceHours.model_validate({
    "mon": ["08:00-12:00", "13:00-17:30"], "wed": "00:00-24:00", "sat": "09:00-13:00",
})


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def new_york(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


def wall(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A naive wall-clock time, as a customer file writes it."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC).replace(tzinfo=None)


def office(zone: ZoneInfo = BERLIN, holidays: frozenset[date] = frozenset()) -> ServiceCalendar:
    return ServiceCalendar(zone, WEEKDAYS_7_TO_17, holidays)


def test_an_incident_at_two_on_saturday_is_due_monday_at_eight() -> None:
    # The example: Mon-Fri 07-17, respond within 1 h.
    opened = berlin(2025, 3, 8, 2, 0)  # a Saturday
    assert due_at(opened, timedelta(hours=1), office()) == berlin(2025, 3, 10, 8, 0)
    assert service_start(opened, office()) == berlin(2025, 3, 10, 7, 0)


def test_inside_service_hours_the_time_simply_adds_up() -> None:
    opened = berlin(2025, 3, 11, 9, 15)
    assert due_at(opened, timedelta(minutes=30), office()) == berlin(2025, 3, 11, 9, 45)
    assert service_start(opened, office()) == opened


def test_what_is_left_at_closing_carries_over_to_the_next_service_day() -> None:
    assert due_at(berlin(2025, 3, 11, 16, 0), timedelta(hours=3),
                  office()) == berlin(2025, 3, 12, 9, 0)
    # Friday afternoon to Monday morning.
    assert due_at(berlin(2025, 3, 14, 16, 30), timedelta(hours=2),
                  office()) == berlin(2025, 3, 17, 8, 30)


def test_a_due_time_at_closing_stays_on_that_day() -> None:
    assert due_at(berlin(2025, 3, 11, 7, 0), timedelta(hours=10),
                  office()) == berlin(2025, 3, 11, 17, 0)


def test_several_days_of_service_time_skip_the_nights() -> None:
    # "resolve within 2d" counted in service hours is 48 service hours: 4.8 service days.
    assert due_at(berlin(2025, 3, 10, 7, 0), timedelta(days=2),
                  office()) == berlin(2025, 3, 14, 15, 0)


def test_holidays_are_skipped_like_weekends() -> None:
    easter = frozenset({date(2025, 4, 18), date(2025, 4, 21)})  # Good Friday, Easter Monday
    assert due_at(berlin(2025, 4, 17, 16, 0), timedelta(hours=2),
                  office(holidays=easter)) == berlin(2025, 4, 22, 8, 0)


def test_several_ranges_on_a_day_skip_the_lunch_break() -> None:
    calendar = ServiceCalendar(BERLIN, SPLIT_DAYS)
    assert due_at(berlin(2025, 3, 10, 11, 30), timedelta(hours=1),
                  calendar) == berlin(2025, 3, 10, 13, 30)
    # Monday 17:00 with 1 h: 30 min on Monday, the rest from Wednesday 00:00.
    assert due_at(berlin(2025, 3, 10, 17, 0), timedelta(hours=1),
                  calendar) == berlin(2025, 3, 12, 0, 30)


def test_within_zero_is_due_at_once() -> None:
    opened = berlin(2025, 3, 8, 2, 0)
    assert due_at(opened, timedelta(0), office()) == opened


def test_a_negative_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        due_at(berlin(2025, 3, 10, 8, 0), timedelta(minutes=-1), office())


def test_holidays_on_every_day_are_reported_not_looped_over() -> None:
    every_day = frozenset(date(2025, 1, 1) + timedelta(days=n) for n in range(4000))
    with pytest.raises(ValueError, match="do the holidays cover every day"):
        due_at(berlin(2025, 3, 10, 8, 0), timedelta(hours=1), office(holidays=every_day))


# --- daylight saving -----------------------------------------------------------------------

def test_the_spring_forward_monday_in_berlin_opens_at_seven_local() -> None:
    # Sunday 2025-03-30 loses an hour; Monday still opens at 07:00 local (05:00 UTC, not 06:00).
    due = due_at(berlin(2025, 3, 29, 12, 0), timedelta(hours=1), office())
    assert due == berlin(2025, 3, 31, 8, 0)
    assert due.astimezone(UTC) == datetime(2025, 3, 31, 6, 0, tzinfo=UTC)


def test_the_fall_back_monday_in_berlin_opens_at_seven_local() -> None:
    due = due_at(berlin(2025, 10, 25, 12, 0), timedelta(hours=1), office())
    assert due.astimezone(UTC) == datetime(2025, 10, 27, 7, 0, tzinfo=UTC)  # 08:00 CET


def test_on_the_change_sunday_itself_service_opens_at_seven_local() -> None:
    # The trap: "local midnight + 7 h" is 08:00 on a spring-forward day and 06:00 on a
    # fall-back day. Service hours are wall-clock hours: 07:00-17:00 is 10 h on both days.
    daily = ServiceCalendar(BERLIN, EVERY_DAY_7_TO_17)
    assert service_start(berlin(2025, 3, 30, 1, 0), daily) == berlin(2025, 3, 30, 7, 0)
    assert due_at(berlin(2025, 3, 30, 1, 0), timedelta(hours=10),
                  daily) == berlin(2025, 3, 30, 17, 0)
    assert service_start(new_york(2025, 11, 2, 0, 30),
                         ServiceCalendar(NEW_YORK, EVERY_DAY_7_TO_17)).astimezone(UTC) == (
        datetime(2025, 11, 2, 12, 0, tzinfo=UTC))  # 07:00 EST
    assert due_at(berlin(2025, 10, 26, 1, 0), timedelta(hours=10),
                  daily) == berlin(2025, 10, 26, 17, 0)


def test_a_service_day_is_ten_hours_across_both_berlin_changes() -> None:
    # Friday 16:00 + 11 h = 1 h Friday + 10 h Monday: Monday 17:00 local, in either season.
    assert due_at(berlin(2025, 3, 28, 16, 0), timedelta(hours=11),
                  office()) == berlin(2025, 3, 31, 17, 0)
    assert due_at(berlin(2025, 10, 24, 16, 0), timedelta(hours=11),
                  office()) == berlin(2025, 10, 27, 17, 0)


def test_new_york_service_hours_follow_both_changes() -> None:
    ny = office(NEW_YORK)
    spring = due_at(new_york(2025, 3, 8, 2, 0), timedelta(hours=1), ny)
    assert spring.astimezone(UTC) == datetime(2025, 3, 10, 12, 0, tzinfo=UTC)  # 08:00 EDT
    fall = due_at(new_york(2025, 11, 1, 2, 0), timedelta(hours=1), ny)
    assert fall.astimezone(UTC) == datetime(2025, 11, 3, 13, 0, tzinfo=UTC)  # 08:00 EST


def test_a_whole_day_range_is_23_or_25_real_hours_on_a_change_night() -> None:
    # Sunday only, 00:00-24:00: on the spring-forward Sunday 24 h of service ends Monday
    # 00:00 local after 23 real hours, so 24 h reach 1 h into the next Sunday.
    sundays = ServiceCalendar(BERLIN, ServiceHours.model_validate({"sun": "00:00-24:00"}))
    assert due_at(berlin(2025, 3, 30, 0, 0), timedelta(hours=23),
                  sundays) == berlin(2025, 3, 31, 0, 0)
    assert due_at(berlin(2025, 3, 30, 0, 0), timedelta(hours=24),
                  sundays) == berlin(2025, 4, 6, 1, 0)
    assert due_at(berlin(2025, 10, 26, 0, 0), timedelta(hours=25),
                  sundays) == berlin(2025, 10, 27, 0, 0)


def test_a_range_starting_in_the_skipped_hour_opens_right_after_the_gap() -> None:
    night = ServiceCalendar(BERLIN, ServiceHours.model_validate({"sun": "02:30-04:00"}))
    assert service_start(berlin(2025, 3, 30, 0, 0), night) == berlin(2025, 3, 30, 3, 0)
    assert wall_to_utc(wall(2025, 3, 30, 2, 30), BERLIN) == datetime(2025, 3, 30, 1, 0,
                                                                          tzinfo=UTC)


def test_a_time_in_the_repeated_hour_is_its_first_occurrence() -> None:
    assert wall_to_utc(wall(2025, 10, 26, 2, 30), BERLIN) == datetime(2025, 10, 26, 0, 30,
                                                                           tzinfo=UTC)
    assert wall_to_utc(wall(2025, 11, 2, 1, 30), NEW_YORK) == datetime(2025, 11, 2, 5, 30,
                                                                            tzinfo=UTC)


# --- the customer's levels -----------------------------------------------------------------

CUSTOMER = """\
customer: acme
name: ACME Logistics
timezone: Europe/Berlin
service_hours:
  mon: "07:00-17:00"
  tue: "07:00-17:00"
  wed: "07:00-17:00"
  thu: "07:00-17:00"
  fri: "07:00-17:00"
severities:
  P1: {priority: 1, respond_within: 30m, resolve_within: 4h, counts: calendar}
  P3: {priority: 3, respond_within: 1h, resolve_within: 2d}
"""


def acme(text: str = CUSTOMER) -> CustomerFile:
    return load_customer_text(text, Path("acme.yaml"))


def test_a_p1_counts_calendar_time_while_a_p3_waits_for_monday() -> None:
    opened = berlin(2025, 3, 8, 2, 0)
    critical = sla_times(acme(), Severity.CRITICAL, opened)
    assert critical.priority == "P1"
    assert critical.respond_by == berlin(2025, 3, 8, 2, 30)
    assert critical.resolve_by == berlin(2025, 3, 8, 6, 0)
    warning = sla_times(acme(), Severity.WARNING, opened)
    assert warning.priority == "P3"
    assert warning.respond_by == berlin(2025, 3, 10, 8, 0)
    assert warning.resolve_by == berlin(2025, 3, 14, 15, 0)


def test_without_service_hours_the_default_levels_count_every_hour() -> None:
    plain = acme("customer: acme\nname: ACME\ntimezone: Europe/Berlin\n")
    opened = berlin(2025, 3, 8, 2, 0)
    times = sla_times(plain, Severity.CRITICAL, opened)
    assert (times.priority, times.respond_by) == ("P2", berlin(2025, 3, 8, 2, 30))
    assert sla_times(plain, Severity.WARNING, opened).priority == "P3"


def test_the_calendar_counting_of_a_level_ignores_holidays() -> None:
    customer = acme(CUSTOMER + "holidays: [2025-03-08]\n")
    assert ServiceCalendar.for_customer(customer, Counts.CALENDAR).is_always_open
    assert not ServiceCalendar.for_customer(customer, Counts.SERVICE_HOURS).is_always_open


# --- properties ----------------------------------------------------------------------------

CALENDARS = st.sampled_from([
    office(BERLIN), office(NEW_YORK), ServiceCalendar(BERLIN, EVERY_DAY_7_TO_17),
    ServiceCalendar(NEW_YORK, EVERY_DAY_7_TO_17), ServiceCalendar(BERLIN, SPLIT_DAYS),
    ServiceCalendar(NEW_YORK, SPLIT_DAYS, frozenset({date(2025, 3, 12), date(2025, 11, 5)})),
    office(BERLIN, frozenset({date(2025, 3, 31), date(2025, 10, 27)})),
])
# Around both changes of both zones, where the traps are.
STARTS = st.sampled_from([datetime(2025, 3, 6, tzinfo=UTC), datetime(2025, 10, 23, tzinfo=UTC)])
OFFSETS = st.integers(min_value=0, max_value=10 * 24 * 60).map(lambda m: timedelta(minutes=m))
WITHINS = st.integers(min_value=0, max_value=5 * 24 * 60).map(lambda m: timedelta(minutes=m))


def in_service_by_wall_clock(calendar: ServiceCalendar, moment: datetime) -> bool:
    """An independent oracle: read the local wall clock and look the minute up."""
    assert calendar.hours is not None
    local = moment.astimezone(calendar.zone)
    if local.date() in calendar.holidays:
        return False
    minute = local.hour * 60 + local.minute + local.second / 60
    return any(r.start <= minute < r.end for r in calendar.hours.ranges_on(local.weekday()))


@settings(max_examples=150, deadline=None)
@given(calendar=CALENDARS, base=STARTS, offset=OFFSETS, later=OFFSETS, within=WITHINS)
def test_due_at_is_monotonic_in_start(calendar: ServiceCalendar, base: datetime,
                                      offset: timedelta, later: timedelta,
                                      within: timedelta) -> None:
    start = base + offset
    assert due_at(start, within, calendar) <= due_at(start + later, within, calendar)


@settings(max_examples=150, deadline=None)
@given(calendar=CALENDARS, base=STARTS, offset=OFFSETS, within=WITHINS, more=WITHINS)
def test_due_at_is_monotonic_in_within(calendar: ServiceCalendar, base: datetime,
                                       offset: timedelta, within: timedelta,
                                       more: timedelta) -> None:
    start = base + offset
    assert due_at(start, within, calendar) <= due_at(start, within + more, calendar)


@settings(max_examples=200, deadline=None)
@given(calendar=CALENDARS, base=STARTS, offset=OFFSETS, within=WITHINS)
def test_due_at_never_falls_in_closed_time(calendar: ServiceCalendar, base: datetime,
                                           offset: timedelta, within: timedelta) -> None:
    due = due_at(base + offset, within, calendar)
    if within:
        # The last minute counted is a service minute (the due time may be closing time).
        assert in_service_by_wall_clock(calendar, due - timedelta(seconds=1))


@settings(max_examples=100, deadline=None)
@given(zone=st.sampled_from([BERLIN, NEW_YORK, ZoneInfo("UTC")]), base=STARTS,
       offset=OFFSETS, within=WITHINS)
def test_24x7_is_plain_addition_in_utc(zone: ZoneInfo, base: datetime, offset: timedelta,
                                       within: timedelta) -> None:
    start = base + offset
    expected = start + within
    assert due_at(start, within, ServiceCalendar(zone)) == expected
    around_the_clock = ServiceCalendar(zone, ServiceHours.model_validate("24x7"))
    assert due_at(start, within, around_the_clock) == expected
    # Every day 00:00-24:00 counted range by range gives the same, DST nights included.
    with_a_far_holiday = ServiceCalendar(zone, around_the_clock.hours,
                                         frozenset({date(2030, 1, 1)}))
    assert due_at(start, within, with_a_far_holiday) == expected
