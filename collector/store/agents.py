"""The agents table: credentials from the configuration, and each agent's presence.

What `daybreak agents list` shows (connected, last seen, spool depth) is written here, by the
gRPC service through the store writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from collector.store.schema import agent_dropped, agents


@dataclass(frozen=True, slots=True)
class AgentCredential:
    """An agent's identity as configured: its token is kept only as a SHA-256 hex digest."""

    agent_id: str
    customer: str
    token_sha256: str


@dataclass(frozen=True, slots=True)
class HeartbeatFigures:
    spool_depth: int
    results_dropped: int
    rss_bytes: int
    cpu_percent: float
    uptime_s: float


def register_credentials(conn: sa.Connection, credentials: Sequence[AgentCredential]) -> None:
    """Insert new agents and update the customer and token of known ones (acked_seq is kept)."""
    known = set(conn.execute(sa.select(agents.c.agent_id)).scalars())
    for credential in credentials:
        values = {"customer": credential.customer, "token_sha256": credential.token_sha256}
        if credential.agent_id in known:
            conn.execute(
                agents.update().where(agents.c.agent_id == credential.agent_id).values(**values)
            )
        else:
            conn.execute(agents.insert().values(agent_id=credential.agent_id, **values))


def mark_all_disconnected(conn: sa.Connection) -> None:
    """At start: rows still saying connected are left over from a collector that died."""
    conn.execute(agents.update().where(agents.c.connected.is_(True)).values(connected=False))


def acked_seq_of(conn: sa.Connection, agent_id: str) -> int:
    value = conn.execute(
        sa.select(agents.c.acked_seq).where(agents.c.agent_id == agent_id)
    ).scalar_one_or_none()
    return int(value or 0)


def mark_connected(
    conn: sa.Connection, agent_id: str, *, host: str, version: str, at: datetime
) -> int:
    """Record a new stream; returns the agent's acked_seq for the Welcome."""
    conn.execute(
        agents.update()
        .where(agents.c.agent_id == agent_id)
        .values(host=host, version=version, connected=True, connected_since=at, last_seen_at=at)
    )
    return acked_seq_of(conn, agent_id)


def mark_disconnected(conn: sa.Connection, agent_id: str, *, at: datetime) -> None:
    conn.execute(
        agents.update()
        .where(agents.c.agent_id == agent_id)
        .values(connected=False, last_seen_at=at)
    )


def record_heartbeat(
    conn: sa.Connection, agent_id: str, figures: HeartbeatFigures, *, at: datetime
) -> None:
    before = conn.execute(
        sa.select(agents.c.results_dropped).where(agents.c.agent_id == agent_id)
    ).scalar_one_or_none()
    if before is not None and before != figures.results_dropped:
        conn.execute(agent_dropped.insert().values(
            agent_id=agent_id, at=at, results_dropped=figures.results_dropped))
    conn.execute(
        agents.update()
        .where(agents.c.agent_id == agent_id)
        .values(
            last_seen_at=at,
            spool_depth=figures.spool_depth,
            results_dropped=figures.results_dropped,
            rss_bytes=figures.rss_bytes,
            cpu_percent=figures.cpu_percent,
            uptime_s=figures.uptime_s,
        )
    )
