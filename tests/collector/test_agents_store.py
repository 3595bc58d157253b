"""The agents table and the history of dropped-results counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from collector.store.agents import (
    Heartbeat,
    HeartbeatFigures,
    StreamOpened,
    record_heartbeats,
    record_streams_opened,
)
from collector.store.engine import open_store
from collector.store.schema import agent_dropped, agents

T0 = datetime(2025, 3, 4, 1, 0, tzinfo=UTC)


def figures(dropped: int) -> HeartbeatFigures:
    return HeartbeatFigures(spool_depth=0, results_dropped=dropped, rss_bytes=1, cpu_percent=0.1,
                            uptime_s=10.0)


def test_a_heartbeat_records_the_dropped_counter_only_when_it_moves(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'daybreak.db'}")
    with engine.begin() as conn:
        conn.execute(agents.insert().values(agent_id="a1", customer="acme", token_sha256="x" * 64))
        beats = [Heartbeat("a1", T0 + timedelta(minutes=minute), figures(dropped))
                 for minute, dropped in enumerate([0, 0, 7, 7, 7, 12])]
        # One at a time, and then the same again in one call, as the writer groups them.
        for beat in beats[:3]:
            record_heartbeats(conn, [beat])
        record_heartbeats(conn, beats[3:])
    with engine.connect() as conn:
        history = conn.execute(sa.select(agent_dropped.c.at, agent_dropped.c.results_dropped)
                               .order_by(agent_dropped.c.id)).all()
        latest = conn.execute(sa.select(agents.c.results_dropped)).scalar_one()
    engine.dispose()
    assert [(row.at.replace(tzinfo=UTC), row.results_dropped) for row in history] == [
        (T0 + timedelta(minutes=2), 7), (T0 + timedelta(minutes=5), 12)]
    assert latest == 12


def test_streams_opened_together_are_recorded_and_each_gets_its_own_acked_seq(
    tmp_path: Path,
) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'daybreak.db'}")
    with engine.begin() as conn:
        conn.execute(agents.insert(), [
            {"agent_id": "a1", "customer": "acme", "token_sha256": "1" * 64, "acked_seq": 41},
            {"agent_id": "a2", "customer": "acme", "token_sha256": "2" * 64, "acked_seq": 0},
        ])
        acked = record_streams_opened(conn, [StreamOpened("a2", "web2", "1.0", T0),
                                             StreamOpened("a1", "web1", "1.1", T0)])
    with engine.connect() as conn:
        rows = {r.agent_id: (r.host, r.version, r.connected)
                for r in conn.execute(sa.select(agents))}
    engine.dispose()
    assert acked == [0, 41]
    assert rows == {"a1": ("web1", "1.1", True), "a2": ("web2", "1.0", True)}
