from __future__ import annotations

import itertools
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from probes.base import ProbeContext
from probes.clock import ManualClock
from probes.configfile import ConfigError, load_text
from probes.disk import (
    MAX_SAMPLES_PER_PATH,
    DiskConfig,
    DiskProbe,
    DiskUsage,
    UsageSample,
    format_bytes,
    parse_mounts,
    real_mounts,
    usage_result,
)
from probes.result import Result, Status

GIB = 1024**3
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


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


def test_read_only_mounts_are_ignored_on_discovery_unless_asked_for() -> None:
    text = "/dev/sda1 / ext4 rw 0 0\n/dev/sr0 /media/cdrom iso9660 ro,nosuid 0 0\n"
    default = disk_config()
    assert [
        m.mountpoint
        for m in real_mounts(parse_mounts(text), default.ignore_fs_types, ignore_read_only=True)
    ] == ["/"]
    config = disk_config(ignore_read_only=False)
    assert [
        m.mountpoint
        for m in real_mounts(
            parse_mounts(text), config.ignore_fs_types, ignore_read_only=config.ignore_read_only
        )
    ] == ["/", "/media/cdrom"]


def test_a_read_only_mount_is_left_out_of_discovery_but_measured_when_named(
    tmp_path: Path,
) -> None:
    mounts_file = tmp_path / "mounts"
    mounts_file.write_text(f"/dev/sr0 {tmp_path} iso9660 ro,nosuid,nodev 0 0\n")
    ctx = ProbeContext(clock=ManualClock(NOW), state_dir=tmp_path / "state")
    discovered = DiskProbe(disk_config(paths=["*"]), ctx, mounts_file=mounts_file)
    assert results_of(discovered) == []
    wanted = DiskProbe(
        disk_config(paths=["*"], ignore_read_only=False), ctx, mounts_file=mounts_file
    )
    assert [r.check for r in results_of(wanted)] == [f"disk:{tmp_path}"]
    named = DiskProbe(disk_config(paths=[str(tmp_path)]), ctx, mounts_file=mounts_file)
    assert [r.check for r in results_of(named)] == [f"disk:{tmp_path}"]


def test_a_bind_mount_of_a_listed_filesystem_is_one_check_under_its_shortest_mount_point(
    tmp_path: Path,
) -> None:
    # A container's /etc/hosts is a bind mount of the host's disk: df shows it once.
    inner = tmp_path / "bound"
    inner.mkdir()
    mounts_file = tmp_path / "mounts"
    mounts_file.write_text(f"/dev/vda {inner} ext4 rw 0 0\n/dev/vda {tmp_path} ext4 rw 0 0\n")
    ctx = ProbeContext(clock=ManualClock(NOW), state_dir=tmp_path / "state")
    probe = DiskProbe(disk_config(paths=["*"]), ctx, mounts_file=mounts_file)
    assert [r.check for r in results_of(probe)] == [f"disk:{tmp_path}"]


# Growth and time until full: the pure function on samples.

HOUR = timedelta(hours=1)


def growing(
    start_gib: float, gib_per_hour: float, hours: float, every: timedelta = 30 * MINUTE
) -> list[UsageSample]:
    """Samples of a disk growing steadily, ending just before NOW."""
    count = int(hours * HOUR / every)
    return [
        UsageSample(
            NOW - (count - i) * every,
            int((start_gib + gib_per_hour * (i * every / HOUR)) * GIB),
        )
        for i in range(count)
    ]


def test_a_disk_growing_one_gib_an_hour_is_full_when_its_free_space_runs_out() -> None:
    history = growing(start_gib=34, gib_per_hour=1.0, hours=6)
    # Now: 40 GiB used, 10 GiB free, on the same line.
    result = usage_result(disk_config(), "/data", usage(40, 10), NOW, history)
    assert result.metrics["growth_bytes_per_hour"] == pytest.approx(GIB, rel=1e-6)
    assert result.metrics["hours_until_full"] == pytest.approx(10.0, rel=1e-6)


def test_growth_is_measured_only_over_the_configured_window() -> None:
    # Fast growth long ago, flat for the last 6 hours: the window sees a flat disk.
    old = growing(start_gib=0, gib_per_hour=5.0, hours=8)
    old = [UsageSample(s.at - 7 * HOUR, s.used_bytes) for s in old]
    flat = [UsageSample(NOW - i * 30 * MINUTE, 40 * GIB) for i in range(12, 0, -1)]
    result = usage_result(disk_config(), "/data", usage(40, 10), NOW, [*old, *flat])
    assert result.metrics["growth_bytes_per_hour"] == 0.0
    assert "hours_until_full" not in result.metrics
    longer = usage_result(
        disk_config(growth_window_hours=24), "/data", usage(40, 10), NOW, [*old, *flat]
    )
    assert longer.metrics["growth_bytes_per_hour"] > 0


