from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from collector.expectations.base import Outcome, Severity
from collector.expectations.threshold import ThresholdExpectation
from probes.result import Result, Status

AT = datetime(2025, 3, 4, 2, 0, tzinfo=UTC)


def result(check: str = "disk:/data", status: Status = Status.OK,
           **metrics: float) -> Result:
    return Result(probe="disk", check=check, status=status, summary="s", observed_at=AT,
                  metrics=metrics)


def threshold(**keys: object) -> ThresholdExpectation:
    return ThresholdExpectation.model_validate({"kind": "threshold", "name": "t", **keys})


def test_a_check_glob_matches_every_mount_but_not_other_probes() -> None:
    expectation = threshold(check="disk:*")
    assert expectation.applies_to_check("disk:/data")
    assert expectation.applies_to_check("disk:/")
    assert not expectation.applies_to_check("service:nginx")


def test_host_globs_limit_where_an_expectation_applies() -> None:
    expectation = threshold(check="disk:*", hosts=["db-*", "backup"])
    assert expectation.applies_to_host("db-01")
    assert expectation.applies_to_host("backup")
    assert not expectation.applies_to_host("web-01")


@pytest.mark.parametrize(("used", "outcome", "severity"), [
    (79.9, Outcome.RECOVERED, None),
    (80.0, Outcome.RECOVERED, None),  # at the line is not above it
    (80.5, Outcome.PROBLEM, Severity.WARNING),
    (90.5, Outcome.PROBLEM, Severity.CRITICAL),
])
def test_a_metric_above_warn_or_crit_is_a_problem_of_that_severity(
    used: float, outcome: Outcome, severity: Severity | None,
) -> None:
    verdict = threshold(check="disk:*", metric="used_percent", warn=80, crit=90) \
        .evaluate_result("web-01", result(used_percent=used))
    assert verdict is not None
    assert verdict.outcome is outcome
    if severity is not None:
        assert verdict.severity is severity
        assert verdict.subject == "disk:/data"


def test_above_false_makes_low_values_the_problem() -> None:
    expectation = threshold(check="disk:*", metric="free_gb", warn=10, crit=2, above=False)
    low = expectation.evaluate_result("h", result(free_gb=1))
    fine = expectation.evaluate_result("h", result(free_gb=50))
    assert low is not None
    assert low.severity is Severity.CRITICAL
    assert fine is not None
    assert fine.outcome is Outcome.RECOVERED


def test_a_result_without_the_metric_says_nothing() -> None:
    expectation = threshold(check="disk:*", metric="used_percent", crit=90)
    assert expectation.evaluate_result("h", result(inodes_percent=99)) is None


def test_without_a_metric_the_status_is_followed_and_unknown_is_ignored() -> None:
    expectation = threshold(check="disk:*")
    warn = expectation.evaluate_result("h", result(status=Status.WARN))
    crit = expectation.evaluate_result("h", result(status=Status.CRIT))
    ok = expectation.evaluate_result("h", result(status=Status.OK))
    assert warn is not None
    assert warn.severity is Severity.WARNING
    assert crit is not None
    assert crit.severity is Severity.CRITICAL
    assert ok is not None
    assert ok.outcome is Outcome.RECOVERED
    assert expectation.evaluate_result("h", result(status=Status.UNKNOWN)) is None


@pytest.mark.parametrize("keys", [
    {"check": "disk:*", "warn": 80},  # limits without a metric
    {"check": "disk:*", "metric": "used_percent"},  # a metric without limits
    {"check": "disk:*", "metric": "used_percent", "warn": 95, "crit": 90},  # crit before warn
    {"check": "disk:[/data"},  # an unclosed set
    {"check": ""},
])
def test_inconsistent_thresholds_are_refused(keys: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        threshold(**keys)


@given(
    value=st.one_of(st.none(), st.floats(-10, 110, allow_nan=False)),
    status=st.sampled_from(list(Status)),
    keys=st.sampled_from([
        {"metric": "used_percent", "warn": 80, "crit": 90},
        {"metric": "used_percent", "warn": 80, "crit": 90, "clear_below": 70},
        {"metric": "free_percent", "warn": 20, "crit": 10, "above": False, "clear_above": 30},
        {"metric": "used_percent", "crit": 95},
        {},
    ]),
)
def test_may_be_problem_is_false_only_where_evaluation_finds_no_problem(
    value: float | None, status: Status, keys: dict[str, object]
) -> None:
    # The engine skips evaluating results may_be_problem() calls fine: it must never hide one.
    expectation = threshold(check="disk:*", **keys)
    metrics = {} if value is None else {str(keys.get("metric", "used_percent")): value}
    judged = Result(probe="disk", check="disk:/data", status=status, summary="s",
                    observed_at=datetime(2026, 3, 2, tzinfo=UTC), metrics=metrics)
    verdict = expectation.evaluate_result("web1", judged)
    is_problem = verdict is not None and verdict.outcome is Outcome.PROBLEM
    assert expectation.may_be_problem(judged) == is_problem
