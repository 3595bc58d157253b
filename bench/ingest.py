"""Ingest benchmark: results per second from agents' streams committed to the store.

    .venv/bin/python bench/ingest.py [--streams 4 16] [--batch 500] [--total 200000]

The collector's gRPC service, ingest, writer and incident engine run in this process on a fresh
SQLite file; the agents' streams run in a second process (so they do not share the collector's
GIL), each sending batches of --batch results, up to agent.stream.MAX_BATCHES_IN_FLIGHT of them
unacked as an agent does, until --total results are acked. Then the same rows are inserted into
the same table shape with plain sqlite3 executemany, one commit per batch, for the baseline.

Prints figures, asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa
import structlog

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.stream import MAX_BATCHES_IN_FLIGHT  # noqa: E402
from collector.auth import AgentAuthenticator, sha256_hex  # noqa: E402
from collector.customers import load_customers  # noqa: E402
from collector.grpc_service import AgentStreamService, build_grpc_server  # noqa: E402
from collector.incidents.engine import IncidentEngine  # noqa: E402
from collector.ingest import Ingest  # noqa: E402
from collector.runtime import freeze_startup_objects, tune_interpreter  # noqa: E402
from collector.store.agents import AgentCredential, register_credentials  # noqa: E402
from collector.store.engine import open_store  # noqa: E402
from collector.store.schema import results  # noqa: E402
from collector.store.writer import StoreWriter  # noqa: E402
from probes.clock import SystemClock  # noqa: E402

CHECKS_PER_AGENT = 20
CUSTOMER = "acme"


def _token(stream: int) -> str:
    return hashlib.sha256(f"bench-agent-{stream}".encode()).hexdigest()


def _agent_id(stream: int) -> str:
    return f"bench-{stream:03d}"


# ---- the agents' process --------------------------------------------------------------------

def _batches(stream: int, per_stream: int, batch_size: int) -> list[bytes]:
    from daybreak.v1 import stream_pb2

    now_ms = int(time.time() * 1000)
    serialized = []
    seq = 0
    while seq < per_stream:
        items = []
        for _ in range(min(batch_size, per_stream - seq)):
            seq += 1
            check = seq % CHECKS_PER_AGENT
            items.append(stream_pb2.Item(seq=seq, result=stream_pb2.Result(
                customer=CUSTOMER, host=f"host-{stream:03d}", probe="disk",
                check=f"disk:/data{check}", status=stream_pb2.STATUS_OK,
                metrics={"used_percent": 40.0 + check, "free_bytes": 1.5e11},
                summary=f"/data{check} 4{check % 10} % used", observed_at_ms=now_ms + seq,
            )))
        message = stream_pb2.AgentMessage(batch=stream_pb2.ItemBatch(items=items))
        serialized.append(message.SerializeToString())
    return serialized


async def _agents(address: str, streams: int, per_stream: int, batch_size: int) -> float:
    from daybreak.v1 import stream_pb2

    prepared = [_batches(s, per_stream, batch_size) for s in range(streams)]

    async def one_stream(stream: int, channel: grpc.aio.Channel, start: asyncio.Event) -> None:
        connect = channel.stream_stream(
            "/daybreak.v1.AgentStream/Connect",
            request_serializer=lambda raw: raw,  # batches are serialized ahead of time
            response_deserializer=stream_pb2.CollectorMessage.FromString,
        )
        call = connect(metadata=(("authorization", f"Bearer {_token(stream)}"),))
        await call.write(stream_pb2.AgentMessage(hello=stream_pb2.Hello(
            agent_id=_agent_id(stream), customer=CUSTOMER, host=f"host-{stream:03d}",
            version="bench", next_seq=1)).SerializeToString())
        await call.read()  # Welcome
        await start.wait()
        # As the agent does (agent/stream.py): up to MAX_BATCHES_IN_FLIGHT batches sent ahead
        # of their acks, so the pipe stays full while the collector commits.
        window = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)

        async def read_acks() -> None:
            for _ in prepared[stream]:
                reply = await call.read()
                if reply is grpc.aio.EOF or reply.WhichOneof("body") != "ack":
                    raise RuntimeError(f"stream {stream}: expected an Ack, got {reply}")
                window.release()

        acks = asyncio.create_task(read_acks())
        for raw in prepared[stream]:
            await window.acquire()
            if acks.done():
                break  # it failed: its exception is raised below
            await call.write(raw)
        await acks
        await call.done_writing()

    async with grpc.aio.insecure_channel(address) as channel:
        start = asyncio.Event()
        tasks = [asyncio.create_task(one_stream(s, channel, start)) for s in range(streams)]
        await asyncio.sleep(0.5)  # every stream welcomed before the clock starts
        began = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        return time.perf_counter() - began


def _agents_process(address: str, streams: int, per_stream: int, batch_size: int,
                    out: Any) -> None:
    try:
        out.put(asyncio.run(_agents(address, streams, per_stream, batch_size)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which prints it
        out.put(f"the agents' process failed: {exc!r}")


# ---- the collector's side -------------------------------------------------------------------

async def _run_collector(db_url: str, streams: int, per_stream: int, batch_size: int,
                         evaluate: bool) -> tuple[float, int, float]:
    engine = open_store(db_url)
    credentials = [AgentCredential(_agent_id(s), CUSTOMER, sha256_hex(_token(s)))
                   for s in range(streams)]
    with engine.begin() as conn:
        register_credentials(conn, credentials)
    clock = SystemClock()
    writer = StoreWriter(engine)
    evaluator = (IncidentEngine(load_customers(REPO / "config" / "customers"), clock)
                 if evaluate else None)
    service = AgentStreamService(
        authenticator=AgentAuthenticator(credentials), ingest=Ingest(writer, clock, evaluator),
        writer=writer, clock=clock, max_batch_items=max(batch_size, 1000),
        heartbeat_interval_s=15)
    server, _health = build_grpc_server(service, max_message_bytes=64 * 1024 * 1024)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    freeze_startup_objects()  # as `daybreak serve` does once started
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    agents = spawn.Process(target=_agents_process,
                           args=(f"127.0.0.1:{port}", streams, per_stream, batch_size, out))
    agents.start()
    loop = asyncio.get_running_loop()
    cpu_before = time.process_time()
    elapsed = await loop.run_in_executor(None, out.get)
    cpu = time.process_time() - cpu_before
    await loop.run_in_executor(None, agents.join)
    if isinstance(elapsed, str):
        raise RuntimeError(elapsed)  # noqa: TRY004 - a failure report, not a type error
    service.begin_shutdown()
    await server.stop(1)
    writer.close()
    with engine.connect() as conn:
        stored = int(conn.execute(sa.select(sa.func.count()).select_from(results)).scalar_one())
    engine.dispose()
    return float(elapsed), stored, cpu


def _baseline(db_path: Path, rows: int, batch_size: int) -> float:
    """Bare sqlite3: the same rows, the same table shape, executemany, a commit per batch."""
    open_store(f"sqlite:///{db_path}").dispose()
    connection = sqlite3.connect(db_path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    received = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    prepared = [
        ("bench-000", seq, CUSTOMER, "host-000", "disk", f"disk:/data{seq % 20}", "OK",
         '{"used_percent":40.0,"free_bytes":150000000000.0}', f"/data{seq % 20} 40 % used", "",
         received, received)
        for seq in range(1, rows + 1)
    ]
    sql = ("INSERT INTO results (agent_id, seq, customer, host, probe, check_key, status, "
           "metrics_json, summary, detail, observed_at, received_at) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    began = time.perf_counter()
    for start in range(0, rows, batch_size):
        connection.execute("BEGIN")
        connection.executemany(sql, prepared[start:start + batch_size])
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - began
    connection.close()
    return rows / elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--total", type=int, default=200_000)
    parser.add_argument("--no-evaluate", action="store_true",
                        help="skip the incident engine (ingest and store only)")
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    # The interpreter as `daybreak serve` tunes it (collector/runtime.py).
    tune_interpreter()
    with tempfile.TemporaryDirectory(prefix="daybreak-bench-") as tmp:
        baseline = _baseline(Path(tmp) / "baseline.db", args.total, args.batch)
        for streams in args.streams:
            per_stream = args.total // streams
            db_url = f"sqlite:///{Path(tmp) / f'ingest-{streams}.db'}"
            elapsed, stored, cpu = asyncio.run(_run_collector(
                db_url, streams, per_stream, args.batch, not args.no_evaluate))
            rate = stored / elapsed
            print(f"ingest: {rate:,.0f} results/s")
            print(f"batch size: {args.batch}")
            print(f"streams: {streams}")
            print(f"results committed: {stored:,} in {elapsed:.2f} s")
            print(f"collector cpu: {cpu / elapsed:.2f} cores")
            print(f"sqlite insert: {baseline:,.0f} rows/s")
            print(f"ingest/sqlite ratio: {rate / baseline:.2f}")
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
