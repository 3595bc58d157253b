"""The systemd job source: each run of a timer's service (or of a service) as a job run.

    - name: night-timers
      type: systemd
      units:
        - backup.timer                       # job "backup.timer", runs of backup.service
        - unit: etl-load.timer
          job: nightly_load
          service: etl-load@full.service     # when the timer's Unit= is not <name>.service
        - report.service                     # a service started by something else

Every run reads the units' properties with one `systemctl show`, and turns the service's last
run into a job run: its id (InvocationID, or the start's monotonic time before systemd 232),
running / succeeded / failed, exit status (128 + N for a death by signal N, as a shell says),
start and end. A failed run carries the tail of the journal of that invocation as its excerpt.
Each run is emitted once per outcome (RUNNING, then its end): what was emitted is saved in the
probe's state folder when the agent has spooled it, so a restart does not emit it again. A
timer that fires twice between two probe runs shows only its last run (systemctl keeps one).

Times: `--timestamp=unix` (systemd 248 and later) prints `@<epoch seconds>`, exact. Older
systemd prints local wall time with a zone abbreviation (`Tue 2019-11-19 23:55:50 EST`), which
is ambiguous on its own (CST is three zones; 01:30 happens twice at the end of summer time):
the local run converts the `...Monotonic` value instead (the same clock as the agent's
monotonic clock), and a wall time is read in the configured or local zone, taking the side of a
DST change whose abbreviation matches. What cannot be read safely is left unknown.

Gathering (systemctl, journalctl) is kept apart from the pure `parse_units`, which the SSH form
shares (it cannot fetch the journal in the same round: its excerpt names the command to run).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from probes.base import ProbeConfigBase, ProbeContext, ProbeOutput
from probes.parsers.systemctl import parse_show
from probes.result import EXCERPT_MAX_BYTES, Item, JobOutcome, JobRun, Result, Status, one_line
from probes.sshform import CommandOutput

# systemd's own rule for unit names, restricted to the two kinds this source reads.
UNIT_NAME = r"^[A-Za-z0-9:_.\\@-]{1,250}\.(timer|service)$"
NOT_RUNNING = "systemd is not running on this host"
STATE_FILE = "systemd-runs.json"

# Only what the parser reads: a full `systemctl show` of a service is 250 lines.
SHOW_PROPERTIES = (
    "Id", "Unit", "LoadState", "ActiveState", "SubState", "Result", "Type", "InvocationID",
    "ExecMainStartTimestamp", "ExecMainStartTimestampMonotonic", "ExecMainExitTimestamp",
    "ExecMainExitTimestampMonotonic", "ExecMainCode", "ExecMainStatus", "SuccessExitStatus",
    "InactiveExitTimestamp", "InactiveExitTimestampMonotonic",
)  # fmt: skip
# ExecMainCode: how the main process ended (waitid's si_code).
CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3
SIGNAL_EXIT_BASE = 128
STILL_GOING_STATES = frozenset({"activating", "active", "reloading", "deactivating"})
# Signal names SuccessExitStatus may list (`SuccessExitStatus=3 SIGUSR1`).
_SIGNAL_NUMBERS = {"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGKILL": 9, "SIGUSR1": 10,
                   "SIGUSR2": 12, "SIGPIPE": 13, "SIGTERM": 15}  # fmt: skip


class SystemdUnitJob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: str = Field(pattern=UNIT_NAME)
    # The job's name in the customer's expectations; None: the unit's name.
    job: str | None = Field(default=None, min_length=1, max_length=200)
    # The service whose runs are the job's; None: the unit itself, or for a timer the service of
    # the same name (systemd's default for Unit=).
    service: str | None = Field(default=None, pattern=r"^[A-Za-z0-9:_.\\@-]{1,250}\.service$")

    @property
    def job_name(self) -> str:
        return self.job or self.unit

    @property
    def is_timer(self) -> bool:
        return self.unit.endswith(".timer")

    @property
    def service_name(self) -> str:
        if self.service:
            return self.service
        return self.unit.removesuffix(".timer") + ".service" if self.is_timer else self.unit


class SystemdConfig(ProbeConfigBase):
    type: Literal["systemd"]
    units: list[SystemdUnitJob] = Field(min_length=1, max_length=200)
    # Journal lines in a failed run's excerpt.
    journal_lines: int = Field(default=40, ge=0, le=1000)
    # The zone of wall-clock times from systemd before 248 (IANA name); None: the host's own.
    timezone: str | None = None
    # Each systemctl / journalctl call; the probe's own timeout bounds the whole run.
    command_timeout_s: float = Field(default=10.0, gt=0.0, le=300.0)

    @field_validator("units", mode="before")
    @classmethod
    def _names_are_units(cls, units: object) -> object:
        if isinstance(units, list):
            return [{"unit": u} if isinstance(u, str) else u for u in units]
        return units

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, zone: str | None) -> str | None:
        if zone is not None:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                message = f"unknown time zone {zone!r} (an IANA name: Europe/Berlin)"
                raise ValueError(message) from None
        return zone

    @model_validator(mode="after")
    def _services_are_unique(self) -> SystemdConfig:
        seen: set[str] = set()
        for entry in self.units:
            if entry.service_name in seen:
                raise ValueError(f"{entry.service_name} is watched twice")
            seen.add(entry.service_name)
        return self


# -- times ---------------------------------------------------------------------------------------

_WALL = re.compile(
    r"^(?:[A-Za-z]{3} )?(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(?: (\S+))?$"
)
_NUMERIC_ZONE = re.compile(r"^([+-])(\d{2}):?(\d{2})?$")


@dataclass(frozen=True, slots=True)
class MonotonicReference:
    """One instant on both clocks of the host: converts systemd's monotonic microseconds."""

    wall: datetime
    monotonic_s: float

    def to_wall(self, monotonic_usec: int) -> datetime:
        return self.wall - timedelta(seconds=self.monotonic_s - monotonic_usec / 1_000_000)


