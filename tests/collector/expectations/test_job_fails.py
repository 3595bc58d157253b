from __future__ import annotations

from datetime import UTC, datetime, timedelta

from collector.expectations.base import Outcome, Severity
from collector.expectations.job_fails import JobMustNotFailExpectation
from probes.result import JobOutcome, JobRun

AT = datetime(2025, 3, 4, 2, 0, tzinfo=UTC)


def expectation(**keys: object) -> JobMustNotFailExpectation:
    return JobMustNotFailExpectation.model_validate(
        {"kind": "job_must_not_fail", "name": "export-fails", "job": "nightly-*", **keys})


def run(outcome: JobOutcome, job: str = "nightly-export") -> JobRun:
    return JobRun(probe="joblog", job=job, run_id="7", outcome=outcome, observed_at=AT,
                  started_at=AT - timedelta(seconds=90), finished_at=AT, exit_code=2,
                  excerpt="step 3 of 5\nERROR: disk quota exceeded\n\n",
                  source="/var/log/nightly.log:4096")


def test_a_failed_run_is_a_problem_with_its_evidence() -> None:
    verdict = expectation().evaluate_job_run("db-01", run(JobOutcome.FAILED))
    assert verdict is not None
    assert verdict.outcome is Outcome.PROBLEM
    assert verdict.severity is Severity.CRITICAL
    assert verdict.subject == "nightly-export"
    assert verdict.title == "job nightly-export failed on db-01 (exit code 2)"
    assert verdict.summary == "run 7 failed: ERROR: disk quota exceeded"
    assert verdict.observed == "run 7 failed, exit code 2, after 90 s"
    assert verdict.evidence_source == "/var/log/nightly.log:4096"
    assert "disk quota exceeded" in verdict.evidence


def test_a_successful_run_is_a_recovery_and_a_running_one_says_nothing() -> None:
    succeeded = expectation().evaluate_job_run("db-01", run(JobOutcome.SUCCEEDED))
    assert succeeded is not None
    assert succeeded.outcome is Outcome.RECOVERED
    assert succeeded.note == "recovered: run 7 succeeded"
    assert expectation().evaluate_job_run("db-01", run(JobOutcome.RUNNING)) is None


def test_the_job_glob_decides_which_jobs_are_watched() -> None:
    assert expectation().applies_to_job("nightly-export")
    assert not expectation().applies_to_job("hourly-sync")


def test_severity_can_be_lowered_to_warning() -> None:
    verdict = expectation(severity="warning").evaluate_job_run("h", run(JobOutcome.FAILED))
    assert verdict is not None
    assert verdict.severity is Severity.WARNING
