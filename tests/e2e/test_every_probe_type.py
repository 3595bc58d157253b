"""Issue 4's promise end to end: one agent runs every probe type from its configuration, each
result and job run reaches the collector, and the customer's expectations work on them."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import deployment, wait_for
from tests.e2e.test_spine import open_incidents, store_rows

pytestmark = pytest.mark.e2e


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def web() -> Iterator[str]:
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"status": "ok"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    server.server_close()


@pytest.fixture
def sleeper() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)",
                             "daybreak-e2e-sleeper"])
    yield "daybreak-e2e-sleeper"
    proc.kill()
    proc.wait()


def test_one_agent_runs_every_probe_type_and_the_collector_judges_them(
    tmp_path: Path, listener: int, closed_port: int, web: str, sleeper: str
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "export.log").write_text("START nightly-export run=7\n"
                                     "ERROR nightly-export upload refused\n"
                                     "END nightly-export run=7 exit=4\n")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "sales_20261123.csv").write_text("id,amount\n1,10\n")
    backup_check = tmp_path / "check_backup"
    backup_check.write_text("#!/bin/sh\n"
                            "echo 'BACKUP CRITICAL - last backup 30h ago | age=108000s;93600'\n"
                            "exit 2\n")
    backup_check.chmod(0o755)
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(hours=1)).strftime("%H:%M"),
              "end": (now + timedelta(hours=1)).strftime("%H:%M"), "timezone": "UTC"}
    if window["end"] < window["start"]:  # keep the window inside one day's clock
        window = {"start": "00:00", "end": "23:59", "timezone": "UTC"}

    probes: list[dict[str, Any]] = [
        {"name": "data-disk", "type": "disk", "interval_s": 1, "paths": [str(tmp_path)]},
        {"name": "night-jobs", "type": "joblog", "interval_s": 1, "paths": [str(logs / "*.log")],
         "jobs": [{"name": "nightly-export", "preset": "shell"}]},
        {"name": "sales-load", "type": "load", "interval_s": 1, "window": window,
         "files": {"dir": str(incoming), "glob": "sales_*.csv", "min_count": 1, "settle_s": 0}},
        {"name": "web", "type": "service", "interval_s": 1, "checks": [
            {"kind": "tcp", "host": "127.0.0.1", "port": listener, "label": "app"},
            {"kind": "tcp", "host": "127.0.0.1", "port": closed_port, "label": "db"},
            {"kind": "http", "url": web, "expected_status": [200]},
            {"kind": "process", "command_regex": sleeper, "label": "sleeper", "min_count": 1},
        ]},
        {"name": "system", "type": "system", "interval_s": 1},
        {"name": "backup", "type": "command", "interval_s": 1, "argv": [str(backup_check)]},
    ]
    with deployment(tmp_path / "deploy") as dep:
        dep.customer("acme", {"timezone": "UTC", "expectations": [
            {"kind": "job_must_not_fail", "name": "jobs-fail", "job": "*"},
            {"kind": "threshold", "name": "services", "check": "tcp:*"},
            {"kind": "threshold", "name": "commands", "check": "command:*"},
        ]})
        dep.enrol("acme-all", "acme")
        dep.start_collector()
        dep.start_agent(dep.agent_config("acme-all", "acme", probes))
        expected_checks = {f"disk:{tmp_path}", "joblog:night-jobs", "load:sales-load",
                           "tcp:app", "tcp:db", f"http:{web}", "process:sleeper",
                           "system:cpu", "system:memory", "system:load", "command:backup"}

        def stored_checks() -> set[str] | None:
            keys = {k for (k,) in store_rows(dep, "SELECT check_key FROM check_state")}
            return keys if expected_checks <= keys else None

        keys = wait_for(stored_checks, 30, f"results of every probe type {expected_checks}")
        statuses = dict(store_rows(dep, "SELECT check_key, status FROM check_state"))
        assert statuses["tcp:app"] == "OK", keys
        assert statuses["tcp:db"] == "CRIT"
        assert statuses[f"http:{web}"] == "OK"
        assert statuses["process:sleeper"] == "OK"
        assert statuses["command:backup"] == "CRIT"

        wait_for(lambda: store_rows(dep, "SELECT outcome FROM job_runs WHERE job = 'sales-load'"
                                         " AND outcome = 'succeeded'"), 30, "the load's job run")
        wait_for(lambda: open_incidents(dep, "nightly-export"), 20, "the job incident")
        wait_for(lambda: open_incidents(dep, "tcp:db"), 20, "the closed port's incident")
        [backup] = wait_for(lambda: open_incidents(dep, "command:backup"), 20, "the plugin's")
        assert backup["severity"] == "critical"
        assert "BACKUP CRITICAL" in backup["summary"]
        assert open_incidents(dep, "tcp:app") == []
