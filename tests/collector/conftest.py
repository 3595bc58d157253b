"""A real collector core for tests: a migrated SQLite file, the writer, ingest, and the agent
stream service on a real grpc.aio server on 127.0.0.1 with a port the system chooses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from daybreak.v1 import stream_pb2, stream_pb2_grpc

from collector.auth import AgentAuthenticator, sha256_hex
from collector.grpc_service import AgentStreamService, build_grpc_server, mark_serving
from collector.ingest import Ingest, ItemEvaluator
from collector.store.agents import AgentCredential, register_credentials
from collector.store.engine import open_store
from collector.store.writer import StoreWriter
from probes.clock import ManualClock

WEB1_TOKEN = "web1-token-0123456789abcdef"  # noqa: S105 - a test token
DB1_TOKEN = "db1-token-0123456789abcdef"  # noqa: S105 - a test token
CREDENTIALS = (
    AgentCredential("web1", "acme", sha256_hex(WEB1_TOKEN)),
    AgentCredential("db1", "globex", sha256_hex(DB1_TOKEN)),
)
START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sa.Engine]:
    """A real, migrated SQLite store with the two test agents registered."""
    engine = open_store(f"sqlite:///{tmp_path / 'daybreak.db'}")
    with engine.begin() as conn:
        register_credentials(conn, CREDENTIALS)
    yield engine
    engine.dispose()


@pytest.fixture
def writer(store: sa.Engine) -> Iterator[StoreWriter]:
    store_writer = StoreWriter(store)
    yield store_writer
    store_writer.close()


@dataclass
class RunningCollector:
    address: str
    engine: sa.Engine
    service: AgentStreamService
    writer: StoreWriter

    def count(self, table: sa.Table, *where: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(
                *where)).scalar_one())


@asynccontextmanager
async def running_collector(
    engine: sa.Engine,
    clock: ManualClock,
    *,
    evaluator: ItemEvaluator | None = None,
    max_batch_items: int = 100,
) -> AsyncIterator[RunningCollector]:
    writer = StoreWriter(engine)
    service = AgentStreamService(
        authenticator=AgentAuthenticator(CREDENTIALS),
        ingest=Ingest(writer, clock, evaluator),
        writer=writer,
        clock=clock,
        max_batch_items=max_batch_items,
        heartbeat_interval_s=15,
    )
    server, health = build_grpc_server(service, max_message_bytes=4 * 1024 * 1024)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await mark_serving(health, True)
    try:
        yield RunningCollector(f"127.0.0.1:{port}", engine, service, writer)
    finally:
        service.begin_shutdown()
        await server.stop(2)
        writer.close()


@pytest.fixture
def collector_at() -> Any:
    """`async with collector_at(store, clock) as collector:` runs the stream service."""
    return running_collector


# ---- the agent's side, written here against the generated stubs -------------------------

def open_stream(channel: grpc.aio.Channel, token: str) -> Any:
    stub = stream_pb2_grpc.AgentStreamStub(channel)
    return stub.Connect(metadata=(("authorization", f"Bearer {token}"),))


def hello(agent_id: str = "web1", customer: str = "acme", last_acked_seq: int = 0,
          next_seq: int = 1) -> stream_pb2.AgentMessage:
    return stream_pb2.AgentMessage(hello=stream_pb2.Hello(
        agent_id=agent_id, customer=customer, host="web1.acme.example", version="0.1.0",
        last_acked_seq=last_acked_seq, next_seq=next_seq,
    ))


def result_item(seq: int, *, customer: str = "acme", check: str = "disk:/data",
                status: stream_pb2.Status.ValueType = stream_pb2.STATUS_OK,
                observed_at_ms: int = 1_772_431_200_000) -> stream_pb2.Item:
    return stream_pb2.Item(seq=seq, result=stream_pb2.Result(
        customer=customer, host="web1.acme.example", probe="data-disks", check=check,
        status=status, metrics={"used_percent": 42.0}, summary=f"result {seq}",
        observed_at_ms=observed_at_ms,
    ))


def batch(items: Sequence[stream_pb2.Item]) -> stream_pb2.AgentMessage:
    return stream_pb2.AgentMessage(batch=stream_pb2.ItemBatch(items=list(items)))


@pytest.fixture
def wire() -> Any:
    """The agent-side helpers: wire.open_stream, wire.hello, wire.result_item, wire.batch."""

    class Wire:
        pass

    helpers = Wire()
    for function in (open_stream, hello, result_item, batch):
        setattr(helpers, function.__name__, staticmethod(function))
    return helpers
