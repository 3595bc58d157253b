"""Finds job start, success and failure lines in blocks of log lines, and turns them into JobRuns.

Speed comes from never looping over lines in Python: the patterns of all jobs are searched for
together over a whole block (probes/joblog/scanner.py), and only the few lines they hit are
matched again, pattern by pattern, to read the named groups:
- `job` (or several `job_*` groups, joined with "."), `run_id`, `exit_code`, `ts`.

Runs are tracked per job name: a start opens a run, a success or failure closes it. A failure
that follows another failure of the same run (an ERROR line, then `END exit=3`) updates that run
rather than inventing a second one. The open runs are state that outlives the probe's process;
`snapshot()` and `restore()` carry it through the offsets file.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from probes.clock import Clock
from probes.joblog.scanner import FAST_ENGINES, NAMED_GROUP, LineScanner, scoped_flags
from probes.joblog.tailer import LineBlock, LineSpan
from probes.result import EXCERPT_MAX_BYTES, JobOutcome, JobRun, cap_text

GROUP_NAMES = ("job", "run_id", "exit_code", "ts")
# Lines under a failure that belong to its record: indented lines, tracebacks, Java causes.
DEFAULT_CONTINUATION = r"^(?:[ \t]|Traceback \(|Caused by:|\.\.\. \d+ more)"
# A stack trace longer than this is cut: the excerpt is capped in bytes anyway.
MAX_CONTINUATION_LINES = 200
# Open and recently closed runs kept per probe: cron starts that never end must not grow it.
MAX_TRACKED_RUNS = 10_000
MAX_JOB_NAME_CHARS = 200
# A line kept as context for a later failure's excerpt is cut to this many characters; its
# first 4 bytes a character are all that is decoded (no character takes more in UTF-8).
MAX_CONTEXT_LINE_CHARS = 1024
MAX_CONTEXT_LINE_BYTES = 4 * MAX_CONTEXT_LINE_CHARS


def compile_line_pattern(pattern: str) -> re.Pattern[bytes]:
    """A user's line regex as a bytes pattern; raises ValueError with a message for config."""
    if "(?P=" in pattern:
        raise ValueError("backreferences (?P=name) are not supported")
    unknown = [g for g in NAMED_GROUP.findall(pattern)
               if g not in GROUP_NAMES and not g.startswith("job_")]
    if unknown:
        raise ValueError(
            f"unknown group {unknown[0]!r}: groups are job, job_<part>, run_id, exit_code, ts"
        )
    try:
        return re.compile(scoped_flags(pattern).encode("utf-8"), re.MULTILINE)
    except re.error as exc:
        raise ValueError(f"bad regular expression: {exc}") from exc


@dataclass(frozen=True, slots=True)
class JobRules:
    """One job's compiled rules, built from its validated config."""

    name: str
    starts: tuple[re.Pattern[bytes], ...]
    successes: tuple[re.Pattern[bytes], ...]
    failures: tuple[re.Pattern[bytes], ...]
    excerpt_before: int = 5
    excerpt_after: int = 5
    continuation: re.Pattern[bytes] = field(
        default_factory=lambda: re.compile(DEFAULT_CONTINUATION.encode())
    )
    ts_format: str = "iso8601"
    timezone: tzinfo = UTC
    # Globs of the files this job is looked for in; empty: every file of the probe.
    paths: tuple[str, ...] = ()

    @property
    def sources(self) -> list[str]:
        return [p.pattern.decode("utf-8") for p in (*self.starts, *self.successes, *self.failures)]

    def classify(self, line: bytes | bytearray) -> tuple[JobOutcome, re.Match[bytes]] | None:
        # Failure first: a line that says both "END" and "exit=3" is a failure.
        for outcome, patterns in (
            (JobOutcome.FAILED, self.failures),
            (JobOutcome.SUCCEEDED, self.successes),
            (JobOutcome.RUNNING, self.starts),
        ):
            for pattern in patterns:
                found = pattern.search(line)
                if found is not None:
                    return outcome, found
        return None


