"""The joblog SSH form against the agent's run: real find and dd, run locally without a shell,
on files the tests write; both sides must give the same job runs and the same result."""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from probes.base import ProbeContext
from probes.clock import ManualClock
from probes.joblog.globmatch import find_root, glob_matches
from probes.joblog.probe import JoblogConfig, JoblogProbe
from probes.joblog.snapshot import BytesNotFetched, Listing, RemoteSnapshot, parse_dd_output
from probes.joblog.sshform import (
    BytesOutput,
    JoblogSshForm,
    Output,
    dd_command,
    parse_dd_command,
    poll,
)
from probes.result import Item, JobOutcome, JobRun, Result, Status
from tests.probes.joblog.test_tailer import LOG_HISTORY_STEPS

START = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


def run_locally(command: str) -> BytesOutput:
    """What the poller does over paramiko: one argv, no shell, bytes back."""
    done = subprocess.run(shlex.split(command), capture_output=True, check=False)
    return BytesOutput(command, done.returncode, done.stdout, done.stderr.decode(errors="replace"))


def joblog_config(folder: Path, **overrides: object) -> JoblogConfig:
    fields: dict[str, object] = {
        "name": "night",
        "type": "joblog",
        "paths": [str(folder / "*.log")],
        "jobs": [{"name": "load", "preset": "shell"}],
        "max_line_bytes": 1024,
    }
    fields.update(overrides)
    return JoblogConfig.model_validate(fields)


class Twin:
    """The agent's probe and the SSH form over the same files, each with its own state."""

    def __init__(self, folder: Path, state_dir: Path, **overrides: object) -> None:
        self.config = joblog_config(folder, **overrides)
        self.state_dir = state_dir
        self.clock = ManualClock(START)
        self.local = JoblogProbe(self.config, ProbeContext(clock=self.clock, state_dir=state_dir))
        self.form = JoblogSshForm(self.config)
        self.state: dict[str, Any] = {}

    def restart_agent(self) -> None:
        self.local = JoblogProbe(
            self.config, ProbeContext(clock=self.clock, state_dir=self.state_dir)
        )

    def ssh(self, run: Callable[[str], Output] = run_locally) -> list[Item]:
        items, new_state = poll(self.form, run, self.state, self.clock.now())
        json.dumps(new_state)  # the poller stores it as JSON
        self.state = new_state
        return items

    def agent(self) -> list[Item]:
        output = self.local.run()
        assert output.commit is not None
        output.commit()
        return list(output.items)

    def both(self) -> list[Item]:
        local = self.agent()
        remote = self.ssh()
        assert remote == local
        self.clock.advance(60)
        return local


def is_find(command: str) -> bool:
    # Not `"find" in command`: the test's own folder names may hold "find".
    return shlex.split(command)[2] == "find"


def runs_of(items: list[Item]) -> list[JobRun]:
    return [i for i in items if isinstance(i, JobRun)]


