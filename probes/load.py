"""The load probe: did last night's data load complete within its window?

    - name: sales-load
      type: load
      window: {start: "01:00", end: "05:00", timezone: Europe/Berlin}
      files: {dir: /data/in/sales, glob: "*.csv", min_count: 5, settle_s: 300}
      marker: {path: /data/in/sales/_SUCCESS}

A load is expected once a day inside a window in a timezone; the current run is the window that
started most recently (run id: the local date it started). The run is complete when every
configured criterion holds:
- marker: a file exists (optionally written since the window started, optionally non-empty);
- log: a line matching a regex was appended to a log (read with the joblog tailer, so rotation
  and restarts are handled) while the file was being written during the run;
- files: files matching a name pattern arrived in a folder, enough of them and big enough, and
  unchanged (sizes and mtimes) for a settling time, tracked across runs in the state dir.
Once complete, a run stays complete (the files may be consumed downstream).

Each probe run gives one Result (`load:<load name>`: OK complete, WARN waiting inside the window,
CRIT the window ended incomplete) and, when the run's state changes, a JobRun (job = load name,
run_id = the window's date): RUNNING, then SUCCEEDED or FAILED, so the collector's job
expectations work on loads too. A load that completes after a FAILED run turns SUCCEEDED.

Gathering (os.scandir / os.stat locally, `find` and `stat` over SSH) is apart from the pure
`assess()`, which both forms share.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from probes.base import ProbeConfigBase, ProbeContext, ProbeOutput
from probes.configfile import relative_to_config
from probes.disk import format_bytes
from probes.joblog.patterns import compile_line_pattern
from probes.joblog.tailer import FilePosition, Tailer, TailerSettings
from probes.result import (
    DETAIL_MAX_BYTES,
    EXCERPT_MAX_BYTES,
    Item,
    JobOutcome,
    JobRun,
    Result,
    Status,
    cap_text,
    one_line,
)
from probes.sshform import CommandOutput

log = structlog.get_logger(__name__)

STATE_VERSION = 1
STATE_FILE_SUFFIX = "load-state.json"
# Files listed in the detail at most; the metrics count all of them.
DETAIL_FILES_MAX = 50


# ---------------------------------------------------------------------- configuration


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoadWindow(_Model):
    # Local times in `timezone`; an end at or before the start is on the next day (22:00-04:00).
    start: time
    end: time
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            message = f"unknown time zone {zone!r} (use an IANA name like Europe/Berlin)"
            raise ValueError(message) from exc
        return zone

    @field_validator("start", "end")
    @classmethod
    def _no_zone_in_times(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("give a local time (HH:MM); the zone goes in `timezone`")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _anchor(path: str, info: ValidationInfo) -> str:
    return str(relative_to_config(Path(path), info))


class MarkerCriterion(_Model):
    path: str = Field(min_length=1)
    # Yesterday's marker must not make tonight's load complete.
    newer_than_window_start: bool = True
    non_empty: bool = False

    _anchor_path = field_validator("path")(_anchor)


class LogCriterion(_Model):
    # A file or a glob (rotated names may match too: the tailer knows a file by its inode).
    path: str = Field(min_length=1)
    # A line regex (joblog's rules: Python syntax, `^`/`$` are the line's edges).
    pattern: str = Field(min_length=1)
    max_bytes_per_run: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)

    _anchor_path = field_validator("path")(_anchor)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        compile_line_pattern(pattern)
        return pattern


class FilesCriterion(_Model):
    dir: str = Field(min_length=1)
    # File names to count: a glob, or a regex matched against the whole name; neither: all.
    glob: str | None = None
    regex: str | None = None
    min_count: int = Field(default=1, ge=0, le=1_000_000)
    min_total_bytes: int = Field(default=0, ge=0)
    # Sizes and mtimes unchanged for this long before the files count: a copy still running is
    # not an arrival.
    settle_s: float = Field(default=0.0, ge=0.0, le=86400.0)
    # Only files written since the window started count (yesterday's files left in place).
    newer_than_window_start: bool = True
    # Entries listed at most (a folder of a million files must not stall the agent).
    max_files: int = Field(default=10_000, ge=1, le=1_000_000)

    _anchor_dir = field_validator("dir")(_anchor)

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, regex: str | None) -> str | None:
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as exc:
                raise ValueError(f"bad regular expression: {exc}") from exc
        return regex

    @model_validator(mode="after")
    def _one_name_pattern(self) -> FilesCriterion:
        if self.glob is not None and self.regex is not None:
            raise ValueError("give glob or regex, not both")
        return self

    def wants(self, name: str) -> bool:
        if self.glob is not None:
            return fnmatch.fnmatchcase(name, self.glob)
        if self.regex is not None:
            return re.fullmatch(self.regex, name) is not None
        return True


class LoadConfig(ProbeConfigBase):
    type: Literal["load"]
    # The job name of the load's runs and its check key `load:<load>`; None: the probe name.
    load: str | None = Field(default=None, min_length=1, max_length=200)
    window: LoadWindow
    marker: MarkerCriterion | None = None
    log: LogCriterion | None = None
    files: FilesCriterion | None = None

    @model_validator(mode="after")
    def _something_to_wait_for(self) -> LoadConfig:
        if self.marker is None and self.log is None and self.files is None:
            raise ValueError("give at least one of marker, log, files")
        return self

    @property
    def load_name(self) -> str:
        return self.load or self.name


# ---------------------------------------------------------------------- the window


@dataclass(frozen=True, slots=True)
class LoadRun:
    """One night's load: its window in UTC, named by the local date the window starts."""

    run_id: str
    starts_at: datetime
    ends_at: datetime


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    # fold=0: an ambiguous time (the autumn night's repeated hour) is its first occurrence; a
    # time that does not exist (the spring night's skipped hour) is read with the offset before
    # the change, so 02:30 becomes 03:30 local: the window starts once the clock has passed it.
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def current_run(window: LoadWindow, now: datetime) -> LoadRun:
    """The run whose window started most recently (at or before now)."""
    zone = window.zone
    today = now.astimezone(zone).date()
    for days_back in range(3):
        day = today - timedelta(days=days_back)
        starts_at = _local(day, window.start, zone)
        if starts_at <= now:
            end_day = day if window.end > window.start else day + timedelta(days=1)
            ends_at = max(_local(end_day, window.end, zone), starts_at)
            return LoadRun(run_id=day.isoformat(), starts_at=starts_at, ends_at=ends_at)
    raise AssertionError("a window starts every day")  # pragma: no cover