def parse_timestamp(value: str, zone: tzinfo | None) -> datetime | None:
    """A systemctl timestamp as an aware UTC datetime; None when empty, n/a or ambiguous."""
    value = value.strip()
    if not value or value in ("n/a", "0"):
        return None
    if value.startswith("@"):
        try:
            return datetime.fromtimestamp(float(value[1:]), UTC)
        except (ValueError, OverflowError, OSError):
            return None
    match = _WALL.match(value)
    if match is None:
        return None
    day, clock_time, fraction, abbreviation = match.groups()
    try:
        naive = datetime.fromisoformat(f"{day}T{clock_time}")
    except ValueError:
        return None
    if fraction:
        naive = naive.replace(microsecond=int(fraction.ljust(6, "0")))
    return _in_zone(naive, abbreviation or "", zone)


def _in_zone(naive: datetime, abbreviation: str, zone: tzinfo | None) -> datetime | None:
    if abbreviation in ("UTC", "GMT", "UCT", "Z"):
        return naive.replace(tzinfo=UTC)
    numeric = _NUMERIC_ZONE.match(abbreviation)
    if numeric:
        sign, hours, minutes = numeric.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
        return naive.replace(tzinfo=timezone(-offset if sign == "-" else offset)).astimezone(UTC)
    if zone is None:
        return None
    # The abbreviation picks the side of a DST change: 02:30 CEST and 02:30 CET are an hour apart.
    for fold in (0, 1):
        local = naive.replace(tzinfo=zone, fold=fold)
        if local.tzname() == abbreviation:
            return local.astimezone(UTC)
    return None


def _run_time(
    props: Mapping[str, str], name: str, zone: tzinfo | None, reference: MonotonicReference | None
) -> datetime | None:
    wall = props.get(name, "")
    if wall.startswith("@"):
        return parse_timestamp(wall, zone)
    monotonic = _int(props.get(f"{name}Monotonic"))
    if reference is not None and monotonic:
        return reference.to_wall(monotonic)
    return parse_timestamp(wall, zone)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


# -- a service's last run ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceRun:
    """What `systemctl show` says about the last run of one service."""

    job: str
    service: str
    run_id: str
    invocation_id: str
    outcome: JobOutcome
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    result: str


def _success_statuses(text: str) -> set[tuple[int, int]]:
    """SuccessExitStatus as (ExecMainCode kind, number) pairs besides exit 0."""
    statuses: set[tuple[int, int]] = set()
    for word in text.split():
        if word.isdigit():
            statuses.add((CLD_EXITED, int(word)))
        elif word.upper() in _SIGNAL_NUMBERS:
            statuses.add((CLD_KILLED, _SIGNAL_NUMBERS[word.upper()]))
    return statuses


