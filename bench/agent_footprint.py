"""The agent's resident memory and CPU with the example configuration.

    .venv/bin/python bench/agent_footprint.py [--seconds 60]

Starts a real collector and a real agent on loopback, the agent running config/agent.yaml's
probes (paths and endpoints redirected into a temp dir), lets it settle, then samples the
agent's RSS and CPU time over a window. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def secret(path: Path) -> None:
    path.write_text(secrets.token_urlsafe(32))
    path.chmod(0o600)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    parser.add_argument("--settle", type=float, default=10.0, help="warm-up before measuring")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        grpc_port, http_port = free_port(), free_port()
        agent_cfg = yaml.safe_load((REPO / "config" / "agent.yaml").read_text())
        secret(root / "agent.token")
        secret(root / "admin.token")
        logs = root / "logs"
        logs.mkdir()
        (logs / "nightly-export.log").write_text("")
        for probe in agent_cfg["probes"]:
            if probe["type"] == "joblog":
                probe["paths"] = [str(logs / "*.log")]
        agent_cfg |= {
            "collectors": [f"127.0.0.1:{grpc_port}"],
            "token_file": str(root / "agent.token"),
            "state_dir": str(root / "agent-state"),
            "log": {"format": "json", "level": "warning"},
        }
        (root / "agent.yaml").write_text(yaml.safe_dump(agent_cfg))
        customers = root / "customers"
        customers.mkdir()
        collector_cfg = {
            "grpc": {"listen": f"127.0.0.1:{grpc_port}"},
            "http": {"listen": f"127.0.0.1:{http_port}"},
            "store": {"url": f"sqlite:///{root / 'daybreak.db'}"},
            "customers_dir": str(customers),
            "agents": [{"agent_id": agent_cfg["agent_id"], "customer": agent_cfg["customer"],
                        "token_file": str(root / "agent.token")}],
            "api_tokens": [{"name": "bench", "role": "admin",
                            "token_file": str(root / "admin.token")}],
            "log": {"format": "json", "level": "warning"},
        }
        (root / "collector.yaml").write_text(yaml.safe_dump(collector_cfg))

        out = (root / "out.log").open("wb")
        collector = subprocess.Popen([str(BIN / "daybreak"), "serve", "--config",
                                      str(root / "collector.yaml")], stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{http_port}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            agent = subprocess.Popen([str(BIN / "daybreak-agent"), "--config",
                                      str(root / "agent.yaml")], stdout=out, stderr=out,
                                     env={**os.environ})
            try:
                time.sleep(args.settle)
                proc = psutil.Process(agent.pid)
                cpu_before = proc.cpu_times()
                started = time.monotonic()
                rss_peak = 0
                while time.monotonic() - started < args.seconds:
                    rss_peak = max(rss_peak, proc.memory_info().rss)
                    time.sleep(1)
                cpu_after = proc.cpu_times()
                elapsed = time.monotonic() - started
                cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
                rss = proc.memory_info().rss
                probes = len(agent_cfg["probes"])
                print(f"agent probes: {probes} (config/agent.yaml)")
                print(f"agent rss: {rss / 2**20:.1f} MiB")
                print(f"agent rss peak: {rss_peak / 2**20:.1f} MiB")
                print(f"agent cpu: {100 * cpu_s / elapsed:.2f} % of a core over {elapsed:.0f} s")
            finally:
                agent.terminate()
                agent.wait(15)
        finally:
            collector.terminate()
            collector.wait(15)
            out.close()


if __name__ == "__main__":
    main()