def result_of(items: list[Item]) -> Result:
    (result,) = [i for i in items if isinstance(i, Result)]
    return result


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def truncate(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(0)


# --------------------------------------------------------------------------- the commands


def test_the_commands_are_plain_argv_of_gnu_find_and_dd(tmp_path: Path) -> None:
    form = JoblogSshForm(joblog_config(tmp_path, paths=[
        str(tmp_path / "*.log"), str(tmp_path / "app.log"), str(tmp_path / "a" / "**" / "*.log"),
    ]))
    commands = form.list_commands()
    assert [shlex.split(c)[:5] for c in commands] == [
        ["env", "LC_ALL=C", "find", "-L", str(tmp_path)],
        ["env", "LC_ALL=C", "find", "-L", str(tmp_path / "a")],
    ]
    assert "-maxdepth" not in shlex.split(commands[1])  # `**` has no depth
    path = str(tmp_path / "it's a log.log")
    line = dd_command(path, 4096, 65536)
    assert shlex.split(line)[3] == f"if={path}"
    assert parse_dd_command(line) == (path, 4096, 65536)
    assert parse_dd_command(dd_command(path, 0, None)) == (path, 0, None)
    assert parse_dd_command("rm -rf /") is None


def test_globs_match_the_listing_as_glob_glob_matches_the_disk(tmp_path: Path) -> None:
    for name in ["a.log", ".hidden.log", "b.txt", "app.log.1", "app.log.2.gz",
                 "sub/c.log", "sub/deeper/d.log", ".dot/e.log", "sub/.f.log", "x[1].log"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("line\n")
    (tmp_path / "dangling.log").symlink_to(tmp_path / "nowhere")
    (tmp_path / "linked").symlink_to(tmp_path / "sub")
    patterns = ["*.log", "app.log*", "**/*.log", "*/*.log", ".*.log", "sub/**", "a.log",
                "x[[]1].log", "s?b/*.log", "**/deeper/*.log", "missing/*.log"]
    for relative in patterns:
        pattern = str(tmp_path / relative)
        form = JoblogSshForm(joblog_config(tmp_path, paths=[pattern]))
        (command,) = form.list_commands()
        root, _ = find_root(pattern)
        listing = Listing()
        out = run_locally(command)
        listing.add_find_output(root, out.stdout, out.exit_status, out.stderr, [pattern])
        # Folders aside (glob writes "sub/" for "sub/**", find "sub"): the tailer skips them.
        over_ssh = sorted(p for p in RemoteSnapshot(listing).glob(pattern) if not os.path.isdir(p))
        here = sorted(p for p in glob.glob(pattern, recursive=True) if not os.path.isdir(p))
        assert over_ssh == here, relative
        assert not listing.notes, relative


def test_a_relative_glob_matches_like_glob_in_the_same_folder() -> None:
    assert glob_matches("logs/*.log", "logs/a.log")
    assert not glob_matches("logs/*.log", "/logs/a.log")
    assert find_root("*.log") == (".", 1)
    assert find_root("/var/log/app.log") == ("/var/log", 1)
    assert find_root("/srv/*/logs/**/*.log") == ("/srv", None)


# --------------------------------------------------------------------------- same as the agent


def test_appends_and_a_partial_last_line_give_the_agents_runs(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    twin = Twin(logs, tmp_path / "state")
    log = logs / "load.log"
    append(log, b"2024-05-01T02:00:00Z START load run=7\n2024-05-01T02:00:01Z INFO rows 1\nERR")
    first = twin.both()
    assert [r.outcome for r in runs_of(first)] == [JobOutcome.RUNNING]
    append(log, b"OR load cannot reach db01\nTraceback (most recent call last):\n  boom\n")
    append(log, b"2024-05-01T02:00:09Z END load run=7 exit=3\n")
    second = twin.both()
    assert [r.outcome for r in runs_of(second)] == [JobOutcome.FAILED, JobOutcome.FAILED]
    assert "INFO rows 1" in runs_of(second)[0].excerpt  # context from the previous poll
    assert result_of(second).status is Status.OK
    assert runs_of(twin.both()) == []


def test_rename_rotation_copytruncate_and_truncation_give_the_agents_runs(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    twin = Twin(logs, tmp_path / "state", paths=[str(logs / "app.log")])
    log = logs / "app.log"
    append(log, b"START load\nINFO one\n")
    twin.both()
    append(log, b"ERROR load before rename\nINFO tail")  # unterminated when rotated
    log.rename(logs / "app.log.1")
    append(log, b"START load run=2\n")  # a head of its own: copies are told by their heads
    assert len(runs_of(twin.both())) == 2
    flushed = twin.both()  # the rotated file stopped growing: its last line counts
    assert result_of(flushed).metrics["lines_read"] == 1
    append(log, b"ERROR load before copy\n")
    shutil.copyfile(log, logs / "app.log.2")
    truncate(log)
    append(log, b"END load exit=0\n")
    outcomes = [r.outcome for r in runs_of(twin.both())]
    assert outcomes == [JobOutcome.FAILED, JobOutcome.SUCCEEDED]  # the copy's line, the end
    append(log, b"START load\n")
    twin.both()
    truncate(log)
    append(log, b"START load again, longer than what was there before\n")
    assert len(runs_of(twin.both())) == 1


def test_a_long_line_is_cut_the_same_way_and_the_next_line_survives(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    twin = Twin(logs, tmp_path / "state")
    log = logs / "app.log"
    append(log, b"START load\nERROR load " + b"x" * 5000)
    first = twin.both()  # the head of the long line is out at once, cut
    append(log, b"y" * 3000 + b"\nINFO after\nERROR load short\n")
    second = twin.both()
    cut, short = [r for r in runs_of(first + second) if r.outcome is JobOutcome.FAILED]
    assert "[daybreak: line cut]" in cut.excerpt
    assert "y" * 10 not in cut.excerpt + short.excerpt  # the rest of the long line: skipped
    assert short.excerpt.splitlines()[-2:] == ["INFO after", "ERROR load short"]


def test_a_byte_budget_splits_a_backlog_across_polls_the_same_way(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("a.log", "b.log"):
        append(logs / name, b"".join(f"START load run={i}\n".encode() for i in range(8000)))
    twin = Twin(logs, tmp_path / "state", max_bytes_per_run=64 * 1024)
    statuses = []
    total = 0
    for _ in range(6):
        items = twin.both()
        total += len(runs_of(items))
        statuses.append(result_of(items).status)
    assert total == 16000
    assert statuses == [Status.WARN] * 4 + [Status.OK] * 2  # "the rest comes next", then done


def test_the_ssh_state_carries_a_restart_of_the_poller(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    twin = Twin(logs, tmp_path / "state")
    append(logs / "a.log", b"START load\n")
    twin.both()
    twin.form = JoblogSshForm(twin.config)  # a new collector process, the stored state
    twin.restart_agent()
    append(logs / "a.log", b"ERROR load second\n")
    (failure,) = runs_of(twin.both())
    assert "START load" in failure.excerpt


OPERATIONS = st.lists(
    st.one_of(*LOG_HISTORY_STEPS, st.tuples(st.just("long"), st.integers(1100, 3000))),
    max_size=14,
)
LINES = ["START load run={n}", "INFO step {n}", "ERROR load failed {n}", "END load exit={e}",
         "  at frame {n}"]


@settings(max_examples=40, deadline=None)
@given(operations=OPERATIONS, glob_covers_rotated=st.booleans())
# A copytruncate, then the live file written again shorter than its old offset: the old
# position's tail range lies past the new end, dd gives nothing there, and that end is where
# the file ends, not where the head read stopped (the long line's rest was lost over SSH).
@example(
    operations=[("long", 1164), ("copytruncate", False), ("long", 1100)],
    glob_covers_rotated=False,
)
def test_any_history_of_writes_and_rotations_gives_the_agents_items(
    operations: list[tuple[str, object]], glob_covers_rotated: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        log = logs / "app.log"
        pattern = str(logs / ("app.log*" if glob_covers_rotated else "app.log"))
        twin = Twin(logs, Path(tmp) / "state", paths=[pattern])
        counter = 0
        rotations = 0
        for op, arg in operations:
            if op == "append":
                assert isinstance(arg, int)
                for _ in range(arg):
                    counter += 1
                    line = LINES[counter % len(LINES)].format(n=counter, e=counter % 2)
                    append(log, f"{counter:05d} {line}\n".encode())
            elif op == "partial":
                counter += 1
                append(log, f"{counter:05d} ERROR load par".encode())
                twin.both()
                append(log, b"tial\n")
            elif op == "long":
                assert isinstance(arg, int)
                counter += 1
                append(log, f"{counter:05d} ERROR load ".encode() + b"z" * arg + b"\n")
            elif op == "poll":
                twin.both()
            elif op == "rename" and log.exists():
                twin.both()
                rotations += 1
                log.rename(logs / f"app.log.{rotations}")
                log.touch()
            elif op == "copytruncate" and log.exists():
                twin.both()
                append(log, f"{counter:05d} INFO written after the poll\n".encode())
                counter += 1
                rotations += 1
                shutil.copyfile(log, logs / f"app.log.{rotations}")
                truncate(log)
            elif op == "truncate" and log.exists():
                twin.both()
                truncate(log)
            elif op == "restart":
                twin.restart_agent()
                twin.form = JoblogSshForm(twin.config)
        twin.both()
        twin.both()


# --------------------------------------------------------------------------- broken outputs


def prepared(tmp_path: Path) -> tuple[Twin, Path]:
    logs = tmp_path / "logs"
    logs.mkdir()
    twin = Twin(logs, tmp_path / "state")
    log = logs / "a.log"
    append(log, b"START load\n")
    twin.both()
    return twin, log


def test_a_find_that_could_not_read_a_folder_warns_and_reads_the_rest(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    twin = Twin(logs, tmp_path / "state", paths=[str(logs / "*" / "*.log")])
    (logs / "ok").mkdir()
    (logs / "locked").mkdir()
    append(logs / "ok" / "a.log", b"START load\n")
    append(logs / "locked" / "b.log", b"START load\n")
    twin.both()

    def locked_out(command: str) -> Output:
        out = run_locally(command)
        if not is_find(command):
            return out
        # What GNU find gives as a user who cannot read one folder: the rest, and exit 1.
        records = [r for r in out.stdout.split(b"\0") if r and b"/locked/" not in r]
        return BytesOutput(command, 1, b"\0".join(records) + b"\0",
                           f"find: '{logs / 'locked'}': Permission denied\n")

    append(logs / "ok" / "a.log", b"ERROR load one\n")
    append(logs / "locked" / "b.log", b"ERROR load two\n")
    items = twin.ssh(locked_out)
    assert [r.source.split(":")[0] for r in runs_of(items)] == [str(logs / "ok" / "a.log")]
    result = result_of(items)
    assert result.status is Status.WARN
    assert f"{logs / 'locked'}: Permission denied" in result.detail
    # Listed again: the locked file's new line is read once, from where it stopped.
    items = twin.ssh()
    assert [r.excerpt.splitlines()[-1] for r in runs_of(items)] == ["ERROR load two"]


def test_a_listing_cut_without_its_last_nul_loses_and_repeats_nothing(tmp_path: Path) -> None:
    twin, log = prepared(tmp_path)
    append(log, b"ERROR load one\n")

    def cut(command: str) -> Output:
        out = run_locally(command)
        if is_find(command):
            return BytesOutput(command, 0, out.stdout[: out.stdout.index(b"\0") + 6], "")
        return out

    result = result_of(twin.ssh(cut))
    assert result.status is Status.WARN
    assert "cut short" in result.detail
    assert len(twin.state["files"]) == 1  # kept, not forgotten
    runs = runs_of(twin.ssh())
    assert [r.excerpt.splitlines()[-1] for r in runs] == ["ERROR load one"]
    assert runs_of(twin.ssh()) == []


def test_a_failing_or_missing_find_is_unknown_and_keeps_the_state(tmp_path: Path) -> None:
    twin, _ = prepared(tmp_path)
    before = twin.state

    def no_find(command: str) -> Output:
        if is_find(command):
            return BytesOutput(command, 127, b"", "env: 'find': No such file or directory\n")
        return run_locally(command)

    items = twin.ssh(no_find)
    assert runs_of(items) == []
    result = result_of(items)
    assert result.status is Status.UNKNOWN
    assert "cannot list the log files" in result.summary
    assert twin.state == before


def test_a_dd_that_fails_because_the_file_went_away_reads_it_next_time(tmp_path: Path) -> None:
    twin, log = prepared(tmp_path)
    append(log, b"ERROR load one\n")

    def rotated_between_rounds(command: str) -> Output:
        if not is_find(command):
            return BytesOutput(command, 1, b"",
                               f"dd: failed to open '{log}': No such file or directory\n")
        return run_locally(command)

    items = twin.ssh(rotated_between_rounds)
    assert runs_of(items) == []
    result = result_of(items)
    assert result.status is Status.WARN
    assert f"{log}: No such file or directory" in result.detail
    (failure,) = runs_of(twin.ssh())
    assert failure.excerpt.splitlines()[-1] == "ERROR load one"


def test_dd_output_shorter_than_asked_is_the_end_of_the_file(tmp_path: Path) -> None:
    twin, log = prepared(tmp_path)
    append(log, b"ERROR load one\nERROR load two\n")
    size = log.stat().st_size

    def truncated_between_rounds(command: str) -> Output:
        out = run_locally(command)
        if not is_find(command):
            # The file was cut back to its first poll's length plus one line before dd ran.
            keep = size - len(b"ERROR load two\n")
            parsed = parse_dd_command(command)
            assert parsed is not None
            return BytesOutput(command, 0, out.stdout[: max(0, keep - parsed[1])], "")
        return out

    items = twin.ssh(truncated_between_rounds)
    assert [r.excerpt.splitlines()[-1] for r in runs_of(items)] == ["ERROR load one"]
    assert [r.excerpt.splitlines()[-1] for r in runs_of(twin.ssh())] == ["ERROR load two"]


def fetched_snapshot(folder: Path, log: Path, ranges: list[tuple[int, int]]) -> RemoteSnapshot:
    """A snapshot of `folder` as find lists it, with `ranges` of `log` as dd reads them."""
    (command,) = JoblogSshForm(joblog_config(folder)).list_commands()
    listing = Listing()
    out = run_locally(command)
    listing.add_find_output(str(folder), out.stdout, out.exit_status, out.stderr, [])
    fetched = []
    for start, count in ranges:
        done = run_locally(dd_command(str(log), start, count))
        fetched.append(parse_dd_output(str(log), start, count, done.stdout, done.exit_status,
                                       done.stderr))
    return RemoteSnapshot(listing, fetched)


def test_an_empty_dd_read_past_the_bytes_held_is_not_where_the_file_ends(tmp_path: Path) -> None:
    # The planner's head read (0, 1024), and the old position's tail check range (1118, 64) of
    # a file written again shorter: dd gives nothing there, so the file ends at 1118 or before
    # (its listed size: 1118), and the bytes 1024..1118 are a miss for the next round.
    log = tmp_path / "app.log"
    append(log, b"x" * 1117 + b"\n")
    snapshot = fetched_snapshot(tmp_path, log, [(0, 1024), (1118, 64)])
    source = snapshot.open(str(log))
    source.seek(1118)
    assert source.read(64) == b""
    source.seek(1024)
    with pytest.raises(BytesNotFetched):
        source.read(64)
    assert [(m.offset, m.size) for m in snapshot.misses] == [(1024, 64)]


def test_a_dd_read_short_of_its_count_is_where_the_file_ends(tmp_path: Path) -> None:
    # The same reads of a file written again much shorter: the head read gets all 20 bytes,
    # so the file ends there, whatever the empty read further on says.
    log = tmp_path / "app.log"
    append(log, b"00002 ERROR load par")
    snapshot = fetched_snapshot(tmp_path, log, [(0, 1024), (1054, 64)])
    source = snapshot.open(str(log))
    assert source.read(1024) == b"00002 ERROR load par"
    assert source.read(1024) == b""
    assert snapshot.misses == []


def test_bytes_never_fetched_hold_the_file_back_with_a_note(tmp_path: Path) -> None:
    twin, log = prepared(tmp_path)
    append(log, b"ERROR load one\n")
    items, state = JoblogSshForm(twin.config).parse(
        {c: run_locally(c) for c in twin.form.list_commands()}, {}, twin.state, START
    )
    assert runs_of(items) == []
    assert "not all of its bytes" in result_of(items).detail
    assert state["files"] == twin.state["files"]


def test_text_outputs_decoded_with_surrogateescape_are_accepted(tmp_path: Path) -> None:
    from probes.sshform import CommandOutput

    twin, log = prepared(tmp_path)
    append(log, b"ERROR load \xff bad byte\n")

    def as_text(command: str) -> Output:
        out = run_locally(command)
        return CommandOutput(command, out.exit_status,
                             out.stdout.decode("utf-8", errors="surrogateescape"), out.stderr)

    local = twin.agent()
    assert twin.ssh(as_text) == local


@pytest.mark.parametrize("garbage", [b"", b"\0", b"f x y z w /p\0", b"\xff\xfe\0\0"])
def test_garbage_listings_do_not_crash(tmp_path: Path, garbage: bytes) -> None:
    twin, log = prepared(tmp_path)
    items = twin.ssh(
        lambda c: BytesOutput(c, 0, garbage, "") if is_find(c) else run_locally(c)
    )
    assert result_of(items).status in (Status.OK, Status.WARN, Status.UNKNOWN)
    assert os.path.exists(log)
