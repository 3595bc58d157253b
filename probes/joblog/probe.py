"""The joblog probe: job runs from batch-job logs, read from where the last committed run stopped.

    - name: night-jobs
      type: joblog
      paths: ["/var/log/batch/*.log"]
      jobs:
        - name: nightly_load
          preset: shell
        - name: export
          start: 'export started id=(?P<run_id>\\d+)'
          success: 'export done id=(?P<run_id>\\d+)'
          failure: ['export failed', 'FATAL']

Each run returns the job runs found in new lines, and one Result (`joblog:<probe name>`) that
says how much was read and whether every file could be. Positions and open runs are saved only
when the agent calls `commit`, after the items are spooled.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from probes.base import ProbeConfigBase, ProbeContext, ProbeOutput
from probes.configfile import relative_to_config
from probes.joblog.offsets import OffsetStore
from probes.joblog.patterns import (
    DEFAULT_CONTINUATION,
    JobMatcher,
    JobRules,
    compile_line_pattern,
)
from probes.joblog.presets import PRESETS
from probes.joblog.scanner import FAST_ENGINES
from probes.joblog.tailer import (
    COMPRESSED_SUFFIXES,
    FilePosition,
    Tailer,
    TailerSettings,
    TailRun,
)
from probes.result import EXCERPT_MAX_BYTES, Item, JobOutcome, Result, Status

log = structlog.get_logger(__name__)


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


class JobPattern(BaseModel):
    """One job to find in the probe's files: a preset, or start/success/failure regexes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    preset: Literal["cron", "airflow", "shell"] | None = None
    # Line regexes (one or a list each), searched anywhere in a line; `^`/`$` are line edges.
    # Named groups: job (or job_<part>...), run_id, exit_code, ts.
    start: list[str] = Field(default_factory=list)
    success: list[str] = Field(default_factory=list)
    failure: list[str] = Field(default_factory=list)
    # Lines of context in a failure's excerpt; None: the preset's, else 5.
    excerpt_before: int | None = Field(default=None, ge=0, le=200)
    excerpt_after: int | None = Field(default=None, ge=0, le=200)
    # Lines under a failure line that belong to its record (a stack trace), always included.
    continuation: str | None = None
    # How the `ts` group is written: a strptime format, "iso8601" or "epoch".
    ts_format: str | None = None
    # The zone of timestamps that carry no offset.
    timezone: str = "UTC"
    # Globs restricting this job to some of the probe's files; empty: all of them.
    paths: list[str] = Field(default_factory=list)

    _to_list = field_validator("start", "success", "failure", "paths", mode="before")(_as_list)

    @field_validator("paths")
    @classmethod
    def _anchor_globs(cls, globs: list[str], info: ValidationInfo) -> list[str]:
        return [str(relative_to_config(Path(glob), info)) for glob in globs]

    @field_validator("start", "success", "failure")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            compile_line_pattern(pattern)
        return patterns

    @field_validator("continuation")
    @classmethod
    def _continuation_compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            compile_line_pattern(pattern)
        return pattern

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            message = f"unknown time zone {zone!r} (use an IANA name like Europe/Paris)"
            raise ValueError(message) from exc
        return zone

    @model_validator(mode="after")
    def _something_to_find(self) -> JobPattern:
        if self.preset is None and not (self.start or self.success or self.failure):
            raise ValueError("give a preset, or at least one of start, success, failure")
        return self

    def rules(self) -> JobRules:
        preset = PRESETS[self.preset] if self.preset else None
        starts = [*(preset.start if preset else ()), *self.start]
        successes = [*(preset.success if preset else ()), *self.success]
        failures = [*(preset.failure if preset else ()), *self.failure]
        continuation = self.continuation or (preset.continuation if preset else None)
        default_before = preset.excerpt_before if preset else 5
        default_after = preset.excerpt_after if preset else 5
        return JobRules(
            name=self.name,
            starts=tuple(compile_line_pattern(p) for p in starts),
            successes=tuple(compile_line_pattern(p) for p in successes),
            failures=tuple(compile_line_pattern(p) for p in failures),
            excerpt_before=default_before if self.excerpt_before is None else self.excerpt_before,
            excerpt_after=default_after if self.excerpt_after is None else self.excerpt_after,
            continuation=compile_line_pattern(continuation or DEFAULT_CONTINUATION),
            ts_format=self.ts_format or (preset.ts_format if preset else "iso8601"),
            timezone=ZoneInfo(self.timezone),
            paths=tuple(self.paths),
        )