def service_run(
    props: Mapping[str, str],
    job: str,
    service: str,
    zone: tzinfo | None,
    reference: MonotonicReference | None = None,
) -> ServiceRun | None:
    """The service's last run, or None when it has not run since boot (or cannot be told apart)."""
    invocation_id = props.get("InvocationID", "").strip()
    start_monotonic = _int(props.get("ExecMainStartTimestampMonotonic")) or 0
    exit_monotonic = _int(props.get("ExecMainExitTimestampMonotonic")) or 0
    run_id = invocation_id or (str(start_monotonic) if start_monotonic else "")
    if not run_id:
        return None
    started_at = _run_time(props, "ExecMainStartTimestamp", zone, reference)
    if started_at is None and not start_monotonic:
        # The main process never started (ExecStartPre failed): the run began when the unit left
        # the inactive state.
        started_at = _run_time(props, "InactiveExitTimestamp", zone, reference)
    active_state = props.get("ActiveState", "")
    result = props.get("Result", "")
    if "ExecMainExitTimestampMonotonic" in props:
        # An exit stamp older than the start belongs to the previous run.
        has_exited = exit_monotonic > 0 and exit_monotonic >= start_monotonic
    else:
        has_exited = props.get("ExecMainExitTimestamp", "").strip() not in ("", "n/a")
    if not has_exited and active_state in STILL_GOING_STATES:
        return ServiceRun(job, service, run_id, invocation_id, JobOutcome.RUNNING, started_at,
                          None, None, result)  # fmt: skip
    exit_code: int | None = None
    succeeded = result == "success"
    finished_at: datetime | None = None
    if has_exited:
        finished_at = _run_time(props, "ExecMainExitTimestamp", zone, reference)
        code = _int(props.get("ExecMainCode")) or CLD_EXITED
        status = _int(props.get("ExecMainStatus")) or 0
        exit_code = status if code == CLD_EXITED else SIGNAL_EXIT_BASE + status
        allowed = _success_statuses(props.get("SuccessExitStatus", ""))
        plain_success = code == CLD_EXITED and status == 0
        succeeded = succeeded and (plain_success or (min(code, CLD_KILLED), status) in allowed)
    outcome = JobOutcome.SUCCEEDED if succeeded else JobOutcome.FAILED
    return ServiceRun(job, service, run_id, invocation_id, outcome, started_at, finished_at,
                      exit_code, result)  # fmt: skip


def _timer_problem(entry: SystemdUnitJob, props: Mapping[str, str]) -> str | None:
    load_state = props.get("LoadState", "")
    if load_state and load_state != "loaded":
        return f"{entry.unit} is not loaded ({load_state})"
    if not entry.is_timer:
        return None
    triggers = props.get("Unit", "")
    if triggers and triggers != entry.service_name:
        return f"{entry.unit} starts {triggers}, not {entry.service_name}: set service: {triggers}"
    if props.get("ActiveState", "") not in ("active", ""):
        return f"{entry.unit} is {props['ActiveState']}: it will not start {entry.service_name}"
    return None


@dataclass(slots=True)
class UnitsReport:
    runs: list[ServiceRun] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def show_arguments(config: SystemdConfig) -> list[str]:
    """The units to show, in order: each configured timer, then its service."""
    names: list[str] = []
    for entry in config.units:
        for name in (entry.unit, entry.service_name):
            if name not in names:
                names.append(name)
    return names


def show_command(config: SystemdConfig, unix_timestamps: bool = True) -> list[str]:
    command = ["systemctl", "show", f"--property={','.join(SHOW_PROPERTIES)}"]
    if unix_timestamps:
        command.append("--timestamp=unix")
    return [*command, "--", *show_arguments(config)]


