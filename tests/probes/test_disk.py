from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from probes.base import ProbeContext
from probes.clock import ManualClock
from probes.configfile import ConfigError, load_text
from probes.disk import (
    DiskConfig,
    DiskProbe,
    DiskUsage,
    format_bytes,
    parse_mounts,
    real_mounts,
    usage_result,
)
from probes.result import Result, Status

GIB = 1024**3
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def disk_config(**overrides: object) -> DiskConfig:
    return DiskConfig.model_validate({"type": "disk", "name": "disks", **overrides})


def probe_for(tmp_path: Path, **overrides: object) -> DiskProbe:
    ctx = ProbeContext(clock=ManualClock(NOW), state_dir=tmp_path / "state")
    return DiskProbe(disk_config(**overrides), ctx)


def usage(
    used_gib: float, free_gib: float, inodes_total: int = 1000, inodes_used: int = 10
) -> DiskUsage:
    used = int(used_gib * GIB)
    free = int(free_gib * GIB)
    return DiskUsage(
        total_bytes=used + free,
        used_bytes=used,
        free_bytes=free,
        inodes_total=inodes_total,
        inodes_used=inodes_used,
    )


def results_of(probe: DiskProbe) -> list[Result]:
    items = probe.run().items
    assert all(isinstance(i, Result) for i in items)
    return [i for i in items if isinstance(i, Result)]


def test_a_real_directory_gives_one_result_with_the_filesystem_figures(tmp_path: Path) -> None:
    [result] = results_of(probe_for(tmp_path, paths=[str(tmp_path)]))
    st = os.statvfs(tmp_path)
    assert result.check == f"disk:{tmp_path}"
    assert result.probe == "disks"
    assert result.observed_at == NOW
    assert result.metrics["total_bytes"] == st.f_blocks * st.f_frsize
    assert 0.0 <= result.metrics["used_percent"] <= 100.0
    assert result.metrics["free_bytes"] > 0
    assert result.status in (Status.OK, Status.WARN, Status.CRIT)
    assert result.summary.startswith(f"{tmp_path} ")
    assert "% used" in result.summary


