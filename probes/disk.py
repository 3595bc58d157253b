"""Disk probe: used space and inodes per mount point or path.

Gathering (`os.statvfs`, `/proc/self/mounts`) is kept apart from the pure `usage_result()` that
turns numbers into a Result, so the SSH form (df output parsed on the collector) will share the
thresholds, the summary and the metrics with the local run.

    paths: ["/", "/data"]   one result per path, check key disk:/ and disk:/data
    paths: ["*"]            every real mount, minus the pseudo filesystems in ignore_fs_types
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from probes.base import ProbeConfigBase, ProbeContext, ProbeOutput
from probes.result import Result, Status, one_line

DISCOVER_ALL = "*"

# Filesystems that are not storage an operator fills up: kernel interfaces, memory-backed
# scratch space, read-only images (snap's squashfs is always 100 % used) and container layers.
DEFAULT_IGNORED_FS_TYPES = (
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fuse.gvfsd-fuse", "fuse.lxcfs", "fusectl", "hugetlbfs", "mqueue",
    "nsfs", "overlay", "proc", "pstore", "ramfs", "rpc_pipefs", "securityfs", "selinuxfs",
    "squashfs", "sysfs", "tmpfs", "tracefs",
)  # fmt: skip


class DiskConfig(ProbeConfigBase):
    type: Literal["disk"]
    # Mount points or any path on the filesystem to watch; "*" discovers every real mount.
    paths: list[str] = Field(default_factory=lambda: ["/"], min_length=1)
    # Used-space percentages (df's Use%) at which the result turns WARN and CRIT.
    warn_percent: float = Field(default=80.0, ge=0.0, le=100.0)
    crit_percent: float = Field(default=90.0, ge=0.0, le=100.0)
    # The same for inodes: a mail spool or a cache of small files runs out of inodes first.
    inodes_warn_percent: float = Field(default=80.0, ge=0.0, le=100.0)
    inodes_crit_percent: float = Field(default=90.0, ge=0.0, le=100.0)
    # Only applies to discovered mounts ("*"): a path named explicitly is always checked.
    ignore_fs_types: list[str] = Field(default_factory=lambda: list(DEFAULT_IGNORED_FS_TYPES))

    @model_validator(mode="after")
    def _crit_is_not_below_warn(self) -> DiskConfig:
        if self.crit_percent < self.warn_percent:
            raise ValueError(
                f"crit_percent ({self.crit_percent}) must be at least warn_percent "
                f"({self.warn_percent})"
            )
        if self.inodes_crit_percent < self.inodes_warn_percent:
            raise ValueError(
                f"inodes_crit_percent ({self.inodes_crit_percent}) must be at least "
                f"inodes_warn_percent ({self.inodes_warn_percent})"
            )
        return self


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """What df shows for one filesystem, in bytes and inodes."""

    total_bytes: int
    used_bytes: int
    # Available to unprivileged users: excludes the blocks reserved for root (5 % on ext4).
    free_bytes: int
    inodes_total: int
    inodes_used: int

    @property
    def used_percent(self) -> float:
        # df's Use%: used / (used + available). The root reserve counts as neither, so a disk
        # shows 100 % when ordinary users cannot write any more, as operators expect.
        usable = self.used_bytes + self.free_bytes
        return 100.0 * self.used_bytes / usable if usable > 0 else 0.0

    @property
    def inodes_used_percent(self) -> float | None:
        # btrfs, vfat and many network filesystems report no inode counts at all.
        if self.inodes_total <= 0:
            return None
        return 100.0 * self.inodes_used / self.inodes_total


@dataclass(frozen=True, slots=True)
class Mount:
    device: str
    mountpoint: str
    fs_type: str


def statvfs_usage(path: str) -> DiskUsage:
    """Usage of the filesystem holding path; raises OSError (FileNotFoundError, ...)."""
    st = os.statvfs(path)
    return DiskUsage(
        total_bytes=st.f_blocks * st.f_frsize,
        used_bytes=(st.f_blocks - st.f_bfree) * st.f_frsize,
        free_bytes=st.f_bavail * st.f_frsize,
        inodes_total=st.f_files,
        inodes_used=st.f_files - st.f_ffree,
    )


def _unescape_mount_field(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in mount paths as \040 \011 \012 \134.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mounts(text: str) -> list[Mount]:
    """Parse /proc/self/mounts (fstab format). When a mount point is mounted over, the last
    line wins, as it is the filesystem one sees at that path."""
    by_mountpoint: dict[str, Mount] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = Mount(
            device=_unescape_mount_field(fields[0]),
            mountpoint=_unescape_mount_field(fields[1]),
            fs_type=fields[2],
        )
        by_mountpoint.pop(mount.mountpoint, None)
        by_mountpoint[mount.mountpoint] = mount
    return list(by_mountpoint.values())


def real_mounts(mounts: Sequence[Mount], ignore_fs_types: Sequence[str]) -> list[Mount]:
    ignored = set(ignore_fs_types)
    return [m for m in mounts if m.fs_type not in ignored]


def _status_for(percent: float | None, warn: float, crit: float) -> Status:
    if percent is None:
        return Status.OK
    if percent >= crit:
        return Status.CRIT
    if percent >= warn:
        return Status.WARN
    return Status.OK


def format_bytes(count: float) -> str:
    """1536 -> '1.5 KiB'; binary units, as df -h prints."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _format_used_of_total(used: int, total: int) -> str:
    """'41.2 of 50.0 GiB': both figures in the unit that suits the total."""
    unit_index, scale = 0, 1.0
    while total / scale >= 1024 and unit_index < 4:
        scale *= 1024
        unit_index += 1
    unit = ("B", "KiB", "MiB", "GiB", "TiB")[unit_index]
    if unit == "B":
        return f"{used} of {total} B"
    return f"{used / scale:.1f} of {total / scale:.1f} {unit}"


