"""Incident benchmark: expectations evaluated per second, and how soon a failing result and a
passed deadline become an incident visible through the API, at 5,000 hosts x 10 checks.

    .venv/bin/python bench/incidents.py [--hosts 5000] [--agents 100] [--interval 10]
                                        [--measure 60] [--profile stacks.txt]

The real collector runs as `daybreak serve` in its own process, with one customer file whose
expectations cover the fleet: a threshold on each of the 10 checks, `check_freshness` on every
check, `agent_heartbeat` on every agent, and `job_schedule` deadlines on a subset of hosts
(loaded by `POST /api/v1/reload` once every host has reported: slots are materialised for the
hosts the collector knows). Every agent is enrolled in collector.yaml with its own token file
and has its own gRPC stream (multiplexed over a few HTTP/2 connections from --processes client
processes). By default 100 agents report 50 hosts each, every item naming its host, as a relay
polling hosts does; `--agents 5000` gives every host an agent of its own. In steady state every
host's 10 checks report every --interval seconds (agents' phases spread evenly: 5,000 hosts at
10 s is 5,000 results/s) and every agent sends its figures every 15 s by the agent's rule (on a
batch once half an interval old, as a Heartbeat message only when no batch carried them), waiting
for each batch's Ack as an agent does.

Measured, over the --measure window after a warm-up:
1. evaluations: results committed and judged per second by the collector at that load (the
   engine runs on every committed batch before the writer takes the next group, so committed is
   judged); and IncidentEngine.on_items alone on a real SQLite store, afterwards, in this
   process.
2. failing result to incident: at random moments a random host's next batch carries one check
   CRIT; from that batch's send to the incident first listed by `GET /api/v1/incidents`.
3. deadline to incident: job_schedule slots whose complete_by passes during the window without a
   run; from the due instant to the incident first listed. Some slots get a successful run first
   and must open nothing.

A separate process polls `GET /api/v1/incidents?state=all` every 20 ms, newest first, and notes
the wall-clock time it first sees each incident (the time the answer arrived: conservative).
Loopback only. Prints figures; asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

CUSTOMER = "fleet"
HEARTBEAT_INTERVAL_S = 15
POLL_INTERVAL_S = 0.02
# Streams per HTTP/2 connection from the client processes.
STREAMS_PER_CHANNEL = 100
HANDSHAKES_IN_FLIGHT = 200
CONNECT_ATTEMPTS = 20

# The 10 checks of every host: (check key, probe, metric, normal value, the threshold's name).
CHECKS: tuple[tuple[str, str, str, float], ...] = (
    ("disk:/", "disks", "used_percent", 41.0),
    ("disk:/var", "disks", "used_percent", 37.0),
    ("disk:/data", "disks", "used_percent", 55.0),
    ("mem", "memory", "used_percent", 48.0),
    ("swap", "memory", "swap_used_percent", 3.0),
    ("load", "load", "load1", 0.7),
    ("ntp", "time", "offset_ms", 2.0),
    ("svc:sshd", "services", "", 0.0),
    ("svc:cron", "services", "", 0.0),
    ("svc:app", "services", "", 0.0),
)
THRESHOLD_OF_CHECK = {
    "disk:/": "disk-space", "disk:/var": "disk-space", "disk:/data": "disk-space",
    "mem": "memory", "swap": "swap", "load": "load", "ntp": "clock-offset",
    "svc:sshd": "services", "svc:cron": "services", "svc:app": "services",
}
FRESHNESS_MAX_AGE = "60s"
HEARTBEAT_ALLOW = "90s"


def host_name(index: int) -> str:
    return f"h{index:05d}"


def agent_name(index: int) -> str:
    return f"agent-{index:05d}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))  # ceil
    return sorted_values[min(rank, len(sorted_values)) - 1]


# ---- configuration files --------------------------------------------------------------------

def base_expectations() -> list[dict[str, Any]]:
    return [
        {"kind": "threshold", "name": "disk-space", "check": "disk:*", "metric": "used_percent",
         "warn": 85, "crit": 95},
        {"kind": "threshold", "name": "memory", "check": "mem", "metric": "used_percent",
         "warn": 90, "crit": 97},
        {"kind": "threshold", "name": "swap", "check": "swap", "metric": "swap_used_percent",
         "warn": 50, "crit": 80},
        {"kind": "threshold", "name": "load", "check": "load", "metric": "load1",
         "warn": 8, "crit": 16},
        {"kind": "threshold", "name": "clock-offset", "check": "ntp", "metric": "offset_ms",
         "warn": 100, "crit": 500},
        {"kind": "threshold", "name": "services", "check": "svc:*"},
        {"kind": "check_freshness", "name": "checks-fresh", "check": "*",
         "max_age": FRESHNESS_MAX_AGE},
        {"kind": "agent_heartbeat", "name": "agents-alive", "hosts": ["*"],
         "allow": HEARTBEAT_ALLOW},
    ]


@dataclass(frozen=True, slots=True)
class DeadlineWave:
    name: str
    hosts: tuple[int, ...]
    due_at: float  # wall-clock epoch seconds
    succeeding: frozenset[int]  # hosts that send a successful run before the deadline


def write_customer(path: Path, waves: Sequence[DeadlineWave], slot_at: datetime) -> None:
    expectations = base_expectations()
    cron = f"{slot_at.minute} {slot_at.hour} * * *"
    for wave in waves:
        complete_after = round(wave.due_at - slot_at.timestamp())
        expectations.append({
            "kind": "job_schedule", "name": wave.name, "job": f"{wave.name}-job",
            "hosts": [host_name(h) for h in wave.hosts], "schedule": cron,
            "complete_by": f"{complete_after}s",
        })
    path.write_text(yaml.safe_dump({
        "customer": CUSTOMER, "name": "Benchmark fleet", "timezone": "UTC",
        "expectations": expectations,
    }, sort_keys=False))


def write_collector_config(root: Path, nonce: str, hosts: int, grpc_port: int,
                           http_port: int) -> str:
    tokens = root / "tokens"
    tokens.mkdir()
    agents = []
    for index in range(hosts):
        token_file = tokens / f"{agent_name(index)}.token"
        token_file.write_text(agent_token(nonce, index))
        token_file.chmod(0o600)
        agents.append({"agent_id": agent_name(index), "customer": CUSTOMER,
                       "token_file": str(token_file)})
    api_token = secrets.token_urlsafe(32)
    (root / "api.token").write_text(api_token)
    (root / "api.token").chmod(0o600)
    (root / "collector.yaml").write_text(yaml.safe_dump({
        "grpc": {"listen": f"127.0.0.1:{grpc_port}"},
        "http": {"listen": f"127.0.0.1:{http_port}"},
        "state_dir": str(root / "state"),
        "customers_dir": str(root / "customers"),
        "heartbeat_interval_s": HEARTBEAT_INTERVAL_S,
        "agents": agents,
        "api_tokens": [{"name": "bench", "role": "admin", "token_file": str(root / "api.token")}],
        "log": {"format": "json", "level": "warning"},
    }))
    return api_token


def agent_token(nonce: str, index: int) -> str:
    return f"{nonce}-{index:05d}"


# ---- the agents' processes ------------------------------------------------------------------

@dataclass(slots=True)
class AgentPlan:
    """What the parent tells an agents' process once every stream is connected."""

    start_at: float
    end_at: float
    interval_s: float
    agents: int
    # host index -> wall times after which that host's next batch carries a CRIT (check index)
    failures: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    # host index -> (job name, slot epoch, send at): a successful run of that slot's job
    successes: dict[int, tuple[str, float, float]] = field(default_factory=dict)