class JoblogConfig(ProbeConfigBase):
    type: Literal["joblog"]
    # Globs of the files to tail (`**` allowed). Rotated names may match too: a rotated file is
    # known by inode and never read twice; compressed archives are always skipped.
    paths: list[str] = Field(min_length=1)
    jobs: list[JobPattern] = Field(min_length=1)
    # Longer lines are cut to this (head kept, marked), never dropped nor read whole.
    max_line_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Files read per run at most (the most recently written first); a glob matching more makes
    # the result WARN. Files are read one at a time: at most one is open.
    max_files: int = Field(default=1000, ge=1, le=100_000)
    # Bytes read per run at most, so a first run over a large backlog fits its timeout; the
    # rest is read by the next runs. None: no limit.
    max_bytes_per_run: int | None = Field(default=256 * 1024 * 1024, ge=64 * 1024)
    excerpt_max_bytes: int = Field(default=EXCERPT_MAX_BYTES, ge=256, le=EXCERPT_MAX_BYTES)
    # How bytes that are not UTF-8 appear in excerpts and job names.
    encoding_errors: Literal["replace", "backslashreplace"] = "replace"
    skip_suffixes: list[str] = Field(default_factory=lambda: list(COMPRESSED_SUFFIXES))

    _to_list = field_validator("paths", mode="before")(_as_list)

    @field_validator("paths")
    @classmethod
    def _anchor_globs(cls, globs: list[str], info: ValidationInfo) -> list[str]:
        return [str(relative_to_config(Path(glob), info)) for glob in globs]


def tailer_settings(config: JoblogConfig) -> TailerSettings:
    return TailerSettings(
        globs=tuple(config.paths),
        max_line_bytes=config.max_line_bytes,
        max_files=config.max_files,
        skip_suffixes=tuple(config.skip_suffixes),
        max_bytes_per_run=config.max_bytes_per_run,
    )


def run_notes(tail: TailRun) -> list[str]:
    """What a finished TailRun has to say in the result (each note makes it WARN)."""
    notes: list[str] = list(tail.problems)
    if tail.budget_exhausted:
        notes.append(f"read {tail.bytes_read} bytes, the per-run limit; the rest comes next")
    return notes


def joblog_result(
    name: str,
    runs: Sequence[Any],
    lines: int,
    read_bytes: int,
    files: int,
    notes: Sequence[str],
    observed_at: datetime,
) -> Result:
    """The `joblog:<name>` result of one run; the SSH form builds the same one."""
    failed = sum(1 for r in runs if r.outcome is JobOutcome.FAILED)
    status = Status.WARN if notes else Status.OK
    summary = f"{lines} new lines in {files} files, {len(runs)} job events, {failed} failed"
    if notes:
        summary += f"; {notes[0]}"
    return Result(
        probe=name,
        check=f"joblog:{name}",
        status=status,
        summary=summary,
        observed_at=observed_at,
        metrics={
            "lines_read": float(lines),
            "bytes_read": float(read_bytes),
            "files": float(files),
            "job_runs_failed": float(failed),
        },
        detail="\n".join(notes)[:4096],
    )


class JoblogProbe:
    def __init__(
        self, config: JoblogConfig, ctx: ProbeContext, *, scan_engines: Sequence[str] = FAST_ENGINES
    ) -> None:
        self.name = config.name
        self.config = config
        self.clock = ctx.clock
        self._store = OffsetStore(ctx.state_dir, config.name)
        self._tailer = Tailer(tailer_settings(config))
        self._matcher = JobMatcher(
            config.name, [job.rules() for job in config.jobs], ctx.clock,
            errors=config.encoding_errors, excerpt_max_bytes=config.excerpt_max_bytes,
            scan_engines=scan_engines,
        )
        # What the last commit saved: every run starts from here, so a run whose items never
        # reached the spool is read again.
        self._committed: tuple[dict[str, FilePosition], dict[str, Any]] = self._store.load()

    @property
    def scan_engine(self) -> str:
        return self._matcher.scanner.engine

    def run(self) -> ProbeOutput:
        positions, job_state = self._committed
        self._matcher.restore(job_state)
        tail = self._tailer.start_run(positions)
        lines_read = 0
        for span in tail.spans():  # views of one reused buffer: counted and matched at once
            lines_read += span.buffer.count(b"\n", span.start, span.end)
            self._matcher.feed(span)
        self._matcher.forget_files(set(tail.positions))
        runs = self._matcher.take_items()
        new_state = (dict(tail.positions), self._matcher.snapshot())
        notes = run_notes(tail)
        result = joblog_result(
            self.name, runs, lines_read, tail.bytes_read, len(tail.positions), notes,
            self.clock.now(),
        )

        def commit() -> None:
            self._store.save(*new_state)
            self._committed = new_state

        items: list[Item] = [*runs, result]
        return ProbeOutput(items=items, commit=commit, notes=notes)
