"""check_freshness: the pure part (what stale means, the texts); the loop is in test_heartbeat
and test_timers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from collector.expectations.base import Outcome
from collector.expectations.freshness import CheckFreshnessExpectation

BERLIN = ZoneInfo("Europe/Berlin")
OBSERVED = datetime(2025, 3, 4, 1, 14, tzinfo=UTC)


def freshness(**keys: object) -> CheckFreshnessExpectation:
    return CheckFreshnessExpectation.model_validate(
        {"kind": "check_freshness", "name": "fresh", "check": "disk:*", "max_age": "10m",
         **keys})


def test_a_check_is_stale_max_age_after_its_newest_result() -> None:
    assert freshness().stale_at(OBSERVED) == OBSERVED + timedelta(minutes=10)


def test_the_glob_picks_the_checks_it_watches() -> None:
    watch = freshness()
    assert watch.watches("disk:/data")
    assert not watch.watches("service:nginx")


def test_stale_says_since_when_in_the_customers_time() -> None:
    verdict = freshness().stale("web1", "disk:/data", OBSERVED, BERLIN)
    assert verdict.outcome is Outcome.PROBLEM
    assert verdict.title == "no data from disk:/data on web1 since 02:14"
    assert verdict.observed_at == OBSERVED + timedelta(minutes=10)


def test_one_staleness_is_one_occurrence_however_often_it_is_told() -> None:
    watch = freshness()
    first = watch.stale("web1", "disk:/data", OBSERVED, BERLIN)
    again = watch.stale("web1", "disk:/data", OBSERVED, BERLIN)
    assert first.occurrence == again.occurrence


def test_max_age_must_be_a_duration() -> None:
    with pytest.raises(ValidationError, match="not a duration"):
        freshness(max_age="soon")
