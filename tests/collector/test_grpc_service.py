"""The agent stream over a real grpc.aio server on loopback, with a real client."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from daybreak.v1 import stream_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from collector.store.schema import agents, audit_log, check_state, results
from probes.clock import ManualClock

from .conftest import DB1_TOKEN, WEB1_TOKEN

DEADLINE_S = 10.0


async def _refusal(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await asyncio.wait_for(call.read(), DEADLINE_S)
    code: grpc.StatusCode = refused.value.code()
    return code


async def _until(condition: Any, what: str) -> None:
    """Poll a condition with a deadline (no sleeping for a fixed time, no timing assertions)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _welcomed(call: Any, wire: Any, **hello: Any) -> stream_pb2.Welcome:
    await call.write(wire.hello(**hello))
    message = await asyncio.wait_for(call.read(), DEADLINE_S)
    assert message.WhichOneof("body") == "welcome"
    welcome: stream_pb2.Welcome = message.welcome
    return welcome


async def _acked(call: Any) -> int:
    message = await asyncio.wait_for(call.read(), DEADLINE_S)
    assert message.WhichOneof("body") == "ack"
    acked: int = message.ack.acked_seq
    return acked


def _audit_actions(engine: sa.Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [(row.actor, row.action, row.detail) for row in conn.execute(
            sa.select(audit_log.c.actor, audit_log.c.action, audit_log.c.detail)
            .order_by(audit_log.c.id)
        )]


def test_a_wrong_token_is_refused_as_unauthenticated_and_audited(
    store: sa.Engine, clock: ManualClock, collector_at: Any, wire: Any
) -> None:
    async def scenario() -> None:
        async with collector_at(store, clock) as collector, \
                grpc.aio.insecure_channel(collector.address) as channel:
            call = wire.open_stream(channel, "not-a-token-anyone-was-given")
            await call.write(wire.hello())
            assert await _refusal(call) == grpc.StatusCode.UNAUTHENTICATED
            no_token = wire.open_stream(channel, "")
            assert await _refusal(no_token) == grpc.StatusCode.UNAUTHENTICATED

    asyncio.run(scenario())
    refusals = [a for a in _audit_actions(store) if a[1] == "stream.refused"]
    assert len(refusals) == 2
    assert all("not-a-token" not in detail for _, _, detail in refusals)


def test_an_agent_claiming_another_customer_in_hello_is_refused_as_permission_denied(
    store: sa.Engine, clock: ManualClock, collector_at: Any, wire: Any
) -> None:
    async def scenario() -> None:
        async with collector_at(store, clock) as collector, \
                grpc.aio.insecure_channel(collector.address) as channel:
            call = wire.open_stream(channel, WEB1_TOKEN)
            await call.write(wire.hello(customer="globex"))
            assert await _refusal(call) == grpc.StatusCode.PERMISSION_DENIED
            # Another agent's identity with this agent's token is refused the same way.
            impostor = wire.open_stream(channel, WEB1_TOKEN)
            await impostor.write(wire.hello(agent_id="db1", customer="globex"))
            assert await _refusal(impostor) == grpc.StatusCode.PERMISSION_DENIED

    asyncio.run(scenario())
    refusals = [a for a in _audit_actions(store) if a[1] == "stream.refused"]
    assert [actor for actor, _, _ in refusals] == ["agent:web1", "agent:web1"]
    assert "Hello says web1/globex" in refusals[0][2]


def test_a_first_message_other_than_hello_is_refused_as_invalid_argument(
    store: sa.Engine, clock: ManualClock, collector_at: Any, wire: Any
) -> None:
    async def scenario() -> None:
        async with collector_at(store, clock) as collector, \
                grpc.aio.insecure_channel(collector.address) as channel:
            call = wire.open_stream(channel, WEB1_TOKEN)
            await call.write(wire.batch([wire.result_item(1)]))
            assert await _refusal(call) == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(scenario())
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(results)).scalar_one() == 0


