"""Agent credentials: token files, constant-time lookup, the agents table."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from collector.auth import (
    AgentAuthenticator,
    CredentialError,
    bearer_token,
    sha256_hex,
    token_sha256_from_file,
)
from collector.store.agents import AgentCredential, register_credentials
from collector.store.schema import agents

TOKEN = "s3cret-token-for-web1-0123456789"  # noqa: S105 - a test token


def _token_file(tmp_path: Path, mode: int, content: str = TOKEN + "\n") -> Path:
    path = tmp_path / "web1.token"
    path.write_text(content)
    path.chmod(mode)
    return path


def test_a_private_token_file_gives_the_sha256_of_its_stripped_content(tmp_path: Path) -> None:
    path = _token_file(tmp_path, 0o600)
    assert token_sha256_from_file(path, field="agents[0].token_file") == sha256_hex(TOKEN)


def test_a_token_file_everyone_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = _token_file(tmp_path, 0o644)
    with pytest.raises(CredentialError, match=r"agents\[0\].token_file: .*chmod 600"):
        token_sha256_from_file(path, field="agents[0].token_file")


def test_a_token_file_the_group_can_read_is_accepted_with_a_warning(tmp_path: Path) -> None:
    path = _token_file(tmp_path, 0o640)
    with capture_logs() as logs:
        token_sha256_from_file(path, field="agents[0].token_file")
    assert [entry["event"] for entry in logs] == ["auth.token_file_group_access"]


def test_a_short_token_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="at least 16"):
        token_sha256_from_file(_token_file(tmp_path, 0o600, "short"), field="t")
    with pytest.raises(CredentialError, match="cannot read"):
        token_sha256_from_file(tmp_path / "absent.token", field="t")


def test_a_token_maps_to_its_agent_and_customer_and_nothing_else_does() -> None:
    authenticator = AgentAuthenticator([
        AgentCredential("web1", "acme", sha256_hex(TOKEN)),
        AgentCredential("db1", "globex", sha256_hex(TOKEN + "-db1")),
    ])
    found = authenticator.authenticate(TOKEN)
    assert found is not None
    assert (found.agent_id, found.customer) == ("web1", "acme")
    assert authenticator.authenticate(TOKEN[:-1]) is None
    assert authenticator.authenticate("") is None
    assert authenticator.authenticate(None) is None


def test_two_agents_sharing_a_token_refuse_to_start() -> None:
    with pytest.raises(CredentialError, match="share one token"):
        AgentAuthenticator([AgentCredential("a", "acme", sha256_hex(TOKEN)),
                            AgentCredential("b", "acme", sha256_hex(TOKEN))])


def test_the_bearer_token_is_read_from_the_authorization_metadata() -> None:
    assert bearer_token([("user-agent", "x"), ("authorization", f"Bearer {TOKEN}")]) == TOKEN
    assert bearer_token([("authorization", f"Basic {TOKEN}")]) is None
    assert bearer_token([]) is None


def test_registering_credentials_updates_the_binding_and_keeps_acked_seq(
    store: sa.Engine,
) -> None:
    with store.begin() as conn:
        conn.execute(agents.update().where(agents.c.agent_id == "web1").values(acked_seq=99))
        register_credentials(conn, [AgentCredential("web1", "acme", sha256_hex("rotated" * 3)),
                                    AgentCredential("new1", "initech", sha256_hex("n" * 20))])
    with store.connect() as conn:
        rows = {r.agent_id: r for r in conn.execute(sa.select(agents))}
    assert rows["web1"].acked_seq == 99
    assert rows["web1"].token_sha256 == sha256_hex("rotated" * 3)
    assert rows["new1"].customer == "initech"
    assert TOKEN not in {r.token_sha256 for r in rows.values()}
