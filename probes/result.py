"""What a probe reports: results (a status per check) and job runs.

These are plain, slotted dataclasses so probes stay cheap and know no transport; the agent's
stream and the collector's ingest translate them to and from the wire.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

# Limits on what travels: a probe that produces more is cut, never refused (DESIGN.md, Security).
SUMMARY_MAX_CHARS = 512
DETAIL_MAX_BYTES = 16 * 1024
EXCERPT_MAX_BYTES = 16 * 1024


class Status(enum.IntEnum):
    """Monitoring-plugins order, so `max()` of several statuses is the worst one but UNKNOWN."""

    OK = 0
    WARN = 1
    CRIT = 2
    UNKNOWN = 3

    @property
    def is_problem(self) -> bool:
        return self is not Status.OK


class JobOutcome(enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def cap_text(text: str, max_bytes: int) -> str:
    """Cut text to at most max_bytes of UTF-8, marking the cut so nobody mistakes it for whole."""
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) <= max_bytes:
        return text
    marker = "\n[... cut]"
    keep = max(0, max_bytes - len(marker))
    return encoded[:keep].decode("utf-8", errors="ignore") + marker


def one_line(text: str, max_chars: int = SUMMARY_MAX_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= max_chars else line[: max_chars - 1] + "…"


@dataclass(frozen=True, slots=True)
class Result:
    """The status of one check at one moment, e.g. check `disk:/data` is WARN at 82 %."""

    probe: str
    check: str
    status: Status
    summary: str
    observed_at: datetime
    metrics: Mapping[str, float] = field(default_factory=dict)
    detail: str = ""

    def __post_init__(self) -> None:
        if self.observed_at.tzinfo is None:
            raise ValueError("Result.observed_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class JobRun:
    """One run of a batch job as seen on the host: started, then succeeded or failed."""

    probe: str
    job: str
    run_id: str
    outcome: JobOutcome
    observed_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    excerpt: str = ""
    source: str = ""

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


Item = Result | JobRun