def test_welcome_carries_the_stored_acked_seq_and_the_limits(
    store: sa.Engine, clock: ManualClock, collector_at: Any, wire: Any
) -> None:
    with store.begin() as conn:
        conn.execute(agents.update().where(agents.c.agent_id == "web1").values(acked_seq=41))

    async def scenario() -> stream_pb2.Welcome:
        async with collector_at(store, clock, max_batch_items=250) as collector, \
                grpc.aio.insecure_channel(collector.address) as channel:
            call = wire.open_stream(channel, WEB1_TOKEN)
            welcome = await _welcomed(call, wire)
            await _until(lambda: collector.count(agents, agents.c.connected.is_(True)) == 1,
                         "the agent marked connected")
            await call.done_writing()
            await _until(lambda: collector.count(agents, agents.c.connected.is_(True)) == 0,
                         "the agent marked disconnected after the stream ended")
            return welcome

    welcome = asyncio.run(scenario())
    assert (welcome.acked_seq, welcome.max_batch_items, welcome.heartbeat_interval_s) == (
        41, 250, 15)
    with store.connect() as conn:
        row = conn.execute(sa.select(agents).where(agents.c.agent_id == "web1")).one()
    assert (row.host, row.version) == ("web1.acme.example", "0.1.0")


def test_a_replayed_batch_is_stored_once_and_acked_again(
    store: sa.Engine, clock: ManualClock, collector_at: Any, wire: Any
) -> None:
    async def scenario() -> list[int]:
        async with collector_at(store, clock) as collector, \
                grpc.aio.insecure_channel(collector.address) as channel:
            first = wire.open_stream(channel, WEB1_TOKEN)
            await _welcomed(first, wire)
            await first.write(wire.batch([wire.result_item(s) for s in (1, 2, 3)]))
            acks = [await _acked(first)]
            first.cancel()
            # The agent reconnects without having seen the ack and sends the same batch again,
            # plus one new item.
            second = wire.open_stream(channel, WEB1_TOKEN)
            await _welcomed(second, wire)
            await second.write(wire.batch([wire.result_item(s) for s in (1, 2, 3, 4)]))
            acks.append(await _acked(second))
            await second.done_writing()
            return acks

    assert asyncio.run(scenario()) == [3, 4]
    with store.connect() as conn:
        seqs = conn.execute(sa.select(results.c.seq).order_by(results.c.seq)).scalars().all()
        acked = conn.execute(
            sa.select(agents.c.acked_seq).where(agents.c.agent_id == "web1")).scalar_one()
    assert seqs == [1, 2, 3, 4]
    assert acked == 4


def test_a_result_for_another_customer_is_dropped_and_audited_but_acked(
    store: sa.Engine, clock: ManualClock, collector_at: Any, wire: Any
) -> None:
    async def scenario() -> int:
        async with collector_at(store, clock) as collector, \
                grpc.aio.insecure_channel(collector.address) as channel:
            call = wire.open_stream(channel, WEB1_TOKEN)
            await _welcomed(call, wire)
            await call.write(wire.batch([
                wire.result_item(1),
                wire.result_item(2, customer="globex", check="disk:/secret"),
                wire.result_item(3),
            ]))
            acked = await _acked(call)
            await call.done_writing()
            return acked

    assert asyncio.run(scenario()) == 3
    with store.connect() as conn:
        stored = conn.execute(sa.select(results.c.seq, results.c.customer)).all()
        states = conn.execute(sa.select(check_state.c.check_key)).scalars().all()
    assert sorted(stored) == [(1, "acme"), (3, "acme")]
    assert states == ["disk:/data"]
    refused = [a for a in _audit_actions(store) if a[1] == "ingest.refused_customer"]
    assert len(refused) == 1
    assert refused[0][0] == "agent:web1"
    assert "'globex'" in refused[0][2]


def test_the_ack_is_sent_only_after_the_batch_is_committed(
    store: sa.Engine, clock: ManualClock, collector_at: Any, wire: Any
) -> None:
    async def scenario() -> None:
        async with collector_at(store, clock) as collector, \
                grpc.aio.insecure_channel(collector.address) as channel:
            call = wire.open_stream(channel, WEB1_TOKEN)
            await _welcomed(call, wire)
            # Hold the writer thread, so the batch cannot be committed yet.
            release = threading.Event()
            holding = threading.Event()

            def hold(_conn: sa.Connection) -> None:
                holding.set()
                release.wait(DEADLINE_S)

            collector.writer.submit(hold)
            await _until(holding.is_set, "the writer held")
            await call.write(wire.batch([wire.result_item(1)]))
            ack = asyncio.ensure_future(call.read())
            for _ in range(20):
                await asyncio.sleep(0.01)
            assert not ack.done(), "acked before the batch was committed"
            assert collector.count(results) == 0
            release.set()
            message = await asyncio.wait_for(ack, DEADLINE_S)
            # When the Ack arrives, the row it covers is in the store.
            assert message.ack.acked_seq == 1
            assert collector.count(results, results.c.seq == 1) == 1
            await call.done_writing()

    asyncio.run(scenario())