# ---------------------------------------------------------------------- what arrived


@dataclass(frozen=True, slots=True)
class FileSeen:
    name: str
    size: int
    mtime: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class Listing:
    """A folder's regular files, or why it could not be listed."""

    files: tuple[FileSeen, ...] = ()
    missing: bool = False
    error: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MarkerSeen:
    exists: bool
    size: int = 0
    mtime: float = 0.0
    error: str | None = None


FIND_FORMAT = "%f\\t%s\\t%T@\\n"
STAT_FORMAT = "%s\\t%Y\\n"


def find_command(directory: str) -> str:
    return shlex.join(["find", directory, "-maxdepth", "1", "-type", "f", "-printf", FIND_FORMAT])


def stat_command(path: str) -> str:
    return shlex.join(["stat", "--printf", STAT_FORMAT, "--", path])


def _file_row(parts: Sequence[str]) -> FileSeen | None:
    if len(parts) != 3 or not parts[0]:
        return None
    try:
        return FileSeen(parts[0], int(parts[1]), float(parts[2]))
    except ValueError:
        return None


def parse_find_listing(output: CommandOutput, max_files: int) -> Listing:
    """Rows `name<TAB>size<TAB>mtime` of find; a bad row is skipped with a note."""
    if output.exit_status != 0:
        reason = output.stderr.strip().splitlines()[-1:] or [f"find exited {output.exit_status}"]
        if "No such file or directory" in reason[0] and not output.stdout.strip():
            return Listing(missing=True)
        if not output.stdout.strip():
            return Listing(error=reason[0])
    files: list[FileSeen] = []
    notes: list[str] = []
    for row in output.stdout.splitlines():
        if not row:
            continue
        if len(files) >= max_files:
            notes.append(f"more than {max_files} files: the rest not counted")
            break
        # Split from the right: a name may hold a tab, size and mtime cannot.
        parts = row.rsplit("\t", 2)
        seen = _file_row(parts)
        if seen is None:
            notes.append(f"unreadable find row {row[:80]!r}")
        else:
            files.append(seen)
    return Listing(files=tuple(files), notes=tuple(notes))


def parse_marker_stat(output: CommandOutput) -> MarkerSeen:
    if output.exit_status != 0:
        reason = (output.stderr.strip().splitlines() or [f"stat exited {output.exit_status}"])[-1]
        if "No such file or directory" in reason:
            return MarkerSeen(exists=False)
        return MarkerSeen(exists=False, error=reason)
    parts = output.stdout.strip().split("\t")
    try:
        return MarkerSeen(exists=True, size=int(parts[0]), mtime=float(parts[1]))
    except (ValueError, IndexError):
        return MarkerSeen(exists=False, error=f"unreadable stat output {output.stdout[:80]!r}")


