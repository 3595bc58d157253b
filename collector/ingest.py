"""Commit an agent's batch to the store, deduplicated by (agent, seq), then evaluate it.

The rules (docs/wire-contract.md says them from the agent's side):
- An item with seq <= the agent's stored acked_seq was committed before: a replay after a
  reconnect. It is skipped, so every result counts exactly once.
- An item for another customer than the one the agent's token is bound to is refused, audited
  and logged, but its seq is acked all the same: it will never become acceptable, and an agent
  that never hears an ack would resend it forever.
- The returned acked_seq covers the whole batch and is returned only after the commit; the
  caller sends the Ack then, never before.
- Expectations are evaluated after the commit, in a transaction of their own: an evaluation that
  fails is logged and never loses or un-acks the batch.

All writes go through the StoreWriter's one thread. Batches from several streams that queue up
while a commit runs are committed together; that is where the throughput comes from.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
import structlog

from collector.check_state import CheckStateFolder, upsert_check_states
from collector.store.agents import acked_seq_of
from collector.store.audit import record_audit
from collector.store.schema import agents, job_runs, results
from collector.store.writer import StoreWriter
from probes.clock import Clock
from probes.result import Item, JobOutcome, JobRun, Result


@dataclass(frozen=True, slots=True)
class IncomingItem:
    """An item as an agent sent it: its sequence number and the customer and host it names."""

    seq: int
    customer: str
    host: str
    item: Item


class ItemEvaluator(Protocol):
    """Checks committed items against expectations (collector.incidents.engine.IncidentEngine).

    Called in the writer thread, inside a transaction of its own on the writer's connection.
    """

    def on_items(
        self, conn: sa.Connection, agent_id: str, customer: str, host: str, items: Sequence[Item]
    ) -> None: ...


@runtime_checkable
class CachingEvaluator(ItemEvaluator, Protocol):
    """An evaluator that caches what it wrote, and must forget it when that was rolled back."""

    def invalidate(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CommittedBatch:
    agent_id: str
    customer: str
    acked_seq: int
    accepted: Sequence[IncomingItem] = field(default_factory=tuple)
    replayed: int = 0
    refused: int = 0


_RESULT_COLUMNS = (
    "agent_id", "seq", "customer", "host", "probe", "check_key", "status", "metrics_json",
    "summary", "detail", "observed_at", "received_at",
)
_SQLITE_INSERT_RESULTS = (
    f"INSERT INTO results ({', '.join(_RESULT_COLUMNS)}) "  # noqa: S608 - constant names
    f"VALUES ({', '.join('?' for _ in _RESULT_COLUMNS)})"
)


def _identity(value: Any) -> Any:
    return value


def _time_processor(conn: sa.Connection) -> Any:
    # The dialect's own processor (a generic type's `bind_processor` is None on SQLite, and the
    # value would then reach the sqlite3 module's default adapter, which writes another format).
    column_type = results.c.observed_at.type.dialect_impl(conn.dialect)
    processor = column_type.bind_processor(conn.dialect)
    return processor if processor is not None else _identity


def as_utc(moment: datetime) -> datetime:
    """SQLite hands stored times back naive; they were stored in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# One encoder for every result: json.dumps with non-default separators builds a new encoder per
# call, which was a tenth of the writer's time per result (bench/ingest.py).
_METRICS_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def _metrics_json(metrics: Any) -> str:
    if not metrics:
        return "{}"
    return _METRICS_ENCODER.encode(metrics if isinstance(metrics, dict) else dict(metrics))


