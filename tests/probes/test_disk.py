from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from probes.base import ProbeContext
from probes.clock import ManualClock
from probes.configfile import ConfigError, load_text
from probes.disk import (
    DF_INODES_COMMAND,
    DF_SPACE_COMMAND,
    MAX_SAMPLES_PER_PATH,
    MOUNTS_COMMAND,
    DiskConfig,
    DiskProbe,
    DiskSshForm,
    DiskUsage,
    UsageSample,
    format_bytes,
    parse_mounts,
    real_mounts,
    usage_result,
)
from probes.parsers.df import parse_df
from probes.registry import ProbeConfig
from probes.result import Result, Status
from probes.sshform import CommandOutput

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


# The SSH form: df's tables and the mount table, parsed into the local run's results.

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "disk"
MATERIAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "material" / "cmd_output"


def material(name: str) -> Path:
    path = MATERIAL / name
    if not path.exists():
        pytest.skip(f"../shared/material is not here: {path} is absent")
    return path


def debian_outputs(**replace: CommandOutput) -> dict[str, CommandOutput]:
    outputs = {
        DF_SPACE_COMMAND: CommandOutput(
            DF_SPACE_COMMAND, 0, (FIXTURES / "debian12_df-P-k-T.out").read_text()
        ),
        DF_INODES_COMMAND: CommandOutput(
            DF_INODES_COMMAND, 0, (FIXTURES / "debian12_df-P-i-T.out").read_text()
        ),
        MOUNTS_COMMAND: CommandOutput(
            MOUNTS_COMMAND, 0, (FIXTURES / "debian12_proc-self-mounts.txt").read_text()
        ),
    }
    outputs.update({output.command: output for output in replace.values()})
    return outputs


def ssh_results(config: DiskConfig, outputs: dict[str, CommandOutput]) -> list[Result]:
    items = DiskSshForm(config).parse(outputs, NOW)
    assert all(isinstance(i, Result) for i in items)
    return [i for i in items if isinstance(i, Result)]


def test_the_ssh_commands_are_gnu_df_in_the_c_locale_as_plain_argv() -> None:
    commands = DiskSshForm(disk_config()).commands()
    assert list(commands) == [
        "env LC_ALL=C df -P -k -T",
        "env LC_ALL=C df -P -i -T",
        "cat /proc/self/mounts",
    ]
    for command in commands:
        argv = shlex.split(command)
        assert " ".join(argv) == command  # nothing a shell would have to interpret
        assert shutil.which(argv[0]) is not None


def test_the_ssh_form_discovers_the_mounts_the_local_run_would() -> None:
    results = ssh_results(disk_config(paths=["*"]), debian_outputs())
    assert [(r.check, r.status) for r in results] == [
        # 40 % of its space but 90 % of its inodes.
        ("disk:/", Status.CRIT),
        ("disk:/boot", Status.OK),
        ("disk:/var/lib/postgresql/archive", Status.WARN),
        ("disk:/srv/backup", Status.OK),
        ("disk:/mnt/old disk", Status.OK),
    ]
    by_check = {r.check: r for r in results}
    assert by_check["disk:/"].summary == (
        "/ 39.7% used (22.1 of 58.8 GiB), 33.6 GiB free; inodes 90.0% used"
    )
    assert by_check["disk:/"].metrics["inodes_used_percent"] == 90.03
    assert by_check["disk:/var/lib/postgresql/archive"].metrics["used_percent"] == 84.22
    # btrfs counts no inodes: no inode metric, as in the local run.
    assert "inodes_used_percent" not in by_check["disk:/srv/backup"].metrics


def test_the_ssh_form_gives_the_same_result_as_usage_result_on_the_same_figures() -> None:
    [result] = ssh_results(disk_config(paths=["/boot"]), debian_outputs())
    expected = usage_result(
        disk_config(paths=["/boot"]),
        "/boot",
        DiskUsage(
            total_bytes=474730 * 1024,
            used_bytes=98541 * 1024,
            free_bytes=351159 * 1024,
            inodes_total=124928,
            inodes_used=350,
        ),
        NOW,
    )
    assert result == expected


