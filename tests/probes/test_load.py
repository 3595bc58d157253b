"""probes/load.py: nightly loads in a window, with real files in tmp_path and a ManualClock."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from probes.base import ProbeContext, ProbeOutput
from probes.clock import ManualClock
from probes.load import (
    LoadConfig,
    LoadProbe,
    LoadSshForm,
    LoadWindow,
    current_run,
    parse_find_listing,
    parse_marker_stat,
)
from probes.registry import ProbeConfig
from probes.result import JobOutcome, JobRun, Result, Status
from probes.sshform import CommandOutput

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "load"
DOC = Path(__file__).resolve().parents[2] / "docs" / "probes" / "load.md"
BERLIN_NIGHT = {"start": "01:00", "end": "05:00", "timezone": "Europe/Berlin"}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def window(**keys: str) -> LoadWindow:
    return LoadWindow.model_validate({**BERLIN_NIGHT, **keys})


# ------------------------------------------------------------------ the window


def test_the_current_run_is_the_window_that_started_most_recently() -> None:
    # 2026-03-10 is winter time (CET, UTC+1): 01:00-05:00 local is 00:00-04:00 UTC.
    run = current_run(window(), utc("2026-03-10T12:00"))
    assert (run.run_id, run.starts_at, run.ends_at) == (
        "2026-03-10", utc("2026-03-10T00:00"), utc("2026-03-10T04:00"))
    before = current_run(window(), utc("2026-03-09T23:59"))
    assert before.run_id == "2026-03-09"
    assert current_run(window(), utc("2026-03-10T00:00")).run_id == "2026-03-10"


def test_the_spring_dst_night_has_a_three_hour_window() -> None:
    # Europe/Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC). 01:00 CET = 00:00
    # UTC, 05:00 CEST = 03:00 UTC.
    run = current_run(window(), utc("2026-03-29T02:00"))
    assert (run.run_id, run.starts_at.isoformat(), run.ends_at.isoformat()) == (
        "2026-03-29", "2026-03-29T00:00:00+00:00", "2026-03-29T03:00:00+00:00")


def test_the_autumn_dst_night_has_a_five_hour_window() -> None:
    # Europe/Berlin 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00 UTC). 01:00 CEST =
    # 23:00 UTC the day before, 05:00 CET = 04:00 UTC.
    run = current_run(window(), utc("2026-10-25T02:00"))
    assert (run.run_id, run.starts_at.isoformat(), run.ends_at.isoformat()) == (
        "2026-10-25", "2026-10-24T23:00:00+00:00", "2026-10-25T04:00:00+00:00")


def test_a_start_in_the_skipped_hour_begins_once_the_clock_has_passed_it() -> None:
    # 02:30 does not exist on 2026-03-29 in Berlin: read with the offset before the jump,
    # it is 01:30 UTC, 03:30 CEST.
    run = current_run(window(start="02:30", end="06:00"), utc("2026-03-29T05:00"))
    assert run.starts_at == utc("2026-03-29T01:30")
    assert current_run(window(start="02:30", end="06:00"),
                       utc("2026-03-29T01:29")).run_id == "2026-03-28"


def test_a_window_across_midnight_is_named_by_the_evening_it_starts() -> None:
    night = window(start="22:00", end="04:00", timezone="UTC")
    run = current_run(night, utc("2026-06-02T02:00"))
    assert (run.run_id, run.starts_at, run.ends_at) == (
        "2026-06-01", utc("2026-06-01T22:00"), utc("2026-06-02T04:00"))
    assert current_run(night, utc("2026-06-02T23:00")).run_id == "2026-06-02"


# ------------------------------------------------------------------ files in a folder


class Harness:
    """A load probe on real files, driven by a ManualClock; commits like the agent does."""

    def __init__(self, tmp_path: Path, start: datetime, **keys: Any) -> None:
        self.folder = tmp_path / "in"
        self.state_dir = tmp_path / "state"
        self.clock = ManualClock(start)
        self.config = LoadConfig.model_validate(
            {"name": "sales-load", "type": "load", "load": "sales", "window": BERLIN_NIGHT,
             **keys})
        self.probe = self.restart()

    def restart(self) -> LoadProbe:
        self.probe = LoadProbe(self.config, ProbeContext(self.clock, self.state_dir))
        return self.probe

    def arrive(self, name: str, size: int, at: datetime | None = None) -> Path:
        self.folder.mkdir(exist_ok=True)
        path = self.folder / name
        path.write_bytes(b"x" * size)
        stamp = (at or self.clock.now()).timestamp()
        os.utime(path, (stamp, stamp))
        return path

    def run(self) -> tuple[Result, list[JobRun]]:
        output: ProbeOutput = self.probe.run()
        assert output.commit is not None
        output.commit()
        results = [i for i in output.items if isinstance(i, Result)]
        runs = [i for i in output.items if isinstance(i, JobRun)]
        assert len(results) == 1
        assert results[0].check == "load:sales"
        return results[0], runs


FIVE_FILES = {"files": {"dir": "in", "glob": "*.csv", "min_count": 5, "min_total_bytes": 500,
                        "settle_s": 300}}


def files_config(tmp_path: Path) -> dict[str, Any]:
    return {"files": {**FIVE_FILES["files"], "dir": str(tmp_path / "in")}}


def test_a_load_waits_arrives_settles_and_succeeds(tmp_path: Path) -> None:
    # 01:10 CET on an ordinary night.
    h = Harness(tmp_path, utc("2026-03-10T00:10"), **files_config(tmp_path))
    result, runs = h.run()
    assert result.status is Status.WARN
    assert result.summary == (f"load sales waiting since 01:00 (until 05:00 Europe/Berlin): "
                              f"{h.folder} does not exist yet")
    [started] = runs
    assert (started.job, started.run_id, started.outcome) == ("sales", "2026-03-10",
                                                              JobOutcome.RUNNING)
    assert started.started_at == utc("2026-03-10T00:00")

    for i in range(3):
        h.arrive(f"part{i}.csv", 100)
    h.arrive("README.txt", 10_000)  # not a *.csv: not counted
    h.clock.advance(60)
    result, runs = h.run()
    assert runs == []  # still running: no new job run
    assert "3 of 5 files; 300 B of 500 B" in result.summary
    assert result.metrics["files"] == 3
    assert result.metrics["bytes"] == 300

    h.arrive("part3.csv", 100)
    h.arrive("part4.csv", 100)
    h.clock.advance(60)
    result, runs = h.run()
    assert result.status is Status.WARN
    assert "settling: 5 files, 500 B, newest 01:11 unchanged for 0s of 300s" in result.summary

    h.clock.advance(200)
    h.arrive("part4.csv", 150)  # still being written: the settling starts again
    result, _ = h.run()
    assert "unchanged for 0s" in result.summary

    h.restart()  # the agent restarts: the settling is remembered in the state dir
    h.clock.advance(299)
    result, _ = h.run()
    assert "unchanged for 299s of 300s" in result.summary
    h.clock.advance(1)
    result, runs = h.run()
    assert result.status is Status.OK
    assert result.summary.startswith("load sales complete at 01:20: 5 files, 550 B, newest 01:15")
    assert result.metrics["complete"] == 1
    assert result.metrics["newest_mtime"] == utc("2026-03-10T00:15:20").timestamp()
    assert "part4.csv\t150\t2026-03-10T01:15:20+01:00" in result.detail
    [succeeded] = runs
    assert succeeded.outcome is JobOutcome.SUCCEEDED
    assert succeeded.finished_at == h.clock.now()
    assert succeeded.duration_s == 20 * 60 + 20

    # Consumed downstream: the run stays complete, and says so once.
    for path in h.folder.iterdir():
        path.unlink()
    h.clock.advance(3600)
    result, runs = h.run()
    assert result.status is Status.OK
    assert runs == []


def test_a_load_not_complete_when_the_window_ends_fails_then_completes_late(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, utc("2026-03-10T03:50"), **files_config(tmp_path))
    for i in range(3):
        h.arrive(f"part{i}.csv", 1000)
    result, runs = h.run()
    assert result.status is Status.WARN
    assert [r.outcome for r in runs] == [JobOutcome.RUNNING]

    h.clock.advance(600)  # 05:00 CET: the window is over
    result, runs = h.run()
    assert result.status is Status.CRIT
    assert result.summary.startswith("load sales not complete by 05:00: 3 of 5 files")
    [failed] = runs
    assert failed.outcome is JobOutcome.FAILED
    assert failed.finished_at == utc("2026-03-10T04:00")
    assert "part2.csv" in failed.excerpt

    h.clock.advance(600)
    _, runs = h.run()
    assert runs == []  # FAILED is said once

    h.arrive("part3.csv", 1000)
    h.arrive("part4.csv", 1000)
    h.clock.advance(300)
    h.run()
    h.clock.advance(300)
    result, runs = h.run()
    assert result.status is Status.OK
    assert "(after the window)" in result.summary
    assert [r.outcome for r in runs] == [JobOutcome.SUCCEEDED]


def test_the_next_night_is_a_new_run_and_last_nights_files_do_not_count(tmp_path: Path) -> None:
    h = Harness(tmp_path, utc("2026-03-10T01:00"), **files_config(tmp_path))
    for i in range(5):
        h.arrive(f"part{i}.csv", 1000)
    h.run()
    h.clock.advance(300)
    result, _ = h.run()
    assert result.status is Status.OK
    h.clock.advance(86400)
    result, runs = h.run()
    assert result.status is Status.WARN
    assert "0 of 5 files" in result.summary
    assert [(r.run_id, r.outcome) for r in runs] == [("2026-03-11", JobOutcome.RUNNING)]


def test_across_the_spring_dst_night_the_window_ends_at_five_local(tmp_path: Path) -> None:
    h = Harness(tmp_path, utc("2026-03-29T00:30"), **files_config(tmp_path))
    result, _ = h.run()
    assert result.status is Status.WARN
    h.clock.advance(2 * 3600 + 29 * 60)  # 02:59 UTC = 04:59 CEST
    result, _ = h.run()
    assert result.status is Status.WARN
    h.clock.advance(60)  # 03:00 UTC = 05:00 CEST
    result, runs = h.run()
    assert result.status is Status.CRIT
    assert result.summary.startswith("load sales not complete by 05:00")
    assert runs[0].finished_at == utc("2026-03-29T03:00")
    assert runs[0].run_id == "2026-03-29"


def test_a_regex_selects_files_by_their_whole_name(tmp_path: Path) -> None:
    h = Harness(tmp_path, utc("2026-03-10T01:00"),
                files={"dir": str(tmp_path / "in"), "regex": r"sales_\d+\.csv", "min_count": 2})
    h.arrive("sales_1.csv", 1)
    h.arrive("sales_2.csv.part", 1)
    h.arrive("xsales_3.csv", 1)
    result, _ = h.run()
    assert result.metrics["files"] == 1
    h.arrive("sales_22.csv", 1)
    result, _ = h.run()
    assert result.status is Status.OK


# ------------------------------------------------------------------ marker and log


def test_a_marker_must_be_new_and_non_empty_when_asked(tmp_path: Path) -> None:
    marker = tmp_path / "in" / "_SUCCESS"
    h = Harness(tmp_path, utc("2026-03-10T01:00"),
                marker={"path": str(marker), "non_empty": True})
    result, _ = h.run()
    assert "marker _SUCCESS missing" in result.summary
    h.arrive("_SUCCESS", 10, at=utc("2026-03-09T02:00"))  # yesterday's
    result, _ = h.run()
    assert "marker _SUCCESS is from before the window" in result.summary
    h.arrive("_SUCCESS", 0)
    result, _ = h.run()
    assert "marker _SUCCESS is empty" in result.summary
    assert result.status is Status.WARN
    h.arrive("_SUCCESS", 2)
    result, runs = h.run()
    assert result.status is Status.OK
    assert result.metrics["marker_present"] == 1
    assert [r.outcome for r in runs] == [JobOutcome.SUCCEEDED]


def test_marker_and_files_must_both_hold_when_both_are_configured(tmp_path: Path) -> None:
    h = Harness(tmp_path, utc("2026-03-10T01:00"),
                files={"dir": str(tmp_path / "in"), "min_count": 1},
                marker={"path": str(tmp_path / "in" / "_SUCCESS")})
    h.arrive("data.csv", 5)
    result, _ = h.run()
    assert result.status is Status.WARN
    assert "marker _SUCCESS missing" in result.summary
    h.arrive("_SUCCESS", 0)
    result, _ = h.run()
    assert result.status is Status.OK


def _append(path: Path, text: str, at: datetime) -> None:
    with path.open("a") as f:
        f.write(text)
    os.utime(path, (at.timestamp(), at.timestamp()))


def test_a_log_line_written_during_the_run_completes_it(tmp_path: Path) -> None:
    log_file = tmp_path / "etl.log"
    clock_start = utc("2026-03-10T01:00")
    # Written yesterday: its "load complete" is last night's, not tonight's.
    _append(log_file, "2026-03-09 03:00 load complete\n", utc("2026-03-09T02:00"))
    h = Harness(tmp_path, clock_start,
                log={"path": str(log_file), "pattern": r"load complete$"})
    result, _ = h.run()
    assert result.status is Status.WARN
    assert "no line matching 'load complete$' yet" in result.summary
    h.clock.advance(60)
    _append(log_file, "2026-03-10 02:01 loading\n", h.clock.now())
    result, _ = h.run()
    assert result.status is Status.WARN
    h.clock.advance(60)
    _append(log_file, "2026-03-10 02:02 load complete\n", h.clock.now())
    h.restart()  # the read position survives a restart
    result, runs = h.run()
    assert result.status is Status.OK
    assert result.metrics["log_line_seen"] == 1
    assert [r.outcome for r in runs] == [JobOutcome.SUCCEEDED]


def test_a_run_whose_items_were_not_spooled_is_redone(tmp_path: Path) -> None:
    h = Harness(tmp_path, utc("2026-03-10T01:00"), **files_config(tmp_path))
    output = h.probe.run()  # no commit: the items never reached the spool
    assert any(isinstance(i, JobRun) for i in output.items)
    _, runs = h.run()
    assert [r.outcome for r in runs] == [JobOutcome.RUNNING]


def test_an_unreadable_folder_is_unknown_and_no_job_run_is_made_up(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    h = Harness(tmp_path, utc("2026-03-10T05:00"), files={"dir": str(not_a_dir)})
    result, runs = h.run()
    assert result.status is Status.UNKNOWN
    assert "Not a directory" in result.summary
    assert runs == []


# ------------------------------------------------------------------ SSH form


def test_find_output_is_parsed_with_bad_rows_skipped() -> None:
    text = (FIXTURES / "find_sales.txt").read_text()
    listing = parse_find_listing(CommandOutput("find", 0, text), max_files=100)
    assert [(f.name, f.size) for f in listing.files] == [
        ("sales_01.csv", 1048576), ("sales_02.csv", 2097152), ("name with\ttab.csv", 10),
        ("_SUCCESS", 0)]
    assert listing.files[0].mtime == pytest.approx(1774746600.1234567)
    assert len(listing.notes) == 2
    capped = parse_find_listing(CommandOutput("find", 0, text), max_files=1)
    assert len(capped.files) == 1
    assert capped.notes == ("more than 1 files: the rest not counted",)


def test_failing_find_and_stat_are_missing_or_unreadable() -> None:
    missing = CommandOutput("find", 1, "", "find: '/data/in': No such file or directory\n")
    assert parse_find_listing(missing, 10).missing
    denied = CommandOutput("find", 1, "", "find: '/data/in': Permission denied\n")
    assert parse_find_listing(denied, 10).error == "find: '/data/in': Permission denied"
    stderr = (FIXTURES / "stat_missing.stderr").read_text()
    assert not parse_marker_stat(CommandOutput("stat", 1, "", stderr)).exists
    assert parse_marker_stat(CommandOutput("stat", 1, "", "stat: Permission denied")).error
    seen = parse_marker_stat(CommandOutput("stat", 0, "12\t1774746600\n"))
    assert (seen.exists, seen.size, seen.mtime) == (True, 12, 1774746600.0)
    assert parse_marker_stat(CommandOutput("stat", 0, "garbage")).error


def test_the_ssh_form_run_through_a_shell_gives_the_local_result(tmp_path: Path) -> None:
    keys = {**files_config(tmp_path), "marker": {"path": str(tmp_path / "in" / "_DONE")}}
    h = Harness(tmp_path, utc("2026-03-10T01:00"), **keys)
    for i in range(5):
        h.arrive(f"part {i}.csv", 200)
    h.arrive("_DONE", 0)
    form = LoadSshForm(h.config)
    commands = form.commands()
    assert commands[0] == f"find {tmp_path / 'in'} -maxdepth 1 -type f -printf '%f\\t%s\\t%T@\\n'"
    for _ in range(2):
        outputs = {}
        for line in commands:
            done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=False)
            outputs[line] = CommandOutput(line, done.returncode, done.stdout, done.stderr)
        remote = form.parse(outputs, h.clock.now())
        local, local_runs = h.run()
        remote_result = remote[-1]
        assert isinstance(remote_result, Result)
        assert (remote_result.status, remote_result.summary, remote_result.metrics) == (
            local.status, local.summary, local.metrics)
        assert [r.outcome for r in remote if isinstance(r, JobRun)] == [
            r.outcome for r in local_runs]
        h.clock.advance(300)
    assert isinstance(remote_result, Result)
    assert remote_result.status is Status.OK


def test_the_ssh_form_refuses_a_log_criterion(tmp_path: Path) -> None:
    config = LoadConfig.model_validate({"name": "l", "type": "load", "window": BERLIN_NIGHT,
                                        "log": {"path": "/x.log", "pattern": "done"}})
    with pytest.raises(ValueError, match="no SSH form"):
        LoadSshForm(config)


# ------------------------------------------------------------------ config and docs


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({}, "give at least one of marker, log, files"),
        ({"files": {"dir": "/x", "glob": "*", "regex": ".*"}}, "give glob or regex, not both"),
        ({"files": {"dir": "/x", "regex": "("}}, "bad regular expression"),
        ({"log": {"path": "/x", "pattern": "(?P<when>x)"}}, "unknown group"),
        ({"files": {"dir": "/x"}, "window": {**BERLIN_NIGHT, "timezone": "Mars/Olympus"}},
         "unknown time zone"),
        ({"files": {"dir": "/x"}, "window": {**BERLIN_NIGHT, "start": "25:00"}}, "time"),
        ({"files": {"dir": "/x", "min_count": -1}}, "greater than or equal to 0"),
    ],
)
def test_bad_configs_are_refused_with_a_reason(keys: dict[str, Any], message: str) -> None:
    entry = {"name": "l", "type": "load", "window": BERLIN_NIGHT, **keys}
    with pytest.raises(ValidationError, match=re.escape(message)):
        LoadConfig.model_validate(entry)


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    entry = {"name": "l", "type": "load", "window": BERLIN_NIGHT, "files": {"dir": "in"},
             "marker": {"path": "in/_OK"}, "log": {"path": "logs/*.log", "pattern": "done"}}
    parsed = LoadConfig.model_validate(entry, context={"config_path": str(tmp_path / "a.yaml")})
    assert parsed.files is not None
    assert parsed.marker is not None
    assert parsed.log is not None
    assert parsed.files.dir == str(tmp_path / "in")
    assert parsed.marker.path == str(tmp_path / "in" / "_OK")
    assert parsed.log.path == str(tmp_path / "logs" / "*.log")


def test_every_example_in_the_docs_is_a_valid_probe_entry() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks
    adapter: TypeAdapter[Any] = TypeAdapter(ProbeConfig)
    for block in blocks:
        for entry in yaml.safe_load(block)["probes"]:
            assert isinstance(adapter.validate_python(entry), LoadConfig)
