"""The spine end to end: real `daybreak serve` and `daybreak-agent` processes on loopback.

Each test writes its own configuration, job logs and customer files into tmp_path; nothing here
reads the repository's config/ or ../shared/.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_agent_config
from agent.spool import Spool
from tests.e2e.harness import Deployment, deployment, wait_for

pytestmark = pytest.mark.e2e

ACME_EXPECTATIONS: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "expectations": [
        {"kind": "job_must_not_fail", "name": "export-fails", "job": "nightly-export"},
        {"kind": "threshold", "name": "disk-space", "check": "disk:*", "metric": "used_percent",
         "warn": 50, "crit": 80},
    ],
}


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path) as d:
        d.customer("acme", ACME_EXPECTATIONS)
        d.customer("globex", {"timezone": "UTC", "access": "tier2_only"})
        yield d


def joblog_probe(logs: Path) -> dict[str, Any]:
    return {"name": "night-jobs", "type": "joblog", "interval_s": 1, "paths": [str(logs / "*.log")],
            "jobs": [{"name": "nightly-export", "preset": "shell"}]}


def disk_probe(path: Path, name: str = "data-disk") -> dict[str, Any]:
    return {"name": name, "type": "disk", "interval_s": 1, "paths": [str(path)]}


def store_rows(dep: Deployment, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(dep.root / "collector" / "daybreak.db", timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def open_incidents(dep: Deployment, subject: str) -> list[dict[str, Any]]:
    return [i for i in dep.api("/incidents", state="all")["incidents"] if i["subject"] == subject]


def test_a_failure_line_in_a_job_log_becomes_an_incident_listed_by_the_api(
    dep: Deployment, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "nightly-export.log"
    log.write_text("2026-11-23T01:00:00+00:00 START nightly-export run=41\n"
                   "2026-11-23T01:00:09+00:00 END nightly-export run=41 exit=0\n")
    dep.enrol("acme-web1", "acme")
    dep.start_collector()
    dep.start_agent(dep.agent_config("acme-web1", "acme", [joblog_probe(logs)]))
    wait_for(lambda: store_rows(dep, "SELECT 1 FROM job_runs WHERE run_id = '41'"), 20,
             "the successful run 41 to be stored")
    assert dep.api("/incidents")["incidents"] == []

    with log.open("a") as out:
        out.write("2026-11-23T02:00:00+00:00 START nightly-export run=42\n"
                  "2026-11-23T02:00:04+00:00 ERROR nightly-export cannot reach db01\n"
                  "Traceback (most recent call last):\n"
                  "ConnectionRefusedError: [Errno 111] Connection refused\n"
                  "2026-11-23T02:00:05+00:00 END nightly-export run=42 exit=3\n")
    [incident] = wait_for(lambda: open_incidents(dep, "nightly-export"), 20, "the incident")
    assert incident["customer"] == "acme"
    assert incident["host"] == "acme-web1.example"
    assert incident["state"] == "open"
    assert incident["expectation"] == "export-fails"
    detail = dep.api(f"/incidents/{incident['id']}")
    assert "cannot reach db01" in detail["evidence"]
    assert str(log) in detail["evidence_source"]

    # The command line shows the same incident, for people and for scripts.
    listed = dep.cli("incidents", "list", "--json")
    assert '"nightly-export"' in listed.stdout
    table = dep.cli("incidents", "list").stdout
    assert "nightly-export" in table
    assert "acme-web1.example" in table

    # A later successful run resolves it by itself.
    with log.open("a") as out:
        out.write("2026-11-24T02:00:00+00:00 START nightly-export run=43\n"
                  "2026-11-24T02:00:07+00:00 END nightly-export run=43 exit=0\n")
    wait_for(lambda: open_incidents(dep, "nightly-export")[0]["state"] == "resolved", 20,
             "the incident to resolve after run 43 succeeded")
    assert len(open_incidents(dep, "nightly-export")) == 1


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB tmpfs, so a test can cross a disk threshold without filling the machine."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "daybreak-test", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_disk_crossing_its_threshold_opens_an_incident_that_resolves_on_recovery(
    dep: Deployment, small_filesystem: Path
) -> None:
    dep.enrol("acme-db1", "acme")
    dep.start_collector()
    dep.start_agent(dep.agent_config("acme-db1", "acme", [disk_probe(small_filesystem)]))
    check = f"disk:{small_filesystem}"
    wait_for(lambda: store_rows(dep, "SELECT status FROM check_state WHERE check_key = ?", check),
             20, "the first disk result")
    assert open_incidents(dep, check) == []

    filler = small_filesystem / "filler"
    filler.write_bytes(b"\0" * (7 * 1024 * 1024))  # 87.5 %: above crit (80)
    [incident] = wait_for(lambda: open_incidents(dep, check), 20, "the disk incident")
    assert incident["severity"] == "critical"
    assert incident["state"] == "open"

    filler.unlink()
    wait_for(lambda: open_incidents(dep, check)[0]["state"] == "resolved", 20,
             "the disk incident to resolve itself")
    [resolved] = open_incidents(dep, check)
    assert resolved["id"] == incident["id"]
    assert resolved["occurrences"] >= 1


def produced_and_unacked(config_path: Path) -> tuple[int, list[int]]:
    """How many items the agent ever numbered, and the seqs still waiting in its spool."""
    config = load_agent_config(config_path)
    spool = Spool(config.spool_path, config.spool.max_items, config.spool.max_bytes)
    try:
        return spool.next_seq - 1, [seq for seq, _ in spool.read_after(0, 1_000_000)]
    finally:
        spool.close()


def assert_every_result_stored_exactly_once(dep: Deployment, agent_yaml: Path) -> int:
    produced, unacked = produced_and_unacked(agent_yaml)
    stored = [seq for (seq,) in store_rows(dep, "SELECT seq FROM results ORDER BY seq")]
    assert len(stored) == len(set(stored)), "a result was stored twice"
    # A seq can be both stored and still spooled: committed, but the agent stopped before its
    # Ack arrived. It is sent again at the next start and skipped as a replay (dedup rule).
    assert set(stored) | set(unacked) == set(range(1, produced + 1)), "a result was lost"
    return len(stored)


def test_the_collector_killed_and_restarted_loses_nothing_and_counts_nothing_twice(
    dep: Deployment, tmp_path: Path
) -> None:
    dep.enrol("acme-app1", "acme")
    collector = dep.start_collector()
    agent_yaml = dep.agent_config("acme-app1", "acme",
                                  [disk_probe(tmp_path, "disk-a"), disk_probe(tmp_path, "disk-b")])
    agent = dep.start_agent(agent_yaml)
    wait_for(lambda: store_rows(dep, "SELECT count(*) FROM results")[0][0] >= 6, 20,
             "some results before the crash")

    collector.kill()  # SIGKILL: no graceful stop, in-flight batches are simply cut
    time.sleep(3)  # the agent keeps probing into its spool meanwhile
    assert agent.running
    before = store_rows(dep, "SELECT count(*) FROM results")[0][0]
    dep.start_collector()
    wait_for(lambda: store_rows(dep, "SELECT count(*) FROM results")[0][0] >= before + 10, 30,
             "the spooled results to arrive after the restart")

    assert agent.stop() == 0
    stored = assert_every_result_stored_exactly_once(dep, agent_yaml)
    assert stored >= before + 10


def test_an_agent_restarted_with_unacked_results_delivers_them_after_it_comes_back(
    dep: Deployment, tmp_path: Path
) -> None:
    dep.enrol("acme-app2", "acme")
    agent_yaml = dep.agent_config("acme-app2", "acme", [disk_probe(tmp_path)])
    agent = dep.start_agent(agent_yaml)  # no collector yet: everything stays in the spool
    wait_for(lambda: produced_and_unacked(agent_yaml)[0] >= 3, 20, "results in the spool")
    assert agent.stop() == 0
    produced, unacked = produced_and_unacked(agent_yaml)
    assert unacked == list(range(1, produced + 1))

    dep.start_collector()
    agent = dep.start_agent(agent_yaml, name="agent-again")
    wait_for(lambda: store_rows(dep, "SELECT count(*) FROM results")[0][0] >= produced, 30,
             "the spooled results of the first run")
    assert agent.stop() == 0
    assert assert_every_result_stored_exactly_once(dep, agent_yaml) >= produced


def test_an_agent_with_a_wrong_token_is_refused_and_nothing_it_sends_is_stored(
    dep: Deployment, tmp_path: Path
) -> None:
    dep.enrol("acme-web2", "acme")
    dep.start_collector()
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-token\n")
    wrong.chmod(0o600)
    agent = dep.start_agent(
        dep.agent_config("acme-web2", "acme", [disk_probe(tmp_path)], token_file=wrong))
    wait_for(lambda: "stream.refused" in agent.output(), 20, "the agent to log its refusal")
    assert agent.running, "a refused agent keeps its spool and retries; it does not crash"
    assert store_rows(dep, "SELECT count(*) FROM results")[0][0] == 0
    audit = store_rows(dep, "SELECT action, target, detail FROM audit_log")
    assert audit, "the refusal is audited"
    assert "not-the-token" not in repr(audit), "the audit log never holds a token"


def test_an_agent_claiming_another_customer_is_refused(dep: Deployment, tmp_path: Path) -> None:
    token = dep.enrol("acme-web3", "acme")
    dep.start_collector()
    agent = dep.start_agent(
        dep.agent_config("acme-web3", "globex", [disk_probe(tmp_path)], token_file=token))
    wait_for(lambda: "stream.refused" in agent.output(), 20, "the agent to log its refusal")
    assert store_rows(dep, "SELECT count(*) FROM results")[0][0] == 0
    assert [a for a in dep.api("/agents")["agents"] if a["customer"] == "globex"] == []
    audit = " ".join(" ".join(map(str, row)) for row in
                     store_rows(dep, "SELECT action, target, detail FROM audit_log"))
    assert "globex" in audit


def test_broken_configuration_files_are_refused_with_file_line_and_field(
    dep: Deployment, tmp_path: Path
) -> None:
    broken_agent = tmp_path / "agent.yaml"
    broken_agent.write_text("agent_id: a1\ncustomer: acme\ncollectors: ['127.0.0.1:1']\n"
                            f"token_file: {tmp_path / 't'}\nstate_dir: {tmp_path / 's'}\n"
                            "probes:\n  - name: d\n    type: disk\n    interval_s: soon\n")
    broken_collector = tmp_path / "collector.yaml"
    broken_collector.write_text("grpc:\n  listen: 127.0.0.1:8471\n  max_batch_itmes: 5\n")
    broken_customer = dep.root / "customers" / "acme.yaml"
    broken_customer.write_text("customer: acme\nexpectations:\n  - kind: threshold\n"
                               "    name: x\n    check: 'disk:*'\n    warn: [1]\n")
    broken_yaml = tmp_path / "syntax.yaml"
    broken_yaml.write_text("agent_id: a1\nprobes: [\n  - oops\n")

    done = dep.cli("check", str(broken_agent), str(broken_collector), str(broken_customer),
                   str(broken_yaml), check=False)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert f"{broken_agent}:9: probes[0].interval_s:" in out
    assert f"{broken_collector}:3: grpc.max_batch_itmes: Extra inputs are not permitted" in out
    assert f"{broken_customer}:6: expectations[0].warn:" in out
    assert f"{broken_yaml}:" in out

    # The daemons refuse to start on them, saying the same.
    agent = subprocess.run([str(dep_bin("daybreak-agent")), "--config", str(broken_agent)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert agent.returncode != 0
    assert f"{broken_agent}:9: probes[0].interval_s:" in agent.stderr
    collector = subprocess.run([str(dep_bin("daybreak")), "serve", "--config",
                                str(broken_collector)],
                               capture_output=True, text=True, timeout=60, check=False)
    assert collector.returncode != 0
    assert f"{broken_collector}:3: grpc.max_batch_itmes" in collector.stderr


def dep_bin(name: str) -> Path:
    from tests.e2e.harness import BIN

    return BIN / name


def test_a_collector_stopped_with_sigterm_closes_agents_streams_cleanly(
    dep: Deployment, tmp_path: Path
) -> None:
    dep.enrol("acme-web4", "acme")
    collector = dep.start_collector()
    agent = dep.start_agent(dep.agent_config("acme-web4", "acme", [disk_probe(tmp_path)]))
    wait_for(lambda: [a for a in dep.api("/agents")["agents"] if a["connected"]], 20,
             "the agent to be listed as connected")
    assert collector.stop(signal.SIGTERM) == 0
    assert "collector.stopped" in collector.output()
    assert agent.running


def test_customer_files_reload_on_sighup_and_daybreak_reload_keeping_the_old_set_when_invalid(
    dep: Deployment, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "jobs.log"
    log.write_text("")
    dep.customer("acme", {"timezone": "UTC"})  # no expectations yet: nothing opens
    dep.enrol("acme-web5", "acme")
    collector = dep.start_collector()
    dep.start_agent(dep.agent_config("acme-web5", "acme", [joblog_probe(logs)]))
    with log.open("a") as out:
        out.write("START nightly-export run=1\nEND nightly-export run=1 exit=2\n")
    wait_for(lambda: store_rows(dep, "SELECT 1 FROM job_runs WHERE run_id = '1'"), 20, "run 1")
    assert open_incidents(dep, "nightly-export") == []

    # A broken file is refused and the old set stays.
    (dep.root / "customers" / "acme.yaml").write_text("customer: acme\nname: [\n")
    refused = dep.cli("reload", check=False)
    assert refused.returncode != 0
    assert "acme.yaml:" in refused.stderr

    # SIGHUP with a good file: the next failure opens an incident.
    dep.customer("acme", ACME_EXPECTATIONS)
    assert collector.popen is not None
    collector.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "customers.reloaded" in collector.output(), 20, "the SIGHUP reload")
    with log.open("a") as out:
        out.write("START nightly-export run=2\nEND nightly-export run=2 exit=2\n")
    wait_for(lambda: open_incidents(dep, "nightly-export"), 20, "the incident after reload")
    assert "reloaded 2 customer file(s)" in dep.cli("reload").stdout