def parse_timestamp(text: str, fmt: str, zone: tzinfo, now: datetime) -> datetime | None:
    """A log timestamp as aware UTC; None when it does not parse. Year-less formats (syslog)
    take the year that puts the time not more than a day in the future."""
    try:
        if fmt == "iso8601":
            parsed = datetime.fromisoformat(text.strip().replace(",", "."))
        elif fmt == "epoch":
            return datetime.fromtimestamp(float(text), UTC)
        elif "%Y" in fmt or "%y" in fmt:
            parsed = datetime.strptime(text.strip(), fmt)  # noqa: DTZ007 - zone applied below
        else:
            year = now.astimezone(zone).year
            parsed = datetime.strptime(f"{year} {text.strip()}", f"%Y {fmt}")  # noqa: DTZ007
            if parsed.replace(tzinfo=zone) > now + timedelta(days=1):
                parsed = parsed.replace(year=year - 1)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


@dataclass(slots=True)
class _PendingFailure:
    """A failure whose excerpt still waits for the lines after it."""

    run: JobRun
    key: str
    lines: list[str]
    after_left: int
    in_record: bool
    continuation: re.Pattern[bytes]
    before: list[str]
    failure_line: str
    # Where the finished JobRun goes in the matcher's items.
    index: int


class JobMatcher:
    """Feeds on blocks of lines, collects JobRuns in file order; state survives via snapshot().

    A LineSpan is a view of the tailer's buffer, overwritten after `feed` returns: what must
    outlive it (the last lines of a file, a failure's lines) is kept as text.
    """

    def __init__(
        self,
        probe_name: str,
        jobs: Sequence[JobRules],
        clock: Clock,
        *,
        errors: str = "replace",
        excerpt_max_bytes: int = EXCERPT_MAX_BYTES,
        scan_engines: Sequence[str] = FAST_ENGINES,
    ) -> None:
        self.probe_name = probe_name
        self.jobs = tuple(jobs)
        self.clock = clock
        self.errors = errors
        self.excerpt_max_bytes = excerpt_max_bytes
        self.scanner = LineScanner(
            [s for job in self.jobs for s in job.sources], engines=scan_engines
        )
        self.context_lines = max((j.excerpt_before for j in self.jobs), default=0)
        self._jobs_by_path: dict[str, tuple[JobRules, ...]] = {}
        self._items: list[JobRun | _PendingFailure] = []
        self._pending: list[_PendingFailure] = []
        # Persisted: open runs by job name, recently closed runs, the last run a job pattern
        # opened in each file (for end lines that name the job when the start did not), and the
        # last lines of each file (the "before" context of a failure at the top of a run).
        self._open: dict[str, dict[str, Any]] = {}
        self._closed: dict[str, dict[str, Any]] = {}
        self._opened_in_file: dict[str, str] = {}
        self._tails: dict[str, list[str]] = {}

    # ----------------------------------------------------------------- state

    def snapshot(self) -> dict[str, Any]:
        return {
            "open": dict(self._open),
            "closed": dict(self._closed),
            "opened_in_file": dict(self._opened_in_file),
            "tails": {k: list(v) for k, v in self._tails.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._items = []
        self._pending = []
        self._open = dict(state.get("open", {}))
        self._closed = dict(state.get("closed", {}))
        self._opened_in_file = dict(state.get("opened_in_file", {}))
        self._tails = {k: list(v) for k, v in state.get("tails", {}).items()}

    def forget_files(self, live_keys: set[str]) -> None:
        """Drop the context of files the tailer no longer tracks."""
        self._tails = {k: v for k, v in self._tails.items() if k in live_keys}

    # ----------------------------------------------------------------- matching

    def _jobs_for(self, path: str) -> tuple[JobRules, ...]:
        jobs = self._jobs_by_path.get(path)
        if jobs is None:
            jobs = tuple(
                j for j in self.jobs
                if not j.paths or any(fnmatch.fnmatch(path, g) for g in j.paths)
            )
            self._jobs_by_path[path] = jobs
        return jobs

    def _text(self, raw: bytes | bytearray) -> str:
        return raw.decode("utf-8", errors=self.errors)

    def feed(self, block: LineBlock | LineSpan) -> None:
        span = block if isinstance(block, LineSpan) else LineSpan(
            block.path, block.key, block.offset, block.data, 0, len(block.data)
        )
        data, start, end = span.buffer, span.start, span.end
        for pending in [p for p in self._pending if p.key == span.key]:
            self._collect_after(pending, data, start, end)
        jobs = self._jobs_for(span.path)
        if jobs:
            for line_start, line_end in self.scanner.candidate_lines(data, start, end):
                line = data[line_start:line_end]
                for job in jobs:
                    event = job.classify(line)
                    if event is not None:
                        self._on_event(job, *event, span, line_start, line_end)
        if self.context_lines > 0:
            # Taken now, a few microseconds a block: the buffer is overwritten once this returns.
            self._remember_tail(span)

    def _remember_tail(self, span: LineSpan) -> None:
        data = span.buffer
        cut = span.end - 1
        for _ in range(self.context_lines):
            cut = data.rfind(b"\n", span.start, cut)
            if cut < 0:
                break
        first = span.start if cut < 0 else cut + 1
        recent = [self._text(x[:MAX_CONTEXT_LINE_BYTES])
                  for x in data[first : span.end - 1].split(b"\n")]
        if cut < 0:
            recent = self._tails.get(span.key, []) + recent
        self._tails[span.key] = [line[:MAX_CONTEXT_LINE_CHARS]
                                 for line in recent[-self.context_lines :]]

    def _before(self, span: LineSpan, line_start: int, count: int) -> list[str]:
        if count == 0:
            return []
        data = span.buffer
        cut = line_start - 1
        taken = 0
        while taken < count and cut > span.start:
            cut = max(span.start - 1, data.rfind(b"\n", span.start, cut))
            taken += 1
        lines = [self._text(x) for x in data[cut + 1 : line_start - 1].split(b"\n")]
        lines = lines if line_start > span.start else []
        if len(lines) < count:
            # The block before this one, from the same file.
            lines = self._tails.get(span.key, [])[-(count - len(lines)) :] + lines
        return lines[-count:]

    def _on_event(
        self,
        job: JobRules,
        outcome: JobOutcome,
        found: re.Match[bytes],
        block: LineSpan,
        line_start: int,
        line_end: int,
    ) -> None:
        groups = {k: self._text(v) for k, v in found.groupdict().items() if v is not None}
        named = [groups[g] for g in sorted(groups, key=lambda g: found.start(g))
                 if g == "job" or g.startswith("job_")]
        job_name = (".".join(named) if named else job.name)[:MAX_JOB_NAME_CHARS]
        now = self.clock.now()
        at = now
        if "ts" in groups:
            at = parse_timestamp(groups["ts"], job.ts_format, job.timezone, now) or now
        line_offset = block.offset + line_start - block.start
        source = f"{block.path}:{line_offset}"
        origin = f"{block.key}@{line_offset}"
        exit_code: int | None = None
        if "exit_code" in groups:
            try:
                exit_code = int(groups["exit_code"])
            except ValueError:
                exit_code = None
        line_run_id = groups.get("run_id")
        file_slot = f"{job.name}|{block.key}"

        if outcome is JobOutcome.RUNNING:
            run_id = line_run_id or origin
            self._open[job_name] = {"run_id": run_id, "started_at": at.isoformat(),
                                    "explicit": line_run_id is not None}
            self._closed.pop(job_name, None)
            self._opened_in_file[file_slot] = job_name
            self._trim()
            self._items.append(JobRun(
                probe=self.probe_name, job=job_name, run_id=run_id, outcome=outcome,
                observed_at=now, started_at=at, source=source,
            ))
            return

        run = self._open.pop(job_name, None)
        if run is None and named:
            fallback = self._opened_in_file.get(file_slot)
            if fallback is not None and fallback != job_name:
                run = self._open.pop(fallback, None)
        if run is not None and line_run_id and run["explicit"] and run["run_id"] != line_run_id:
            self._open[job_name] = run  # another run of the same job: leave it open
            run = None
        if run is None:
            # The second word on a run already closed as failed (ERROR, then END exit=3).
            closed = self._closed.get(job_name)
            if closed is not None and closed["failed"] and (
                line_run_id is None or line_run_id == closed["run_id"]
            ):
                run = closed
        run_id = line_run_id or (run["run_id"] if run else origin)
        started_text = run.get("started_at") if run else None
        started_at = datetime.fromisoformat(started_text) if started_text else None
        if run is not None and exit_code is None:
            exit_code = run.get("exit_code")
        self._closed[job_name] = {
            "run_id": run_id, "started_at": started_text,
            "explicit": True, "failed": outcome is JobOutcome.FAILED, "exit_code": exit_code,
        }
        self._trim()
        result = JobRun(
            probe=self.probe_name, job=job_name, run_id=run_id, outcome=outcome,
            observed_at=now, started_at=started_at, finished_at=at, exit_code=exit_code,
            source=source,
        )
        if outcome is JobOutcome.SUCCEEDED:
            self._items.append(result)
            return
        pending = _PendingFailure(
            run=result, key=block.key, lines=[], after_left=job.excerpt_after, in_record=True,
            continuation=job.continuation,
            before=self._before(block, line_start, job.excerpt_before),
            failure_line=self._text(block.buffer[line_start:line_end]),
            index=len(self._items),
        )
        self._items.append(pending)
        self._pending.append(pending)
        self._collect_after(pending, block.buffer, line_end + 1, block.end)

    def _trim(self) -> None:
        for table in (self._open, self._closed):
            while len(table) > MAX_TRACKED_RUNS:
                del table[next(iter(table))]
        while len(self._opened_in_file) > MAX_TRACKED_RUNS:
            del self._opened_in_file[next(iter(self._opened_in_file))]

    def _collect_after(
        self, pending: _PendingFailure, data: bytes | bytearray, pos: int, size: int
    ) -> int:
        """Adds lines of data[pos:size] after the failure; returns where it stopped. Done:
        removed from pending."""
        while pos < size:
            end = data.find(b"\n", pos, size)
            end = size if end < 0 else end
            line = data[pos:end]
            if pending.in_record and pending.continuation.search(line) and (
                len(pending.lines) < MAX_CONTINUATION_LINES
            ):
                pending.lines.append(self._text(line))
            else:
                pending.in_record = False
                if pending.after_left <= 0:
                    self._finish(pending)
                    return pos
                pending.lines.append(self._text(line))
                pending.after_left -= 1
            pos = end + 1
        return pos

    def _finish(self, pending: _PendingFailure) -> None:
        if pending in self._pending:
            self._pending.remove(pending)
        excerpt = self._excerpt(pending)
        run = pending.run
        self._items[pending.index] = JobRun(
            probe=run.probe, job=run.job, run_id=run.run_id, outcome=run.outcome,
            observed_at=run.observed_at, started_at=run.started_at,
            finished_at=run.finished_at, exit_code=run.exit_code, excerpt=excerpt,
            source=run.source,
        )

    def _excerpt(self, pending: _PendingFailure) -> str:
        """Before, failure line, after: cut from the far ends so the failure line stays."""
        before = list(pending.before)
        after = list(pending.lines)
        budget = self.excerpt_max_bytes

        def size() -> int:
            return len("\n".join([*before, pending.failure_line, *after]).encode("utf-8"))

        while size() > budget and (before or after):
            if before and (len(before) >= len(after) or not after):
                before.pop(0)
            else:
                after.pop()
        return cap_text("\n".join([*before, pending.failure_line, *after]), budget)

    def flush(self) -> None:
        """Ends the excerpts still waiting for lines: the rest of the file is not written yet."""
        for pending in list(self._pending):
            self._finish(pending)

    def take_items(self) -> list[JobRun]:
        self.flush()
        items = [i for i in self._items if isinstance(i, JobRun)]
        self._items = []
        return items
