"""The stream client against a tiny collector (tiny_collector.py) on a real grpc.aio server."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daybreak.v1 import stream_pb2
from structlog.testing import capture_logs

from agent.config import AgentConfig, agent_config_model
from agent.spool import Spool
from agent.stream import (
    COMMANDS_DISABLED,
    ItemEncoder,
    ReconnectPolicy,
    StreamClient,
    build_batch,
)
from probes.clock import ManualClock
from probes.result import JobOutcome, JobRun, Result, Status
from tests.agent.tiny_collector import TOKEN, TinyCollector, start_server

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
FAST = ReconnectPolicy(
    multiplier_s=0.05, max_wait_s=0.2, refused_min_s=0.1, refused_max_s=0.2, healthy_after_s=60
)


def agent_config(tmp_path: Path, port: int, **overrides: Any) -> AgentConfig:
    token_file = tmp_path / "agent.token"
    if not token_file.exists():
        token_file.write_text(TOKEN + "\n")
        token_file.chmod(0o600)
    return agent_config_model({"disk"}).model_validate({
        "agent_id": "web-01",
        "customer": "acme",
        "host": "web-01.example",
        "collectors": [f"127.0.0.1:{port}"],
        "token_file": str(token_file),
        "state_dir": str(tmp_path / "state"),
        "probes": [{"type": "disk", "name": "root-disk"}, {"type": "disk", "name": "data"}],
        **overrides,
    })


def open_spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool.sqlite3", max_items=100_000, max_bytes=64 << 20)


def spool_results(spool: Spool, count: int, start: int = 0) -> None:
    encode = ItemEncoder(customer="acme", host="web-01.example")
    spool.append([
        encode(Result(probe="data", check="disk:/data", status=Status.OK,
                      summary=f"reading {n}", observed_at=NOW, metrics={"used_percent": n}))
        for n in range(start, start + count)
    ])


def client_for(config: AgentConfig, spool: Spool, items_waiting: asyncio.Event) -> StreamClient:
    return StreamClient(
        config, spool, items_waiting, ManualClock(NOW), "0.1.0-test",
        rng=random.Random(3),  # noqa: S311 - jitter, not a secret
        policy=FAST,
    )


async def eventually(condition: Callable[[], bool], what: str, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def test_hello_says_who_the_agent_is_and_where_its_spool_stands(tmp_path: Path) -> None:
    async def scenario() -> None:
        collector = TinyCollector()
        server, port = await start_server(collector)
        spool = open_spool(tmp_path)
        spool_results(spool, 3)
        spool.ack(1)
        client = client_for(agent_config(tmp_path, port), spool, asyncio.Event())
        task = asyncio.create_task(client.run())
        await eventually(lambda: len(collector.hellos) == 1, "the hello")
        hello = collector.hellos[0]
        assert (hello.agent_id, hello.customer, hello.host) == ("web-01", "acme", "web-01.example")
        assert hello.version == "0.1.0-test"
        assert hello.last_acked_seq == 1
        assert hello.next_seq == 4
        assert list(hello.probes) == ["root-disk", "data"]
        await eventually(lambda: len(collector.heartbeats) >= 1, "a heartbeat")
        heartbeat = collector.heartbeats[0]
        assert heartbeat.rss_bytes > 0
        assert heartbeat.sent_at_ms == int(NOW.timestamp() * 1000)
        await stopped(task)
        await server.stop(0)

    run(scenario)


def test_while_batches_flow_the_figures_ride_on_them_and_no_heartbeat_message_is_sent(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        # Batches every ~0.1 s against a 2 s interval: figures go out on a batch once a second;
        # a Heartbeat message would need a whole second with no batch at all.
        collector = TinyCollector(heartbeat_interval_s=2)
        server, port = await start_server(collector)
        spool = open_spool(tmp_path)
        items_waiting = asyncio.Event()
        config = agent_config(tmp_path, port, batch={"max_items": 10, "linger_ms": 10})
        task = asyncio.create_task(client_for(config, spool, items_waiting).run())
        await eventually(lambda: len(collector.hellos) == 1, "the hello")
        standalone_at_start = len(collector.heartbeats)
        for reading in range(40):
            spool_results(spool, 1, start=reading)
            items_waiting.set()
            await asyncio.sleep(0.1)
        await eventually(lambda: len(collector.committed) == 40, "every item")
        await stopped(task)
        await server.stop(0)
        # At most the one sent as the stream opened, before any batch could carry the figures.
        assert standalone_at_start <= 1
        assert len(collector.heartbeats) == standalone_at_start
        assert len(collector.batch_heartbeats) >= 2
        assert all(beat.rss_bytes > 0 for beat in collector.batch_heartbeats)

    run(scenario)


def test_items_arrive_in_seq_order_once_in_bounded_batches_and_acks_empty_the_spool(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        collector = TinyCollector(max_batch_items=7)
        server, port = await start_server(collector)
        spool = open_spool(tmp_path)
        spool_results(spool, 50)
        items_waiting = asyncio.Event()
        config = agent_config(tmp_path, port, batch={"max_items": 10, "linger_ms": 20})
        task = asyncio.create_task(client_for(config, spool, items_waiting).run())
        await eventually(lambda: len(collector.committed) == 50, "the first 50 items")
        # More items while connected: the scheduler's event wakes the sender.
        spool_results(spool, 5, start=50)
        items_waiting.set()
        await eventually(lambda: len(collector.committed) == 55, "5 more items")
        await eventually(lambda: spool.depth == 0, "acks to empty the spool")
        assert collector.committed == list(range(1, 56))
        # The collector's limit (7) is below the agent's (10).
        assert max(collector.batch_sizes) == 7
        assert spool.last_acked_seq == 55
        first = collector.items[0].result
        assert (first.customer, first.check, first.summary) == ("acme", "disk:/data", "reading 0")
        await stopped(task)
        await server.stop(0)

    run(scenario)


def test_a_job_run_travels_with_its_outcome_and_exit_code(tmp_path: Path) -> None:
    async def scenario() -> None:
        collector = TinyCollector()
        server, port = await start_server(collector)
        spool = open_spool(tmp_path)
        encode = ItemEncoder(customer="acme", host="web-01.example")
        spool.append([encode(JobRun(
            probe="etl", job="nightly-load", run_id="r1", outcome=JobOutcome.FAILED,
            observed_at=NOW, started_at=NOW, finished_at=NOW, exit_code=0,
            excerpt="ERROR: load failed",
        ))])
        task = asyncio.create_task(client_for(agent_config(tmp_path, port), spool,
                                              asyncio.Event()).run())
        await eventually(lambda: len(collector.items) == 1, "the job run")
        job_run = collector.items[0].job_run
        assert job_run.outcome == stream_pb2.JOB_OUTCOME_FAILED
        assert job_run.HasField("exit_code")
        assert job_run.exit_code == 0
        assert job_run.excerpt == "ERROR: load failed"
        await stopped(task)
        await server.stop(0)

    run(scenario)


def test_after_the_collector_comes_back_everything_unacked_is_sent_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        collector = TinyCollector()
        collector.acking = False
        server, port = await start_server(collector)
        spool = open_spool(tmp_path)
        spool_results(spool, 20)
        config = agent_config(tmp_path, port, batch={"max_items": 5, "linger_ms": 10})
        client = client_for(config, spool, asyncio.Event())
        task = asyncio.create_task(client.run())
        # Batches arrive but nothing is committed: then the collector goes away.
        await eventually(lambda: sum(collector.batch_sizes) >= 5, "unacked batches")
        await server.stop(0)
        assert spool.depth == 20
        await eventually(lambda: client.connected_endpoint is None, "the disconnect")

        collector.acking = True
        server, _ = await start_server(collector, port=port)
        await eventually(lambda: len(collector.committed) == 20, "all items after reconnect")
        assert collector.committed == list(range(1, 21))
        await eventually(lambda: spool.depth == 0, "acks to empty the spool")
        assert client.sessions_opened == 2
        assert collector.hellos[1].last_acked_seq == 0
        await stopped(task)
        await server.stop(0)

    run(scenario)


def test_a_reset_spool_continues_numbering_above_what_the_collector_has(tmp_path: Path) -> None:
    async def scenario() -> None:
        collector = TinyCollector(acked_seq=100)
        server, port = await start_server(collector)
        spool = open_spool(tmp_path)
        spool_results(spool, 3)
        task = asyncio.create_task(client_for(agent_config(tmp_path, port), spool,
                                              asyncio.Event()).run())
        await eventually(lambda: len(collector.committed) == 3, "the renumbered items")
        assert collector.committed == [101, 102, 103]
        assert [i.result.summary for i in collector.items] == ["reading 0", "reading 1",
                                                               "reading 2"]
        await stopped(task)
        await server.stop(0)

    run(scenario)


def test_a_refused_token_is_logged_and_retried_without_crashing(tmp_path: Path) -> None:
    async def scenario() -> None:
        collector = TinyCollector()
        server, port = await start_server(collector)
        config = agent_config(tmp_path, port)
        config.token_file.write_text("not-the-token\n")
        with capture_logs() as logs:
            task = asyncio.create_task(client_for(config, open_spool(tmp_path),
                                                  asyncio.Event()).run())
            await eventually(lambda: collector.refusals >= 2, "a retry after the refusal")
            assert not task.done()
        refused = [e for e in logs if e["event"] == "stream.refused"]
        assert refused
        assert "UNAUTHENTICATED" in refused[0]["error"]
        # The operator fixes the token: the next attempt gets in without a restart.
        config.token_file.write_text(TOKEN + "\n")
        await eventually(lambda: len(collector.hellos) == 1, "the hello with the right token")
        await stopped(task)
        await server.stop(0)

    run(scenario)


def test_a_command_is_answered_with_a_refusal_for_now(tmp_path: Path) -> None:
    async def scenario() -> None:
        collector = TinyCollector()
        collector.commands.append(stream_pb2.Command(command_id="c-1", probe="data",
                                                     requested_by="tier2@msp"))
        server, port = await start_server(collector)
        task = asyncio.create_task(client_for(agent_config(tmp_path, port), open_spool(tmp_path),
                                              asyncio.Event()).run())
        await eventually(lambda: len(collector.command_results) == 1, "the command result")
        [answer] = collector.command_results
        assert answer.command_id == "c-1"
        assert answer.error == COMMANDS_DISABLED
        await stopped(task)
        await server.stop(0)

    run(scenario)


def test_a_batch_stops_at_its_byte_cap_but_always_carries_one_item() -> None:
    rows = [(seq, stream_pb2.Item(result=stream_pb2.Result(summary="x" * 100)).SerializeToString())
            for seq in range(1, 11)]
    batch = build_batch(rows, max_bytes=400)
    assert [i.seq for i in batch.items] == [1, 2, 3]
    assert batch.ByteSize() < 400
    assert [i.seq for i in build_batch(rows[4:], max_bytes=10).items] == [5]
