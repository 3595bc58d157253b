"""The whole collector in-process: config file, token files, customers, gRPC, HTTP, shutdown."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
import sqlalchemy as sa
from daybreak.v1 import stream_pb2
from structlog.testing import capture_logs

from collector.app import CollectorApp
from collector.config import load_collector_config
from collector.store.schema import incidents, results
from probes.clock import ManualClock

from .conftest import batch, hello, open_stream

REPO = Path(__file__).resolve().parents[2]
AGENT_TOKEN = "web1-agent-token-0123456789abcdef"  # noqa: S105 - a test token
API_TOKEN = "desk-api-token-0123456789abcdef"  # noqa: S105 - a test token
DEADLINE_S = 10.0


def _configure(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config" / "customers", tmp_path / "customers")
    for name, token in (("web1.token", AGENT_TOKEN), ("desk.token", API_TOKEN)):
        path = tmp_path / name
        path.write_text(token + "\n")
        path.chmod(0o600)
    config = tmp_path / "collector.yaml"
    config.write_text("""\
grpc: {listen: "127.0.0.1:0"}
http: {listen: "127.0.0.1:0"}
state_dir: state
customers_dir: customers
agents:
  - {agent_id: web1, customer: acme, token_file: web1.token}
api_tokens:
  - {name: desk, role: service_desk, token_file: desk.token}
log: {format: console, level: info}
""")
    return config


def _disk_result(seq: int, used_percent: float) -> stream_pb2.Item:
    return stream_pb2.Item(seq=seq, result=stream_pb2.Result(
        customer="acme", host="web1.acme.example", probe="disks", check="disk:/data",
        status=stream_pb2.STATUS_CRIT, metrics={"used_percent": used_percent},
        summary=f"/data {used_percent} % used", observed_at_ms=1_772_431_200_000))


def test_the_collector_ingests_opens_an_incident_serves_the_api_and_stops_in_order(
    tmp_path: Path,
) -> None:
    config = load_collector_config(_configure(tmp_path))
    app = CollectorApp(config, ManualClock(datetime(2026, 3, 2, 6, 0, tzinfo=UTC)))

    async def scenario() -> Any:
        stop = asyncio.Event()
        serving = asyncio.create_task(app.serve(stop))
        await asyncio.wait_for(app.wait_started(), DEADLINE_S)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            call = open_stream(channel, AGENT_TOKEN)
            await call.write(hello())
            assert (await call.read()).WhichOneof("body") == "welcome"
            await call.write(batch([_disk_result(1, 95.0)]))
            assert (await asyncio.wait_for(call.read(), DEADLINE_S)).ack.acked_seq == 1
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{app.http_port}",
                headers={"Authorization": f"Bearer {API_TOKEN}"},
            ) as http:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + DEADLINE_S
                while True:
                    listed = (await http.get("/api/v1/incidents")).json()
                    if listed.get("incidents") or loop.time() > deadline:
                        break
                    await asyncio.sleep(0.05)
            stop.set()
            # The live stream is ended by the shutdown, as UNAVAILABLE.
            try:
                await asyncio.wait_for(call.read(), DEADLINE_S)
                code = None
            except grpc.aio.AioRpcError as ended:
                code = ended.code()
        await asyncio.wait_for(serving, DEADLINE_S)
        return listed, code

    with capture_logs() as logs:
        listed, code = asyncio.run(scenario())

    assert code == grpc.StatusCode.UNAVAILABLE
    assert len(listed["incidents"]) == 1
    events = [entry["event"] for entry in logs]
    assert events.index("collector.listening") < events.index("collector.stopping") < \
        events.index("collector.stopped")
    listening = next(e for e in logs if e["event"] == "collector.listening")
    assert listening["grpc"] == f"127.0.0.1:{app.grpc_port}"
    assert listening["http"] == f"127.0.0.1:{app.http_port}"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state' / 'daybreak.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(results)).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(incidents)).scalar() == 1
    engine.dispose()