def test_a_batch_with_descending_seqs_or_over_the_limit_is_refused(
    store: sa.Engine, clock: ManualClock, collector_at: Any, wire: Any
) -> None:
    async def scenario() -> list[grpc.StatusCode]:
        codes = []
        async with collector_at(store, clock, max_batch_items=2) as collector, \
                grpc.aio.insecure_channel(collector.address) as channel:
            for items in ([2, 1], [1, 2, 3]):
                call = wire.open_stream(channel, WEB1_TOKEN)
                await _welcomed(call, wire)
                await call.write(wire.batch([wire.result_item(s) for s in items]))
                codes.append(await _refusal(call))
        return codes

    assert asyncio.run(scenario()) == [grpc.StatusCode.INVALID_ARGUMENT] * 2
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(results)).scalar_one() == 0


@pytest.mark.parametrize("on_a_batch", [False, True], ids=["heartbeat", "on_a_batch"])
def test_the_agents_figures_update_its_row_sent_alone_or_on_a_batch(
    store: sa.Engine, clock: ManualClock, collector_at: Any, wire: Any, on_a_batch: bool
) -> None:
    figures = stream_pb2.Heartbeat(uptime_s=120.0, spool_depth=17, results_dropped=3,
                                   rss_bytes=52_000_000, cpu_percent=0.4)

    async def scenario() -> None:
        async with collector_at(store, clock) as collector, \
                grpc.aio.insecure_channel(collector.address) as channel:
            call = wire.open_stream(channel, DB1_TOKEN)
            await _welcomed(call, wire, agent_id="db1", customer="globex")
            if on_a_batch:
                message = wire.batch([wire.result_item(1, customer="globex")])
                message.batch.heartbeat.CopyFrom(figures)
                await call.write(message)
                assert await _acked(call) == 1
            else:
                await call.write(stream_pb2.AgentMessage(heartbeat=figures))
            await _until(lambda: collector.count(
                agents, agents.c.agent_id == "db1", agents.c.spool_depth == 17) == 1,
                "the figures stored")
            await call.done_writing()

    asyncio.run(scenario())
    with store.connect() as conn:
        row = conn.execute(sa.select(agents).where(agents.c.agent_id == "db1")).one()
    assert (row.results_dropped, row.rss_bytes, row.uptime_s) == (3, 52_000_000, 120.0)


def test_a_second_stream_of_the_same_agent_replaces_the_first(
    store: sa.Engine, clock: ManualClock, collector_at: Any, wire: Any
) -> None:
    async def scenario() -> None:
        async with collector_at(store, clock) as collector, \
                grpc.aio.insecure_channel(collector.address) as channel:
            old = wire.open_stream(channel, WEB1_TOKEN)
            await _welcomed(old, wire)
            new = wire.open_stream(channel, WEB1_TOKEN)
            await _welcomed(new, wire)
            assert await _refusal(old) == grpc.StatusCode.ABORTED
            # The replaced stream's end does not mark the agent disconnected.
            await new.write(wire.batch([wire.result_item(1)]))
            assert await _acked(new) == 1
            assert collector.count(agents, agents.c.connected.is_(True)) == 1
            assert collector.service.connected_agents == ["web1"]
            await new.done_writing()

    asyncio.run(scenario())


def test_shutdown_ends_live_streams_as_unavailable_and_the_health_service_answers(
    store: sa.Engine, clock: ManualClock, collector_at: Any, wire: Any
) -> None:
    async def scenario() -> None:
        async with collector_at(store, clock) as collector, \
                grpc.aio.insecure_channel(collector.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answer = await health.Check(
                health_pb2.HealthCheckRequest(service="daybreak.v1.AgentStream"))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            call = wire.open_stream(channel, WEB1_TOKEN)
            await _welcomed(call, wire)
            collector.service.begin_shutdown()
            assert await _refusal(call) == grpc.StatusCode.UNAVAILABLE
            late = wire.open_stream(channel, WEB1_TOKEN)
            assert await _refusal(late) == grpc.StatusCode.UNAVAILABLE

    asyncio.run(scenario())
