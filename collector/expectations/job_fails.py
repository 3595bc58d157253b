"""`job_must_not_fail`: a failed run of a job opens an incident; a later success resolves it.

    - kind: job_must_not_fail
      name: nightly-export-fails
      job: nightly-export        # a glob: `export-*` covers a family of jobs
      severity: critical

The subject is the job's name, so every failure of the same job on the same host while the
incident is open counts as an occurrence of that one incident. A RUNNING run says nothing.
Schedules and deadlines (a job that never ran) are issue 5's `deadline.py`.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import PrivateAttr

from collector.expectations.base import (
    ExpectationBase,
    Glob,
    Outcome,
    Severity,
    Verdict,
    compile_glob,
    failure_line,
)
from probes.result import JobOutcome, JobRun, one_line


class JobMustNotFailExpectation(ExpectationBase):
    watches_job_runs: ClassVar[bool] = True

    kind: Literal["job_must_not_fail"]
    job: Glob
    severity: Severity = Severity.CRITICAL

    _job_re: re.Pattern[str] = PrivateAttr(default=re.compile(""))


    def model_post_init(self, context: object, /) -> None:
        super().model_post_init(context)
        self._job_re = compile_glob(self.job)

    def applies_to_job(self, job: str) -> bool:
        return self._job_re.match(job) is not None

    def evaluate_job_run(self, host: str, run: JobRun) -> Verdict | None:
        if run.outcome is JobOutcome.SUCCEEDED:
            return Verdict(self.name, run.job, Outcome.RECOVERED, run.observed_at,
                           note=f"recovered: run {run.run_id} succeeded")
        if run.outcome is not JobOutcome.FAILED:
            return None
        exit_text = f"exit code {run.exit_code}" if run.exit_code is not None else "failed"
        title_detail = f" ({exit_text})" if run.exit_code is not None else ""
        last_line = failure_line(run.excerpt)
        return Verdict(
            self.name, run.job, Outcome.PROBLEM, run.observed_at,
            severity=self.severity,
            title=f"job {run.job} failed on {host}{title_detail}",
            summary=one_line(f"run {run.run_id} failed: {last_line}" if last_line
                             else f"run {run.run_id} failed"),
            expected=f"every run of {run.job} succeeds",
            observed=f"run {run.run_id} failed, {exit_text}"
                     + (f", after {run.duration_s:g} s" if run.duration_s is not None else ""),
            evidence=run.excerpt,
            evidence_source=run.source,
            runbook=self.runbook,
            occurrence=run.run_id,
        )
