"""Retention deletes old results in chunks and keeps everything else."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa

from collector.retention import ResultsRetention
from collector.store.schema import check_state, job_runs, results
from collector.store.writer import StoreWriter
from probes.clock import ManualClock


def _result(seq: int, received_days_ago: float, clock: ManualClock) -> dict[str, object]:
    at = clock.now() - timedelta(days=received_days_ago)
    return {"agent_id": "web1", "seq": seq, "customer": "acme", "host": "web1",
            "probe": "disk", "check_key": "disk:/", "status": "OK", "observed_at": at,
            "received_at": at}


def test_results_older_than_the_retention_are_deleted_and_the_rest_kept(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    old = [_result(seq, 20 + seq / 100, clock) for seq in range(1, 26)]
    young = [_result(100 + seq, 13.9, clock) for seq in range(1, 6)]
    with store.begin() as conn:
        conn.execute(results.insert(), old + young)
        conn.execute(check_state.insert().values(
            customer="acme", host="web1", check_key="disk:/", probe="disk", status="OK",
            observed_at=clock.now() - timedelta(days=30),
            status_since=clock.now() - timedelta(days=30), agent_id="web1"))
        conn.execute(job_runs.insert().values(
            customer="acme", host="web1", job="etl", run_id="1", probe="joblog",
            agent_id="web1", outcome="failed", observed_at=clock.now() - timedelta(days=60)))
    retention = ResultsRetention(writer, clock, retention_days=14, prune_interval_s=600,
                                 chunk_rows=10)

    deleted = asyncio.run(retention.prune_once())

    assert deleted == 25
    with store.connect() as conn:
        kept = conn.execute(sa.select(results.c.seq).order_by(results.c.seq)).scalars().all()
        assert conn.execute(sa.select(sa.func.count()).select_from(check_state)).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(job_runs)).scalar() == 1
    assert kept == [101, 102, 103, 104, 105]


def test_results_age_into_the_prune_as_the_clock_moves(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    with store.begin() as conn:
        conn.execute(results.insert(), [_result(1, 13, clock)])
    retention = ResultsRetention(writer, clock, retention_days=14, prune_interval_s=600)
    assert asyncio.run(retention.prune_once()) == 0
    clock.advance(timedelta(days=1, seconds=1).total_seconds())
    assert asyncio.run(retention.prune_once()) == 1