def test_a_shrinking_disk_has_a_negative_rate_and_no_time_until_full() -> None:
    history = growing(start_gib=36, gib_per_hour=-1.0, hours=6)
    result = usage_result(disk_config(), "/data", usage(30, 20), NOW, history)
    assert result.metrics["growth_bytes_per_hour"] == pytest.approx(-GIB, rel=1e-6)
    assert "hours_until_full" not in result.metrics
    assert result.status is Status.OK


def test_too_little_history_gives_no_growth_figures() -> None:
    # Two samples, or an hour of a 6 h window (less than a quarter of it), say nothing yet.
    for history in (
        [UsageSample(NOW - 5 * HOUR, 30 * GIB)],
        growing(start_gib=39, gib_per_hour=1.0, hours=1),
        [],
    ):
        result = usage_result(disk_config(), "/data", usage(40, 10), NOW, history)
        assert "growth_bytes_per_hour" not in result.metrics
        assert "hours_until_full" not in result.metrics
    enough = growing(start_gib=38.5, gib_per_hour=1.0, hours=1.5)
    result = usage_result(disk_config(), "/data", usage(40, 10), NOW, enough)
    assert "growth_bytes_per_hour" in result.metrics


def test_one_sample_taken_while_a_temporary_file_existed_does_not_decide_the_rate() -> None:
    # Flat at 40 GiB for 6 h, but the oldest sample saw a 5 GiB temporary file. The first and
    # last samples alone would say the disk shrinks 0.83 GiB an hour.
    flat = [UsageSample(NOW - i * 30 * MINUTE, 40 * GIB) for i in range(12, 0, -1)]
    spiked = [UsageSample(flat[0].at, 45 * GIB), *flat[1:]]
    result = usage_result(disk_config(), "/data", usage(40, 10), NOW, spiked)
    assert abs(result.metrics["growth_bytes_per_hour"]) < 0.4 * GIB


def test_samples_from_after_now_are_ignored_as_a_clock_stepped_back() -> None:
    history = [*growing(start_gib=34, gib_per_hour=1.0, hours=6), UsageSample(NOW + HOUR, 1 * GIB)]
    result = usage_result(disk_config(), "/data", usage(40, 10), NOW, history)
    assert result.metrics["growth_bytes_per_hour"] == pytest.approx(GIB, rel=1e-6)


def test_full_within_the_warn_horizon_warns_and_says_when() -> None:
    config = disk_config(full_within_warn_hours=24, full_within_crit_hours=4)
    history = growing(start_gib=34, gib_per_hour=1.0, hours=6)
    result = usage_result(config, "/data", usage(40, 10), NOW, history)
    assert result.status is Status.WARN
    assert result.summary == (
        "/data 80.0% used (40.0 of 50.0 GiB), 10.0 GiB free; full in about 10.0 h at 1.0 GiB/h"
    )


def test_full_within_the_crit_horizon_is_critical() -> None:
    config = disk_config(
        warn_percent=95, crit_percent=99, full_within_warn_hours=24, full_within_crit_hours=12
    )
    history = growing(start_gib=34, gib_per_hour=1.0, hours=6)
    result = usage_result(config, "/data", usage(40, 10), NOW, history)
    assert result.status is Status.CRIT


def test_far_from_full_or_without_horizons_the_forecast_changes_nothing() -> None:
    history = growing(start_gib=34, gib_per_hour=1.0, hours=6)
    far = usage_result(
        disk_config(full_within_warn_hours=5),
        "/data",
        usage(30, 20),
        NOW,
        growing(start_gib=24, gib_per_hour=1.0, hours=6),
    )
    assert far.status is Status.OK
    assert "full in" not in far.summary
    plain = usage_result(disk_config(), "/data", usage(40, 10), NOW, history)
    assert plain.status is Status.WARN  # from warn_percent alone
    assert "full in" not in plain.summary


def test_a_crit_horizon_beyond_the_warn_horizon_is_refused() -> None:
    with pytest.raises(ValidationError, match="full_within_crit_hours"):
        disk_config(full_within_warn_hours=4, full_within_crit_hours=24)
    with pytest.raises(ValidationError, match="growth_window_hours"):
        disk_config(growth_window_hours=0)


# The local run keeps its history in the state folder.


def history_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "disks.disk-history.json"


def stored_history(tmp_path: Path) -> dict[str, list[list[float]]]:
    document = json.loads(history_file(tmp_path).read_text())
    assert document["version"] == 1
    paths: dict[str, list[list[float]]] = document["paths"]
    return paths


