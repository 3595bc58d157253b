"""The local handoff between the job wrapper and the agent: a real unix socket, a real inbox
folder, a real spool file; the listener runs on a real event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from daybreak.v1 import stream_pb2

from agent.handoff import (
    INVALID_REPLY_PREFIX,
    MAX_MESSAGE_BYTES,
    HandoffError,
    HandoffListener,
    JobRunMessage,
    hand_off,
    write_to_inbox,
)
from agent.spool import Spool
from agent.stream import ItemEncoder
from probes.clock import ManualClock
from probes.result import JobOutcome, JobRun

T0 = datetime(2024, 6, 12, 2, 0, tzinfo=UTC)


def a_run(job: str = "nightly-export", outcome: JobOutcome = JobOutcome.FAILED) -> JobRun:
    return JobRun(
        probe="wrapper",
        job=job,
        run_id="20240612T020000.000000Z-4242",
        outcome=outcome,
        observed_at=T0,
        started_at=T0,
        finished_at=T0 if outcome is not JobOutcome.RUNNING else None,
        exit_code=3 if outcome is JobOutcome.FAILED else None,
        excerpt="boom" if outcome is JobOutcome.FAILED else "",
        source="daybreak-agent run: sh (uid 0)",
    )


def spooled_job_runs(spool: Spool) -> list[stream_pb2.JobRun]:
    runs = []
    for _, payload in spool.read_after(0, 1000):
        item = stream_pb2.Item()
        item.ParseFromString(payload)
        runs.append(item.job_run)
    return runs


class Agent:
    """The handoff listener of an agent, with its spool, in tmp_path."""

    def __init__(self, tmp_path: Path) -> None:
        self.socket_path = tmp_path / "h.sock"
        self.inbox = tmp_path / "inbox"
        self.spool = Spool(tmp_path / "spool.sqlite3", 1000, 10 * 1024 * 1024)
        self.items_waiting = asyncio.Event()
        self.listener = HandoffListener(
            self.socket_path,
            self.inbox,
            self.spool,
            ItemEncoder("acme", "web-01"),
            self.items_waiting,
            ManualClock(T0),
            drain_interval_s=0.1,
        )


@contextlib.asynccontextmanager
async def running_agent(tmp_path: Path) -> AsyncIterator[Agent]:
    agent = Agent(tmp_path)
    await agent.listener.start()
    try:
        yield agent
    finally:
        await agent.listener.stop()
        agent.spool.close()


def run_async(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


async def talk(socket_path: Path, data: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    writer.write(data)
    await writer.drain()
    writer.write_eof()
    reply = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    await writer.wait_closed()
    return reply


async def eventually(condition: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never happened: {what}")


def test_a_run_sent_over_the_socket_is_spooled_and_answered_with_its_seq(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_agent(tmp_path) as agent:
            delivery = await asyncio.to_thread(hand_off, a_run(), agent.socket_path, agent.inbox)
            assert delivery.via == "socket"
            assert delivery.seq == 1
            [run] = spooled_job_runs(agent.spool)
            assert (run.customer, run.host, run.job, run.exit_code) == (
                "acme",
                "web-01",
                "nightly-export",
                3,
            )
            assert run.outcome == stream_pb2.JOB_OUTCOME_FAILED
            assert run.excerpt == "boom"
            assert agent.items_waiting.is_set()
            assert stat.S_IMODE(agent.socket_path.stat().st_mode) == 0o660

    run_async(scenario)


def test_garbage_on_the_socket_gets_an_error_line_and_the_agent_keeps_serving(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running_agent(tmp_path) as agent:
            not_json = await talk(agent.socket_path, b"hello there\n")
            assert not_json.startswith(INVALID_REPLY_PREFIX.encode())
            bad_field = json.loads(JobRunMessage.from_job_run(a_run()).to_line())
            bad_field["outcome"] = "exploded"
            wrong = await talk(agent.socket_path, json.dumps(bad_field).encode() + b"\n")
            assert wrong.startswith(INVALID_REPLY_PREFIX.encode() + b": outcome:")
            naive = dict(bad_field, outcome="running", observed_at="2024-06-12T02:00:00")
            assert (await talk(agent.socket_path, json.dumps(naive).encode() + b"\n")).startswith(
                INVALID_REPLY_PREFIX.encode() + b": observed_at:"
            )
            huge = b"x" * (MAX_MESSAGE_BYTES * 2) + b"\n"
            too_long = await talk(agent.socket_path, huge)
            assert too_long == INVALID_REPLY_PREFIX.encode() + b": message too long\n"
            # Two good runs on one connection, then the agent is still there.
            line = JobRunMessage.from_job_run(a_run()).to_line()
            both = await talk(agent.socket_path, line + line)
            assert both == b"ok 1\nok 2\n"
            assert len(spooled_job_runs(agent.spool)) == 2

    run_async(scenario)


def test_with_the_agent_down_the_run_goes_to_the_inbox_and_is_spooled_when_it_starts(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    delivery = hand_off(a_run(), tmp_path / "h.sock", inbox)
    assert delivery.via == "inbox"
    assert delivery.inbox_file is not None
    assert delivery.inbox_file.parent == inbox
    assert delivery.socket_problem == "No such file or directory"
    # Readable by the agent whatever the job's umask.
    assert stat.S_IMODE(delivery.inbox_file.stat().st_mode) == 0o644

    async def scenario() -> None:
        async with running_agent(tmp_path) as agent:
            [run] = spooled_job_runs(agent.spool)
            assert run.job == "nightly-export"
            assert os.listdir(inbox) == []
            # Written later, while the agent runs: drained within the interval.
            write_to_inbox(JobRunMessage.from_job_run(a_run("other")).to_line(), inbox, T0)
            await eventually(lambda: len(spooled_job_runs(agent.spool)) == 2, "second drain")
            assert os.listdir(inbox) == []
            assert stat.S_IMODE(inbox.stat().st_mode) == 0o1733

    run_async(scenario)


def test_a_socket_nobody_listens_on_falls_back_to_the_inbox(tmp_path: Path) -> None:
    # An agent that died leaves its socket file behind.
    stale = tmp_path / "h.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(stale))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    delivery = hand_off(a_run(), stale, inbox)
    assert delivery.via == "inbox"
    assert delivery.socket_problem == "Connection refused"


def test_when_neither_socket_nor_inbox_works_the_error_says_both(tmp_path: Path) -> None:
    with pytest.raises(HandoffError, match=r"h.sock: No such file or directory; inbox .*"):
        hand_off(a_run(), tmp_path / "h.sock", tmp_path / "no-inbox")


def test_an_invalid_run_is_refused_before_it_is_sent_or_written(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_agent(tmp_path) as agent:
            bad = a_run(job="two\nlines")
            with pytest.raises(HandoffError, match="invalid job run: job: String should match"):
                await asyncio.to_thread(hand_off, bad, agent.socket_path, agent.inbox)
            assert os.listdir(agent.inbox) == []
            assert agent.spool.depth == 0

    run_async(scenario)


def test_malformed_and_strange_inbox_files_move_to_rejected_and_good_ones_are_spooled(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "0001-broken.json").write_text("{not json")
    (inbox / "0002-wrong.json").write_text(json.dumps({"job": "x"}))
    (inbox / "0003-big.json").write_bytes(b" " * (MAX_MESSAGE_BYTES + 1))
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read me")
    (inbox / "0004-link.json").symlink_to(secret)
    os.mkfifo(inbox / "0005-fifo.json")
    (inbox / ".0006-half-written.json.tmp").write_text("{")
    (inbox / "0007-good.json").write_bytes(JobRunMessage.from_job_run(a_run()).to_line())

    async def scenario() -> None:
        async with running_agent(tmp_path) as agent:
            [run] = spooled_job_runs(agent.spool)
            assert run.job == "nightly-export"
            rejected = sorted(os.listdir(inbox / "rejected"))
            assert rejected == [
                "0001-broken.json",
                "0002-wrong.json",
                "0003-big.json",
                "0004-link.json",
                "0005-fifo.json",
            ]
            # A wrapper may still be writing it.
            assert sorted(os.listdir(inbox)) == [".0006-half-written.json.tmp", "rejected"]
            assert secret.read_text() == "do not read me"

    run_async(scenario)


def test_a_socket_path_too_long_for_unix_sockets_leaves_the_inbox_working(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 120)
    inbox = tmp_path / "inbox"

    async def scenario() -> None:
        spool = Spool(tmp_path / "spool.sqlite3", 1000, 10 * 1024 * 1024)
        listener = HandoffListener(
            deep / "h.sock",
            inbox,
            spool,
            ItemEncoder("acme", "web-01"),
            asyncio.Event(),
            ManualClock(T0),
            drain_interval_s=0.1,
        )
        await listener.start()
        try:
            delivery = await asyncio.to_thread(hand_off, a_run(), deep / "h.sock", inbox)
            assert delivery.via == "inbox"
            await eventually(lambda: spool.depth == 1, "drained")
        finally:
            await listener.stop()
            spool.close()

    run_async(scenario)
