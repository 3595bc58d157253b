"""The /proc files the system probe reads: loadavg, uptime, meminfo and stat.

Each file has its own pure parser (node_exporter's parseLoad shape: the text in, numbers or a
ValueError naming the bad value out). `parse_concatenated` reads the output of
`cat /proc/loadavg /proc/uptime /proc/meminfo /proc/stat` run over SSH, telling the files apart
by the shape of their lines, so the local run and the SSH form share every parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MEMINFO_LINE = re.compile(r"^(?P<key>[A-Za-z0-9_()]+):\s+(?P<value>\d+)(?:\s+kB)?\s*$")
_LOADAVG_LINE = re.compile(r"^\d+\.\d+ \d+\.\d+ \d+\.\d+ \d+/\d+ \d+\s*$")
_UPTIME_LINE = re.compile(r"^\d+(?:\.\d+)? \d+(?:\.\d+)?\s*$")


@dataclass(frozen=True, slots=True)
class LoadAverage:
    one: float
    five: float
    fifteen: float


@dataclass(frozen=True, slots=True)
class Memory:
    total_bytes: int
    available_bytes: int
    swap_total_bytes: int
    swap_free_bytes: int

    @property
    def used_percent(self) -> float:
        if self.total_bytes <= 0:
            return 0.0
        return 100.0 * (self.total_bytes - self.available_bytes) / self.total_bytes

    @property
    def swap_used_percent(self) -> float | None:
        """None when the host has no swap at all."""
        if self.swap_total_bytes <= 0:
            return None
        return 100.0 * (self.swap_total_bytes - self.swap_free_bytes) / self.swap_total_bytes


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """The aggregate `cpu` line of /proc/stat, in clock ticks since boot."""

    busy: int
    total: int
    cpu_count: int


def cpu_busy_percent(earlier: CpuTimes, later: CpuTimes) -> float | None:
    """Busy share between two samples; None when no time passed or the counters went back
    (a reboot between the samples)."""
    total = later.total - earlier.total
    busy = later.busy - earlier.busy
    if total <= 0 or busy < 0:
        return None
    return min(100.0, 100.0 * busy / total)


def parse_loadavg(text: str) -> LoadAverage:
    fields = text.split()
    if len(fields) < 3:
        raise ValueError(f"could not parse load {text.strip()!r}")
    try:
        return LoadAverage(float(fields[0]), float(fields[1]), float(fields[2]))
    except ValueError as exc:
        raise ValueError(f"could not parse load {text.strip()!r}") from exc


def parse_uptime_seconds(text: str) -> float:
    """/proc/uptime: seconds since boot, then idle seconds summed over CPUs."""
    fields = text.split()
    try:
        return float(fields[0])
    except (IndexError, ValueError) as exc:
        raise ValueError(f"could not parse uptime {text.strip()!r}") from exc


def parse_meminfo(text: str) -> Memory:
    values: dict[str, int] = {}
    for line in text.splitlines():
        match = _MEMINFO_LINE.match(line.strip())
        if match:
            values[match["key"]] = int(match["value"]) * 1024
    if "MemTotal" not in values:
        raise ValueError("meminfo has no MemTotal line")
    available = values.get("MemAvailable")
    if available is None:
        # Kernels before 3.14 have no MemAvailable: free + page cache is what free(1) showed.
        available = values.get("MemFree", 0) + values.get("Buffers", 0) + values.get("Cached", 0)
    return Memory(
        total_bytes=values["MemTotal"],
        available_bytes=min(available, values["MemTotal"]),
        swap_total_bytes=values.get("SwapTotal", 0),
        swap_free_bytes=values.get("SwapFree", 0),
    )


def parse_stat(text: str) -> CpuTimes:
    aggregate: list[int] | None = None
    cpu_count = 0
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "cpu":
            try:
                aggregate = [int(f) for f in fields[1:]]
            except ValueError as exc:
                raise ValueError(f"could not parse cpu line {line.strip()!r}") from exc
        elif fields[0].startswith("cpu") and fields[0][3:].isdigit():
            cpu_count += 1
    if aggregate is None or len(aggregate) < 4:
        raise ValueError("stat has no cpu line")
    # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already
    # inside user and nice, so it is left out of the total; idle and iowait are not busy.
    counted = aggregate[:8]
    idle = counted[3] + (counted[4] if len(counted) > 4 else 0)
    total = sum(counted)
    return CpuTimes(busy=total - idle, total=total, cpu_count=max(cpu_count, 1))


@dataclass(frozen=True, slots=True)
class ProcSnapshot:
    load: LoadAverage
    uptime_s: float
    memory: Memory
    cpu: CpuTimes


def parse_concatenated(text: str) -> ProcSnapshot:
    """`cat /proc/loadavg /proc/uptime /proc/meminfo /proc/stat` in one text."""
    loadavg = uptime = ""
    meminfo: list[str] = []
    stat: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not loadavg and _LOADAVG_LINE.match(stripped):
            loadavg = stripped
        elif not uptime and _UPTIME_LINE.match(stripped):
            uptime = stripped
        elif _MEMINFO_LINE.match(stripped):
            meminfo.append(stripped)
        else:
            stat.append(stripped)
    if not loadavg:
        raise ValueError("no /proc/loadavg line in the output")
    if not uptime:
        raise ValueError("no /proc/uptime line in the output")
    return ProcSnapshot(
        load=parse_loadavg(loadavg),
        uptime_s=parse_uptime_seconds(uptime),
        memory=parse_meminfo("\n".join(meminfo)),
        cpu=parse_stat("\n".join(stat)),
    )