def parse_units(
    show_output: str,
    config: SystemdConfig,
    zone: tzinfo | None,
    reference: MonotonicReference | None = None,
) -> UnitsReport:
    """Each configured unit's last service run and the problems seen: the pure part."""
    blocks = parse_show(show_output)
    names = show_arguments(config)
    if len(blocks) == len(names):
        # systemctl prints units in the order asked; an alias shows its target's Id.
        by_name = dict(zip(names, blocks, strict=True))
    else:
        by_name = {block.get("Id", ""): block for block in blocks}
    report = UnitsReport()
    for entry in config.units:
        unit_props = by_name.get(entry.unit)
        service_props = by_name.get(entry.service_name)
        if unit_props is None or service_props is None:
            report.problems.append(f"systemctl show said nothing about {entry.unit}")
            continue
        problem = _timer_problem(entry, unit_props)
        if problem is None and entry.is_timer:
            problem = _timer_problem(SystemdUnitJob(unit=entry.service_name), service_props)
        if problem is not None:
            report.problems.append(problem)
        run = service_run(service_props, entry.job_name, entry.service_name, zone, reference)
        if run is not None:
            report.runs.append(run)
    return report


def journal_command(run: ServiceRun, lines: int) -> list[str]:
    if run.invocation_id:
        selector = [f"_SYSTEMD_INVOCATION_ID={run.invocation_id}"]
    else:
        # Before systemd 232: the unit's lines since the run started.
        since = f"--since=@{int(run.started_at.timestamp())}" if run.started_at else "--boot"
        selector = ["--unit", run.service, since]
    return ["journalctl", *selector, "-n", str(lines), "--no-pager", "-o", "short-iso"]


def tail_within(text: str, max_bytes: int = EXCERPT_MAX_BYTES) -> str:
    """The end of text in at most max_bytes of UTF-8: a journal's last lines say the most."""
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) <= max_bytes:
        return text
    marker = "[... earlier lines cut]\n"
    kept = encoded[-(max_bytes - len(marker)) :].decode("utf-8", errors="ignore")
    return marker + kept


def job_run_of(run: ServiceRun, probe: str, observed_at: datetime, excerpt: str = "") -> JobRun:
    return JobRun(
        probe=probe,
        job=run.job,
        run_id=run.run_id,
        outcome=run.outcome,
        observed_at=observed_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        exit_code=run.exit_code,
        excerpt=excerpt,
        source=f"systemd:{run.service}",
    )


def summary_result(
    config: SystemdConfig, report: UnitsReport, new_runs: int, observed_at: datetime
) -> Result:
    if report.problems:
        status, summary = Status.WARN, "; ".join(report.problems)
    else:
        status = Status.OK
        summary = f"{len(config.units)} systemd units watched, {new_runs} new job run events"
    return Result(
        probe=config.name,
        check=f"systemd:{config.name}",
        status=status,
        summary=one_line(summary),
        observed_at=observed_at,
        metrics={"units": float(len(config.units)), "new_runs": float(new_runs)},
    )


def not_running_result(config: SystemdConfig, detail: str, observed_at: datetime) -> Result:
    return Result(
        probe=config.name,
        check=f"systemd:{config.name}",
        status=Status.UNKNOWN,
        summary=NOT_RUNNING,
        observed_at=observed_at,
        detail=detail[:2000],
    )


def _looks_like_old_systemctl(stderr: str) -> bool:
    return "timestamp" in stderr and ("unrecognized" in stderr or "unknown" in stderr.lower())


# -- the local form ------------------------------------------------------------------------------


