"""collector.yaml: defaults, paths relative to the file, and errors with file:line: field."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import load_collector_config
from probes.configfile import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "etc" / "collector.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_an_empty_file_gives_the_documented_defaults(tmp_path: Path) -> None:
    config = load_collector_config(_write(tmp_path, ""))
    assert config.grpc.listen == "127.0.0.1:8471"
    assert config.grpc.max_batch_items == 1000
    assert config.http.listen == "127.0.0.1:8470"
    assert config.store.results_retention_days == 14
    assert config.store_url == f"sqlite:///{tmp_path / 'etc' / 'var' / 'daybreak.db'}"
    assert config.customers_dir == tmp_path / "etc" / "customers"


def test_relative_paths_are_relative_to_the_configuration_file(tmp_path: Path) -> None:
    config = load_collector_config(_write(tmp_path, """\
customers_dir: ../customers
agents:
  - agent_id: web1
    customer: acme
    token_file: tokens/web1.token
api_tokens:
  - name: desk
    role: service_desk
    token_file: /run/secrets/desk.token
"""))
    assert config.customers_dir == tmp_path / "customers"  # `etc/../customers`, normalised
    assert config.agents[0].token_file == tmp_path / "etc" / "tokens" / "web1.token"
    assert config.api_tokens[0].token_file == Path("/run/secrets/desk.token")
    assert config.api_tokens[0].customers == ["*"]


def test_an_unknown_key_is_refused_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "grpc:\n  listen: 127.0.0.1:9000\n  max_batch: 10\n")
    with pytest.raises(ConfigError) as refused:
        load_collector_config(path)
    assert str(refused.value).startswith(f"{path}:3: grpc.max_batch: Extra inputs")


def test_a_wrong_role_is_refused_with_its_line_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
api_tokens:
  - name: desk
    role: service_desk
    token_file: desk.token
  - name: ops
    role: root
    token_file: ops.token
""")
    with pytest.raises(ConfigError) as refused:
        load_collector_config(path)
    assert f"{path}:6: api_tokens[1].role:" in str(refused.value)


def test_a_listen_address_without_a_port_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "http:\n  listen: localhost\n")
    with pytest.raises(ConfigError, match=r"collector.yaml:2: http.listen: .*HOST:PORT"):
        load_collector_config(path)


def test_an_agent_listed_twice_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
agents:
  - {agent_id: web1, customer: acme, token_file: a.token}
  - {agent_id: web1, customer: globex, token_file: b.token}
""")
    with pytest.raises(ConfigError, match="agent_id listed twice: web1"):
        load_collector_config(path)
