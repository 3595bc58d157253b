"""The agents table: credentials from the configuration, and each agent's presence.

What `daybreak agents list` shows (connected, last seen, spool depth) is written here, by the
gRPC service through the store writer.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
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


def acked_seqs_of(conn: sa.Connection, agent_ids: Collection[str]) -> dict[str, int]:
    """The stored acked_seq of each of these agents (a missing agent: absent)."""
    if not agent_ids:
        return {}
    rows = conn.execute(
        sa.select(agents.c.agent_id, agents.c.acked_seq)
        .where(agents.c.agent_id.in_(list(agent_ids)))
    )
    return {agent_id: int(acked or 0) for agent_id, acked in rows}


_RECORD_ACKED = (
    agents.update()
    .where(agents.c.agent_id == sa.bindparam("b_agent_id"))
    .values(acked_seq=sa.bindparam("b_acked_seq"), last_seen_at=sa.bindparam("b_at"))
)


def record_acked_seqs(conn: sa.Connection, acked: Mapping[str, int], *, at: datetime) -> None:
    """One statement, executed for every agent: what a group of batches committed."""
    if acked:
        conn.execute(_RECORD_ACKED, [
            {"b_agent_id": agent_id, "b_acked_seq": seq, "b_at": at}
            for agent_id, seq in acked.items()
        ])


@dataclass(frozen=True, slots=True)
class StreamOpened:
    agent_id: str
    host: str
    version: str
    at: datetime


_RECORD_OPENED = (
    agents.update()
    .where(agents.c.agent_id == sa.bindparam("b_agent_id"))
    .values(host=sa.bindparam("b_host"), version=sa.bindparam("b_version"), connected=True,
            connected_since=sa.bindparam("b_at"), last_seen_at=sa.bindparam("b_at"))
)


def record_streams_opened(conn: sa.Connection, opened: Sequence[StreamOpened]) -> list[int]:
    """Record new streams (a reconnect storm's arrive together); returns each agent's acked_seq
    for its Welcome."""
    if not opened:
        return []
    conn.execute(_RECORD_OPENED, [
        {"b_agent_id": o.agent_id, "b_host": o.host, "b_version": o.version, "b_at": o.at}
        for o in opened
    ])
    acked = acked_seqs_of(conn, {o.agent_id for o in opened})
    return [acked.get(o.agent_id, 0) for o in opened]


def mark_disconnected(conn: sa.Connection, agent_id: str, *, at: datetime) -> None:
    conn.execute(
        agents.update()
        .where(agents.c.agent_id == agent_id)
        .values(connected=False, last_seen_at=at)
    )


@dataclass(frozen=True, slots=True)
class Heartbeat:
    agent_id: str
    at: datetime
    figures: HeartbeatFigures


_RECORD_HEARTBEAT = (
    agents.update()
    .where(agents.c.agent_id == sa.bindparam("b_agent_id"))
    .values(
        last_seen_at=sa.bindparam("b_at"),
        spool_depth=sa.bindparam("b_spool_depth"),
        results_dropped=sa.bindparam("b_results_dropped"),
        rss_bytes=sa.bindparam("b_rss_bytes"),
        cpu_percent=sa.bindparam("b_cpu_percent"),
        uptime_s=sa.bindparam("b_uptime_s"),
    )
)


def record_heartbeats(conn: sa.Connection, heartbeats: Sequence[Heartbeat]) -> None:
    """Heartbeats in the order they arrived: each agent's latest figures are kept, and every
    move of its dropped-results counter is recorded in agent_dropped."""
    if not heartbeats:
        return
    latest = {beat.agent_id: beat for beat in heartbeats}
    dropped_before: dict[str, int] = {
        agent_id: dropped for agent_id, dropped in conn.execute(
            sa.select(agents.c.agent_id, agents.c.results_dropped)
            .where(agents.c.agent_id.in_(list(latest)))
        )
    }
    moves: list[dict[str, object]] = []
    for beat in heartbeats:
        before = dropped_before.get(beat.agent_id)
        dropped = beat.figures.results_dropped
        if before is not None and before != dropped:
            moves.append({"agent_id": beat.agent_id, "at": beat.at, "results_dropped": dropped})
        if before is not None:
            dropped_before[beat.agent_id] = dropped
    if moves:
        conn.execute(agent_dropped.insert(), moves)
    conn.execute(_RECORD_HEARTBEAT, [
        {
            "b_agent_id": beat.agent_id,
            "b_at": beat.at,
            "b_spool_depth": beat.figures.spool_depth,
            "b_results_dropped": beat.figures.results_dropped,
            "b_rss_bytes": beat.figures.rss_bytes,
            "b_cpu_percent": beat.figures.cpu_percent,
            "b_uptime_s": beat.figures.uptime_s,
        }
        for beat in latest.values()
    ])