def list_folder(directory: str, max_files: int) -> Listing:
    """The local twin of find_command: regular files only (symlinks are not), hidden included."""
    files: list[FileSeen] = []
    notes: list[str] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone between listing and stat: not arrived
                if len(files) >= max_files:
                    notes.append(f"more than {max_files} files: the rest not counted")
                    break
                files.append(FileSeen(entry.name, st.st_size, st.st_mtime))
    except FileNotFoundError:
        return Listing(missing=True)
    except OSError as exc:
        return Listing(error=f"{directory}: {exc.strerror or exc}")
    return Listing(files=tuple(files), notes=tuple(notes))


def stat_marker(path: str) -> MarkerSeen:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return MarkerSeen(exists=False)
    except OSError as exc:
        return MarkerSeen(exists=False, error=f"{path}: {exc.strerror or exc}")
    return MarkerSeen(exists=True, size=st.st_size, mtime=st.st_mtime)


# ---------------------------------------------------------------------- state across runs


@dataclass(frozen=True, slots=True)
class LoadState:
    """What a probe remembers between runs (persisted by the local probe after each commit)."""

    run_id: str | None = None
    completed_at: datetime | None = None
    # The outcome of the last JobRun emitted for run_id: a JobRun goes out on changes only.
    reported: str | None = None
    # Digest of the matching files' names, sizes and mtimes, and since when it is unchanged.
    settle_digest: str = ""
    settle_since: datetime | None = None
    # When a matching log line was seen during run_id.
    log_found_at: datetime | None = None
    log_positions: tuple[FilePosition, ...] = ()

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "version": STATE_VERSION,
            "run_id": self.run_id,
            "completed_at": iso(self.completed_at),
            "reported": self.reported,
            "settle_digest": self.settle_digest,
            "settle_since": iso(self.settle_since),
            "log_found_at": iso(self.log_found_at),
            "log_positions": [asdict(p) for p in self.log_positions],
        }

    @classmethod
    def from_json(cls, raw: Any) -> LoadState:
        if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
            return cls()

        def when(key: str) -> datetime | None:
            value = raw.get(key)
            return datetime.fromisoformat(value) if isinstance(value, str) else None

        positions = tuple(FilePosition(**p) for p in raw.get("log_positions") or [])
        return cls(
            run_id=raw.get("run_id"),
            completed_at=when("completed_at"),
            reported=raw.get("reported"),
            settle_digest=str(raw.get("settle_digest") or ""),
            settle_since=when("settle_since"),
            log_found_at=when("log_found_at"),
            log_positions=positions,
        )


