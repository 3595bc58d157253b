"""Real collector and agent processes on loopback, for end-to-end tests.

Each process gets its own configuration written into the test's tmp_path, free loopback ports,
and its output captured to a file the test prints when it fails.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

BIN = Path(sys.executable).parent
T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_secret(path: Path, value: str | None = None) -> str:
    value = value or secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


def wait_for(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll condition until it returns something truthy; fail naming what we waited for."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (httpx.HTTPError, OSError) as exc:  # the server may still be starting
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} "
                         f"(last error: {last_error})")


@dataclass
class Process:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
        )
        log.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        code = self.popen.returncode
        self.popen = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Deployment:
    """One collector and its agents, configured in root (a tmp_path)."""

    root: Path
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    admin_token: str = ""
    processes: list[Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.root / "customers").mkdir(parents=True, exist_ok=True)
        self.admin_token = write_secret(self.root / "secrets" / "admin.token")
        self.agents: list[dict[str, Any]] = []

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def customer(self, customer_id: str, body: dict[str, Any]) -> None:
        doc = {"customer": customer_id, "name": customer_id.title(), **body}
        (self.root / "customers" / f"{customer_id}.yaml").write_text(yaml.safe_dump(doc))

    def enrol(self, agent_id: str, customer: str) -> Path:
        token_file = self.root / "secrets" / f"{agent_id}.token"
        write_secret(token_file)
        self.agents.append(
            {"agent_id": agent_id, "customer": customer, "token_file": str(token_file)})
        return token_file

    def collector_config(self) -> Path:
        config = {
            "grpc": {"listen": f"127.0.0.1:{self.grpc_port}"},
            "http": {"listen": f"127.0.0.1:{self.http_port}"},
            "store": {"url": f"sqlite:///{self.root / 'collector' / 'daybreak.db'}"},
            "customers_dir": str(self.root / "customers"),
            "agents": self.agents,
            "api_tokens": [
                {"name": "test-admin", "role": "admin",
                 "token_file": str(self.root / "secrets" / "admin.token")}
            ],
            "log": {"format": "json"},
        }
        (self.root / "collector").mkdir(exist_ok=True)
        path = self.root / "collector" / "collector.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def agent_config(self, agent_id: str, customer: str, probes: list[dict[str, Any]],
                     token_file: Path | None = None, **extra: Any) -> Path:
        config = {
            "agent_id": agent_id,
            "customer": customer,
            "host": f"{agent_id}.example",
            "collectors": [f"127.0.0.1:{self.grpc_port}"],
            "token_file": str(token_file or self.root / "secrets" / f"{agent_id}.token"),
            "state_dir": str(self.root / "agents" / agent_id / "state"),
            "heartbeat_interval_s": 1,
            "batch": {"linger_ms": 50},
            "log": {"format": "json"},
            "probes": probes,
            **extra,
        }
        path = self.root / "agents" / agent_id / "agent.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config))
        return path

    def start_collector(self) -> Process:
        config = self.collector_config()
        proc = Process("collector", [str(BIN / "daybreak"), "serve", "--config", str(config)],
                       self.root / "collector.log")
        proc.start()
        self.processes.append(proc)
        wait_for(lambda: self._healthy(proc), 30, "the collector's /healthz")
        return proc

    def _healthy(self, proc: Process) -> bool:
        if not proc.running:
            raise AssertionError(f"collector exited:\n{proc.output()[-4000:]}")
        return httpx.get(f"{self.api_url}/healthz", timeout=2).status_code == 200

    def start_agent(self, config: Path, name: str = "agent") -> Process:
        proc = Process(name, [str(BIN / "daybreak-agent"), "--config", str(config)],
                       self.root / f"{name}.log")
        proc.start()
        self.processes.append(proc)
        return proc

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.api_url}/api/v1{path}", params=params, timeout=5,
                             headers={"Authorization": f"Bearer {self.admin_token}"})
        response.raise_for_status()
        return response.json()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DAYBREAK_URL": self.api_url, "DAYBREAK_TOKEN": self.admin_token}
        return subprocess.run([str(BIN / "daybreak"), *args], capture_output=True, text=True,
                              env=env, timeout=60, check=check)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.output()[-6000:]}" for p in self.processes)

    def stop_all(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


@contextmanager
def deployment(root: Path) -> Iterator[Deployment]:
    dep = Deployment(root)
    try:
        yield dep
    except BaseException:
        sys.stderr.write(dep.logs())
        raise
    finally:
        dep.stop_all()
