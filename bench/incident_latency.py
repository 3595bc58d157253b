"""Time from a failing line written to a job log to the incident listed by the HTTP API.

    .venv/bin/python bench/incident_latency.py [--runs 20]

A real collector and a real agent on loopback, the agent's joblog probe at its 1 s minimum
interval (the example configuration's setting). Each round appends a failed run, polls
`GET /api/v1/incidents` every 20 ms until the new incident is there, then appends a successful
run so the incident resolves and the next failure opens a new one. Prints figures only.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def secret(path: Path) -> str:
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    path.chmod(0o600)
    return value


def write_configs(root: Path, grpc_port: int, http_port: int) -> None:
    (root / "customers").mkdir()
    (root / "customers" / "acme.yaml").write_text(yaml.safe_dump({
        "customer": "acme", "name": "Acme", "timezone": "UTC",
        "expectations": [{"kind": "job_must_not_fail", "name": "export-fails",
                          "job": "nightly-export"}],
    }))
    (root / "collector.yaml").write_text(yaml.safe_dump({
        "grpc": {"listen": f"127.0.0.1:{grpc_port}"},
        "http": {"listen": f"127.0.0.1:{http_port}"},
        "state_dir": str(root / "collector"),
        "customers_dir": str(root / "customers"),
        "agents": [{"agent_id": "bench", "customer": "acme",
                    "token_file": str(root / "agent.token")}],
        "api_tokens": [{"name": "bench", "role": "admin", "token_file": str(root / "api.token")}],
        "log": {"format": "json", "level": "warning"},
    }))
    (root / "agent.yaml").write_text(yaml.safe_dump({
        "agent_id": "bench", "customer": "acme", "host": "bench-host",
        "collectors": [f"127.0.0.1:{grpc_port}"],
        "token_file": str(root / "agent.token"), "state_dir": str(root / "agent"),
        "log": {"format": "json", "level": "warning"},
        "probes": [{"name": "night-jobs", "type": "joblog", "interval_s": 1,
                    "paths": [str(root / "logs" / "*.log")],
                    "jobs": [{"name": "nightly-export", "preset": "shell"}]}],
    }))


def wait_for(check: Any, timeout: float = 30.0, poll: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(poll)
    raise SystemExit("timed out; see the logs in the temp dir")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        grpc_port, http_port = free_port(), free_port()
        secret(root / "agent.token")
        token = secret(root / "api.token")
        (root / "logs").mkdir()
        log = root / "logs" / "export.log"
        log.write_text("")
        write_configs(root, grpc_port, http_port)
        api = httpx.Client(base_url=f"http://127.0.0.1:{http_port}",
                           headers={"Authorization": f"Bearer {token}"})
        out = (root / "processes.log").open("wb")
        procs = [subprocess.Popen([str(BIN / "daybreak"), "serve", "--config",
                                   str(root / "collector.yaml")], stdout=out, stderr=out)]
        try:
            wait_for(lambda: api.get("/healthz").status_code == 200)
            procs.append(subprocess.Popen([str(BIN / "daybreak-agent"), "--config",
                                           str(root / "agent.yaml")], stdout=out, stderr=out))
            wait_for(lambda: any(agent["connected"]
                                 for agent in api.get("/api/v1/agents").json()["agents"]))
            latencies = []
            for run in range(1, args.runs + 1):
                with log.open("a") as f:
                    f.write(f"START nightly-export run={run}\n")
                    f.flush()
                    written = time.monotonic()
                    f.write(f"END nightly-export run={run} exit=3\n")
                wait_for(lambda: api.get("/api/v1/incidents").json()["incidents"])
                latencies.append(time.monotonic() - written)
                with log.open("a") as f:
                    f.write(f"START nightly-export run={run}-ok\nEND nightly-export run={run}-ok\n")
                wait_for(lambda: not api.get("/api/v1/incidents").json()["incidents"])
            latencies.sort()
            p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
            print("probe interval: 1 s (joblog), batch linger: 200 ms")
            print(f"rounds: {len(latencies)}")
            print(f"incident latency median: {statistics.median(latencies):.2f} s")
            print(f"incident latency p95: {p95:.2f} s")
            print(f"incident latency max: {latencies[-1]:.2f} s")
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait(15)
            out.close()


if __name__ == "__main__":
    main()
