"""Results history retention: delete results older than `store.results_retention_days`.

Only the `results` history is pruned; check_state, job_runs, incidents and the audit log are
kept. Deletion goes through the store writer in chunks of a few thousand rows, each its own
job, so a first prune of months of history never holds the write lock (and every agent's ack)
for more than a few milliseconds at a time; ingest batches queue between the chunks.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog

from collector.store.schema import results
from collector.store.writer import StoreWriter
from probes.clock import Clock

DEFAULT_CHUNK_ROWS = 5000


def delete_results_before(conn: sa.Connection, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` of the oldest results received before cutoff; returns how many."""
    oldest = (
        sa.select(results.c.id)
        .where(results.c.received_at < cutoff)
        .order_by(results.c.id)
        .limit(limit)
    )
    # DELETE ... LIMIT is not portable; a subquery on the primary key works on both databases.
    deleted = conn.execute(results.delete().where(results.c.id.in_(oldest.scalar_subquery())))
    return int(deleted.rowcount or 0)


class ResultsRetention:
    def __init__(
        self,
        writer: StoreWriter,
        clock: Clock,
        *,
        retention_days: float,
        prune_interval_s: float,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self._writer = writer
        self._clock = clock
        self._retention = timedelta(days=retention_days)
        self._prune_interval_s = prune_interval_s
        self._chunk_rows = chunk_rows
        self._log = logger or structlog.get_logger("collector.retention")

    async def prune_once(self) -> int:
        """Delete every result older than the retention, chunk by chunk; returns the count."""
        cutoff = self._clock.now() - self._retention
        total = 0
        while True:
            deleted = await self._writer.run(
                lambda conn: delete_results_before(conn, cutoff, self._chunk_rows)
            )
            total += deleted
            if deleted < self._chunk_rows:
                break
        if total:
            self._log.info("retention.pruned", results=total, cutoff=cutoff.isoformat())
        return total

    async def run(self) -> None:
        """Prune now and then every prune_interval_s, until cancelled."""
        while True:
            try:
                await self.prune_once()
            except Exception as exc:  # noqa: BLE001 - try again next round, never stop pruning
                self._log.exception("retention.failed", error=str(exc))
            await asyncio.sleep(self._prune_interval_s)
