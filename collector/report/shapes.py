"""The morning report's JSON shape: what `GET /api/v1/reports/morning` returns, what
`daybreak report morning --json` prints, and what the text and HTML renders read.

Documented in docs/report.md and stable like the rest of /api/v1: fields are only added.
Times are UTC (`...Z`); each customer carries its zone, and the renders show local times.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from collector.api.schemas import UtcDateTime

RunOutcome = Literal["running", "succeeded", "failed"]
# A job's standing for the night, worst first: the order the renders list jobs in.
# `scheduled`: the schedule engine expects a run whose time has not come yet.
JobStatus = Literal["failed", "did_not_start", "late", "running", "scheduled", "succeeded"]
JOB_STATUS_ORDER: tuple[JobStatus, ...] = ("failed", "did_not_start", "late", "running",
                                           "scheduled", "succeeded")
PROBLEM_STATUSES: frozenset[str] = frozenset({"failed", "did_not_start", "late"})


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Shape):
    start: UtcDateTime
    end: UtcDateTime


class Run(_Shape):
    run_id: str
    outcome: RunOutcome
    started_at: UtcDateTime | None
    finished_at: UtcDateTime | None
    duration_s: float | None = Field(description="finished runs; for a running one, so far")
    exit_code: int | None
    reason: str = Field(description="failed runs: one line, the log's last line or the exit")


class Slot(_Shape):
    """One run the schedule engine expected (`job_schedule` expectations; empty without)."""

    scheduled_for: UtcDateTime
    start_by: UtcDateTime
    complete_by: UtcDateTime
    state: JobStatus = Field(description="what became of it, in the report's words")
    run_id: str = Field(description="the run that filled the slot; empty when none did")


class Job(_Shape):
    job: str
    host: str
    kind: Literal["job", "load"]
    status: JobStatus
    runs: list[Run]
    slots: list[Slot]


class OpenIncident(_Shape):
    id: int
    severity: str
    state: str
    host: str
    title: str
    since: UtcDateTime


class SilentAgent(_Shape):
    agent_id: str
    host: str
    last_seen_at: UtcDateTime | None


class Dropped(_Shape):
    agent_id: str
    host: str
    results_dropped: int = Field(description="the agent's counter at its last heartbeat")
    dropped_in_window: int | None = Field(
        description="the counter's change over the window; null while the store keeps no "
                    "history of it")


class Counts(_Shape):
    problems: int = Field(description="failed + did not start + late jobs and loads, silent "
                                      "agents, agents that dropped results")
    failed: int
    did_not_start: int
    late: int
    running: int
    scheduled: int
    succeeded: int
    open_incidents: int
    silent_agents: int


class CustomerReport(_Shape):
    customer: str
    name: str
    timezone: str
    window: Window
    schedules_known: bool = Field(description="false: no schedule slots in the store, so late "
                                              "and did-not-start come only from incidents")
    counts: Counts
    jobs: list[Job]
    loads: list[Job]
    open_incidents: list[OpenIncident]
    silent_agents: list[SilentAgent]
    dropped: list[Dropped]


class MorningReport(_Shape):
    generated_at: UtcDateTime
    since: str = Field(description="as asked: HH:MM in each customer's zone, or a UTC time")
    customers: list[CustomerReport]
