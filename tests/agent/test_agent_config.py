from __future__ import annotations

import socket
from pathlib import Path

import pytest

from agent.config import AgentConfig, load_agent_config, read_token
from probes.configfile import ConfigError
from probes.disk import DiskConfig


def write_token(folder: Path, mode: int = 0o600, value: str = "s3cret") -> Path:
    token = folder / "agent.token"
    token.write_text(value + "\n")
    token.chmod(mode)
    return token


def write_config(folder: Path, text: str) -> Path:
    path = folder / "agent.yaml"
    path.write_text(text)
    return path


GOOD = """\
agent_id: web-01
customer: acme
collectors: ["collector.example:7443", "127.0.0.1:7444"]
token_file: agent.token
state_dir: state
probes:
  - name: root-disk
    type: disk
    paths: ["/"]
    interval_s: 30
  - name: data-disk
    type: disk
    paths: ["/data"]
    warn_percent: 70
"""


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_agent_config(path, check_files=True)
    return str(caught.value).splitlines()


def test_a_good_file_loads_with_defaults_and_paths_relative_to_its_folder(tmp_path: Path) -> None:
    write_token(tmp_path)
    config = load_agent_config(write_config(tmp_path, GOOD))
    assert config.agent_id == "web-01"
    assert config.host == socket.gethostname()
    assert config.token_file == tmp_path / "agent.token"
    assert config.state_dir == tmp_path / "state"
    assert config.spool.max_items == 100_000
    assert config.spool.max_bytes == 64 * 1024 * 1024
    assert config.batch.max_items == 500
    assert config.batch.linger_ms == 200
    assert config.heartbeat_interval_s == 10
    assert config.log.format == "auto"
    assert [p.name for p in config.probes] == ["root-disk", "data-disk"]
    assert isinstance(config.probes[1], DiskConfig)
    assert config.probes[1].warn_percent == 70
    assert read_token(config.token_file) == "s3cret"


def test_a_wrong_key_is_refused_with_its_line(tmp_path: Path) -> None:
    write_token(tmp_path)
    path = write_config(tmp_path, GOOD.replace("    warn_percent: 70", "    warn_percnt: 70"))
    assert problems_of(path) == [
        f"{path}:14: probes[1].warn_percnt: Extra inputs are not permitted"
    ]


def test_a_wrong_type_is_refused_with_its_line(tmp_path: Path) -> None:
    write_token(tmp_path)
    path = write_config(tmp_path, GOOD.replace("interval_s: 30", "interval_s: often"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:10: probes[0].interval_s: ")
    assert "valid number" in problem


def test_broken_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    write_token(tmp_path)
    path = write_config(tmp_path, GOOD.replace("state_dir: state", "state_dir: [state"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:6: YAML syntax")


def test_a_duplicate_probe_name_is_refused_on_the_line_of_the_repeat(tmp_path: Path) -> None:
    write_token(tmp_path)
    path = write_config(tmp_path, GOOD.replace("name: data-disk", "name: root-disk"))
    assert problems_of(path) == [
        f"{path}:11: probes[1].name: probe name is already used by probes[0]"
    ]


def test_an_unknown_probe_type_names_the_known_ones(tmp_path: Path) -> None:
    write_token(tmp_path)
    path = write_config(tmp_path, GOOD.replace("type: disk\n    paths: [\"/data\"]", "type: dsk"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:11: probes[1]: ")
    assert "'disk'" in problem


def test_a_token_file_others_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    token = write_token(tmp_path, mode=0o644)
    path = write_config(tmp_path, GOOD)
    [problem] = problems_of(path)
    assert problem == (
        f"{path}:4: token_file: token file {token} has mode 0644 and may be read by group or "
        f"others; run: chmod 600 {token}"
    )


def test_a_missing_token_file_is_refused_by_name(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD)
    [problem] = problems_of(path)
    assert problem == f"{path}:4: token_file: token file {tmp_path / 'agent.token'} does not exist"


def test_an_offline_check_does_not_need_the_token_file(tmp_path: Path) -> None:
    # The operator's machine validates a host's file without that host's token.
    config = load_agent_config(write_config(tmp_path, GOOD))
    assert config.token_file == tmp_path / "agent.token"


def test_at_least_one_collector_is_required(tmp_path: Path) -> None:
    write_token(tmp_path)
    path = write_config(
        tmp_path, GOOD.replace('["collector.example:7443", "127.0.0.1:7444"]', "[]")
    )
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:3: collectors: ")


def test_an_endpoint_without_a_port_is_refused(tmp_path: Path) -> None:
    write_token(tmp_path)
    path = write_config(tmp_path, GOOD.replace('"127.0.0.1:7444"', '"127.0.0.1"'))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:3: collectors[1]: ")


def test_a_batch_bigger_than_the_limit_is_refused(tmp_path: Path) -> None:
    write_token(tmp_path)
    path = write_config(tmp_path, GOOD + "batch:\n  max_items: 9000\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:16: batch.max_items: ")


def test_the_model_is_frozen(tmp_path: Path) -> None:
    write_token(tmp_path)
    config = load_agent_config(write_config(tmp_path, GOOD))
    with pytest.raises(ValueError, match="frozen"):
        config.agent_id = "other"
    assert isinstance(config, AgentConfig)