def _result(stream_pb2: Any, host: str, check_index: int, now_ms: int, crit: bool) -> Any:
    check, probe, metric, normal = CHECKS[check_index]
    if metric:
        value = 99.0 if crit and metric.endswith("percent") else (
            50.0 if crit and metric == "load1" else (900.0 if crit else normal))
        metrics = {metric: value}
        summary = f"{check} {metric}={value:g}"
    else:
        metrics = {}
        summary = f"{check} {'failed' if crit else 'active (running)'}"
    return stream_pb2.Result(
        customer=CUSTOMER, host=host, probe=probe, check=check,
        status=stream_pb2.STATUS_CRIT if crit else stream_pb2.STATUS_OK,
        metrics=metrics, summary=summary, observed_at_ms=now_ms)


async def _one_agent(nonce: str, agent: int, hosts: Sequence[int], channel: Any,
                     handshakes: asyncio.Semaphore, plan_box: list[AgentPlan],
                     go: asyncio.Event, connected: list[int],
                     records: dict[str, list[Any]]) -> None:
    """One enrolled agent: its own stream, reporting for `hosts` (one host, or many as a
    relay polling hosts over SSH does: every item names its host)."""
    import grpc
    from daybreak.v1 import stream_pb2

    agent_id = agent_name(agent)
    stream_host = host_name(hosts[0]) if len(hosts) == 1 else f"relay-{agent:05d}"
    connect = channel.stream_stream(
        "/daybreak.v1.AgentStream/Connect",
        request_serializer=stream_pb2.AgentMessage.SerializeToString,
        response_deserializer=stream_pb2.CollectorMessage.FromString)
    # As an agent does: a refused or failed connect is tried again after a pause. Handshakes
    # in flight are bounded; a burst of thousands at once exceeds the gRPC server's pending
    # call limit (the refusals are counted and printed).
    for attempt in range(CONNECT_ATTEMPTS):
        async with handshakes:
            call = connect(metadata=(("authorization", f"Bearer {agent_token(nonce, agent)}"),))
            try:
                await call.write(stream_pb2.AgentMessage(hello=stream_pb2.Hello(
                    agent_id=agent_id, customer=CUSTOMER, host=stream_host, version="bench",
                    next_seq=1)))
                welcome = await call.read()
            except grpc.aio.AioRpcError:
                welcome = None
        if welcome is not None and welcome is not grpc.aio.EOF \
                and welcome.WhichOneof("body") == "welcome":
            break
        call.cancel()
        records["connect_retries"].append(agent)
        await asyncio.sleep(0.2 * (attempt + 1) * random.random() + 0.1)
    else:
        raise RuntimeError(f"{agent_id}: no Welcome after {CONNECT_ATTEMPTS} attempts")
    max_items = welcome.welcome.max_batch_items or 1000
    loop_began = time.time()

    def figures() -> Any:
        return stream_pb2.Heartbeat(sent_at_ms=int(time.time() * 1000),
                                    uptime_s=time.time() - loop_began)

    # The agent's heartbeat rule (agent/stream.py): figures as the stream opens, then on a
    # batch once they are half an interval old, alone only after a whole interval without.
    await call.write(stream_pb2.AgentMessage(heartbeat=figures()))
    figures_sent_at = time.time()
    connected[0] += 1
    await go.wait()
    plan = plan_box[0]
    # Agents' phases spread evenly over the interval, so the load is flat rather than in
    # waves; an agent's hosts report together (one polling round).
    next_batch = plan.start_at + plan.interval_s * agent / plan.agents
    failures = {h: sorted(plan.failures[h]) for h in hosts if h in plan.failures}
    successes = {h: plan.successes[h] for h in hosts if h in plan.successes}
    seq = 0
    while True:
        now = time.time()
        next_heartbeat = figures_sent_at + HEARTBEAT_INTERVAL_S
        due = min(next_batch, next_heartbeat)
        if due >= plan.end_at:
            break
        if due > now:
            await asyncio.sleep(due - now)
        if next_heartbeat <= next_batch:
            await call.write(stream_pb2.AgentMessage(heartbeat=figures()))
            figures_sent_at = time.time()
            continue
        now = time.time()
        now_ms = int(now * 1000)
        items: list[Any] = []
        crits: list[tuple[int, str, str]] = []  # (item index, host, check)
        for host_index in hosts:
            host = host_name(host_index)
            crit_check = -1
            pending = failures.get(host_index)
            if pending and pending[0][0] <= now:
                crit_check = pending.pop(0)[1]
            for check_index in range(len(CHECKS)):
                seq += 1
                if check_index == crit_check:
                    crits.append((len(items), host, CHECKS[check_index][0]))
                items.append(stream_pb2.Item(seq=seq, result=_result(
                    stream_pb2, host, check_index, now_ms, check_index == crit_check)))
            success = successes.get(host_index)
            if success is not None and success[2] <= now:
                job, slot_epoch, _ = success
                seq += 1
                items.append(stream_pb2.Item(seq=seq, job_run=stream_pb2.JobRun(
                    customer=CUSTOMER, host=host, probe="jobs", job=job, run_id=f"{host}-run",
                    outcome=stream_pb2.JOB_OUTCOME_SUCCEEDED,
                    started_at_ms=int((slot_epoch + 1) * 1000), finished_at_ms=now_ms,
                    exit_code=0, observed_at_ms=now_ms)))
                del successes[host_index]
        for first in range(0, len(items), max_items):
            sent = time.time()
            chunk = items[first:first + max_items]
            message = stream_pb2.AgentMessage(batch=stream_pb2.ItemBatch(items=chunk))
            if sent - figures_sent_at >= HEARTBEAT_INTERVAL_S / 2:
                message.batch.heartbeat.CopyFrom(figures())
                figures_sent_at = sent
            await call.write(message)
            reply = await call.read()
            acked = time.time()
            if reply is grpc.aio.EOF or reply.WhichOneof("body") != "ack":
                raise RuntimeError(f"{agent_id}: expected an Ack, got {reply}")
            records["acks"].append((sent, acked - sent, len(chunk)))
            records["failures"].extend((host, check, sent) for at, host, check in crits
                                       if first <= at < first + max_items)
        next_batch += plan.interval_s
    await call.done_writing()
    with contextlib.suppress(Exception):
        await call.read()


