"""`job_duration`: a run that takes far longer (or far shorter) than the job usually does.

    - kind: job_duration
      name: export-duration
      job: nightly-export        # a glob
      factor: 2                  # longer than 2 x the median of the recent runs is a problem
      min_factor: 0.25           # optional: shorter than a quarter of the median too
      window: 20                 # how many recent successful runs make "usual"
      min_history: 5             # fewer than this: no opinion yet

The median, not the mean: one run that hung for a night would drag a mean up for weeks. Only
successful runs count as "usual" (a run that failed after 3 s says nothing about how long the
job takes). The history is the job's on that host (`job_runs`, indexed by customer, job and
start); the run being judged is left out of its own history.

The subject is the job, so a job that keeps running long is one incident with occurrences; the
next run back in range resolves it.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar, Literal, Self

import sqlalchemy as sa
from pydantic import Field, PrivateAttr, model_validator

from collector.durations import format_duration
from collector.expectations.base import (
    ExpectationBase,
    Glob,
    Outcome,
    Severity,
    Verdict,
    compile_glob,
)
from collector.store.schema import job_runs
from probes.result import JobOutcome, JobRun


class JobDurationExpectation(ExpectationBase):
    watches_job_runs: ClassVar[bool] = True

    kind: Literal["job_duration"]
    job: Glob
    factor: float = Field(default=2.0, gt=1.0)
    min_factor: float | None = Field(default=None, gt=0.0, lt=1.0)
    window: int = Field(default=20, ge=3, le=500)
    min_history: int = Field(default=5, ge=1)
    severity: Severity = Severity.WARNING

    _job_re: re.Pattern[str] = PrivateAttr(default=re.compile(""))


    @model_validator(mode="after")
    def _history_fits_the_window(self) -> Self:
        if self.min_history > self.window:
            raise ValueError(f"min_history ({self.min_history}) is more than window "
                             f"({self.window}) runs")
        return self

    def model_post_init(self, context: object, /) -> None:
        super().model_post_init(context)
        self._job_re = compile_glob(self.job)

    def applies_to_job(self, job: str) -> bool:
        return self._job_re.match(job) is not None

    def judge(self, host: str, run: JobRun, history: Sequence[float]) -> Verdict | None:
        """The run against the durations (seconds) of its recent successful runs (pure)."""
        ran = run.duration_s
        if run.outcome is not JobOutcome.SUCCEEDED or ran is None:
            return None
        if len(history) < self.min_history:
            return None
        median = statistics.median(history)
        if median <= 0:
            return None
        usual = f"median {format_duration(median)} of the last {len(history)} runs"
        if ran > self.factor * median:
            direction, limit = "longer", self.factor * median
        elif self.min_factor is not None and ran < self.min_factor * median:
            direction, limit = "shorter", self.min_factor * median
        else:
            return Verdict(self.name, run.job, Outcome.RECOVERED, run.observed_at,
                           note=f"run {run.run_id} took {format_duration(ran)} ({usual})")
        return Verdict(
            self.name, run.job, Outcome.PROBLEM, run.observed_at,
            severity=self.severity,
            title=f"job {run.job} on {host} took {format_duration(ran)}, "
                  f"{ran / median:.1f}x its usual {format_duration(median)}",
            summary=f"run {run.run_id} took {format_duration(ran)} ({usual})",
            expected=f"{run.job} takes between "
                     f"{format_duration((self.min_factor or 0) * median)} and "
                     f"{format_duration(self.factor * median)} ({usual})",
            observed=f"run {run.run_id} took {format_duration(ran)}, {direction} than "
                     f"{format_duration(limit)}",
            evidence=run.excerpt,
            evidence_source=run.source,
            runbook=self.runbook,
            occurrence=run.run_id,
        )


def recent_durations(conn: sa.Connection, customer: str, host: str, job: str,
                     before: datetime, exclude_run_id: str, window: int) -> list[float]:
    """Durations (s) of the job's last `window` successful runs on host started before
    `before`, newest first. Uses the (customer, job, started_at) index."""
    rows = conn.execute(
        sa.select(job_runs.c.duration_s)
        .where(job_runs.c.customer == customer, job_runs.c.job == job,
               job_runs.c.host == host, job_runs.c.outcome == JobOutcome.SUCCEEDED.value,
               job_runs.c.started_at < before, job_runs.c.run_id != exclude_run_id,
               job_runs.c.duration_s.is_not(None))
        .order_by(job_runs.c.started_at.desc())
        .limit(window)
    ).scalars().all()
    return [float(value) for value in rows]


def judge_run(conn: sa.Connection, customer: str, expectation: JobDurationExpectation,
              host: str, run: JobRun) -> Verdict | None:
    """Read the run's history and judge it: the engine's entry point for job_duration."""
    if run.outcome is not JobOutcome.SUCCEEDED or run.duration_s is None:
        return None
    # SQLite keeps times without their offset: compare in UTC, as they were stored.
    before = (run.started_at or run.observed_at).astimezone(UTC)
    history = recent_durations(conn, customer, host, run.job, before, run.run_id,
                               expectation.window)
    return expectation.judge(host, run, history)
