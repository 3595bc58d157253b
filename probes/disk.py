"""Disk probe: used space and inodes per mount point or path, growth rate and time until full.

Gathering (`os.statvfs` and `/proc/self/mounts` locally, `df` over SSH) is kept apart from the
pure `usage_result()` that turns numbers into a Result, so both forms share the thresholds, the
summary and the metrics.

    paths: ["/", "/data"]   one result per path, check key disk:/ and disk:/data
    paths: ["*"]            every real mount, minus the pseudo filesystems in ignore_fs_types
                            and, unless ignore_read_only is off, the read-only mounts

The growth rate needs history: the local run keeps a bounded series of (time, used bytes) per
path in the probe's state folder, so it survives agent restarts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import structlog
from pydantic import Field, model_validator

from probes.base import ProbeConfigBase, ProbeContext, ProbeOutput
from probes.result import Item, Result, Status, one_line

if TYPE_CHECKING:
    from probes.parsers.df import DfRow, DfTable
    from probes.sshform import CommandOutput

log = structlog.get_logger(__name__)

DISCOVER_ALL = "*"

# Filesystems that are not storage an operator fills up: kernel interfaces, memory-backed
# scratch space, read-only images (snap's squashfs is always 100 % used) and container layers.
DEFAULT_IGNORED_FS_TYPES = (
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fuse.gvfsd-fuse", "fuse.lxcfs", "fusectl", "hugetlbfs", "mqueue",
    "nsfs", "overlay", "proc", "pstore", "ramfs", "rpc_pipefs", "securityfs", "selinuxfs",
    "squashfs", "sysfs", "tmpfs", "tracefs",
)  # fmt: skip

# The growth rate is a least-squares slope over the samples in the window. A rate from a few
# minutes of data extrapolated to days is noise, so it needs samples over a quarter of the
# window at least (90 min of a 6 h window), and three of them (two points are a line whatever
# happened between them).
MIN_GROWTH_SAMPLES = 3
MIN_GROWTH_SPAN_FRACTION = 0.25
# Stored samples per path: one every window/120 (3 min for 6 h) however often the probe runs,
# so the history file stays small (about 3 KB a path) and is rewritten every few minutes, not
# every 30 s. The rate still uses the current measurement, stored or not.
MAX_SAMPLES_PER_PATH = 120
# Discovery on a container host can find hundreds of mounts; history beyond this many paths is
# not kept (those paths get no growth figures) rather than letting the file grow without bound.
MAX_HISTORY_PATHS = 256
HISTORY_VERSION = 1
HISTORY_FILE_SUFFIX = "disk-history.json"


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
    # Discovered mounts with the `ro` option cannot fill up (ISO images, snapshots, a snap).
    ignore_read_only: bool = True
    # The growth rate is measured over this much history (a day at most: the history is kept
    # in MAX_SAMPLES_PER_PATH samples, so a longer window would only thin them out).
    growth_window_hours: float = Field(default=6.0, ge=0.25, le=24.0)
    # WARN / CRIT when the disk will be full within this many hours at the current growth rate.
    full_within_warn_hours: float | None = Field(default=None, gt=0.0)
    full_within_crit_hours: float | None = Field(default=None, gt=0.0)

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
        if (
            self.full_within_warn_hours is not None
            and self.full_within_crit_hours is not None
            and self.full_within_crit_hours > self.full_within_warn_hours
        ):
            # Fewer hours left is worse: the CRIT horizon is the nearer one.
            raise ValueError(
                f"full_within_crit_hours ({self.full_within_crit_hours}) must be at most "
                f"full_within_warn_hours ({self.full_within_warn_hours})"
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
class UsageSample:
    """Used bytes of one path at one moment: a point of the growth series."""

    at: datetime
    used_bytes: int


@dataclass(frozen=True, slots=True)
class Mount:
    device: str
    mountpoint: str
    fs_type: str
    read_only: bool = False


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
        options = fields[3].split(",") if len(fields) > 3 else []
        mount = Mount(
            device=_unescape_mount_field(fields[0]),
            mountpoint=_unescape_mount_field(fields[1]),
            fs_type=fields[2],
            read_only="ro" in options,
        )
        by_mountpoint.pop(mount.mountpoint, None)
        by_mountpoint[mount.mountpoint] = mount
    return list(by_mountpoint.values())


def real_mounts(
    mounts: Sequence[Mount], ignore_fs_types: Sequence[str], *, ignore_read_only: bool
) -> list[Mount]:
    """The discovered mounts worth watching: not a pseudo filesystem, and writable unless
    read-only mounts are wanted too."""
    ignored = set(ignore_fs_types)
    return [
        m for m in mounts if m.fs_type not in ignored and not (ignore_read_only and m.read_only)
    ]


def one_mount_per_filesystem(mounts: Sequence[Mount]) -> list[Mount]:
    """Drop the bind mounts of a filesystem already listed (a container's /etc/hosts, a chroot's
    /proc), keeping its shortest mount point, as GNU df does: one filesystem, one check. A mount
    point that cannot be stat'ed is kept, so its check reports why."""
    devices: list[int | None] = []
    shortest: dict[int, Mount] = {}
    for mount in mounts:
        try:
            device = os.stat(mount.mountpoint).st_dev
        except OSError:
            devices.append(None)
            continue
        devices.append(device)
        best = shortest.get(device)
        if best is None or len(mount.mountpoint) < len(best.mountpoint):
            shortest[device] = mount
    return [
        mount
        for mount, device in zip(mounts, devices, strict=True)
        if device is None or shortest[device] is mount
    ]