async def _agents(address: str, nonce: str, agents: Sequence[tuple[int, Sequence[int]]],
                  commands: Any, out: Any) -> None:
    import grpc

    # Distinct channel arguments: a connection of its own per channel (gRPC shares one
    # connection between channels with equal arguments).
    channels = [grpc.aio.insecure_channel(address, options=[("daybreak.bench.channel", n)])
                for n in range((len(agents) + STREAMS_PER_CHANNEL - 1) // STREAMS_PER_CHANNEL)]
    handshakes = asyncio.Semaphore(HANDSHAKES_IN_FLIGHT)
    plan_box: list[AgentPlan] = []
    go = asyncio.Event()
    connected = [0]
    records: dict[str, list[Any]] = {"acks": [], "failures": [], "connect_retries": []}
    began = time.monotonic()
    tasks = [asyncio.create_task(_one_agent(nonce, agent, hosts,
                                            channels[n // STREAMS_PER_CHANNEL], handshakes,
                                            plan_box, go, connected, records))
             for n, (agent, hosts) in enumerate(agents)]
    while connected[0] < len(agents):
        failed = [t for t in tasks if t.done() and t.exception() is not None]
        if failed:
            raise RuntimeError(f"an agent failed to connect: {failed[0].exception()!r}")
        await asyncio.sleep(0.05)
    out.put(("connected", len(agents), time.monotonic() - began))
    loop = asyncio.get_running_loop()
    plan = await loop.run_in_executor(None, commands.get)
    plan_box.append(plan)
    go.set()
    # A collector that cannot keep up leaves batches unacked at the end; they are counted, not
    # waited for.
    _, stuck = await asyncio.wait(tasks, timeout=max(0.0, plan.end_at - time.time()) + 10.0)
    for task in stuck:
        task.cancel()
    records["stuck"] = [len(stuck)]
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise RuntimeError(f"an agent failed: {task.exception()!r}")
    for channel in channels:
        await channel.close(grace=None)
    out.put(("records", records))


def _agents_process(address: str, nonce: str, agents: Sequence[tuple[int, Sequence[int]]],
                    commands: Any, out: Any) -> None:
    try:
        asyncio.run(_agents(address, nonce, agents, commands, out))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which stops
        out.put(("error", f"agents' process failed: {exc!r}"))


# ---- the API poller's process ---------------------------------------------------------------

def _poller_process(base_url: str, token: str, stop: Any, out: Any) -> None:
    """Poll the incident list newest first; note when each incident is first seen."""
    seen: dict[int, tuple[str, str, str, float]] = {}
    polls = 0
    durations: list[float] = []
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as client:
        while not stop.is_set():
            began = time.time()
            limit = 20
            while True:
                answer = client.get("/api/v1/incidents", params={"state": "all", "limit": limit})
                answer.raise_for_status()
                arrived = time.time()
                listed = answer.json()["incidents"]
                for incident in listed:
                    if incident["id"] not in seen:
                        seen[incident["id"]] = (incident["host"], incident["expectation"],
                                                incident["subject"], arrived)
                # A full page of unseen incidents may hide more below it: ask for more.
                if (len(listed) < limit or limit >= 1000
                        or any(i["id"] in seen and seen[i["id"]][3] < began for i in listed)):
                    break
                limit = 1000
            polls += 1
            durations.append(time.time() - began)
            time.sleep(max(0.0, POLL_INTERVAL_S - (time.time() - began)))
    out.put(("poller", list(seen.values()), polls, durations))


# ---- the micro-benchmark: IncidentEngine.on_items alone -------------------------------------

def micro_on_items(customers_dir: Path, hosts: int, rounds: int) -> tuple[float, float]:
    """Results/s through IncidentEngine.on_items on a real SQLite store: (one transaction per
    host batch of 10, as the writer's after-commit step runs it; one transaction per round)."""
    from collector.customers import load_customers
    from collector.incidents.engine import IncidentEngine
    from collector.store.engine import WRITER, open_store
    from probes.clock import SystemClock
    from probes.result import Result, Status

    with tempfile.TemporaryDirectory(prefix="daybreak-micro-") as tmp:
        engine = open_store(f"sqlite:///{Path(tmp) / 'micro.db'}")
        evaluator = IncidentEngine(load_customers(customers_dir), SystemClock())
        now = datetime.now(UTC)
        batches = []
        for index in range(hosts):
            host = host_name(index)
            batches.append((agent_name(index), host, [
                Result(probe=probe, check=check, status=Status.OK, summary=f"{check} ok",
                       observed_at=now, metrics={metric: normal} if metric else {})
                for check, probe, metric, normal in CHECKS]))
        figures = []
        with engine.connect().execution_options(**WRITER) as conn:
            for per_batch in (True, False):
                began = time.perf_counter()
                for _ in range(rounds):
                    if per_batch:
                        for agent_id, host, items in batches:
                            with conn.begin():
                                evaluator.on_items(conn, agent_id, CUSTOMER, host, items)
                    else:
                        with conn.begin():
                            for agent_id, host, items in batches:
                                evaluator.on_items(conn, agent_id, CUSTOMER, host, items)
                elapsed = time.perf_counter() - began
                figures.append(rounds * hosts * len(CHECKS) / elapsed)
        engine.dispose()
    return figures[0], figures[1]


# ---- the run --------------------------------------------------------------------------------

def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def plan_deadlines(rng: random.Random, hosts: int, waves: int, per_wave: int,
                   first_due: float, last_due: float, succeed_fraction: float,
                   ) -> tuple[datetime, list[DeadlineWave]]:
    """Waves of slots of one daily schedule whose deadlines fall inside the window.

    The slot is the current minute (already begun); each wave's complete_by is a duration that
    lands its deadline at its planned second. Materialising keeps slots whose deadline is still
    ahead, so a slot that began before the reload is judged like any other."""
    slot_at = datetime.fromtimestamp(time.time(), UTC).replace(second=0, microsecond=0)
    chosen = rng.sample(range(hosts), waves * per_wave)
    plan = []
    for wave in range(waves):
        members = tuple(chosen[wave * per_wave:(wave + 1) * per_wave])
        due = first_due + (last_due - first_due) * wave / max(1, waves - 1)
        due = float(round(due))
        succeeding = frozenset(members[:round(per_wave * succeed_fraction)])
        plan.append(DeadlineWave(f"nightly-{wave}", members, due, succeeding))
    return slot_at, plan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=10.0,
                        help="seconds between two results of one check")
    parser.add_argument("--agents", type=int, default=100,
                        help="enrolled agents (streams); hosts are spread over them, every "
                             "item naming its host (--agents equal to --hosts: one each)")
    parser.add_argument("--processes", type=int, default=2, help="agents' processes")
    parser.add_argument("--warmup", type=float, default=25.0,
                        help="seconds of load before the window (at least --interval + 5)")
    parser.add_argument("--measure", type=float, default=60.0)
    parser.add_argument("--failures", type=int, default=100, help="failing results injected")
    parser.add_argument("--waves", type=int, default=8, help="deadline instants in the window")
    parser.add_argument("--per-wave", type=int, default=50, help="slots due at each instant")
    parser.add_argument("--micro-rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record the collector with py-spy over the window (collapsed "
                             "stacks to this file; needs `pip install py-spy`)")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="daybreak-bench-incidents-")
    root = Path(tmp)
    try:
        return _run(args, rng, root)
    finally:
        if not args.keep:
            import shutil
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"run directory: {root}")