def local_zone() -> tzinfo | None:
    """The zone systemctl formats wall times in: TZ, else /etc/localtime."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return None
    try:
        with open("/etc/localtime", "rb") as zone_file:
            return ZoneInfo.from_file(zone_file)
    except (OSError, ValueError):
        return None


class _EmittedRuns:
    """Per service, the last run id and outcome handed to the agent: a restart emits nothing
    twice. Written atomically (temp file + rename)."""

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / STATE_FILE

    def load(self) -> dict[str, dict[str, str]]:
        try:
            data: Any = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, emitted: dict[str, dict[str, str]]) -> None:
        temp = self._path.with_suffix(".tmp")
        temp.write_text(json.dumps(emitted, sort_keys=True), encoding="utf-8")
        os.replace(temp, self._path)


def is_new(run: ServiceRun, emitted: Mapping[str, Mapping[str, str]]) -> bool:
    previous = emitted.get(run.service)
    if previous is None or previous.get("run_id") != run.run_id:
        return True
    # Same run: new only when it ended since it was emitted as running.
    return previous.get("outcome") == JobOutcome.RUNNING.value != run.outcome.value


class SystemdProbe:
    def __init__(self, config: SystemdConfig, ctx: ProbeContext) -> None:
        self.name = config.name
        self._config = config
        self._ctx = ctx
        self._emitted_store = _EmittedRuns(ctx.state_dir)
        self._emitted = self._emitted_store.load()
        self._zone = ZoneInfo(config.timezone) if config.timezone else local_zone()

    def _call(self, command: Sequence[str]) -> tuple[int, str, str]:
        import subprocess

        env = {**os.environ, "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "LC_ALL": "C"}
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                list(command), capture_output=True, text=True, errors="replace", env=env,
                timeout=self._config.command_timeout_s, check=False,
            )  # fmt: skip
        except FileNotFoundError:
            return 127, "", f"{command[0]}: command not found"
        except subprocess.TimeoutExpired:
            return 124, "", f"{command[0]} timed out after {self._config.command_timeout_s:g}s"
        return done.returncode, done.stdout, done.stderr

    def run(self) -> ProbeOutput:
        clock = self._ctx.clock
        # SystemClock.monotonic() is CLOCK_MONOTONIC, the clock of systemd's ...Monotonic values.
        reference = MonotonicReference(clock.now(), clock.monotonic())
        code, stdout, stderr = self._call(show_command(self._config))
        if code != 0 and _looks_like_old_systemctl(stderr):
            code, stdout, stderr = self._call(show_command(self._config, unix_timestamps=False))
        observed_at = clock.now()
        if code != 0:
            unknown = not_running_result(self._config, stderr.strip(), observed_at)
            return ProbeOutput(items=[unknown])
        report = parse_units(stdout, self._config, self._zone, reference)
        items: list[Item] = []
        emitted = {service: dict(state) for service, state in self._emitted.items()}
        for run in report.runs:
            if not is_new(run, self._emitted):
                continue
            excerpt = self._journal_tail(run) if run.outcome is JobOutcome.FAILED else ""
            items.append(job_run_of(run, self.name, observed_at, excerpt))
            emitted[run.service] = {"run_id": run.run_id, "outcome": run.outcome.value}
        items.insert(0, summary_result(self._config, report, len(items), observed_at))

        def commit() -> None:
            self._emitted_store.save(emitted)
            self._emitted = emitted

        return ProbeOutput(items=items, commit=commit)

    def _journal_tail(self, run: ServiceRun) -> str:
        if self._config.journal_lines == 0:
            return ""
        code, stdout, stderr = self._call(journal_command(run, self._config.journal_lines))
        if code != 0:
            return f"journal not readable: {one_line(stderr or stdout, 300)}"
        return tail_within(stdout.rstrip("\n"))


# -- the SSH form --------------------------------------------------------------------------------


class SystemdSshForm:
    """Both `systemctl show` forms (the unix-time one fails before systemd 248); no journal in
    this round, so a failed run's excerpt says which command shows it. No state: the poller
    dedupes by run id and outcome."""

    def __init__(self, config: SystemdConfig) -> None:
        self._config = config
        self._zone = ZoneInfo(config.timezone) if config.timezone else None

    def commands(self) -> Sequence[str]:
        return [
            shlex.join(show_command(self._config)),
            shlex.join(show_command(self._config, unix_timestamps=False)),
        ]

    def parse(self, outputs: Mapping[str, CommandOutput], observed_at: datetime) -> list[Item]:
        unix_form, wall_form = (outputs.get(command) for command in self.commands())
        chosen = next((o for o in (unix_form, wall_form) if o and o.exit_status == 0), None)
        if chosen is None:
            failed = unix_form or wall_form
            detail = failed.stderr.strip() if failed else "no output"
            return [not_running_result(self._config, detail, observed_at)]
        report = parse_units(chosen.stdout, self._config, self._zone)
        items: list[Item] = []
        for run in report.runs:
            excerpt = ""
            if run.outcome is JobOutcome.FAILED:
                excerpt = f"see: {shlex.join(journal_command(run, self._config.journal_lines))}"
            items.append(job_run_of(run, self._config.name, observed_at, excerpt))
        return [summary_result(self._config, report, len(items), observed_at), *items]