def _status_for(percent: float | None, warn: float, crit: float) -> Status:
    if percent is None:
        return Status.OK
    if percent >= crit:
        return Status.CRIT
    if percent >= warn:
        return Status.WARN
    return Status.OK


def _forecast_status(hours_until_full: float | None, config: DiskConfig) -> Status:
    if hours_until_full is None:
        return Status.OK
    crit, warn = config.full_within_crit_hours, config.full_within_warn_hours
    if crit is not None and hours_until_full <= crit:
        return Status.CRIT
    if warn is not None and hours_until_full <= warn:
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


def format_hours(hours: float) -> str:
    """5.25 -> '5.2 h'; beyond two days in days, as a desk plans in days by then."""
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


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


def growth_bytes_per_hour(samples: Sequence[UsageSample], window: timedelta) -> float | None:
    """The least-squares slope of used bytes over time, in bytes per hour; None when the
    samples are too few or span too little of the window to say.

    Least squares rather than (last - first) / time: every sample weighs in, so a sample taken
    while a 5 GB temporary file existed moves the rate by its share instead of deciding it.
    Samples are expected in time order, all within the window.
    """
    if len(samples) < MIN_GROWTH_SAMPLES:
        return None
    span = samples[-1].at - samples[0].at
    if span < window * MIN_GROWTH_SPAN_FRACTION:
        return None
    origin = samples[0].at
    hours = [(s.at - origin).total_seconds() / 3600.0 for s in samples]
    used = [float(s.used_bytes) for s in samples]
    mean_hours = sum(hours) / len(hours)
    mean_used = sum(used) / len(used)
    spread = sum((h - mean_hours) ** 2 for h in hours)
    if spread <= 0.0:
        return None
    covariance = sum((h - mean_hours) * (u - mean_used) for h, u in zip(hours, used, strict=True))
    return covariance / spread


