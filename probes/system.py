"""System probe: CPU, memory, swap, load average per core, uptime, and reboots.

Everything comes from four /proc files (loadavg, uptime, meminfo, stat) under a procfs root that
is a parameter (node_exporter's --path.procfs: an agent in a container reads the host's /proc
mounted elsewhere). The SSH form cats the same files, so both forms share the parsers in
probes/parsers/procfs.py and the judging in `system_results`; hosts without /proc can be read
with `uptime` and `free` instead.

Results: system:cpu, system:memory, system:swap, system:load, system:uptime, and system:reboot,
WARN on the one run that notices the host booted since the previous run, OK afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from probes.base import ProbeConfigBase, ProbeContext, ProbeOutput
from probes.parsers.free import parse_free
from probes.parsers.procfs import (
    CpuTimes,
    LoadAverage,
    Memory,
    cpu_busy_percent,
    parse_concatenated,
    parse_loadavg,
    parse_meminfo,
    parse_stat,
    parse_uptime_seconds,
)
from probes.parsers.uptime import parse_uptime_line
from probes.result import Item, Result, Status, one_line
from probes.sshform import CommandOutput

PROCFS_COMMAND = "cat /proc/loadavg /proc/uptime /proc/meminfo /proc/stat"
# The first CPU sample of the SSH form; the `sleep 1` between gives the CPU figure a window.
STAT_COMMAND = "cat /proc/stat"
SLEEP_COMMAND = "sleep 1"
UPTIME_COMMAND = "uptime"
FREE_COMMAND = "free"
NPROC_COMMAND = "nproc"
# Boot times computed as now - uptime wobble with clock adjustments and, from `uptime`, its
# minute resolution: a smaller move than this is the same boot.
SAME_BOOT_TOLERANCE_S = 120.0
BOOT_STATE_FILE = "boot.json"


def _thresholds(warn: float, crit: float, name: str) -> None:
    if crit < warn:
        raise ValueError(f"{name}_crit ({crit}) must be at least {name}_warn ({warn})")


class SystemConfig(ProbeConfigBase):
    type: Literal["system"]
    cpu_warn_percent: float = Field(default=90.0, ge=0.0, le=100.0)
    cpu_crit_percent: float = Field(default=98.0, ge=0.0, le=100.0)
    # Used = total - available (what free(1) calls available): page cache is not "used".
    memory_warn_percent: float = Field(default=90.0, ge=0.0, le=100.0)
    memory_crit_percent: float = Field(default=95.0, ge=0.0, le=100.0)
    swap_warn_percent: float = Field(default=50.0, ge=0.0, le=100.0)
    swap_crit_percent: float = Field(default=80.0, ge=0.0, le=100.0)
    # Load average divided by the number of CPUs; 1.0 means every core busy or waiting.
    load_per_core_warn: float = Field(default=2.0, ge=0.0)
    load_per_core_crit: float = Field(default=4.0, ge=0.0)
    # Which of the three averages is judged: 5 minutes rides out a short burst.
    load_window_min: Literal[1, 5, 15] = 5
    # A host up longer than this missed its kernel updates; None: uptime is reported only.
    uptime_warn_days: float | None = Field(default=None, gt=0.0)
    uptime_crit_days: float | None = Field(default=None, gt=0.0)
    # How the SSH form reads the host: its /proc files, or `uptime`, `free` and `nproc`.
    ssh_source: Literal["procfs", "uptime_free"] = "procfs"

    @model_validator(mode="after")
    def _crit_is_not_below_warn(self) -> SystemConfig:
        _thresholds(self.cpu_warn_percent, self.cpu_crit_percent, "cpu")
        _thresholds(self.memory_warn_percent, self.memory_crit_percent, "memory")
        _thresholds(self.swap_warn_percent, self.swap_crit_percent, "swap")
        _thresholds(self.load_per_core_warn, self.load_per_core_crit, "load_per_core")
        if self.uptime_warn_days is not None and self.uptime_crit_days is not None:
            _thresholds(self.uptime_warn_days, self.uptime_crit_days, "uptime_days")
        return self


@dataclass(frozen=True, slots=True)
class SystemSample:
    """What one look at the host gives; cpu_percent is None without two CPU samples."""

    load: LoadAverage
    cpu_count: int
    uptime_s: float
    memory: Memory
    cpu_percent: float | None


def _level(value: float | None, warn: float | None, crit: float | None) -> Status:
    if value is None:
        return Status.OK
    if crit is not None and value >= crit:
        return Status.CRIT
    if warn is not None and value >= warn:
        return Status.WARN
    return Status.OK


def _gib(count: int) -> str:
    return f"{count / 1024**3:.1f} GiB"


def _duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return f"{days} d {hours} h {minutes} min" if days else f"{hours} h {minutes} min"


def system_results(
    config: SystemConfig, sample: SystemSample, observed_at: datetime
) -> list[Result]:
    """The pure half: one sample in, the five results out (reboots are judged apart)."""

    def result(check: str, status: Status, summary: str, metrics: dict[str, float]) -> Result:
        return Result(
            probe=config.name,
            check=f"system:{check}",
            status=status,
            summary=one_line(summary),
            observed_at=observed_at,
            metrics=metrics,
        )

    results = []
    cpu = sample.cpu_percent
    if cpu is None:
        results.append(result("cpu", Status.OK, "CPU use not measured yet (needs two samples)", {}))
    else:
        status = _level(cpu, config.cpu_warn_percent, config.cpu_crit_percent)
        summary = f"CPU {cpu:.1f}% busy over {sample.cpu_count} cores"
        results.append(result("cpu", status, summary, {"cpu_percent": round(cpu, 2)}))

    memory = sample.memory
    used = memory.used_percent
    status = _level(used, config.memory_warn_percent, config.memory_crit_percent)
    summary = (
        f"memory {used:.1f}% used, {_gib(memory.available_bytes)} available "
        f"of {_gib(memory.total_bytes)}"
    )
    metrics = {
        "memory_used_percent": round(used, 2),
        "memory_available_bytes": float(memory.available_bytes),
        "memory_total_bytes": float(memory.total_bytes),
    }
    results.append(result("memory", status, summary, metrics))

    swap = memory.swap_used_percent
    if swap is None:
        results.append(result("swap", Status.OK, "no swap configured", {"swap_total_bytes": 0.0}))
    else:
        status = _level(swap, config.swap_warn_percent, config.swap_crit_percent)
        swap_used = memory.swap_total_bytes - memory.swap_free_bytes
        summary = f"swap {swap:.1f}% used ({_gib(swap_used)} of {_gib(memory.swap_total_bytes)})"
        metrics = {
            "swap_used_percent": round(swap, 2),
            "swap_total_bytes": float(memory.swap_total_bytes),
        }
        results.append(result("swap", status, summary, metrics))

    load = sample.load
    cores = max(sample.cpu_count, 1)
    judged = {1: load.one, 5: load.five, 15: load.fifteen}[config.load_window_min] / cores
    status = _level(judged, config.load_per_core_warn, config.load_per_core_crit)
    summary = (
        f"load {load.one:.2f} {load.five:.2f} {load.fifteen:.2f} on {cores} cores, "
        f"{judged:.2f} per core over {config.load_window_min} min"
    )
    metrics = {
        "load1": load.one,
        "load5": load.five,
        "load15": load.fifteen,
        "load_per_core": round(judged, 3),
        "cpu_count": float(cores),
    }
    results.append(result("load", status, summary, metrics))

    days = sample.uptime_s / 86400
    status = _level(days, config.uptime_warn_days, config.uptime_crit_days)
    booted = (observed_at - timedelta(seconds=sample.uptime_s)).isoformat(timespec="minutes")
    summary = f"up {_duration(sample.uptime_s)} (booted {booted})"
    if status is not Status.OK:
        summary += ": reboot to apply kernel updates"
    results.append(result("uptime", status, summary, {"uptime_s": round(sample.uptime_s, 1)}))
    return results


# --- reboots -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BootRecord:
    """What the previous run saw: when it looked and how long the host had been up."""

    observed_at: datetime
    uptime_s: float

    @property
    def booted_at(self) -> datetime:
        return self.observed_at - timedelta(seconds=self.uptime_s)


def rebooted(previous: BootRecord, current: BootRecord) -> bool:
    """Uptime went down, or the boot moved: `uptime < before` misses a reboot when the host has
    since been up longer than it was at the previous run; the moved boot time catches that."""
    if current.uptime_s + 1.0 < previous.uptime_s:
        return True
    moved = abs((current.booted_at - previous.booted_at).total_seconds())
    return moved > SAME_BOOT_TOLERANCE_S


def reboot_result(config: SystemConfig, previous: BootRecord | None, current: BootRecord) -> Result:
    booted = current.booted_at.isoformat(timespec="minutes")
    if previous is not None and rebooted(previous, current):
        status = Status.WARN
        summary = f"host rebooted at about {booted} (up {_duration(current.uptime_s)})"
    elif previous is None:
        status = Status.OK
        summary = f"first run here: host booted at about {booted}"
    else:
        status = Status.OK
        summary = f"no reboot since the previous run (booted {booted})"
    return Result(
        probe=config.name,
        check="system:reboot",
        status=status,
        summary=one_line(summary),
        observed_at=current.observed_at,
        metrics={"rebooted": 1.0 if status is Status.WARN else 0.0},
    )


def load_boot_record(path: Path) -> BootRecord | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return BootRecord(
            observed_at=datetime.fromisoformat(data["observed_at"]),
            uptime_s=float(data["uptime_s"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        # No record (first run) or a damaged one: this run starts a fresh record.
        return None


def save_boot_record(path: Path, record: BootRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    text = json.dumps({"observed_at": record.observed_at.isoformat(), "uptime_s": record.uptime_s})
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


# --- local run ---------------------------------------------------------------------------------


def _unknown(config: SystemConfig, reason: str, observed_at: datetime) -> Result:
    return Result(
        probe=config.name,
        check="system:uptime",
        status=Status.UNKNOWN,
        summary=one_line(reason),
        observed_at=observed_at,
    )


class SystemProbe:
    def __init__(
        self,
        config: SystemConfig,
        ctx: ProbeContext,
        procfs: Path = Path("/proc"),
        first_cpu_sample_wait_s: float = 1.0,
    ) -> None:
        self.name = config.name
        self._config = config
        self._ctx = ctx
        self._procfs = procfs
        # The first run has no previous CPU sample; it takes two this far apart. Later runs
        # measure CPU over the whole interval since the previous run.
        self._first_cpu_sample_wait_s = first_cpu_sample_wait_s
        self._previous_cpu: CpuTimes | None = None

    def _read(self, name: str) -> str:
        return (self._procfs / name).read_text(encoding="utf-8", errors="replace")

    def run(self) -> ProbeOutput:
        import time

        config = self._config
        try:
            if self._previous_cpu is None:
                self._previous_cpu = parse_stat(self._read("stat"))
                if self._first_cpu_sample_wait_s > 0:
                    time.sleep(self._first_cpu_sample_wait_s)
            cpu = parse_stat(self._read("stat"))
            load = parse_loadavg(self._read("loadavg"))
            uptime_s = parse_uptime_seconds(self._read("uptime"))
            memory = parse_meminfo(self._read("meminfo"))
        except (OSError, ValueError) as exc:
            observed_at = self._ctx.clock.now()
            reason = f"cannot read {self._procfs}: {exc}"
            return ProbeOutput(items=[_unknown(config, reason, observed_at)])
        observed_at = self._ctx.clock.now()
        sample = SystemSample(
            load=load,
            cpu_count=cpu.cpu_count,
            uptime_s=uptime_s,
            memory=memory,
            cpu_percent=cpu_busy_percent(self._previous_cpu, cpu),
        )
        self._previous_cpu = cpu
        results = system_results(config, sample, observed_at)
        state_file = self._ctx.state_dir / BOOT_STATE_FILE
        current = BootRecord(observed_at=observed_at, uptime_s=uptime_s)
        results.append(reboot_result(config, load_boot_record(state_file), current))

        def commit() -> None:
            # Saved only once the results are spooled: a crash before re-reports the reboot
            # rather than losing it.
            save_boot_record(state_file, current)

        return ProbeOutput(items=results, commit=commit)


# --- SSH form ----------------------------------------------------------------------------------


def _output_text(outputs: Mapping[str, CommandOutput], command: str) -> str:
    output = outputs.get(command)
    if output is None:
        raise ValueError(f"no output of `{command}`")
    if output.exit_status != 0:
        said = (output.stderr or output.stdout).strip().splitlines()
        raise ValueError(f"`{command}` failed: {said[0] if said else output.exit_status}")
    return output.stdout


class SystemSshForm:
    """Reads /proc (two stat samples a second apart) or `uptime`, `free` and `nproc`.

    It judges CPU, memory, swap, load and uptime as the local run does; reboots need a record
    between runs, which the stateless form does not keep: the uptime metric shows them.
    """

    def __init__(self, config: SystemConfig) -> None:
        self._config = config

    def commands(self) -> Sequence[str]:
        if self._config.ssh_source == "uptime_free":
            return (UPTIME_COMMAND, FREE_COMMAND, NPROC_COMMAND)
        return (STAT_COMMAND, SLEEP_COMMAND, PROCFS_COMMAND)

    def sample(self, outputs: Mapping[str, CommandOutput]) -> SystemSample:
        """The sample the outputs describe; ValueError naming what is missing or broken."""
        if self._config.ssh_source == "uptime_free":
            line = parse_uptime_line(_output_text(outputs, UPTIME_COMMAND))
            memory = parse_free(_output_text(outputs, FREE_COMMAND))
            nproc = _output_text(outputs, NPROC_COMMAND).strip()
            if not nproc.isdigit():
                raise ValueError(f"nproc printed {nproc[:40]!r}")
            return SystemSample(line.load, int(nproc), line.uptime_s, memory, cpu_percent=None)
        snapshot = parse_concatenated(_output_text(outputs, PROCFS_COMMAND))
        try:
            first = parse_stat(_output_text(outputs, STAT_COMMAND))
            cpu_percent = cpu_busy_percent(first, snapshot.cpu)
        except ValueError:
            cpu_percent = None  # the other figures still stand
        return SystemSample(
            load=snapshot.load,
            cpu_count=snapshot.cpu.cpu_count,
            uptime_s=snapshot.uptime_s,
            memory=snapshot.memory,
            cpu_percent=cpu_percent,
        )

    def parse(self, outputs: Mapping[str, CommandOutput], observed_at: datetime) -> list[Item]:
        try:
            sample = self.sample(outputs)
        except ValueError as exc:
            return [_unknown(self._config, str(exc), observed_at)]
        return list(system_results(self._config, sample, observed_at))
