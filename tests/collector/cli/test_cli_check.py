"""`daybreak check FILE...`: offline validation of customer, collector and agent files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

Offline = Callable[..., subprocess.CompletedProcess[str]]

BROKEN_CUSTOMER = """\
customer: acme
name: ACME
timezone: Europe/Springfield
expectations:
  - kind: threshold
    name: disk
    check: "disk:*"
    metric: used_percent
    warn: high
"""


Check = Callable[..., tuple[int, str]]


@pytest.fixture
def check(daybreak_offline: Offline) -> Check:
    def run(*args: str) -> tuple[int, str]:
        done = daybreak_offline("check", *args)
        assert done.stderr == "", done.stderr
        return done.returncode, done.stdout

    return run


def test_the_example_customer_files_are_ok(check: Check, repo: Path) -> None:
    code, out = check(*sorted(str(p) for p in (repo / "config" / "customers").glob("*.yaml")))
    assert code == 0
    assert out.splitlines() == [f"{repo}/config/customers/acme.yaml: ok",
                                f"{repo}/config/customers/globex.yaml: ok"]


def test_a_broken_customer_file_exits_1_with_file_line_and_field(
    check: Check, tmp_path: Path,
) -> None:
    path = tmp_path / "customers" / "acme.yaml"
    path.parent.mkdir()
    path.write_text(BROKEN_CUSTOMER)
    code, out = check(str(path))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{path}:3: timezone: Value error, unknown IANA timezone")
    assert lines[1].startswith(f"{path}:9: expectations[0]")
    assert "warn: Input should be a valid number" in lines[1]


def test_one_bad_file_fails_the_run_but_every_file_is_reported(
    check: Check, tmp_path: Path, repo: Path,
) -> None:
    good = repo / "config" / "customers" / "acme.yaml"
    bad = tmp_path / "globex.yaml"
    bad.write_text("customer: globex\nname: Globex\naccess: all\n")
    code, out = check(str(bad), str(good))
    assert code == 1
    assert out.splitlines()[0].startswith(f"{bad}:3: access: ")
    assert out.splitlines()[1] == f"{good}: ok"


def test_broken_yaml_is_reported_with_its_line(check: Check, tmp_path: Path) -> None:
    path = tmp_path / "customers" / "acme.yaml"
    path.parent.mkdir()
    path.write_text("customer: acme\nname: 'unclosed\n")
    code, out = check(str(path))
    assert code == 1
    assert out.startswith(f"{path}:")
    assert "YAML syntax" in out


def test_a_collector_file_is_recognised_by_its_keys(check: Check, tmp_path: Path) -> None:
    path = tmp_path / "main.yaml"
    path.write_text(yaml.safe_dump({"http": {"listen": "127.0.0.1:8470"}}))
    assert check(str(path)) == (0, f"{path}: ok\n")
    path.write_text(yaml.safe_dump({"http": {"listen": "127.0.0.1:8470", "tls": True}}))
    code, out = check(str(path))
    assert code == 1
    assert out.startswith(f"{path}:3: http.tls: Extra inputs are not permitted")


@pytest.mark.skipif(sys.platform == "win32", reason="token file modes are POSIX")
def test_an_agent_file_is_recognised_by_its_keys(check: Check, tmp_path: Path) -> None:
    token = tmp_path / "agent.token"
    token.write_text("0123456789abcdef0123456789abcdef\n")
    token.chmod(0o600)
    agent = {"agent_id": "acme-web-01", "customer": "acme", "collectors": ["127.0.0.1:8471"],
             "token_file": str(token), "state_dir": str(tmp_path / "state")}
    path = tmp_path / "host.yaml"
    path.write_text(yaml.safe_dump(agent))
    assert check(str(path)) == (0, f"{path}: ok\n")
    path.write_text(yaml.safe_dump({**agent, "colour": "red"}))
    code, out = check(str(path))
    assert code == 1
    assert f"{path}:" in out
    assert "colour: Extra inputs are not permitted" in out


def test_a_file_of_unknown_kind_asks_for_kind(check: Check, tmp_path: Path) -> None:
    path = tmp_path / "notes.yaml"
    path.write_text("colour: red\n")
    assert check(str(path)) == (1, f"{path}: cannot tell whether this is an agent, collector "
                                   "or customer file; pass --kind\n")
    code, out = check("--kind", "customer", str(path))
    assert code == 1
    assert f"{path}:1: colour: Extra inputs are not permitted" in out


def test_a_missing_file_is_named(check: Check, tmp_path: Path) -> None:
    code, out = check(str(tmp_path / "customers" / "gone.yaml"))
    assert code == 1
    gone = tmp_path / "customers" / "gone.yaml"
    assert out == f"{gone}: cannot read: No such file or directory\n"
