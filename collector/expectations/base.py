"""What every expectation is, and the verdict it hands to the incident lifecycle.

An expectation is one entry of a customer file's `expectations:` list. It is a validated
pydantic model that also knows how to judge what arrives:

- item-driven kinds (issue 3: `threshold`, `job_must_not_fail`) look at one result or one job
  run at a time, in `evaluate_result()` / `evaluate_job_run()`, and answer with a `Verdict`
  (a problem or a recovery) or None (nothing to say, e.g. a result for another metric);
- timer-driven kinds (schedules and deadlines, heartbeats, freshness: issue 5) will answer from
  a due-time loop instead. They produce the same `Verdict`, so the lifecycle does not care who
  noticed the problem.

Expectations never touch the store and never read the clock: what they judge carries its own
time (`observed_at`), which keeps them pure and testable alone.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from fnmatch import translate
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from probes.result import JobRun, Result

# Expectation names end up in dedup keys and API paths: keep them plain.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class Severity(enum.Enum):
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return 1 if self is Severity.WARNING else 2


class Outcome(enum.Enum):
    PROBLEM = "problem"
    RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One expectation's judgement about one subject (a check key, a job) on one host.

    The lifecycle turns a PROBLEM into an opened or repeated incident and a RECOVERED into a
    resolution; the incident's dedup key is customer/host/expectation/subject. For RECOVERED
    only `note` and `observed_at` matter, so building one stays cheap on the hot path of OK
    results.
    """

    expectation: str
    subject: str
    outcome: Outcome
    observed_at: datetime
    severity: Severity = Severity.WARNING
    title: str = ""
    summary: str = ""
    expected: str = ""
    observed: str = ""
    evidence: str = ""
    evidence_source: str = ""
    runbook: str = ""
    note: str = ""
    # What makes this problem one occurrence (a job's run id). Empty: every PROBLEM verdict is
    # a new occurrence (a check failing again). Equal to the last one: the same occurrence
    # reported again with more detail, counted once.
    occurrence: str = ""

    @property
    def is_problem(self) -> bool:
        return self.outcome is Outcome.PROBLEM


def compile_glob(pattern: str) -> re.Pattern[str]:
    return re.compile(translate(pattern))


def check_glob(pattern: str) -> str:
    """Refuse globs that are surely typos rather than letting them silently match nothing."""
    if not pattern or pattern != pattern.strip():
        raise ValueError("a glob must not be empty or start/end with spaces")
    bracket = pattern.find("[")
    while bracket != -1:
        close = pattern.find("]", bracket + 2)  # "[]" is not a set; "[]x]" is
        if close == -1:
            raise ValueError(f"unclosed '[' in glob {pattern!r}")
        bracket = pattern.find("[", close + 1)
    return pattern


# A job-name or check-key glob, checked for typos when the customer file is loaded.
Glob = Annotated[str, AfterValidator(check_glob)]


class ExpectationBase(BaseModel):
    """Keys every expectation kind has. Each kind adds `kind: Literal[...]` and its own keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Which kinds of item the engine should route here; timer-driven kinds set both False.
    watches_results: ClassVar[bool] = False
    watches_job_runs: ClassVar[bool] = False

    name: str = Field(pattern=NAME_PATTERN)
    hosts: tuple[str, ...] = Field(default=("*",), min_length=1)
    # A URL, or a path joined to the customer's `runbook_base_url`.
    runbook: str = ""

    _hosts_re: tuple[re.Pattern[str], ...] = PrivateAttr(default=())

    @field_validator("hosts")
    @classmethod
    def _hosts_are_globs(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_glob(h) for h in hosts)

    def model_post_init(self, context: object, /) -> None:
        self._hosts_re = tuple(compile_glob(h) for h in self.hosts)

    def applies_to_host(self, host: str) -> bool:
        return any(p.match(host) for p in self._hosts_re)

    def applies_to_check(self, check_key: str) -> bool:
        """Whether results of this check key are judged here (item-driven kinds override)."""
        return False

    def applies_to_job(self, job: str) -> bool:
        return False

    def evaluate_result(self, host: str, result: Result) -> Verdict | None:
        return None

    def evaluate_job_run(self, host: str, run: JobRun) -> Verdict | None:
        return None


# Words that mark the line a desk wants to read first in a failed run's excerpt.
_ERROR_WORDS = re.compile(r"(?i)\b(?:error|fatal|exception|traceback|failed|refused|denied)\b|"
                          r"[A-Za-z]+(?:Error|Exception):")


def failure_line(excerpt: str) -> str:
    """The line of a failure's excerpt that says what went wrong: the last one that reads like
    an error (`ConnectionResetError: ...`, `ERROR cannot reach db01`), else the last non-empty
    one. A shell log's closing `END job exit=3` says less than the error above it."""
    lines = [line.strip() for line in excerpt.splitlines() if line.strip()]
    for line in reversed(lines):
        if _ERROR_WORDS.search(line):
            return line
    return lines[-1] if lines else ""