class StateFile:
    def __init__(self, state_dir: Path, probe_name: str) -> None:
        self.path = state_dir / f"{probe_name}.{STATE_FILE_SUFFIX}"

    def load(self) -> LoadState:
        try:
            return LoadState.from_json(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return LoadState()
        except (OSError, ValueError, TypeError) as exc:
            # A damaged state file costs a settling period, never a probe that cannot start.
            log.warning("load.state_unreadable", path=str(self.path), error=str(exc))
            return LoadState()

    def save(self, state: LoadState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(state.to_json(), f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


# ---------------------------------------------------------------------- the verdict


@dataclass(frozen=True, slots=True)
class Observation:
    """What one look found; a field is None when its criterion is not configured."""

    files: Listing | None = None
    marker: MarkerSeen | None = None
    # When a matching log line written during the run was read (None: not yet).
    log_found_at: datetime | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def check_key(config: LoadConfig) -> str:
    return f"load:{config.load_name}"


def _clock_time(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%H:%M")


def _digest(files: Sequence[FileSeen]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for f in sorted(files, key=lambda f: f.name):
        h.update(f"{f.name}\0{f.size}\0{f.mtime!r}\n".encode("utf-8", errors="surrogateescape"))
    return h.hexdigest()


@dataclass(slots=True)
class _Verdict:
    complete: bool = True
    unreadable: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # what is still awaited, for people


def assess(
    config: LoadConfig,
    run: LoadRun,
    seen: Observation,
    state: LoadState,
    now: datetime,
) -> tuple[list[Item], LoadState]:
    """Pure: a look at the host, the remembered state and the time in; items and new state out."""
    zone = config.window.zone
    if state.run_id != run.run_id:
        # A new night: what the last run found or reported is not this run's.
        state = replace(state, run_id=run.run_id, completed_at=None, reported=None,
                        log_found_at=None)
    verdict = _Verdict()
    metrics: dict[str, float] = {}
    detail: list[str] = list(seen.notes)
    arrived = ""
    window_start_epoch = run.starts_at.timestamp()

    if config.files is not None and seen.files is not None:
        criterion, listing = config.files, seen.files
        detail.extend(listing.notes)
        matching = [
            f for f in listing.files
            if criterion.wants(f.name)
            and (not criterion.newer_than_window_start or f.mtime >= window_start_epoch)
        ]
        count, total = len(matching), sum(f.size for f in matching)
        newest = max((f.mtime for f in matching), default=None)
        metrics.update(files=float(count), bytes=float(total))
        if newest is not None:
            metrics["newest_mtime"] = newest
        arrived = f"{count} files, {format_bytes(total)}"
        if newest is not None:
            newest_at = datetime.fromtimestamp(newest, UTC)
            arrived += f", newest {_clock_time(newest_at, zone)}"
        if listing.error is not None:
            verdict.unreadable.append(listing.error)
        digest = _digest(matching)
        if digest != state.settle_digest or state.settle_since is None:
            state = replace(state, settle_digest=digest, settle_since=now)
        unchanged_s = (now - state.settle_since).total_seconds() if state.settle_since else 0.0
        short: list[str] = []
        if listing.missing:
            short.append(f"{criterion.dir} does not exist yet")
        elif count < criterion.min_count:
            short.append(f"{count} of {criterion.min_count} files")
        if not listing.missing and total < criterion.min_total_bytes:
            short.append(f"{format_bytes(total)} of {format_bytes(criterion.min_total_bytes)}")
        if not short and listing.error is None and unchanged_s < criterion.settle_s:
            short.append(f"settling: {arrived} unchanged for {unchanged_s:.0f}s of "
                         f"{criterion.settle_s:g}s")
        verdict.missing.extend(short)
        for f in sorted(matching, key=lambda f: f.mtime)[:DETAIL_FILES_MAX]:
            when = datetime.fromtimestamp(f.mtime, UTC).astimezone(zone).isoformat(
                timespec="seconds")
            detail.append(f"{f.name}\t{f.size}\t{when}")
        if count > DETAIL_FILES_MAX:
            detail.append(f"... and {count - DETAIL_FILES_MAX} more")

    if config.marker is not None and seen.marker is not None:
        criterion_m, marker = config.marker, seen.marker
        name = Path(criterion_m.path).name
        metrics["marker_present"] = 1.0 if marker.exists else 0.0
        if marker.error is not None:
            verdict.unreadable.append(marker.error)
        elif not marker.exists:
            verdict.missing.append(f"marker {name} missing")
        elif criterion_m.newer_than_window_start and marker.mtime < window_start_epoch:
            verdict.missing.append(f"marker {name} is from before the window")
        elif criterion_m.non_empty and marker.size == 0:
            verdict.missing.append(f"marker {name} is empty")

    if config.log is not None:
        if seen.log_found_at is not None and state.log_found_at is None:
            state = replace(state, log_found_at=seen.log_found_at)
        metrics["log_line_seen"] = 1.0 if state.log_found_at is not None else 0.0
        if state.log_found_at is None:
            verdict.missing.append(f"no line matching {config.log.pattern!r} yet")

    verdict.complete = not verdict.missing and not verdict.unreadable
    if verdict.complete and state.completed_at is None:
        state = replace(state, completed_at=now)
    complete = state.completed_at is not None
    metrics["complete"] = 1.0 if complete else 0.0

    load = config.load_name
    end_text = _clock_time(run.ends_at, zone)
    awaited = "; ".join(verdict.missing) or "nothing"
    if complete:
        assert state.completed_at is not None  # noqa: S101 - complete means it is set
        outcome, status = JobOutcome.SUCCEEDED, Status.OK
        late = " (after the window)" if state.completed_at > run.ends_at else ""
        summary = f"load {load} complete at {_clock_time(state.completed_at, zone)}{late}"
    elif verdict.unreadable:
        outcome, status = None, Status.UNKNOWN
        summary = f"load {load} cannot be checked: {verdict.unreadable[0]}"
    elif now < run.ends_at:
        outcome, status = JobOutcome.RUNNING, Status.WARN
        summary = (f"load {load} waiting since {_clock_time(run.starts_at, zone)} "
                   f"(until {end_text} {zone.key}): {awaited}")
    else:
        outcome, status = JobOutcome.FAILED, Status.CRIT
        summary = f"load {load} not complete by {end_text}: {awaited}"
    if arrived and complete:
        summary += f": {arrived}"

    result = Result(
        probe=config.name,
        check=check_key(config),
        status=status,
        summary=one_line(summary),
        observed_at=now,
        metrics=metrics,
        detail=cap_text("\n".join(detail), DETAIL_MAX_BYTES),
    )
    items: list[Item] = []
    if outcome is not None and outcome.value != state.reported:
        items.append(JobRun(
            probe=config.name,
            job=load,
            run_id=run.run_id,
            outcome=outcome,
            observed_at=now,
            started_at=run.starts_at,
            finished_at=(
                state.completed_at if outcome is JobOutcome.SUCCEEDED
                else run.ends_at if outcome is JobOutcome.FAILED else None
            ),
            excerpt=cap_text(summary + "\n" + "\n".join(detail), EXCERPT_MAX_BYTES)
            if outcome is JobOutcome.FAILED else "",
            source=f"load:{load}",
        ))
        state = replace(state, reported=outcome.value)
    items.append(result)
    return items, state


# ---------------------------------------------------------------------- local and SSH forms


class LoadProbe:
    def __init__(self, config: LoadConfig, ctx: ProbeContext) -> None:
        self.name = config.name
        self._config = config
        self._clock = ctx.clock
        self._state_file = StateFile(ctx.state_dir, config.name)
        # What the last commit saved: a run whose items never reached the spool is redone.
        self._committed = self._state_file.load()
        self._tailer = (
            Tailer(TailerSettings(globs=(config.log.path,),
                                  max_bytes_per_run=config.log.max_bytes_per_run))
            if config.log is not None else None
        )

    def _read_log(
        self, tailer: Tailer, criterion: LogCriterion, run: LoadRun, now: datetime
    ) -> tuple[datetime | None, tuple[FilePosition, ...], list[str]]:
        pattern = compile_line_pattern(criterion.pattern)
        tail = tailer.start_run({p.key: p for p in self._committed.log_positions})
        found_at: datetime | None = None
        for block in tail.blocks():
            if found_at is not None or pattern.search(block.data) is None:
                continue
            try:
                written_at = os.stat(block.path).st_mtime
            except OSError:
                continue
            # A file not written since the window started holds only older lines.
            if written_at >= run.starts_at.timestamp():
                found_at = now
        notes = list(tail.problems)
        if tail.budget_exhausted:
            notes.append(f"read {tail.bytes_read} bytes of log, the per-run limit")
        return found_at, tuple(tail.positions.values()), notes

    def run(self) -> ProbeOutput:
        config = self._config
        now = self._clock.now()
        run = current_run(config.window, now)
        state = self._committed
        notes: list[str] = []
        log_found_at = None
        if self._tailer is not None and config.log is not None:
            log_found_at, positions, log_notes = self._read_log(self._tailer, config.log, run, now)
            state = replace(state, log_positions=positions)
            notes.extend(log_notes)
        seen = Observation(
            files=list_folder(config.files.dir, config.files.max_files)
            if config.files is not None else None,
            marker=stat_marker(config.marker.path) if config.marker is not None else None,
            log_found_at=log_found_at,
            notes=tuple(notes),
        )
        items, new_state = assess(config, run, seen, state, now)

        def commit() -> None:
            self._state_file.save(new_state)
            self._committed = new_state

        return ProbeOutput(items=items, commit=commit, notes=notes)


class LoadSshForm:
    """`find` for the folder, `stat` for the marker; the same `assess()` as the local run.

    The poller keeps this object between polls, so settling and the JobRun changes are
    tracked in memory. A log criterion needs a persisted read position, which a stateless SSH
    command cannot keep: it is refused here.
    """

    def __init__(self, config: LoadConfig) -> None:
        if config.log is not None:
            raise ValueError(f"load probe {config.name}: a log criterion has no SSH form")
        self._config = config
        self._state = LoadState()

    def commands(self) -> Sequence[str]:
        lines: list[str] = []
        if self._config.files is not None:
            lines.append(find_command(self._config.files.dir))
        if self._config.marker is not None:
            lines.append(stat_command(self._config.marker.path))
        return lines

    def parse(self, outputs: Mapping[str, CommandOutput], observed_at: datetime) -> list[Item]:
        config = self._config
        listing = marker = None
        if config.files is not None:
            line = find_command(config.files.dir)
            output = outputs.get(line)
            listing = (parse_find_listing(output, config.files.max_files) if output is not None
                       else Listing(error=f"no output of {line}"))
        if config.marker is not None:
            line = stat_command(config.marker.path)
            output = outputs.get(line)
            marker = (parse_marker_stat(output) if output is not None
                      else MarkerSeen(exists=False, error=f"no output of {line}"))
        run = current_run(config.window, observed_at)
        items, self._state = assess(
            config, run, Observation(files=listing, marker=marker), self._state, observed_at
        )
        return items
