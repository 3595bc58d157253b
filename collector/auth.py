"""Agent authentication: a per-agent token, read from a file, kept only as its SHA-256.

A token binds its agent to one customer (DESIGN.md, Security). The stream presents it as
`authorization: Bearer <token>`; the digest is compared in constant time with every configured
one, so neither a wrong token's prefix nor the number of agents shows in the timing.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from collector.config import CollectorConfig
from collector.store.agents import AgentCredential

# A token is a line of printable text; anything bigger is not a token file.
TOKEN_FILE_MAX_BYTES = 4096
# Shorter tokens can be guessed; `openssl rand -hex 32` gives 64 characters.
TOKEN_MIN_CHARS = 16


class CredentialError(Exception):
    """A token file that cannot be used; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class AuthenticatedAgent:
    agent_id: str
    customer: str


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_sha256_from_file(
    path: Path, *, field: str, logger: structlog.typing.FilteringBoundLogger | None = None
) -> str:
    """Read a token file and return the SHA-256 of its (stripped) content.

    Files others can read are refused (the token is a password); files the group can read are
    accepted with a warning, since a service group sharing secrets is a common setup.
    """
    log = logger or structlog.get_logger("collector.auth")
    try:
        mode = path.stat().st_mode
        if mode & stat.S_IROTH or mode & stat.S_IWOTH:
            raise CredentialError(
                f"{field}: {path} is readable or writable by every user; "
                f"run `chmod 600 {path}` and start again"
            )
        if mode & (stat.S_IRGRP | stat.S_IWGRP):
            log.warning("auth.token_file_group_access", field=field, path=str(path))
        raw = path.read_bytes()[: TOKEN_FILE_MAX_BYTES + 1]
    except OSError as exc:
        raise CredentialError(f"{field}: cannot read {path}: {exc.strerror}") from exc
    if len(raw) > TOKEN_FILE_MAX_BYTES:
        raise CredentialError(f"{field}: {path} is too big to be a token file")
    token = raw.decode("utf-8", errors="replace").strip()
    if len(token) < TOKEN_MIN_CHARS:
        raise CredentialError(
            f"{field}: {path} holds a token of {len(token)} characters; use at least "
            f"{TOKEN_MIN_CHARS} (e.g. `openssl rand -hex 32 > {path}`)"
        )
    return sha256_hex(token)


def agent_credentials(
    config: CollectorConfig, logger: structlog.typing.FilteringBoundLogger | None = None
) -> list[AgentCredential]:
    """Every configured agent with its token's digest; raises CredentialError on a bad file."""
    return [
        AgentCredential(
            agent_id=entry.agent_id,
            customer=entry.customer,
            token_sha256=token_sha256_from_file(
                entry.token_file, field=f"agents[{index}].token_file", logger=logger
            ),
        )
        for index, entry in enumerate(config.agents)
    ]


def bearer_token(metadata: Sequence[tuple[str, str | bytes]]) -> str | None:
    """The token of an `authorization: Bearer <token>` metadata entry, if there is one."""
    for key, value in metadata:
        if key.lower() != "authorization":
            continue
        text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


class AgentAuthenticator:
    """Maps a presented token to the agent and customer it was issued for."""

    def __init__(self, credentials: Sequence[AgentCredential]) -> None:
        digests = [c.token_sha256 for c in credentials]
        if len(digests) != len(set(digests)):
            # Two agents with one token could speak for each other; refuse to start.
            raise CredentialError("two agents share one token; give every agent its own")
        # Keyed by the token's SHA-256: one lookup per connect. Scanning every credential with
        # compare_digest cost 5,000 comparisons per connect, seconds of a reconnect storm at
        # 5,000 agents. The lookup's timing can only tell whether the digest of what the caller
        # sent is known, which needs a preimage of a stored digest to use.
        self._by_digest = {c.token_sha256: c for c in credentials}

    def authenticate(self, token: str | None) -> AuthenticatedAgent | None:
        if not token:
            return None
        found = self._by_digest.get(sha256_hex(token))
        if found is None:
            return None
        return AuthenticatedAgent(agent_id=found.agent_id, customer=found.customer)