def test_each_configured_path_is_one_check_and_a_repeat_is_measured_once(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    results = results_of(probe_for(tmp_path, paths=[str(tmp_path), str(other), str(tmp_path)]))
    assert [r.check for r in results] == [f"disk:{tmp_path}", f"disk:{other}"]


def test_a_missing_path_is_unknown_with_a_clear_summary_and_the_others_still_run(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "not-mounted"
    results = results_of(probe_for(tmp_path, paths=[str(missing), str(tmp_path)]))
    assert results[0].status is Status.UNKNOWN
    assert results[0].summary == f"{missing} does not exist"
    assert results[0].check == f"disk:{missing}"
    assert results[1].status is not Status.UNKNOWN


def test_a_low_warn_threshold_turns_a_real_disk_into_a_warning(tmp_path: Path) -> None:
    # The way end-to-end tests cross a threshold without filling a disk.
    [result] = results_of(
        probe_for(tmp_path, paths=[str(tmp_path)], warn_percent=0, crit_percent=100)
    )
    assert result.status is Status.WARN


def test_usage_under_the_warn_threshold_is_ok() -> None:
    result = usage_result(disk_config(), "/data", usage(used_gib=30, free_gib=20), NOW)
    assert result.status is Status.OK
    assert result.metrics["used_percent"] == 60.0


def test_usage_at_the_warn_threshold_is_a_warning() -> None:
    result = usage_result(disk_config(), "/data", usage(used_gib=40, free_gib=10), NOW)
    assert result.status is Status.WARN


def test_usage_at_the_crit_threshold_is_critical() -> None:
    result = usage_result(disk_config(), "/data", usage(used_gib=45, free_gib=5), NOW)
    assert result.status is Status.CRIT


def test_the_summary_reads_like_df() -> None:
    result = usage_result(disk_config(), "/data", usage(used_gib=41.2, free_gib=8.8), NOW)
    assert result.summary == "/data 82.4% used (41.2 of 50.0 GiB), 8.8 GiB free"
    assert result.check == "disk:/data"
    assert result.metrics["used_bytes"] == int(41.2 * GIB)
    assert result.metrics["free_bytes"] == int(8.8 * GIB)
    assert result.metrics["total_bytes"] == int(41.2 * GIB) + int(8.8 * GIB)
    assert result.metrics["inodes_used_percent"] == 1.0


def test_the_root_reserve_counts_as_neither_used_nor_free_as_in_df() -> None:
    # 95 blocks used, 0 available to users, 5 reserved for root: df says 100 %.
    full = DiskUsage(total_bytes=100, used_bytes=95, free_bytes=0, inodes_total=0, inodes_used=0)
    result = usage_result(disk_config(), "/", full, NOW)
    assert result.metrics["used_percent"] == 100.0
    assert result.status is Status.CRIT


def test_inodes_running_out_raise_the_status_and_say_so_even_with_space_left() -> None:
    result = usage_result(
        disk_config(),
        "/var/spool",
        usage(used_gib=1, free_gib=9, inodes_total=1000, inodes_used=950),
        NOW,
    )
    assert result.status is Status.CRIT
    assert result.summary.endswith("; inodes 95.0% used")


def test_a_filesystem_without_inode_counts_has_no_inode_metric() -> None:
    result = usage_result(
        disk_config(), "/btrfs", usage(used_gib=1, free_gib=9, inodes_total=0, inodes_used=0), NOW
    )
    assert "inodes_used_percent" not in result.metrics
    assert result.status is Status.OK


def test_byte_counts_are_shown_in_binary_units() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(9 * GIB) == "9.0 GiB"


def test_crit_below_warn_is_refused() -> None:
    with pytest.raises(ValidationError, match="crit_percent"):
        disk_config(warn_percent=90, crit_percent=80)
    with pytest.raises(ValidationError, match="inodes_crit_percent"):
        disk_config(inodes_warn_percent=90, inodes_crit_percent=80)


def test_a_wrong_key_in_yaml_is_refused_with_its_line() -> None:
    text = "type: disk\nname: d\npaths: [/]\nwarn_percnt: 70\n"
    with pytest.raises(ConfigError) as caught:
        load_text(DiskConfig, text, "agent.yaml")
    assert str(caught.value) == "agent.yaml:4: warn_percnt: Extra inputs are not permitted"


MOUNTS = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
/dev/sda1 / ext4 rw,relatime 0 0
tmpfs /run tmpfs rw,nosuid,nodev 0 0
/dev/sdb1 /data xfs rw,relatime 0 0
/dev/loop3 /snap/core/1 squashfs ro,nodev,relatime 0 0
/dev/sdc1 /mnt/backup\\040disk ext4 rw 0 0
/dev/sdd1 /data btrfs rw 0 0
"""


def test_discovery_keeps_real_filesystems_and_decodes_escaped_spaces() -> None:
    config = disk_config()
    mounts = real_mounts(
        parse_mounts(MOUNTS), config.ignore_fs_types, ignore_read_only=config.ignore_read_only
    )
    assert [(m.mountpoint, m.fs_type) for m in mounts] == [
        ("/", "ext4"),
        ("/mnt/backup disk", "ext4"),
        # Mounted over: the last mount at a path is the one in use.
        ("/data", "btrfs"),
    ]


def test_star_measures_every_discovered_mount(tmp_path: Path) -> None:
    mounts_file = tmp_path / "mounts"
    mounts_file.write_text(
        f"/dev/sda1 {tmp_path} ext4 rw 0 0\ntmpfs /run tmpfs rw 0 0\n"
        f"/dev/sdz9 {tmp_path}/gone ext4 rw 0 0\n"
    )
    ctx = ProbeContext(clock=ManualClock(NOW), state_dir=tmp_path)
    probe = DiskProbe(disk_config(paths=["*"]), ctx, mounts_file=mounts_file)
    results = results_of(probe)
    assert [r.check for r in results] == [f"disk:{tmp_path}", f"disk:{tmp_path}/gone"]
    assert [r.status is Status.UNKNOWN for r in results] == [False, True]


def test_an_unreadable_mount_table_is_a_note_not_a_crash(tmp_path: Path) -> None:
    ctx = ProbeContext(clock=ManualClock(NOW), state_dir=tmp_path)
    probe = DiskProbe(disk_config(paths=["*"]), ctx, mounts_file=tmp_path / "no-such-file")
    output = probe.run()
    assert list(output.items) == []
    assert len(output.notes) == 1
    assert "cannot list mounts" in output.notes[0]
