"""The report window: --since read on each customer's clock, across daylight-saving nights."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from collector.report.window import Since, first_instant_at, parse_since, window_start

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_since_is_a_time_of_day_or_a_moment_with_an_offset() -> None:
    assert parse_since("18:00") == Since(wall_time=time(18, 0))
    assert parse_since("6:30") == Since(wall_time=time(6, 30))
    assert parse_since("2025-03-03T17:00:00Z") == Since(moment=utc("2025-03-03T17:00:00+00:00"))
    assert str(parse_since("18:00")) == "18:00"
    assert str(parse_since("2025-03-03T18:00:00+01:00")) == "2025-03-03T17:00:00Z"


@pytest.mark.parametrize("text", ["24:00", "18:61", "evening", "2025-03-03T17:00:00", ""])
def test_a_since_that_is_neither_is_refused_with_both_forms_named(text: str) -> None:
    with pytest.raises(ValueError, match=r"18:00.*ISO 8601"):
        parse_since(text)


def test_in_the_morning_18_00_is_yesterday_evening_on_the_customers_clock() -> None:
    now = utc("2025-03-04T06:00:00+00:00")  # 07:00 in Berlin, 01:00 in New York
    since = parse_since("18:00")
    assert window_start(since, now, BERLIN) == utc("2025-03-03T18:00:00+01:00")
    assert window_start(since, now, NEW_YORK) == utc("2025-03-03T18:00:00-05:00")


def test_late_in_the_evening_18_00_is_this_evening() -> None:
    now = utc("2025-03-04T23:00:00+01:00")
    assert window_start(parse_since("18:00"), now, BERLIN) == utc("2025-03-04T18:00:00+01:00")
    exactly = utc("2025-03-04T18:00:00+01:00")
    assert window_start(parse_since("18:00"), exactly, BERLIN) == exactly


def test_the_spring_night_is_23_hours_and_the_window_starts_at_18_00_winter_time() -> None:
    # Europe/Berlin, Sunday 2025-03-30: 02:00 CET jumps to 03:00 CEST.
    now = utc("2025-03-30T07:00:00+02:00")
    start = window_start(parse_since("18:00"), now, BERLIN)
    assert start == utc("2025-03-29T18:00:00+01:00")
    assert (now - start).total_seconds() == 12 * 3600  # 13 hours on the wall clock


def test_the_autumn_night_is_25_hours_and_the_window_starts_at_18_00_summer_time() -> None:
    # Europe/Berlin, Sunday 2025-10-26: 03:00 CEST falls back to 02:00 CET.
    now = utc("2025-10-26T07:00:00+01:00")
    start = window_start(parse_since("18:00"), now, BERLIN)
    assert start == utc("2025-10-25T18:00:00+02:00")
    assert (now - start).total_seconds() == 14 * 3600  # 13 hours on the wall clock


def test_the_day_is_stepped_on_the_calendar_not_by_24_hours() -> None:
    # 17:30 CET on the autumn Sunday: 18:00 today has not come, so it is Saturday's 18:00
    # (CEST). Today's 18:00 minus 24 hours would be 19:00 CEST, an hour too late.
    now = utc("2025-10-26T17:30:00+01:00")
    assert window_start(parse_since("18:00"), now, BERLIN) == utc("2025-10-25T18:00:00+02:00")


def test_a_time_in_the_skipped_hour_starts_at_the_end_of_the_gap() -> None:
    day = date(2025, 3, 30)
    assert first_instant_at(day, time(2, 30), BERLIN) == utc("2025-03-30T03:00:00+02:00")
    assert first_instant_at(day, time(2, 0), BERLIN) == utc("2025-03-30T03:00:00+02:00")
    assert first_instant_at(day, time(3, 0), BERLIN) == utc("2025-03-30T03:00:00+02:00")


def test_a_time_in_the_repeated_hour_is_its_first_occurrence() -> None:
    day = date(2025, 10, 26)
    assert first_instant_at(day, time(2, 30), BERLIN) == utc("2025-10-26T02:30:00+02:00")
    now = utc("2025-11-02T07:00:00-05:00")  # New York falls back on 2025-11-02
    assert window_start(parse_since("01:30"), now, NEW_YORK) == utc("2025-11-02T01:30:00-04:00")


def test_an_absolute_since_is_the_same_for_every_customer() -> None:
    since = parse_since("2025-03-03T20:00:00Z")
    now = utc("2025-03-04T06:00:00+00:00")
    assert window_start(since, now, BERLIN) == window_start(since, now, NEW_YORK)