def _run(args: argparse.Namespace, rng: random.Random, root: Path) -> int:
    hosts = args.hosts
    agent_count: int = min(args.agents or hosts, hosts)
    # Host h reports through agent h % agents; agent a runs in process a % processes.
    hosts_of = [list(range(agent, hosts, agent_count)) for agent in range(agent_count)]

    processes: int = args.processes

    def process_of_host(host: int) -> int:
        return (host % agent_count) % processes

    warmup = max(args.warmup, args.interval + 5.0)
    grpc_port, http_port = free_port(), free_port()
    (root / "customers").mkdir()
    customer_path = root / "customers" / f"{CUSTOMER}.yaml"
    write_customer(customer_path, [], datetime.now(UTC))
    nonce = secrets.token_hex(8)
    token = write_collector_config(root, nonce, agent_count, grpc_port, http_port)
    log = (root / "collector.log").open("wb")
    started = time.monotonic()
    collector = subprocess.Popen(
        [str(BIN / "daybreak"), "serve", "--config", str(root / "collector.yaml")],
        stdout=log, stderr=log)
    api = httpx.Client(base_url=f"http://127.0.0.1:{http_port}",
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
    spawn = multiprocessing.get_context("spawn")
    agent_procs: list[Any] = []
    poller: Any = None
    stop_polling = spawn.Event()
    out = spawn.Queue()
    try:
        wait_for(lambda: api.get("/healthz").status_code == 200, 120, "the collector")
        per_agent = "one host each" if agent_count == hosts else \
            f"{hosts / agent_count:g} hosts each, every item naming its host"
        print(f"fleet: {hosts:,} hosts x {len(CHECKS)} checks, {agent_count:,} enrolled agents "
              f"(a stream each, {per_agent}) from {args.processes} processes")
        print(f"collector started: {time.monotonic() - started:.1f} s")
        commands = []
        began = time.monotonic()
        for number in range(args.processes):
            queue = spawn.Queue()
            commands.append(queue)
            mine = [(agent, hosts_of[agent])
                    for agent in range(number, agent_count, args.processes)]
            process = spawn.Process(target=_agents_process,
                                    args=(f"127.0.0.1:{grpc_port}", nonce, mine, queue, out))
            process.start()
            agent_procs.append(process)
        for _ in agent_procs:
            message = out.get(timeout=300)
            if message[0] == "error":
                raise SystemExit(message[1])
        print(f"agents connected: {agent_count:,} in {time.monotonic() - began:.1f} s")

        start_at = time.time() + 2.0
        # The job schedules are loaded once every host has reported (the collector
        # materialises slots for the hosts it has heard of), during the warm-up.
        reload_at = start_at + args.interval + 1.5
        window_start = start_at + warmup
        window_end = window_start + args.measure
        slot_at, waves = plan_deadlines(rng, hosts, args.waves, args.per_wave,
                                        window_start + args.interval + 4, window_end - 8, 0.1)
        plans = [AgentPlan(start_at, window_end + 3.0, args.interval, agent_count)
                 for _ in agent_procs]
        fail_hosts = rng.sample(range(hosts), args.failures)
        for host in fail_hosts:
            when = rng.uniform(window_start, window_end - args.interval - 2)
            plans[process_of_host(host)].failures[host] = [(when, rng.randrange(len(CHECKS)))]
        for wave in waves:
            for host in wave.succeeding:
                plans[process_of_host(host)].successes[host] = (
                    f"{wave.name}-job", slot_at.timestamp(), reload_at + 2.0)
        poller = spawn.Process(target=_poller_process,
                               args=(f"http://127.0.0.1:{http_port}", token, stop_polling, out))
        poller.start()
        for queue, plan in zip(commands, plans, strict=True):
            queue.put(plan)
        time.sleep(max(0.0, reload_at - time.time()))
        write_customer(customer_path, waves, slot_at)
        reloaded = api.post("/api/v1/reload")
        reloaded.raise_for_status()

        proc = psutil.Process(collector.pid)
        time.sleep(max(0.0, window_start - time.time()))
        profiler = None
        if args.profile is not None:
            profiler = subprocess.Popen(
                # --gil: only the thread holding the GIL is sampled, so the profile shows where
                # the collector's one core of Python goes, not which threads wait for it.
                [str(BIN / "py-spy"), "record", "--pid", str(collector.pid), "--threads", "--gil",
                 "--format", "raw", "--rate", "200", "--duration", str(int(args.measure)),
                 "--output", str(args.profile)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        others = [psutil.Process(p.pid) for p in [*agent_procs, poller]]
        cpu_before = proc.cpu_times()
        others_before = [o.cpu_times() for o in others]
        time.sleep(max(0.0, window_end - time.time()))
        cpu_after = proc.cpu_times()
        others_cpu = [(a.user + a.system - b.user - b.system) / args.measure
                      for a, b in zip([o.cpu_times() for o in others], others_before,
                                      strict=True)]
        rss = proc.memory_info().rss
        if profiler is not None:
            profiler.wait(60)
        records: dict[str, list[Any]] = {"acks": [], "failures": [], "connect_retries": [],
                                          "stuck": []}
        for _ in agent_procs:
            message = out.get(timeout=120)
            if message[0] == "error":
                raise SystemExit(message[1])
            for key in records:
                records[key].extend(message[1][key])
        time.sleep(1.0)  # the last deadlines and failures to be listed
        stop_polling.set()
        message = out.get(timeout=60)
        _, seen, polls, poll_durations = message
    finally:
        stop_polling.set()
        for process in agent_procs:
            process.join(30)
        if poller is not None:
            poller.join(30)
        collector.terminate()
        try:
            collector.wait(60)
        except subprocess.TimeoutExpired:
            collector.kill()
        log.close()

    _report(args, root, records, seen, polls, poll_durations, waves, window_start, window_end,
            cpu_before, cpu_after, rss)
    print(f"agents' processes cpu: {', '.join(f'{c * 100:.0f} %' for c in others_cpu[:-1])}; "
          f"poller: {others_cpu[-1] * 100:.0f} %")
    print()
    per_batch, one_transaction = micro_on_items(root / "customers", hosts, args.micro_rounds)
    print(f"evaluations, IncidentEngine.on_items alone: {per_batch:,.0f} results/s "
          f"(all OK, a transaction per host batch of {len(CHECKS)}, real SQLite)")
    print(f"evaluations, IncidentEngine.on_items alone, one transaction: "
          f"{one_transaction:,.0f} results/s")
    return 0


def _report(args: argparse.Namespace, root: Path, records: dict[str, list[Any]],
            seen: list[tuple[str, str, str, float]], polls: int, poll_durations: list[float],
            waves: Sequence[DeadlineWave], window_start: float, window_end: float,
            cpu_before: Any, cpu_after: Any, rss: int) -> None:
    hosts = args.hosts
    window = window_end - window_start
    offered = hosts * len(CHECKS) / args.interval
    agent_count: int = min(args.agents or hosts, hosts)
    per_agent = -(-hosts // agent_count) * len(CHECKS)
    batches = agent_count * -(-per_agent // 1000) / args.interval
    print(f"load: every check every {args.interval:g} s = {offered:,.0f} results/s in "
          f"{batches:,.0f} batches/s of up to {min(per_agent, 1000)} results, each agent's "
          f"figures every {HEARTBEAT_INTERVAL_S} s, on a batch when batches come at least every "
          f"{HEARTBEAT_INTERVAL_S / 2:g} s, else as a Heartbeat message")
    print(f"expectations: 6 thresholds over the 10 checks, check_freshness ({FRESHNESS_MAX_AGE}) "
          f"on every check, agent_heartbeat ({HEARTBEAT_ALLOW}) on every agent, "
          f"{len(waves)} job_schedule deadlines on {sum(len(w.hosts) for w in waves)} hosts")

    # 1. Evaluations: results committed (and so judged) inside the window, from the store.
    db = sqlite3.connect(f"file:{root / 'state' / 'daybreak.db'}?mode=ro", uri=True)

    def stored(moment: float) -> str:
        return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    committed = db.execute("SELECT count(*) FROM results WHERE received_at >= ? AND "
                           "received_at < ?", (stored(window_start), stored(window_end))
                           ).fetchone()[0]
    incidents_total = db.execute("SELECT count(*) FROM incidents").fetchone()[0]
    db.close()
    print(f"evaluations: {committed / window:,.0f} results/s "
          f"(committed and judged over {window:g} s at {offered:,.0f} offered)")
    acks = sorted(latency for sent, latency, _ in records["acks"]
                  if window_start <= sent < window_end)
    print(f"batch ack p50: {percentile(acks, 0.5) * 1000:.0f} ms, "
          f"p99: {percentile(acks, 0.99) * 1000:.0f} ms, max: {acks[-1] * 1000:.0f} ms "
          f"({len(acks):,} batches)")
    cpu = ((cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)) / window
    print(f"collector cpu: {cpu * 100:.0f} % of one core, rss {rss / 2**20:.0f} MiB "
          f"(machine: {os.cpu_count()} cores, shared with the agents' and poller's processes)")

    first_seen: dict[tuple[str, str, str], float] = {}
    for host, expectation, subject, at in seen:
        key = (host, expectation, subject)
        first_seen[key] = min(at, first_seen.get(key, at))

    # 2. Failing result to incident.
    failing = []
    missing = 0
    worst: list[tuple[float, float]] = []
    for host, check, sent in records["failures"]:
        seen_at = first_seen.get((host, THRESHOLD_OF_CHECK[check], check))
        if seen_at is None:
            missing += 1
        else:
            failing.append(seen_at - sent)
            worst.append((seen_at - sent, sent - window_start))
    failing.sort()
    _latency_lines("failing result to incident", failing)
    if worst:
        print("failing result to incident, slowest: " + ", ".join(
            f"{latency:.2f} s (sent at +{offset:.0f} s)"
            for latency, offset in sorted(worst, reverse=True)[:3]))
    print(f"failing samples: {len(failing)} (not listed: {missing})")

    # 3. Deadline to incident.
    deadline = []
    missing = wrongly = 0
    expected_keys: set[tuple[str, str]] = set()
    for wave in waves:
        for host_index in wave.hosts:
            host = host_name(host_index)
            expected_keys.add((host, wave.name))
            found = [at for (h, e, _), at in first_seen.items() if h == host and e == wave.name]
            if host_index in wave.succeeding:
                wrongly += bool(found)
            elif not found:
                missing += 1
            else:
                deadline.append(min(found) - wave.due_at)
    deadline.sort()
    _latency_lines("deadline to incident", deadline)
    settled = sum(len(w.succeeding) for w in waves)
    print(f"deadline samples: {len(deadline)} in {len(waves)} waves (not listed: {missing}; "
          f"slots with a success first: {settled}, of which opened anyway: {wrongly})")

    failing_keys = {(host_name_of, THRESHOLD_OF_CHECK[c], c)
                    for host_name_of, c, _ in records["failures"]}
    unexpected = [key for key in first_seen
                  if key not in failing_keys and (key[0], key[1]) not in expected_keys]
    print(f"other incidents: {len(unexpected)} (of {incidents_total} in the store)"
          + (f", e.g. {unexpected[:3]}" if unexpected else ""))
    print(f"connect attempts refused and retried: {len(records['connect_retries'])}; "
          f"agents still waiting for an ack at the end: {sum(records['stuck'])}")
    durations = sorted(poll_durations)
    print(f"api polls: {polls:,}, answer p50: {percentile(durations, 0.5) * 1000:.0f} ms, "
          f"p99: {percentile(durations, 0.99) * 1000:.0f} ms")


def _latency_lines(name: str, values: Sequence[float]) -> None:
    if not values:
        print(f"{name}: no samples")
        return
    print(f"{name} p50: {percentile(values, 0.5):.2f} s")
    print(f"{name} p99: {percentile(values, 0.99):.2f} s")
    print(f"{name} max: {values[-1]:.2f} s")


if __name__ == "__main__":
    raise SystemExit(main())