def test_read_only_mounts_over_ssh_are_ignored_unless_asked_for() -> None:
    checks = [
        r.check
        for r in ssh_results(disk_config(paths=["*"], ignore_read_only=False), debian_outputs())
    ]
    assert "disk:/media/cdrom" in checks
    # The snap is squashfs: ignored by type whatever its flags.
    assert "disk:/snap/core22/1122" not in checks


def test_both_forms_discover_the_same_checks_from_the_same_mount_table() -> None:
    config = disk_config(paths=["*"])
    local = real_mounts(
        parse_mounts((FIXTURES / "debian12_proc-self-mounts.txt").read_text()),
        config.ignore_fs_types,
        ignore_read_only=config.ignore_read_only,
    )
    over_ssh = ssh_results(config, debian_outputs())
    assert [f"disk:{m.mountpoint}" for m in local] == [r.check for r in over_ssh]


def test_a_named_path_over_ssh_is_measured_on_the_filesystem_that_holds_it() -> None:
    results = ssh_results(
        disk_config(paths=["/var/lib/postgresql/archive/wal", "/home/alice", "/"]),
        debian_outputs(),
    )
    assert [r.check for r in results] == [
        "disk:/var/lib/postgresql/archive/wal",
        "disk:/home/alice",
        "disk:/",
    ]
    assert results[0].metrics["used_percent"] == 84.22
    assert results[1].metrics == results[2].metrics


def test_without_a_type_column_the_mount_table_tells_the_types() -> None:
    untyped = "\n".join(
        " ".join(line.split()[:1] + line.split()[2:])
        for line in (FIXTURES / "debian12_df-P-k-T.out").read_text().splitlines()
    ).replace("Filesystem 1024-blocks", "Filesystem 1024-blocks", 1)
    outputs = debian_outputs(space=CommandOutput(DF_SPACE_COMMAND, 0, untyped))
    checks = [r.check for r in ssh_results(disk_config(paths=["*"]), outputs)]
    assert checks == [
        "disk:/",
        "disk:/boot",
        "disk:/var/lib/postgresql/archive",
        "disk:/srv/backup",
        "disk:/mnt/old disk",
    ]


def test_df_that_fails_makes_every_configured_check_unknown_with_its_message() -> None:
    outputs = debian_outputs(
        space=CommandOutput(DF_SPACE_COMMAND, 127, "", "env: 'df': No such file or directory\n")
    )
    results = ssh_results(disk_config(paths=["*", "/data"]), outputs)
    assert [(r.check, r.status) for r in results] == [
        ("disk:*", Status.UNKNOWN),
        ("disk:/data", Status.UNKNOWN),
    ]
    assert results[0].summary == (
        "cannot list filesystems: 'env LC_ALL=C df -P -k -T' exited 127: "
        "env: 'df': No such file or directory"
    )


def test_missing_inode_figures_leave_the_space_check_without_inode_metrics() -> None:
    outputs = debian_outputs(
        inodes=CommandOutput(DF_INODES_COMMAND, 1, "", "df: invalid option -- 'i'\n")
    )
    [root] = ssh_results(disk_config(paths=["/"]), outputs)
    assert root.status is Status.OK
    assert "inodes_used_percent" not in root.metrics


def test_a_failing_mount_table_only_loses_the_read_only_filter() -> None:
    outputs = debian_outputs(mounts=CommandOutput(MOUNTS_COMMAND, 1, "", "cat: no such file\n"))
    checks = [r.check for r in ssh_results(disk_config(paths=["*"]), outputs)]
    assert "disk:/media/cdrom" in checks  # iso9660 and read-only: only the mount table says so
    assert "disk:/snap/core22/1122" not in checks  # squashfs: df's type column says so