def usage_result(
    config: DiskConfig,
    path: str,
    usage: DiskUsage,
    observed_at: datetime,
    history: Sequence[UsageSample] = (),
) -> Result:
    """The pure half: numbers for one path in, a Result with status, metrics and summary out.

    `history` holds the earlier samples of this path (any order, any age): those within the
    growth window, plus this measurement, give `growth_bytes_per_hour`, and when the disk is
    growing, `hours_until_full` at that rate.
    """
    used_percent = usage.used_percent
    inodes_percent = usage.inodes_used_percent
    space_status = _status_for(used_percent, config.warn_percent, config.crit_percent)
    inodes_status = _status_for(
        inodes_percent, config.inodes_warn_percent, config.inodes_crit_percent
    )
    window = timedelta(hours=config.growth_window_hours)
    # Samples at or after this measurement are left out: a clock stepped back would otherwise
    # make the rate run backwards.
    in_window = sorted(
        (s for s in history if observed_at - window <= s.at < observed_at), key=lambda s: s.at
    )
    growth = growth_bytes_per_hour([*in_window, UsageSample(observed_at, usage.used_bytes)], window)
    hours_until_full = usage.free_bytes / growth if growth is not None and growth > 0 else None
    forecast_status = _forecast_status(hours_until_full, config)

    summary = (
        f"{path} {used_percent:.1f}% used "
        f"({_format_used_of_total(usage.used_bytes, usage.total_bytes)}), "
        f"{format_bytes(usage.free_bytes)} free"
    )
    if inodes_status is not Status.OK and inodes_percent is not None:
        summary += f"; inodes {inodes_percent:.1f}% used"
    if forecast_status is not Status.OK and hours_until_full is not None and growth is not None:
        summary += f"; full in about {format_hours(hours_until_full)} at {format_bytes(growth)}/h"
    metrics: dict[str, float] = {
        "used_percent": round(used_percent, 2),
        "used_bytes": float(usage.used_bytes),
        "free_bytes": float(usage.free_bytes),
        "total_bytes": float(usage.total_bytes),
    }
    if inodes_percent is not None:
        metrics["inodes_used_percent"] = round(inodes_percent, 2)
    if growth is not None:
        metrics["growth_bytes_per_hour"] = round(growth, 1)
    if hours_until_full is not None:
        metrics["hours_until_full"] = round(hours_until_full, 2)
    return Result(
        probe=config.name,
        check=check_key(path),
        status=max(space_status, inodes_status, forecast_status),
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
    return unknown_result(config, path, summary, observed_at)


def unknown_result(config: DiskConfig, path: str, summary: str, observed_at: datetime) -> Result:
    return Result(
        probe=config.name,
        check=check_key(path),
        status=Status.UNKNOWN,
        summary=one_line(summary),
        observed_at=observed_at,
    )


def _samples_from_document(document: object) -> dict[str, list[UsageSample]]:
    """The samples of a history file; raises KeyError, TypeError, ValueError... when damaged."""
    if not isinstance(document, dict) or document.get("version") != HISTORY_VERSION:
        raise ValueError("not a disk usage history of version 1")
    return {
        str(path): [
            UsageSample(datetime.fromtimestamp(float(at), UTC), int(used)) for at, used in series
        ][-MAX_SAMPLES_PER_PATH:]
        for path, series in list(document["paths"].items())[:MAX_HISTORY_PATHS]
    }


class UsageHistory:
    """Used-bytes samples per path over the growth window, kept in one JSON file.

    Bounded: samples older than the window are dropped, at most MAX_SAMPLES_PER_PATH are kept
    per path (spaced window/MAX_SAMPLES_PER_PATH apart), only for the paths still measured and
    at most MAX_HISTORY_PATHS of them. Written atomically (temp file, fsync, rename), so a crash
    leaves the old history or the new one. The folder is not fsynced: losing the last few
    minutes of samples to a power cut costs nothing but a slightly shorter series.
    """

    def __init__(self, file: Path, window: timedelta) -> None:
        self.file = file
        self._window = window
        self._spacing = window / MAX_SAMPLES_PER_PATH
        self._samples: dict[str, list[UsageSample]] = {}
        self._changed = False

    def load(self) -> str | None:
        """Read the file; a note when it was damaged (the history then starts again)."""
        try:
            document = json.loads(self.file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("disk.history_unreadable", path=str(self.file), error=str(exc))
            return f"usage history {self.file} unreadable, starting again: {exc}"
        try:
            self._samples = _samples_from_document(document)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            log.warning("disk.history_unreadable", path=str(self.file), error=repr(exc))
            self._samples = {}
            return f"usage history {self.file} unreadable, starting again: {exc!r}"
        return None

    def samples(self, path: str) -> Sequence[UsageSample]:
        return tuple(self._samples.get(path, ()))

    def record(self, path: str, sample: UsageSample) -> None:
        if path not in self._samples and len(self._samples) >= MAX_HISTORY_PATHS:
            return
        earlier = self._samples.get(path, [])
        # Drop what left the window, and what lies ahead of now (the clock was stepped back).
        kept = [s for s in earlier if sample.at - self._window <= s.at < sample.at]
        if not kept or sample.at - kept[-1].at >= self._spacing:
            kept.append(sample)
        kept = kept[-MAX_SAMPLES_PER_PATH:]
        if kept != earlier:
            self._samples[path] = kept
            self._changed = True

    def retain(self, paths: Iterable[str]) -> None:
        """Forget the paths no longer measured (an unmounted disk, a removed path)."""
        wanted = set(paths)
        for path in [p for p in self._samples if p not in wanted]:
            del self._samples[path]
            self._changed = True

    def save_if_changed(self) -> None:
        """Raises OSError when the file cannot be written (a full disk, most likely)."""
        if not self._changed:
            return
        document = {
            "version": HISTORY_VERSION,
            "paths": {
                path: [[round(s.at.timestamp(), 3), s.used_bytes] for s in series]
                for path, series in self._samples.items()
            },
        }
        self.file.parent.mkdir(parents=True, exist_ok=True)
        # run() never runs twice at once for one probe, so a fixed temp name cannot collide.
        temporary = self.file.with_name(self.file.name + ".tmp")
        try:
            with temporary.open("w", encoding="utf-8") as out:
                json.dump(document, out, separators=(",", ":"))
                out.flush()
                os.fsync(out.fileno())
            temporary.replace(self.file)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        self._changed = False


class DiskProbe:
    def __init__(
        self, config: DiskConfig, ctx: ProbeContext, mounts_file: Path = Path("/proc/self/mounts")
    ) -> None:
        self.name = config.name
        self._config = config
        self._ctx = ctx
        # A parameter so tests (and containers with an odd /proc) can point it elsewhere.
        self._mounts_file = mounts_file
        self._history = UsageHistory(
            ctx.state_dir / f"{config.name}.{HISTORY_FILE_SUFFIX}",
            timedelta(hours=config.growth_window_hours),
        )
        self._history_loaded = False

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
                mounts = real_mounts(
                    parse_mounts(text),
                    self._config.ignore_fs_types,
                    ignore_read_only=self._config.ignore_read_only,
                )
                paths.extend(m.mountpoint for m in one_mount_per_filesystem(mounts))
            else:
                paths.append(configured)
        # A path named twice (or named and discovered) is one check, not two.
        return list(dict.fromkeys(paths)), notes

    def run(self) -> ProbeOutput:
        observed_at = self._ctx.clock.now()
        paths, notes = self._paths()
        if not self._history_loaded:
            self._history_loaded = True
            note = self._history.load()
            if note is not None:
                notes.append(note)
        results: list[Result] = []
        for path in paths:
            try:
                usage = statvfs_usage(path)
            except OSError as exc:
                results.append(unreadable_result(self._config, path, exc, observed_at))
                continue
            history = self._history.samples(path)
            results.append(usage_result(self._config, path, usage, observed_at, history))
            self._history.record(path, UsageSample(observed_at, usage.used_bytes))
        # A path that failed this time keeps its history: it may be back next run.
        self._history.retain(paths)
        try:
            self._history.save_if_changed()
        except OSError as exc:
            notes.append(f"cannot save usage history {self._history.file}: {exc.strerror or exc}")
        return ProbeOutput(items=results, notes=notes)


# The SSH form: GNU coreutils df (Debian, RHEL, SUSE, Alpine's coreutils package). BSD and macOS
# df differ (-T filters by type there, -P prints 512-byte blocks without -k), so the parser reads
# the columns from the header rather than trusting the flags. `env` sets the locale without a
# shell: each line is a plain argv. LC_ALL=C keeps the header English and the numbers free of
# thousands separators. -P keeps a long device name on its row; -k fixes the unit at 1024 bytes
# whatever POSIXLY_CORRECT or DF_BLOCK_SIZE say; -T adds the type that discovery filters on.
DF_SPACE_COMMAND = "env LC_ALL=C df -P -k -T"
DF_INODES_COMMAND = "env LC_ALL=C df -P -i -T"
# df shows no mount options: the read-only flag, as the local run sees it, comes from here.
MOUNTS_COMMAND = "cat /proc/self/mounts"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _failure(output: CommandOutput | None, command: str) -> str:
    if output is None:
        return f"{command!r} was not run"
    reason = _first_line(output.stderr) or _first_line(output.stdout) or "no output"
    return f"{command!r} exited {output.exit_status}: {reason}"


def _holding_row(path: str, rows: Mapping[str, DfRow]) -> DfRow | None:
    """The row of the filesystem that holds path: its longest mount point prefix, as statvfs
    would find by walking up (symlinks aside, which df output cannot show)."""
    best: DfRow | None = None
    for mountpoint, row in rows.items():
        prefix = mountpoint.rstrip("/") + "/"
        if (path == mountpoint or path.startswith(prefix)) and (
            best is None or len(mountpoint) > len(best.mountpoint)
        ):
            best = row
    return best


def _rejected_summary(table: DfTable) -> str:
    first = table.rejected[0]
    return (
        f"df printed {len(table.rejected)} row(s) that could not be read, first "
        f"{first.text.strip()!r} ({first.reason})"
    )


def usage_from_df(space: DfRow, inodes: DfRow | None) -> DiskUsage | None:
    """A DiskUsage from df's space row and inode row of one filesystem; None when df printed
    `-` for the space figures (an automount not yet mounted)."""
    if space.total_bytes is None or space.used_bytes is None or space.free_bytes is None:
        return None
    inodes_total = inodes_used = 0
    if inodes is not None and inodes.inodes_used is not None:
        inodes_used = inodes.inodes_used
        if inodes.inodes_total is not None:
            inodes_total = inodes.inodes_total
        elif inodes.inodes_free is not None:
            # macOS prints iused and ifree but no total.
            inodes_total = inodes.inodes_used + inodes.inodes_free
    return DiskUsage(
        total_bytes=space.total_bytes,
        used_bytes=space.used_bytes,
        free_bytes=space.free_bytes,
        inodes_total=inodes_total,
        inodes_used=inodes_used,
    )


class DiskSshForm:
    """The disk probe over SSH: df's space and inode tables and the mount table, parsed into
    the results the local run gives (the same `usage_result()`).

    Differences from the local run, because df shows mount points, not arbitrary paths: a
    configured path is measured as the filesystem whose mount point is its longest prefix, so
    a path that does not exist is reported as the filesystem that would hold it. Growth figures
    need earlier samples: the poller may pass them to `parse` as `history`.
    """

    def __init__(self, config: DiskConfig) -> None:
        self._config = config

    def commands(self) -> Sequence[str]:
        return (DF_SPACE_COMMAND, DF_INODES_COMMAND, MOUNTS_COMMAND)

    def parse(
        self,
        outputs: Mapping[str, CommandOutput],
        observed_at: datetime,
        history: Mapping[str, Sequence[UsageSample]] | None = None,
    ) -> list[Item]:
        from probes.parsers.df import DfFormatError, parse_df  # the agent never needs it

        config = self._config
        space_output = outputs.get(DF_SPACE_COMMAND)
        try:
            # GNU df exits 1 when one filesystem could not be read and still prints the rest.
            space_table = parse_df(space_output.stdout if space_output is not None else "")
        except DfFormatError:
            return self._all_unknown(
                f"cannot list filesystems: {_failure(space_output, DF_SPACE_COMMAND)}",
                observed_at,
            )
        inode_rows: tuple[DfRow, ...] = ()
        inodes_output = outputs.get(DF_INODES_COMMAND)
        if inodes_output is not None:
            try:
                inode_rows = parse_df(inodes_output.stdout).rows
            except DfFormatError:
                # Space is still worth reporting; the results then carry no inode figures.
                log.warning(
                    "disk.ssh_inodes_unreadable", error=_failure(inodes_output, DF_INODES_COMMAND)
                )
        mounts: dict[str, Mount] = {}
        mounts_output = outputs.get(MOUNTS_COMMAND)
        if mounts_output is not None and mounts_output.exit_status == 0:
            mounts = {m.mountpoint: m for m in parse_mounts(mounts_output.stdout)}

        # A mount point listed twice (mounted over) is the last one, as in parse_mounts.
        space_by_mountpoint = {row.mountpoint: row for row in space_table.rows}
        inodes_by_mountpoint = {row.mountpoint: row for row in inode_rows}

        paths: list[str] = []
        for configured in config.paths:
            if configured == DISCOVER_ALL:
                discovered = [
                    self._mount_of(row, mounts.get(row.mountpoint))
                    for row in space_by_mountpoint.values()
                ]
                paths.extend(
                    m.mountpoint
                    for m in real_mounts(
                        discovered,
                        config.ignore_fs_types,
                        ignore_read_only=config.ignore_read_only,
                    )
                )
            else:
                paths.append(configured)

        items: list[Item] = []
        if space_table.rejected and DISCOVER_ALL in config.paths:
            # The cut row's filesystem is missing from discovery: say so rather than go silent.
            items.append(
                unknown_result(config, DISCOVER_ALL, _rejected_summary(space_table), observed_at)
            )
        for path in dict.fromkeys(paths):
            row = _holding_row(path, space_by_mountpoint)
            if row is not None and row.mountpoint != path and space_table.rejected:
                # The row of the filesystem really holding path may be the one that was cut:
                # the parent's figures would be a wrong answer given with confidence.
                items.append(
                    unknown_result(config, path, _rejected_summary(space_table), observed_at)
                )
                continue
            if row is None:
                items.append(
                    unknown_result(
                        config, path, f"no filesystem in df output holds {path}", observed_at
                    )
                )
                continue
            usage = usage_from_df(row, inodes_by_mountpoint.get(row.mountpoint))
            if usage is None:
                items.append(
                    unknown_result(
                        config, path, f"df shows no figures for {row.mountpoint}", observed_at
                    )
                )
                continue
            earlier = history.get(path, ()) if history is not None else ()
            items.append(usage_result(config, path, usage, observed_at, earlier))
        return items

    @staticmethod
    def _mount_of(row: DfRow, mount: Mount | None) -> Mount:
        fs_type = row.fs_type or (mount.fs_type if mount is not None else "")
        read_only = mount.read_only if mount is not None else False
        return Mount(row.device, row.mountpoint, fs_type, read_only)

    def _all_unknown(self, summary: str, observed_at: datetime) -> list[Item]:
        # One UNKNOWN per configured entry, so a named path's check goes UNKNOWN rather than
        # silent; "*" is reported as the check disk:*.
        return [
            unknown_result(self._config, path, summary, observed_at)
            for path in dict.fromkeys(self._config.paths)
        ]
