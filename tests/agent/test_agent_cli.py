"""`daybreak-agent` as a real process: the config check, and the daemon against a tiny collector."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.agent.tiny_collector import TOKEN, TinyCollector, start_server

AGENT = Path(sys.executable).parent / "daybreak-agent"


def write_agent_files(tmp_path: Path, port: int, **overrides: Any) -> Path:
    token_file = tmp_path / "agent.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    config = {
        "agent_id": "web-01",
        "customer": "acme",
        "host": "web-01.example",
        "collectors": [f"127.0.0.1:{port}"],
        "token_file": "agent.token",
        "state_dir": "state",
        "heartbeat_interval_s": 1,
        "batch": {"linger_ms": 50},
        "log": {"format": "json"},
        "probes": [{"name": "here", "type": "disk", "paths": [str(tmp_path)], "interval_s": 1}],
        **overrides,
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_check_accepts_a_good_file(tmp_path: Path) -> None:
    path = write_agent_files(tmp_path, 7443)
    done = subprocess.run([AGENT, "check", "--config", path], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{path}: ok (1 probe)\n"


def test_check_refuses_a_bad_file_with_file_line_and_field(tmp_path: Path) -> None:
    path = write_agent_files(tmp_path, 7443)
    path.write_text(path.read_text().replace("  interval_s: 1", "  interval_s: 0.1"))
    done = subprocess.run([AGENT, "check", "--config", path], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    [line] = done.stdout.splitlines()  # where `daybreak check` prints them too
    assert line.startswith(f"{path}:")
    assert ": probes[0].interval_s: Input should be greater than or equal to 1" in line


def test_the_daemon_streams_disk_results_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    async def scenario() -> None:
        collector = TinyCollector()
        server, port = await start_server(collector)
        config = write_agent_files(tmp_path, port)
        log_file = tmp_path / "agent.log"
        with log_file.open("wb") as log_out:
            agent = await asyncio.create_subprocess_exec(
                AGENT, "--config", str(config), stdout=log_out, stderr=log_out
            )
            try:
                deadline = time.monotonic() + 30
                while len(collector.items) < 2 or not collector.heartbeats:
                    assert time.monotonic() < deadline, log_file.read_text()
                    assert agent.returncode is None, log_file.read_text()
                    await asyncio.sleep(0.05)
                agent.send_signal(signal.SIGTERM)
                returncode = await asyncio.wait_for(agent.wait(), timeout=20)
            finally:
                if agent.returncode is None:
                    agent.kill()
                    await agent.wait()
        await server.stop(0)

        assert returncode == 0, log_file.read_text()
        result = collector.items[0].result
        assert result.check == f"disk:{tmp_path}"
        assert result.customer == "acme"
        assert collector.hellos[0].agent_id == "web-01"
        events = [json.loads(line) for line in log_file.read_text().splitlines()]
        names = [e["event"] for e in events]
        assert "agent.started" in names
        assert names[-1] == "agent.stopped"
        assert all(e["agent_id"] == "web-01" and e["customer"] == "acme" for e in events)
        assert (tmp_path / "state" / "spool.sqlite3").exists()

    asyncio.run(scenario())


def test_running_without_a_config_is_a_usage_error() -> None:
    done = subprocess.run([AGENT], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "--config is required" in done.stderr


def test_check_on_the_host_refuses_a_token_file_others_can_read(tmp_path: Path) -> None:
    path = write_agent_files(tmp_path, 7443)
    (tmp_path / "agent.token").chmod(0o640)
    done = subprocess.run([AGENT, "check", "--config", path], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    assert done.stdout.startswith(f"{path}:6: token_file: ")  # yaml.safe_dump: line 6
    assert f"chmod 600 {tmp_path / 'agent.token'}" in done.stdout


def test_the_running_daemon_reads_its_config_and_job_logs_without_openssl_or_libyaml(
    tmp_path: Path,
) -> None:
    # agent/cli.py keeps ssl and _hashlib (OpenSSL's libcrypto, ~3 MiB resident) out when no
    # probe needs TLS, and PyYAML's libyaml binding always: the tailer's blake2b fingerprints
    # and the config's YAML must work without them.
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "night.log").write_text("START nightly run=1\nEND nightly run=1 exit=3\n")
    joblog = {"name": "jobs", "type": "joblog", "interval_s": 1,
              "paths": [str(logs / "*.log")], "jobs": [{"name": "nightly", "preset": "shell"}]}

    async def scenario() -> tuple[list[str], str]:
        collector = TinyCollector()
        server, port = await start_server(collector)
        config = write_agent_files(tmp_path, port, probes=[joblog])
        log_file = tmp_path / "agent.log"
        with log_file.open("wb") as log_out:
            agent = await asyncio.create_subprocess_exec(
                AGENT, "--config", str(config), stdout=log_out, stderr=log_out
            )
            try:
                deadline = time.monotonic() + 30
                while not any(item.HasField("job_run") for item in collector.items):
                    assert time.monotonic() < deadline, log_file.read_text()
                    assert agent.returncode is None, log_file.read_text()
                    await asyncio.sleep(0.05)
                maps = await asyncio.to_thread(Path(f"/proc/{agent.pid}/maps").read_text)
                agent.send_signal(signal.SIGTERM)
                await asyncio.wait_for(agent.wait(), timeout=20)
            finally:
                if agent.returncode is None:
                    agent.kill()
                    await agent.wait()
        await server.stop(0)
        runs = [item.job_run.job for item in collector.items if item.HasField("job_run")]
        return runs, maps

    runs, maps = asyncio.run(scenario())
    assert runs[-1] == "nightly"
    mapped = {line.split()[-1].rsplit("/", 1)[-1] for line in maps.splitlines()
              if len(line.split()) == 6}
    unused = ("libcrypto", "libssl", "_ssl.", "_hashlib.", "_yaml.", "libyaml")
    assert sorted(name for name in mapped if name.startswith(unused)) == []