def test_a_cut_row_over_ssh_is_unknown_rather_than_a_wrong_answer() -> None:
    space = (
        "Filesystem     Type 1024-blocks    Used Available Capacity Mounted on\n"
        "/dev/sda2      ext4    20508240 5748028  13695408      30% /\n"
        "/dev/sdb1      xfs     52402180\n"
    )
    outputs = {DF_SPACE_COMMAND: CommandOutput(DF_SPACE_COMMAND, 0, space)}
    results = ssh_results(disk_config(paths=["*", "/data", "/"]), outputs)
    assert [(r.check, r.status) for r in results] == [
        ("disk:*", Status.UNKNOWN),
        ("disk:/", Status.OK),  # discovered, and named again: one check
        ("disk:/data", Status.UNKNOWN),  # it may live on the cut row's filesystem
    ]
    assert "could not be read" in results[0].summary
    assert "'/dev/sdb1 xfs 52402180' (row cut short" in results[0].summary


def test_an_automount_without_figures_is_unknown_when_named() -> None:
    space = (
        "Filesystem     Type   1024-blocks Used Available Capacity Mounted on\n"
        "/dev/sda2      ext4      20508240 5748028 13695408    30% /\n"
        "systemd-1      autofs           -    -         -      - /proc/sys/fs/binfmt_misc\n"
    )
    outputs = debian_outputs(space=CommandOutput(DF_SPACE_COMMAND, 0, space))
    [result] = ssh_results(disk_config(paths=["/proc/sys/fs/binfmt_misc"]), outputs)
    assert result.status is Status.UNKNOWN
    assert result.summary == "df shows no figures for /proc/sys/fs/binfmt_misc"


def test_growth_over_ssh_comes_from_the_samples_the_poller_passes() -> None:
    history = {"/boot": growing(start_gib=0.0, gib_per_hour=0.001, hours=6)}
    [result] = DiskSshForm(disk_config(paths=["/boot"])).parse(debian_outputs(), NOW, history)
    assert isinstance(result, Result)
    assert "growth_bytes_per_hour" in result.metrics


def test_real_gnu_df_here_gives_the_figures_the_local_run_measures(tmp_path: Path) -> None:
    # The commands as the poller would run them, on this machine; the local run beside them.
    outputs = {}
    for command in DiskSshForm(disk_config()).commands():
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, check=False)
        outputs[command] = CommandOutput(command, done.returncode, done.stdout, done.stderr)
    [over_ssh] = ssh_results(disk_config(paths=["/"]), outputs)
    [local] = results_of(probe_for(tmp_path, paths=["/"]))
    assert over_ssh.check == local.check == "disk:/"
    # Used and free move as other processes write; the size of the filesystem does not.
    assert over_ssh.metrics["total_bytes"] == local.metrics["total_bytes"]
    assert ("inodes_used_percent" in over_ssh.metrics) == ("inodes_used_percent" in local.metrics)


@pytest.mark.material
def test_ubuntus_full_snap_loops_do_not_alarm_over_ssh() -> None:
    # jc ran plain `df`: no type column. The host's mount table, as Ubuntu 18.04 writes it for
    # snaps (squashfs, ro), comes with the SSH form's third command.
    text = material("jc/ubuntu-18.04_df.out").read_text()
    table = parse_df(text)
    mounts = "".join(
        f"{r.device} {r.mountpoint} squashfs ro,nodev,relatime 0 0\n"
        if r.device.startswith("/dev/loop")
        else f"{r.device} {r.mountpoint} {'ext4' if r.device.startswith('/dev/') else 'tmpfs'} "
        "rw,relatime 0 0\n"
        for r in table.rows
    )
    outputs = {
        DF_SPACE_COMMAND: CommandOutput(DF_SPACE_COMMAND, 0, text),
        MOUNTS_COMMAND: CommandOutput(MOUNTS_COMMAND, 0, mounts),
    }
    results = ssh_results(disk_config(paths=["*"]), outputs)
    assert [(r.check, r.status) for r in results] == [("disk:/", Status.OK)]
    # df rounds Use% up (30 %); used / (used + available) is 29.56 %.
    assert results[0].metrics["used_percent"] == 29.56
    # Even without the mount table's types, read-only alone keeps them quiet.
    ro_only = mounts.replace("squashfs", "ext4")
    outputs[MOUNTS_COMMAND] = CommandOutput(MOUNTS_COMMAND, 0, ro_only)
    assert [r.check for r in ssh_results(disk_config(paths=["*"]), outputs)] == ["disk:/"]