class Ingest:
    def __init__(
        self,
        writer: StoreWriter,
        clock: Clock,
        evaluator: ItemEvaluator | None = None,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self._writer = writer
        self._clock = clock
        self._evaluator = evaluator
        self._log = logger or structlog.get_logger("collector.ingest")

    async def commit_batch(
        self, agent_id: str, customer: str, host: str, items: Sequence[IncomingItem]
    ) -> int:
        """Commit the batch; returns the agent's new acked_seq once it is committed.

        `customer` is the one the agent's credential is bound to; `host` is the stream's host,
        used for items that name none. Items must be in ascending seq order.
        """
        committed = await self._writer.run(
            lambda conn: self._store(conn, agent_id, customer, host, items),
            self._evaluate if self._evaluator is not None else None,
        )
        return committed.acked_seq

    # ---- in the writer thread ------------------------------------------------------------

    def _store(
        self,
        conn: sa.Connection,
        agent_id: str,
        customer: str,
        host: str,
        items: Sequence[IncomingItem],
    ) -> CommittedBatch:
        received_at = self._clock.now()
        stored_acked_seq = acked_seq_of(conn, agent_id)
        fresh = [i for i in items if i.seq > stored_acked_seq]
        # An item that names no host is the stream's host's.
        accepted = [i if i.host else replace(i, host=host) for i in fresh if i.customer == customer]
        refused = [i for i in fresh if i.customer != customer]
        if refused:
            self._refuse(conn, agent_id, customer, refused, received_at)

        # SQLite gets the driver's executemany with rows as tuples: SQLAlchemy's per-row
        # parameter processing was the largest cost of a batch (bench/ingest.py). Times are
        # turned into the column's stored form by the column type's own bind processor, so both
        # paths store identical values.
        driver_fast_path = conn.dialect.name == "sqlite"
        time_to_db = _time_processor(conn) if driver_fast_path else _identity
        received_at_db = time_to_db(received_at)
        result_rows: list[tuple[Any, ...]] = []
        folder = CheckStateFolder()
        for incoming in accepted:
            item = incoming.item
            item_host = incoming.host
            if isinstance(item, Result):
                observed_at = item.observed_at.astimezone(UTC)
                metrics_json = _metrics_json(item.metrics)
                status = item.status.name
                result_rows.append((
                    agent_id, incoming.seq, customer, item_host, item.probe, item.check, status,
                    metrics_json, item.summary, item.detail, time_to_db(observed_at),
                    received_at_db,
                ))
                folder.observe(customer, item_host, item.check, item.probe, status, item.summary,
                               metrics_json, observed_at, agent_id)
            else:
                _upsert_job_run(conn, agent_id, customer, item_host, item)
        if result_rows:
            if driver_fast_path:
                conn.exec_driver_sql(_SQLITE_INSERT_RESULTS, result_rows)
            else:
                conn.execute(results.insert(), [dict(zip(_RESULT_COLUMNS, row, strict=True))
                                                for row in result_rows])
        observations = folder.observations()
        if observations:
            upsert_check_states(conn, observations)

        acked_seq = max(stored_acked_seq, items[-1].seq if items else 0)
        conn.execute(
            agents.update()
            .where(agents.c.agent_id == agent_id)
            .values(acked_seq=acked_seq, last_seen_at=received_at)
        )
        return CommittedBatch(
            agent_id=agent_id,
            customer=customer,
            acked_seq=acked_seq,
            accepted=accepted,
            replayed=len(items) - len(fresh),
            refused=len(refused),
        )

    def _refuse(
        self,
        conn: sa.Connection,
        agent_id: str,
        customer: str,
        refused: Sequence[IncomingItem],
        at: datetime,
    ) -> None:
        claimed = sorted({i.customer for i in refused})
        # One audit row per batch, not per item: a misconfigured agent must not flood the log.
        record_audit(
            conn,
            at=at,
            actor=f"agent:{agent_id}",
            action="ingest.refused_customer",
            target=",".join(claimed),
            detail=(
                f"agent bound to customer {customer!r} sent {len(refused)} item(s) for "
                f"{', '.join(repr(c) for c in claimed)} (seq {refused[0].seq}..{refused[-1].seq})"
            ),
        )
        self._log.warning(
            "ingest.refused_customer",
            agent_id=agent_id,
            customer=customer,
            claimed=claimed,
            items=len(refused),
            first_seq=refused[0].seq,
            last_seq=refused[-1].seq,
        )

    def _evaluate(self, conn: sa.Connection, batch: CommittedBatch) -> None:
        if self._evaluator is None or not batch.accepted:
            return
        by_host: dict[str, list[Item]] = defaultdict(list)
        for incoming in batch.accepted:
            by_host[incoming.host].append(incoming.item)
        try:
            # One savepoint for the batch. A savepoint per host cost two more SQLite calls per
            # host (a relay's batch names dozens), a quarter of the writer's time at 5,000 hosts
            # (bench/incidents.py); hosts are isolated only when one of them fails, below.
            with conn.begin_nested():
                for host, items in by_host.items():
                    self._evaluator.on_items(conn, batch.agent_id, batch.customer, host, items)
        except Exception as exc:  # noqa: BLE001 - the batch is committed and acked already
            if len(by_host) == 1:
                self._evaluation_failed(batch, next(iter(by_host)), len(batch.accepted), exc)
                return
            self._forget_rolled_back()
        else:
            return
        # One host's evaluation failed and took the others' with it: judge again host by host,
        # each in a savepoint of its own, so only the failing host's is lost. Counts the engine
        # keeps in memory (threshold streaks) see the hosts judged before the failure twice;
        # this path runs only when an evaluation raises.
        for host, items in by_host.items():
            try:
                with conn.begin_nested():
                    self._evaluator.on_items(conn, batch.agent_id, batch.customer, host, items)
            except Exception as exc:  # noqa: BLE001 - the batch is committed and acked already
                self._evaluation_failed(batch, host, len(items), exc)

    def _evaluation_failed(self, batch: CommittedBatch, host: str, items: int,
                           exc: Exception) -> None:
        """Called while handling `exc`: logged with its traceback."""
        self._log.exception(
            "ingest.evaluation_failed", agent_id=batch.agent_id, customer=batch.customer,
            host=host, items=items, error=str(exc),
        )
        self._forget_rolled_back()

    def _forget_rolled_back(self) -> None:
        if isinstance(self._evaluator, CachingEvaluator):
            self._evaluator.invalidate()


def _upsert_job_run(
    conn: sa.Connection, agent_id: str, customer: str, host: str, run: JobRun
) -> None:
    """One row per (customer, host, job, run_id); a later event of the run completes it.

    Job runs are a few per job per night, so a read before the write costs nothing and keeps
    the merge rules in Python, the same on every database.
    """
    key = (
        (job_runs.c.customer == customer)
        & (job_runs.c.host == host)
        & (job_runs.c.job == run.job)
        & (job_runs.c.run_id == run.run_id)
    )
    existing = conn.execute(
        sa.select(job_runs.c.outcome, job_runs.c.started_at, job_runs.c.finished_at,
                  job_runs.c.exit_code, job_runs.c.excerpt, job_runs.c.source).where(key)
    ).one_or_none()
    started_at = run.started_at.astimezone(UTC) if run.started_at else None
    finished_at = run.finished_at.astimezone(UTC) if run.finished_at else None
    values: dict[str, Any] = {
        "probe": run.probe, "agent_id": agent_id, "outcome": run.outcome.value,
        "started_at": started_at, "finished_at": finished_at, "exit_code": run.exit_code,
        "excerpt": run.excerpt, "source": run.source,
        "observed_at": run.observed_at.astimezone(UTC),
    }
    if existing is None:
        values["duration_s"] = run.duration_s
        conn.execute(job_runs.insert().values(
            customer=customer, host=host, job=run.job, run_id=run.run_id, **values
        ))
        return
    # A finished run does not go back to running (a late "started" line of the same run).
    if run.outcome is JobOutcome.RUNNING and existing.outcome != JobOutcome.RUNNING.value:
        values["outcome"] = existing.outcome
    values["started_at"] = started_at or existing.started_at
    values["finished_at"] = finished_at or existing.finished_at
    values["exit_code"] = run.exit_code if run.exit_code is not None else existing.exit_code
    values["excerpt"] = run.excerpt or existing.excerpt
    values["source"] = run.source or existing.source
    duration_s = None
    if values["started_at"] is not None and values["finished_at"] is not None:
        duration_s = (
            as_utc(values["finished_at"]) - as_utc(values["started_at"])
        ).total_seconds()
    values["duration_s"] = duration_s
    conn.execute(job_runs.update().where(key).values(**values))
