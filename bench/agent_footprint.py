"""The agent's resident memory and CPU with the example configuration.

    .venv/bin/python bench/agent_footprint.py [--runs 3] [--seconds 60] [--only disk]

Starts a real collector and a real agent on loopback, the agent running config/agent.yaml's
probes (paths and endpoints redirected into a temp dir), lets it settle, then samples the
agent's RSS and CPU time over a window. Each run starts fresh processes; with several runs the
median is printed last. Prints figures; asserts nothing.

Where the resident memory goes is read from /proc/<pid>/smaps: anonymous memory (the Python
heap, malloc, thread stacks: the agent's own) apart from file-backed pages (the code of the
shared libraries it maps: clean pages that the kernel can drop and re-read, and that processes
mapping the same file share), and the mappings that hold the most.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class Figures:
    rss: int
    rss_peak: int
    cpu_percent: float
    window_s: float
    anonymous: int
    file_backed: int
    threads: int
    top_mappings: list[tuple[int, str]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def secret(path: Path) -> None:
    path.write_text(secrets.token_urlsafe(32))
    path.chmod(0o600)


def smaps_breakdown(pid: int) -> tuple[dict[str, int], list[tuple[int, str]]]:
    """smaps_rollup's totals (bytes) and the resident bytes of each mapped file or kind."""
    rollup: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        rollup[key] = int(value.split()[0]) * KIB
    by_name: dict[str, int] = {}
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            name = fields[5] if len(fields) > 5 else "[anonymous]"
            # The brk heap, malloc's mmapped arenas, pymalloc's arenas and thread stacks: one row.
            name = "[anonymous]" if name in ("[heap]", "[stack]") else name
        elif fields[0] == "Rss:":
            by_name[name] = by_name.get(name, 0) + int(fields[1]) * KIB
    top = sorted(((size, path) for path, size in by_name.items()), reverse=True)
    return rollup, top


def measure(agent_pid: int, seconds: float) -> Figures:
    proc = psutil.Process(agent_pid)
    cpu_before = proc.cpu_times()
    started = time.monotonic()
    rss_peak = 0
    while time.monotonic() - started < seconds:
        rss_peak = max(rss_peak, proc.memory_info().rss)
        time.sleep(1)
    cpu_after = proc.cpu_times()
    elapsed = time.monotonic() - started
    cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    rollup, top = smaps_breakdown(agent_pid)
    return Figures(
        rss=proc.memory_info().rss,
        rss_peak=rss_peak,
        cpu_percent=100 * cpu_s / elapsed,
        window_s=elapsed,
        anonymous=rollup["Anonymous"],
        file_backed=rollup["Rss"] - rollup["Anonymous"],
        threads=proc.num_threads(),
        top_mappings=top[:8],
    )


def one_run(agent_cfg: dict[str, Any], seconds: float, settle: float) -> Figures:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        grpc_port, http_port = free_port(), free_port()
        agent_cfg = dict(agent_cfg)
        secret(root / "agent.token")
        secret(root / "admin.token")
        logs = root / "logs"
        logs.mkdir()
        (logs / "nightly-export.log").write_text("")
        probes = []
        for probe in agent_cfg["probes"]:
            if probe["type"] == "joblog":
                probe = {**probe, "paths": [str(logs / "*.log")]}
            probes.append(probe)
        agent_cfg |= {
            "probes": probes,
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
                time.sleep(settle)
                if agent.poll() is not None:
                    raise SystemExit(f"the agent exited: {(root / 'out.log').read_text()}")
                return measure(agent.pid, seconds)
            finally:
                agent.terminate()
                agent.wait(15)
        finally:
            collector.terminate()
            collector.wait(15)
            out.close()


def report(figures: Figures) -> None:
    print(f"agent rss: {figures.rss / MIB:.1f} MiB (peak {figures.rss_peak / MIB:.1f})")
    print(f"  anonymous (heap, stacks, libraries' relocated data): "
          f"{figures.anonymous / MIB:.1f} MiB; file-backed (library code): "
          f"{figures.file_backed / MIB:.1f} MiB; threads: {figures.threads}")
    for size, path in figures.top_mappings:
        print(f"  {size / MIB:5.1f} MiB  {path}")
    print(f"agent cpu: {figures.cpu_percent:.2f} % of a core over {figures.window_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1, help="fresh agent and collector each")
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    parser.add_argument("--settle", type=float, default=10.0, help="warm-up before measuring")
    parser.add_argument("--only", action="append", metavar="TYPE",
                        help="keep only config/agent.yaml's probes of this type (repeatable)")
    args = parser.parse_args()

    agent_cfg = yaml.safe_load((REPO / "config" / "agent.yaml").read_text())
    if args.only:
        agent_cfg["probes"] = [p for p in agent_cfg["probes"] if p["type"] in args.only]
    types = ", ".join(p["type"] for p in agent_cfg["probes"])
    print(f"agent probes: {len(agent_cfg['probes'])} ({types}; config/agent.yaml)")
    runs = []
    for number in range(1, args.runs + 1):
        if args.runs > 1:
            print(f"-- run {number} of {args.runs}")
        runs.append(one_run(agent_cfg, args.seconds, args.settle))
        report(runs[-1])
    if args.runs > 1:
        rss = statistics.median(f.rss for f in runs)
        cpu = statistics.median(f.cpu_percent for f in runs)
        all_rss = ", ".join(f"{f.rss / MIB:.1f}" for f in runs)
        print(f"median of {args.runs} runs: agent rss {rss / MIB:.1f} MiB ({all_rss}); "
              f"cpu {cpu:.2f} % of a core")


if __name__ == "__main__":
    main()
