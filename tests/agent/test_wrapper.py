"""`daybreak-agent run --job NAME -- cmd` as a real process, around real commands, with a real
agent (and a tiny collector) up, and with the agent down."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daybreak.v1 import stream_pb2

from agent.wrapper import OutputTail, exit_code_of
from tests.agent.test_agent_cli import AGENT, write_agent_files
from tests.agent.tiny_collector import TinyCollector, start_server

FAILING = ["sh", "-c", "echo starting; echo boom >&2; exit 3"]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # A unix socket's path must fit in 107 bytes; pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="db-") as folder:
        yield Path(folder)


def agent_config(tmp_path: Path, short_dir: Path, port: int = 7443) -> Path:
    return write_agent_files(
        tmp_path, port, probes=[], handoff={"socket": str(short_dir / "h.sock")}
    )


def wrap(config: Path, job: str, *command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENT, "run", "--job", job, "--config", str(config), "--", *command],
        capture_output=True, text=True, timeout=120, check=False, **kwargs,
    )  # fmt: skip


def inbox_runs(tmp_path: Path) -> list[dict[str, Any]]:
    inbox = tmp_path / "state" / "inbox"
    return [json.loads((inbox / name).read_text()) for name in sorted(os.listdir(inbox))
            if name.endswith(".json")]  # fmt: skip


def make_inbox(tmp_path: Path) -> None:
    # What the agent's first start (or the package's install) leaves behind.
    (tmp_path / "state" / "inbox").mkdir(parents=True)


def read_log(log: Path) -> str:
    return log.read_text()


async def wait_for(condition: Any, what: str, agent: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}\n{read_log(log)}"
        assert agent.returncode is None, read_log(log)
        await asyncio.sleep(0.05)


def job_runs(collector: TinyCollector) -> list[stream_pb2.JobRun]:
    return [item.job_run for item in collector.items if item.WhichOneof("kind") == "job_run"]


def has_ended_run(collector: TinyCollector) -> bool:
    return any(run.outcome != stream_pb2.JOB_OUTCOME_RUNNING for run in job_runs(collector))


async def start_agent(config: Path, log: Path) -> asyncio.subprocess.Process:
    out = log.open("ab")
    try:
        return await asyncio.create_subprocess_exec(AGENT, "--config", str(config), stdout=out,
                                                    stderr=out)  # fmt: skip
    finally:
        out.close()


async def stop_agent(agent: asyncio.subprocess.Process) -> None:
    if agent.returncode is None:
        agent.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(agent.wait(), timeout=20)
        except TimeoutError:
            agent.kill()
            await agent.wait()


def test_a_failing_command_keeps_its_output_and_exit_code_and_its_run_reaches_the_collector(
    tmp_path: Path, short_dir: Path
) -> None:
    async def scenario() -> None:
        collector = TinyCollector()
        server, port = await start_server(collector)
        config = agent_config(tmp_path, short_dir, port)
        log = tmp_path / "agent.log"
        agent = await start_agent(config, log)
        try:
            await wait_for((short_dir / "h.sock").exists, "socket", agent, log)
            done = await asyncio.to_thread(wrap, config, "nightly-export", *FAILING)
            assert done.returncode == 3
            assert done.stdout == "starting\n"
            assert done.stderr == "boom\n"  # no warning: the agent took the run
            await wait_for(lambda: has_ended_run(collector), "the job run", agent, log)
        finally:
            await stop_agent(agent)
            await server.stop(0)
        [run] = [r for r in job_runs(collector) if r.outcome == stream_pb2.JOB_OUTCOME_FAILED]
        assert (run.job, run.probe, run.exit_code, run.customer) == (
            "nightly-export", "wrapper", 3, "acme"
        )
        # Both streams in the excerpt (their relative order depends on the two pipes).
        assert sorted(run.excerpt.splitlines()) == ["boom", "starting"]
        assert 0 < run.started_at_ms <= run.finished_at_ms
        assert run.source.startswith("daybreak-agent run: sh ")
        assert os.listdir(tmp_path / "state" / "inbox") == []

    asyncio.run(scenario())


def test_a_succeeding_command_passes_its_output_through_unchanged_and_records_success(
    tmp_path: Path, short_dir: Path
) -> None:
    async def scenario() -> None:
        collector = TinyCollector()
        server, port = await start_server(collector)
        config = agent_config(tmp_path, short_dir, port)
        log = tmp_path / "agent.log"
        agent = await start_agent(config, log)
        script = "printf 'a\\0b\\n'; printf 'no newline at the end'; cat"
        try:
            await wait_for((short_dir / "h.sock").exists, "socket", agent, log)
            done = await asyncio.to_thread(
                wrap, config, "export", "sh", "-c", script, input="from stdin\n"
            )
            await wait_for(lambda: has_ended_run(collector), "the job run", agent, log)
        finally:
            await stop_agent(agent)
            await server.stop(0)
        assert done.returncode == 0
        assert done.stdout == "a\0b\nno newline at the endfrom stdin\n"
        assert done.stderr == ""
        *_, run = job_runs(collector)
        assert run.outcome == stream_pb2.JOB_OUTCOME_SUCCEEDED
        assert run.exit_code == 0
        assert run.excerpt == ""

    asyncio.run(scenario())


def test_with_the_agent_down_the_run_waits_in_the_inbox_and_reaches_the_collector_later(
    tmp_path: Path, short_dir: Path
) -> None:
    async def scenario() -> None:
        collector = TinyCollector()
        server, port = await start_server(collector)
        config = agent_config(tmp_path, short_dir, port)
        log = tmp_path / "agent.log"
        # The agent ran once (it creates its inbox), then stopped.
        agent = await start_agent(config, log)
        await wait_for((short_dir / "h.sock").exists, "socket", agent, log)
        await stop_agent(agent)
        assert not (short_dir / "h.sock").exists()

        done = await asyncio.to_thread(wrap, config, "nightly-export", *FAILING)
        assert done.returncode == 3
        assert done.stderr == "boom\n"  # the inbox took it: nothing to warn about
        *_, waiting = inbox_runs(tmp_path)
        assert (waiting["job"], waiting["outcome"], waiting["exit_code"]) == (
            "nightly-export", "failed", 3
        )

        agent = await start_agent(config, log)
        try:
            await wait_for(lambda: has_ended_run(collector), "the job run", agent, log)
        finally:
            await stop_agent(agent)
            await server.stop(0)
        *_, run = job_runs(collector)
        assert (run.job, run.exit_code, run.run_id) == ("nightly-export", 3, waiting["run_id"])
        assert inbox_runs(tmp_path) == []

    asyncio.run(scenario())


def test_a_job_that_runs_is_visible_before_it_ends(tmp_path: Path, short_dir: Path) -> None:
    config = agent_config(tmp_path, short_dir)
    make_inbox(tmp_path)
    go = tmp_path / "go"
    wrapper = subprocess.Popen(
        [AGENT, "run", "--job", "long", "--config", str(config), "--",
         "sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done"],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not inbox_runs(tmp_path):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        [running] = inbox_runs(tmp_path)
        assert running["outcome"] == "running"
        assert running["finished_at"] is None
        go.touch()
        assert wrapper.wait(timeout=30) == 0
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.wait()
    first, last = inbox_runs(tmp_path)
    assert (first["outcome"], last["outcome"]) == ("running", "succeeded")
    assert first["run_id"] == last["run_id"]


def test_a_command_killed_by_a_signal_exits_like_a_shell_says(
    tmp_path: Path, short_dir: Path
) -> None:
    config = agent_config(tmp_path, short_dir)
    make_inbox(tmp_path)
    done = wrap(config, "killed", "sh", "-c", "echo before; kill -KILL $$")
    assert done.returncode == 128 + signal.SIGKILL
    assert done.stdout == "before\n"
    *_, run = inbox_runs(tmp_path)
    assert (run["outcome"], run["exit_code"], run["excerpt"]) == ("failed", 137, "before")


def test_terminating_the_wrapper_terminates_the_command_and_is_recorded(
    tmp_path: Path, short_dir: Path
) -> None:
    config = agent_config(tmp_path, short_dir)
    make_inbox(tmp_path)
    wrapper = subprocess.Popen(
        [AGENT, "run", "--job", "stopped", "--config", str(config), "--", "sleep", "60"]
    )
    deadline = time.monotonic() + 30
    while not inbox_runs(tmp_path):  # RUNNING is handed off once the command has started
        assert time.monotonic() < deadline
        time.sleep(0.05)
    wrapper.send_signal(signal.SIGTERM)
    assert wrapper.wait(timeout=30) == 128 + signal.SIGTERM
    assert inbox_runs(tmp_path)[-1]["exit_code"] == 143


def test_a_missing_command_exits_127_and_is_recorded_as_failed(
    tmp_path: Path, short_dir: Path
) -> None:
    config = agent_config(tmp_path, short_dir)
    make_inbox(tmp_path)
    done = wrap(config, "typo", "no-such-command-here", "--flag")
    assert done.returncode == 127
    assert done.stderr == "daybreak-agent: no-such-command-here: command not found\n"
    [run] = inbox_runs(tmp_path)
    assert (run["outcome"], run["exit_code"]) == ("failed", 127)
    assert run["excerpt"] == "no-such-command-here: command not found"


def test_a_file_that_is_not_executable_exits_126(tmp_path: Path, short_dir: Path) -> None:
    config = agent_config(tmp_path, short_dir)
    make_inbox(tmp_path)
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    done = wrap(config, "not-executable", str(script))
    # Even root needs an x bit somewhere to execute a file; 0644 has none.
    assert done.returncode == 126
    assert done.stderr == f"daybreak-agent: {script}: Permission denied\n"
    assert inbox_runs(tmp_path)[0]["exit_code"] == 126


def test_when_the_handoff_fails_the_job_result_is_still_the_commands_own(
    tmp_path: Path, short_dir: Path
) -> None:
    config = agent_config(tmp_path, short_dir)
    config.write_text("agent_id: [this is not valid\n")
    done = wrap(config, "nightly-export", *FAILING)
    assert done.returncode == 3
    assert done.stdout == "starting\n"
    boom, warning = done.stderr.splitlines()
    assert boom == "boom"
    assert warning.startswith("daybreak-agent: warning: job nightly-export: run not recorded: ")

    # No config at all, and no inbox: the same.
    done = wrap(tmp_path / "missing.yaml", "ok-job", "true")
    assert done.returncode == 0
    assert done.stderr.count("\n") == 1
    assert "missing.yaml" in done.stderr


def test_bad_wrapper_options_never_stop_the_command(tmp_path: Path, short_dir: Path) -> None:
    config = agent_config(tmp_path, short_dir)
    make_inbox(tmp_path)
    done = subprocess.run(
        [AGENT, "run", "--config", str(config), "--tail-lines", "many", "--", "sh", "-c", "exit 4"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 4
    assert done.stderr.startswith("daybreak-agent: warning: bad option: ")


def test_stdout_and_stderr_into_one_file_keep_their_order(tmp_path: Path, short_dir: Path) -> None:
    config = agent_config(tmp_path, short_dir)
    make_inbox(tmp_path)
    output = tmp_path / "job.log"
    script = "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; exit 1"
    with output.open("wb") as out:
        done = subprocess.run(
            [AGENT, "run", "--job", "mixed", "--config", str(config), "--", "sh", "-c", script],
            stdout=out, stderr=subprocess.STDOUT, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 1
    expected = "".join(f"out{i}\nerr{i}\n" for i in range(1, 6))
    assert output.read_text() == expected
    # The final run; a RUNNING one may come first when the command outlived the wrapper's start.
    run = inbox_runs(tmp_path)[-1]
    assert run["outcome"] == "failed"
    assert run["excerpt"] == expected.rstrip("\n")


def test_a_huge_output_passes_through_while_the_tail_and_memory_stay_bounded(
    tmp_path: Path, short_dir: Path
) -> None:
    config = agent_config(tmp_path, short_dir)
    make_inbox(tmp_path)
    # 300 MB: 20 million short lines and one 50 MB line without a newline, then a last line.
    script = (
        "yes 'a line of night-job output' | head -n 10000000; "
        "head -c 50000000 /dev/zero | tr '\\0' x; echo; echo the last line; exit 2"
    )
    # RUSAGE_CHILDREN of a fresh interpreter: the peak resident size of the wrapper (its
    # largest descendant), which would exceed 300 MB if output were buffered.
    measure = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], stdout=open(sys.argv[-1] + '.out', 'wb'))\n"
        "peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(done.returncode, peak_kib)\n"
    )
    out_path = tmp_path / "x"
    done = subprocess.run(
        [sys.executable, "-c", measure, AGENT, "run", "--job", "huge", "--config", str(config),
         "--", "sh", "-c", script, str(out_path)],
        capture_output=True, text=True, timeout=170, check=True,
    )  # fmt: skip
    returncode, peak_kib = map(int, done.stdout.split())
    assert returncode == 2
    size = (tmp_path / "x.out").stat().st_size
    assert size == 10_000_000 * len("a line of night-job output\n") + 50_000_001 + 14
    assert peak_kib < 150 * 1024, f"peak resident size {peak_kib} KiB"
    *_, run = inbox_runs(tmp_path)
    assert run["exit_code"] == 2
    excerpt = run["excerpt"]
    assert len(excerpt.encode()) <= 16 * 1024
    assert excerpt.endswith("x [... line cut]\nthe last line")


# -- the tail, in-process ------------------------------------------------------------------------


def test_the_tail_keeps_the_last_lines_whole_and_interleaved_as_they_completed() -> None:
    tail = OutputTail(max_lines=3)
    tail.feed(0, b"one\ntw")
    tail.feed(1, b"err one\n")
    tail.feed(0, b"o\nthree\nfour")
    assert tail.text() == "two\nthree\nfour"


def test_the_tail_cuts_a_long_line_and_marks_the_cut() -> None:
    tail = OutputTail(max_lines=5, max_line_bytes=10)
    tail.feed(0, b"0123456789abcdef")
    tail.feed(0, b"ghij\nshort\n")
    assert tail.text() == "0123456789 [... line cut]\nshort"


def test_the_tail_text_fits_its_byte_budget_keeping_the_newest_lines() -> None:
    tail = OutputTail(max_lines=100)
    for i in range(100):
        tail.feed(0, f"line {i:03d} {'x' * 50}\n".encode())
    text = tail.text(max_bytes=300)
    assert len(text.encode()) <= 300
    assert text.startswith("[... earlier output cut]\n")
    assert text.endswith(f"line 099 {'x' * 50}")


def test_invalid_utf8_in_the_output_is_replaced_not_fatal() -> None:
    tail = OutputTail(max_lines=2)
    tail.feed(0, b"caf\xe9\n")
    assert tail.text() == "caf\ufffd"


def test_a_signal_death_is_128_plus_the_signal_and_an_exit_is_itself() -> None:
    assert exit_code_of(-signal.SIGKILL) == 137
    assert exit_code_of(3) == 3