def check_key(path: str) -> str:
    return f"disk:{path}"


def usage_result(
    config: DiskConfig, path: str, usage: DiskUsage, observed_at: datetime
) -> Result:
    """The pure half: numbers for one path in, a Result with status, metrics and summary out."""
    used_percent = usage.used_percent
    inodes_percent = usage.inodes_used_percent
    space_status = _status_for(used_percent, config.warn_percent, config.crit_percent)
    inodes_status = _status_for(
        inodes_percent, config.inodes_warn_percent, config.inodes_crit_percent
    )
    summary = (
        f"{path} {used_percent:.1f}% used "
        f"({_format_used_of_total(usage.used_bytes, usage.total_bytes)}), "
        f"{format_bytes(usage.free_bytes)} free"
    )
    if inodes_status is not Status.OK and inodes_percent is not None:
        summary += f"; inodes {inodes_percent:.1f}% used"
    metrics: dict[str, float] = {
        "used_percent": round(used_percent, 2),
        "used_bytes": float(usage.used_bytes),
        "free_bytes": float(usage.free_bytes),
        "total_bytes": float(usage.total_bytes),
    }
    if inodes_percent is not None:
        metrics["inodes_used_percent"] = round(inodes_percent, 2)
    return Result(
        probe=config.name,
        check=check_key(path),
        status=max(space_status, inodes_status),
        summary=one_line(summary),
        observed_at=observed_at,
        metrics=metrics,
    )


def unreadable_result(
    config: DiskConfig, path: str, error: OSError, observed_at: datetime
) -> Result:
    """UNKNOWN for a path we cannot measure: the operator must hear of it, not a crash."""
    if isinstance(error, FileNotFoundError):
        summary = f"{path} does not exist"
    else:
        summary = f"{path} cannot be measured: {error.strerror or error}"
    return Result(
        probe=config.name,
        check=check_key(path),
        status=Status.UNKNOWN,
        summary=one_line(summary),
        observed_at=observed_at,
    )


class DiskProbe:
    def __init__(
        self, config: DiskConfig, ctx: ProbeContext, mounts_file: Path = Path("/proc/self/mounts")
    ) -> None:
        self.name = config.name
        self._config = config
        self._ctx = ctx
        # A parameter so tests (and containers with an odd /proc) can point it elsewhere.
        self._mounts_file = mounts_file

    def _paths(self) -> tuple[list[str], list[str]]:
        """The paths to measure, and notes about discovery problems."""
        paths: list[str] = []
        notes: list[str] = []
        for configured in self._config.paths:
            if configured == DISCOVER_ALL:
                try:
                    text = self._mounts_file.read_text(encoding="utf-8", errors="replace")
                except OSError as exc:
                    notes.append(f"cannot list mounts from {self._mounts_file}: {exc.strerror}")
                    continue
                mounts = real_mounts(parse_mounts(text), self._config.ignore_fs_types)
                paths.extend(m.mountpoint for m in mounts)
            else:
                paths.append(configured)
        # A path named twice (or named and discovered) is one check, not two.
        return list(dict.fromkeys(paths)), notes

    def run(self) -> ProbeOutput:
        observed_at = self._ctx.clock.now()
        paths, notes = self._paths()
        results: list[Result] = []
        for path in paths:
            try:
                usage = statvfs_usage(path)
            except OSError as exc:
                results.append(unreadable_result(self._config, path, exc, observed_at))
                continue
            results.append(usage_result(self._config, path, usage, observed_at))
        return ProbeOutput(items=results, notes=notes)