def test_the_local_run_builds_a_history_and_reports_growth_once_it_spans_enough(
    tmp_path: Path,
) -> None:
    clock = ManualClock(NOW)
    config = disk_config(paths=[str(tmp_path)])
    probe = DiskProbe(config, ProbeContext(clock=clock, state_dir=tmp_path / "state"))
    for _ in range(3):
        [result] = results_of(probe)
        assert "growth_bytes_per_hour" not in result.metrics
        clock.advance(30 * 60)
    [result] = results_of(probe)  # 90 minutes of a 6 hour window: enough
    assert "growth_bytes_per_hour" in result.metrics
    growth = result.metrics["growth_bytes_per_hour"]
    assert ("hours_until_full" in result.metrics) == (growth > 0)
    samples = stored_history(tmp_path)[str(tmp_path)]
    assert [at for at, _ in samples] == [
        (NOW + i * timedelta(minutes=30)).timestamp() for i in range(4)
    ]


def test_the_history_survives_a_restart_of_the_agent(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    config = disk_config(paths=[str(tmp_path)])
    ctx = ProbeContext(clock=clock, state_dir=tmp_path / "state")
    first = DiskProbe(config, ctx)
    for _ in range(3):
        results_of(first)
        clock.advance(30 * 60)
    restarted = DiskProbe(config, ctx)
    [result] = results_of(restarted)
    assert "growth_bytes_per_hour" in result.metrics


def test_the_history_stays_bounded_however_often_the_probe_runs(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    other = tmp_path / "other"
    other.mkdir()
    probe = DiskProbe(
        disk_config(paths=[str(tmp_path), str(other)]),
        ProbeContext(clock=clock, state_dir=tmp_path / "state"),
    )
    for _ in range(1500):  # 12.5 hours at 30 s
        results_of(probe)
        clock.advance(30)
    history = stored_history(tmp_path)
    assert set(history) == {str(tmp_path), str(other)}
    samples = history[str(tmp_path)]
    assert len(samples) <= MAX_SAMPLES_PER_PATH
    # Only the window is kept, spaced window/120 = 3 minutes apart.
    assert samples[0][0] >= (clock.now() - timedelta(hours=6)).timestamp()
    assert all(b[0] - a[0] >= 180 for a, b in itertools.pairwise(samples))
    assert history_file(tmp_path).stat().st_size < 2 * 120 * 40


def test_a_path_no_longer_measured_is_forgotten(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    other = tmp_path / "other"
    other.mkdir()
    ctx = ProbeContext(clock=clock, state_dir=tmp_path / "state")
    results_of(DiskProbe(disk_config(paths=[str(tmp_path), str(other)]), ctx))
    clock.advance(600)
    results_of(DiskProbe(disk_config(paths=[str(tmp_path)]), ctx))
    assert set(stored_history(tmp_path)) == {str(tmp_path)}


def test_a_damaged_history_is_a_note_and_starts_again(tmp_path: Path) -> None:
    history_file(tmp_path).parent.mkdir(parents=True)
    history_file(tmp_path).write_text('{"version": 1, "paths": {"/": [["x", 1]]}}')
    output = probe_for(tmp_path, paths=[str(tmp_path)]).run()
    assert len(output.items) == 1
    assert len(output.notes) == 1
    assert "unreadable, starting again" in output.notes[0]
    assert set(stored_history(tmp_path)) == {str(tmp_path)}


def test_a_history_that_cannot_be_saved_is_a_note_and_the_results_still_come(
    tmp_path: Path,
) -> None:
    # The disk holding the state folder may be the full one; here the folder is a file.
    (tmp_path / "state").write_text("not a folder")
    output = probe_for(tmp_path, paths=[str(tmp_path)]).run()
    [result] = output.items
    assert isinstance(result, Result)
    assert result.status is not Status.UNKNOWN
    assert output.notes[-1].startswith("cannot save usage history")


def test_a_clock_stepped_back_drops_the_samples_from_the_future(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    probe = DiskProbe(
        disk_config(paths=[str(tmp_path)]), ProbeContext(clock=clock, state_dir=tmp_path / "state")
    )
    results_of(probe)
    clock.advance(3600)
    results_of(probe)
    stepped_back = DiskProbe(
        disk_config(paths=[str(tmp_path)]),
        ProbeContext(clock=ManualClock(NOW + timedelta(minutes=30)), state_dir=tmp_path / "state"),
    )
    results_of(stepped_back)
    assert [at for at, _ in stored_history(tmp_path)[str(tmp_path)]] == [
        NOW.timestamp(),
        (NOW + timedelta(minutes=30)).timestamp(),
    ]
