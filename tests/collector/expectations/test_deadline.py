"""job_schedule: due times in the customer's zone, and what runs and passing deadlines mean for
a slot (the pure judges; the store side is exercised in tests/collector/test_timers.py and
test_night.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from collector.expectations.base import Outcome, Severity
from collector.expectations.deadline import (
    JobScheduleExpectation,
    SlotState,
    SlotView,
    judge_deadline,
    judge_run,
)
from probes.result import JobOutcome, JobRun

BERLIN = ZoneInfo("Europe/Berlin")
SLOT = datetime(2025, 3, 4, 1, 0, tzinfo=UTC)  # 02:00 CET


def schedule(**keys: object) -> JobScheduleExpectation:
    return JobScheduleExpectation.model_validate({
        "kind": "job_schedule", "name": "export-on-time", "job": "nightly-export",
        "schedule": "0 2 * * *", "start_by": "15m", "complete_by": "06:30", **keys})


def slot(expectation: JobScheduleExpectation, state: str = SlotState.WAITING,
         started_at: datetime | None = None, run_id: str = "") -> SlotView:
    due_start, due_complete = expectation.due_times(SLOT, BERLIN)
    return SlotView(1, SLOT, due_start, due_complete, state, run_id, started_at, None,
                    due_start, BERLIN)


def run(outcome: JobOutcome, started: datetime, finished: datetime | None = None,
        run_id: str = "r1") -> JobRun:
    return JobRun(probe="wrapper", job="nightly-export", run_id=run_id, outcome=outcome,
                  observed_at=finished or started, started_at=started, finished_at=finished,
                  exit_code=1 if outcome is JobOutcome.FAILED else 0)


def test_due_times_are_a_duration_after_the_slot_or_a_time_of_day_in_the_zone() -> None:
    due_start, due_complete = schedule().due_times(SLOT, BERLIN)
    assert due_start == SLOT + timedelta(minutes=15)
    assert due_complete == datetime(2025, 3, 4, 5, 30, tzinfo=UTC)  # 06:30 CET


def test_a_deadline_earlier_in_the_day_than_the_slot_is_the_next_morning() -> None:
    expectation = schedule(schedule="0 23 * * *", complete_by="01:00")
    slot_at = datetime(2025, 7, 1, 21, 0, tzinfo=UTC)  # 23:00 CEST
    assert expectation.due_times(slot_at, BERLIN)[1] == datetime(2025, 7, 1, 23, 0, tzinfo=UTC)


def test_the_subject_names_the_slot_in_the_customers_time() -> None:
    assert schedule().subject(SLOT, BERLIN) == "nightly-export@2025-03-04T02:00+01:00"


@pytest.mark.parametrize(("keys", "message"), [
    ({"schedule": "61 2 * * *"}, "Bad minute"),
    ({"complete_by": "half past six"}, "not a duration"),
    ({"min_runtime": "2h", "max_runtime": "1h"}, "min_runtime must be shorter"),
])
def test_bad_keys_are_refused_with_the_reason(keys: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        schedule(**keys)


def test_no_start_by_the_start_due_time_opens_did_not_start() -> None:
    expectation = schedule()
    change = judge_deadline(expectation, "db1", slot(expectation), SLOT + timedelta(minutes=15))
    assert change.state == SlotState.MISSED
    assert change.next_check_at == datetime(2025, 3, 4, 5, 30, tzinfo=UTC)
    (verdict,) = change.verdicts
    assert verdict.title == "job nightly-export did not start by 02:15 on db1 (run of 02:00)"
    assert verdict.observed_at == SLOT + timedelta(minutes=15)  # dated at the due time


def test_a_started_run_not_done_by_the_deadline_opens_did_not_complete() -> None:
    expectation = schedule()
    started = slot(expectation, SlotState.STARTED, SLOT + timedelta(minutes=1), "r1")
    change = judge_deadline(expectation, "db1", started, datetime(2025, 3, 4, 5, 31, tzinfo=UTC))
    (verdict,) = change.verdicts
    assert verdict.title == "job nightly-export did not complete by 06:30 on db1 (run of 02:00)"
    assert "run r1 started at 02:01" in verdict.observed
    assert change.next_check_at is None


def test_a_run_still_going_after_max_runtime_is_a_warning_while_there_is_time() -> None:
    expectation = schedule(max_runtime="2h")
    started = slot(expectation, SlotState.STARTED, SLOT, "r1")
    change = judge_deadline(expectation, "db1", started, SLOT + timedelta(hours=2))
    (verdict,) = change.verdicts
    assert verdict.severity is Severity.WARNING
    assert "still running after 2h 00m" in verdict.title
    assert change.state == SlotState.STARTED


def test_a_failed_run_opens_at_once() -> None:
    expectation = schedule()
    change = judge_run(expectation, "db1", slot(expectation),
                       run(JobOutcome.FAILED, SLOT, SLOT + timedelta(minutes=3)), SLOT)
    assert change is not None
    assert change.state == SlotState.FAILED
    assert change.verdicts[0].outcome is Outcome.PROBLEM
    assert change.verdicts[0].occurrence == "r1"


def test_a_run_shorter_than_min_runtime_counts_as_failed() -> None:
    expectation = schedule(min_runtime="1m")
    change = judge_run(expectation, "db1", slot(expectation),
                       run(JobOutcome.SUCCEEDED, SLOT, SLOT + timedelta(seconds=4)), SLOT)
    assert change is not None
    assert change.state == SlotState.FAILED
    assert change.verdicts[0].title == (
        "job nightly-export ended suspiciously fast on db1: 4s, expected at least 1m 00s")


def test_a_late_success_resolves_with_the_customers_time_in_the_note() -> None:
    expectation = schedule()
    missed = slot(expectation, SlotState.MISSED, SLOT + timedelta(minutes=2), "r1")
    finished = datetime(2025, 3, 4, 5, 52, tzinfo=UTC)
    change = judge_run(expectation, "db1", missed,
                       run(JobOutcome.SUCCEEDED, SLOT + timedelta(minutes=2), finished), finished)
    assert change is not None
    assert change.state == SlotState.LATE
    (verdict,) = change.verdicts
    assert verdict.outcome is Outcome.RECOVERED
    assert verdict.note == "completed late at 06:52 (due 06:30)"


def test_a_rerun_that_succeeds_after_a_failure_resolves_the_slot() -> None:
    expectation = schedule()
    failed = slot(expectation, SlotState.FAILED, SLOT, "r1")
    done = SLOT + timedelta(hours=1)
    change = judge_run(expectation, "db1", failed,
                       run(JobOutcome.SUCCEEDED, SLOT + timedelta(minutes=30), done, "r2"), done)
    assert change is not None
    assert change.state == SlotState.LATE  # it started after start_by
    assert change.verdicts[0].outcome is Outcome.RECOVERED


def test_an_extra_run_of_a_slot_that_is_already_fine_changes_nothing() -> None:
    expectation = schedule()
    done = slot(expectation, SlotState.SUCCEEDED, SLOT, "r1")
    assert judge_run(expectation, "db1", done,
                     run(JobOutcome.SUCCEEDED, SLOT + timedelta(hours=1),
                         SLOT + timedelta(hours=2), "r2"), SLOT) is None
