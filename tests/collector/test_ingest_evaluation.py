"""Evaluation of a batch naming many hosts (a relay's): one savepoint for the batch, and still
only the failing host's evaluation is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from structlog.testing import capture_logs

from collector.ingest import IncomingItem, Ingest
from collector.store.schema import audit_log
from collector.store.writer import StoreWriter
from probes.clock import ManualClock
from probes.result import Item, Result, Status

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


class _AuditingEvaluator:
    """Writes one audit row per host it judges; raises for the host named `fail_on`."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on
        self.invalidated = 0

    def on_items(self, conn: sa.Connection, agent_id: str, customer: str, host: str,
                 items: Sequence[Item]) -> None:
        conn.execute(audit_log.insert().values(at=T0, actor="evaluator", action="evaluated",
                                               target=host))
        if host == self.fail_on:
            raise RuntimeError(f"expectation blew up on {host}")

    def invalidate(self) -> None:
        self.invalidated += 1


def _batch(hosts: Sequence[str]) -> list[IncomingItem]:
    return [IncomingItem(seq, "acme", host, Result(
        probe="disks", check="disk:/", status=Status.OK, summary="ok", observed_at=T0))
        for seq, host in enumerate(hosts, start=1)]


def _judged(store: sa.Engine) -> list[str]:
    with store.connect() as conn:
        return sorted(conn.execute(sa.select(audit_log.c.target)
                                   .where(audit_log.c.actor == "evaluator")).scalars())


def test_every_host_of_a_relay_batch_is_judged(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    evaluator = _AuditingEvaluator()
    ingest = Ingest(writer, clock, evaluator)
    asyncio.run(ingest.commit_batch("web1", "acme", "relay", _batch(["h1", "h2", "h3"])))
    writer.submit(lambda _conn: None).result()
    assert _judged(store) == ["h1", "h2", "h3"]
    assert evaluator.invalidated == 0


def test_one_failing_host_loses_only_its_own_evaluation(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    evaluator = _AuditingEvaluator(fail_on="h2")
    ingest = Ingest(writer, clock, evaluator)
    with capture_logs() as logs:
        acked = asyncio.run(ingest.commit_batch("web1", "acme", "relay",
                                                _batch(["h1", "h2", "h3"])))
        writer.submit(lambda _conn: None).result()
    assert acked == 3
    assert _judged(store) == ["h1", "h3"]
    failures = [e for e in logs if e["event"] == "ingest.evaluation_failed"]
    assert [e["host"] for e in failures] == ["h2"]
    assert evaluator.invalidated >= 1  # the cache forgets what the rollback undid
