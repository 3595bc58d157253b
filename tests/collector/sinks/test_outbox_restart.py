"""The whole collector, restarted: a notification owed to a receiver that was down is delivered
by the next run of the collector, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa
from daybreak.v1 import stream_pb2

from collector.app import CollectorApp
from collector.config import load_collector_config
from collector.store.schema import outbox
from probes.clock import ManualClock

from ..conftest import batch, hello, open_stream
from .conftest import CUSTOMER_HEAD, DEADLINE_S, HttpReceiver, secret_file

AGENT_TOKEN = "web1-agent-token-0123456789abcdef"  # noqa: S105 - a test token


def _configure(tmp_path: Path, hook_url: str) -> Path:
    customers = tmp_path / "customers"
    customers.mkdir()
    secret_file(customers, "hook.key", "hook-secret-0123456789abcdef")
    (customers / "acme.yaml").write_text(CUSTOMER_HEAD + f"""\
sinks:
  - {{type: webhook, name: desk-hook, url: "{hook_url}/hook", secret_file: hook.key,
     timeout_s: 2}}
""")
    secret_file(tmp_path, "web1.token", AGENT_TOKEN)
    config = tmp_path / "collector.yaml"
    config.write_text("""\
grpc: {listen: "127.0.0.1:0"}
http: {listen: "127.0.0.1:0"}
state_dir: state
customers_dir: customers
agents:
  - {agent_id: web1, customer: acme, token_file: web1.token}
log: {format: console, level: info}
""")
    return config


def _crit_disk(seq: int) -> stream_pb2.Item:
    return stream_pb2.Item(seq=seq, result=stream_pb2.Result(
        customer="acme", host="web1.acme.example", probe="disks", check="disk:/data",
        status=stream_pb2.STATUS_CRIT, metrics={"used_percent": 97.0},
        summary="/data 97 % used", observed_at_ms=1_772_431_200_000))


async def _until(condition: object, what: str) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while not await asyncio.to_thread(condition):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_a_notification_for_a_down_receiver_survives_a_collector_restart(
    tmp_path: Path,
) -> None:
    receiver = HttpReceiver(listening=False)
    config = load_collector_config(_configure(tmp_path, receiver.url))
    clock = ManualClock(datetime(2026, 3, 2, 1, 30, tzinfo=UTC))
    store = sa.create_engine(f"sqlite:///{tmp_path / 'state' / 'daybreak.db'}")

    def outbox_row() -> Any:
        with store.connect() as conn:
            return conn.execute(
                sa.select(outbox.c.state, outbox.c.attempts, outbox.c.last_error)).first()

    def attempted() -> bool:
        row = outbox_row()
        return row is not None and row.attempts >= 1 and row.last_error != ""

    def delivered() -> bool:
        row = outbox_row()
        return row is not None and row.state == "delivered"

    async def first_run() -> None:
        app = CollectorApp(config, clock)
        stop = asyncio.Event()
        serving = asyncio.create_task(app.serve(stop))
        await asyncio.wait_for(app.wait_started(), DEADLINE_S)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            call = open_stream(channel, AGENT_TOKEN)
            await call.write(hello())
            await call.read()
            await call.write(batch([_crit_disk(1)]))
            assert (await asyncio.wait_for(call.read(), DEADLINE_S)).ack.acked_seq == 1
            await _until(attempted, "a failed delivery attempt")
            stop.set()
        await asyncio.wait_for(serving, DEADLINE_S)

    async def second_run() -> None:
        app = CollectorApp(config, clock)
        stop = asyncio.Event()
        serving = asyncio.create_task(app.serve(stop))
        await asyncio.wait_for(app.wait_started(), DEADLINE_S)
        await _until(delivered, "the delivery after the restart")
        stop.set()
        await asyncio.wait_for(serving, DEADLINE_S)

    try:
        asyncio.run(first_run())
        row = outbox_row()
        assert row is not None
        assert row.state == "pending"
        assert "ConnectError" in row.last_error
        assert receiver.requests == []

        receiver.start_listening()
        clock.advance(3600)  # past any backoff
        asyncio.run(second_run())
    finally:
        receiver.close()
        store.dispose()

    (received,) = receiver.requests
    assert received.json()["event"] == "opened"
    assert received.json()["incident"]["host"] == "web1.acme.example"