@pytest.mark.material
def test_the_truncated_sysfs_row_over_ssh_is_reported_not_counted_as_an_empty_disk() -> None:
    text = material("insights_core/df-al_DF_AL_BAD.out").read_text()
    outputs = {DF_SPACE_COMMAND: CommandOutput(DF_SPACE_COMMAND, 0, text)}
    results = ssh_results(disk_config(paths=["*", "/sys"]), outputs)
    assert [(r.check, r.status) for r in results] == [
        ("disk:*", Status.UNKNOWN),
        ("disk:/", Status.OK),
        ("disk:/sys", Status.UNKNOWN),
    ]
    assert all("free_bytes" not in r.metrics for r in results if r.check != "disk:/")


@pytest.mark.material
def test_the_df_output_with_complaints_before_its_header_gives_results() -> None:
    text = material("insights_core/df-alP_DF_ALP.out").read_text()
    # df exits 1 when it could not read an argument, and still prints its table.
    outputs = {DF_SPACE_COMMAND: CommandOutput(DF_SPACE_COMMAND, 1, text)}
    [root] = ssh_results(disk_config(paths=["/"]), outputs)
    assert (root.check, root.status) == ("disk:/", Status.OK)
    assert root.metrics["used_percent"] == 4.54


@pytest.mark.material
def test_the_inode_table_with_a_wrapped_device_feeds_the_inode_metric() -> None:
    space = material("insights_core/df-al_DF_AL.out").read_text()
    inodes = material("insights_core/df-li_DF_LI.out").read_text()
    outputs = {
        DF_SPACE_COMMAND: CommandOutput(DF_SPACE_COMMAND, 0, space),
        DF_INODES_COMMAND: CommandOutput(DF_INODES_COMMAND, 0, inodes),
    }
    [root] = ssh_results(disk_config(paths=["/"]), outputs)
    assert root.metrics["inodes_used_percent"] == pytest.approx(1.99, abs=0.01)


@pytest.mark.material
def test_two_megabyte_blocks_over_ssh_warn_at_84_percent() -> None:
    text = material("insights_core/df-al_DF_AL_BS_2MB.out").read_text()
    outputs = {DF_SPACE_COMMAND: CommandOutput(DF_SPACE_COMMAND, 0, text)}
    [root] = ssh_results(disk_config(paths=["*"]), outputs)
    assert root.check == "disk:/"
    assert root.status is Status.WARN
    assert root.metrics["total_bytes"] == 62031 * 2_000_000


DOC = Path(__file__).resolve().parents[2] / "docs" / "probes" / "disk.md"


def test_every_yaml_example_in_the_disk_doc_is_a_valid_probe_entry() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 2
    adapter: TypeAdapter[Any] = TypeAdapter(ProbeConfig)
    entries = [entry for block in blocks for entry in yaml.safe_load(block)["probes"]]
    configs = [adapter.validate_python(entry) for entry in entries]
    assert all(isinstance(c, DiskConfig) for c in configs)
    full = configs[0]
    assert isinstance(full, DiskConfig)
    assert full.paths == ["*", "/var/lib/postgresql"]
    assert (full.full_within_warn_hours, full.full_within_crit_hours) == (48, 6)
