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

- Once a batch of a stream fails, the stream's later batches are refused until the agent
  reconnects: committing them would move acked_seq past the failed one.

All writes go through the StoreWriter's one thread. Batches from several streams that queue up
while the writer is busy are stored by one job (collector/store/coalesce.py): one results
insert, one check-state upsert, one agents update and one evaluation transaction for all of
them. That is where the throughput comes from, at 4 streams as at 5,000.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import orjson
import sqlalchemy as sa
import structlog

from collector.check_state import CheckStateFolder
from collector.store.agents import acked_seqs_of, record_acked_seqs
from collector.store.audit import record_audit
from collector.store.coalesce import Coalescer
from collector.store.driver_rows import DriverInsert, time_to_db
from collector.store.schema import job_runs, results
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


_INSERT_RESULTS = DriverInsert(results.insert(), results.insert(), (
    "agent_id", "seq", "customer", "host", "probe", "check_key", "status", "metrics_json",
    "summary", "detail", "observed_at", "received_at",
))


def as_utc(moment: datetime) -> datetime:
    """SQLite hands stored times back naive; they were stored in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# json's encoder for what orjson will not write as JSON numbers: NaN and infinities (orjson
# makes them null), which the stored text has always kept, as json writes them.
_METRICS_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def _metrics_json(metrics: Any) -> str:
    """Compact JSON of a result's metrics. orjson takes 0.2 µs where json takes 1.9 µs, and this
    runs for every result ingested (bench/ingest.py)."""
    if not metrics:
        return "{}"
    as_dict = metrics if isinstance(metrics, dict) else dict(metrics)
    text = orjson.dumps(as_dict).decode()
    if "null" in text:  # a non-finite value (or a name with "null" in it: same text either way)
        return _METRICS_ENCODER.encode(as_dict)
    return text


class StreamFailedError(RuntimeError):
    """An earlier batch of this stream failed: later ones must not commit before it does."""


class IngestStream:
    """One agent stream's batches. Once one of them fails, the stream's later batches are
    refused rather than committed: their seqs would move acked_seq past the failed batch,
    and the agent would delete it from its spool. The agent reconnects and resends from its
    last ack, in a new stream.
    """

    def __init__(self, ingest: Ingest, agent_id: str, customer: str, host: str) -> None:
        self._ingest = ingest
        self.agent_id = agent_id
        self.customer = customer
        self.host = host
        # Set in the writer thread only; read there too.
        self.failed = False

    async def commit(self, items: Sequence[IncomingItem]) -> int:
        """Commit a batch; returns the agent's new acked_seq once it is committed.

        Items must be in ascending seq order.
        """
        committed = await self._ingest.write(_QueuedBatch(self, items))
        return committed.acked_seq


@dataclass(frozen=True, slots=True)
class _QueuedBatch:
    stream: IngestStream
    items: Sequence[IncomingItem]


class Ingest:
    """Batches queued while the writer is busy are stored together, by one writer job: one
    results insert, one check-state upsert and one agents update for all of them."""

    def __init__(
        self,
        writer: StoreWriter,
        clock: Clock,
        evaluator: ItemEvaluator | None = None,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self._clock = clock
        self._evaluator = evaluator
        self._log = logger or structlog.get_logger("collector.ingest")
        self._batches: Coalescer[_QueuedBatch, CommittedBatch] = Coalescer(
            writer,
            self._store_batches,
            after_commit=self._evaluate if evaluator is not None else None,
            on_failure=self._stop_streams,
            name="ingest",
        )

    def stream(self, agent_id: str, customer: str, host: str) -> IngestStream:
        """`customer` is the one the agent's credential is bound to; `host` is the stream's
        host, used for items that name none."""
        return IngestStream(self, agent_id, customer, host)

    async def commit_batch(
        self, agent_id: str, customer: str, host: str, items: Sequence[IncomingItem]
    ) -> int:
        """Commit one batch outside any stream (a stream of its own)."""
        return await self.stream(agent_id, customer, host).commit(items)

    async def write(self, batch: _QueuedBatch) -> CommittedBatch:
        return await self._batches.write(batch)

    # ---- in the writer thread ------------------------------------------------------------

    def _stop_streams(self, batches: Sequence[_QueuedBatch], error: BaseException) -> None:
        """The job's commit failed: its streams' later batches (maybe queued already) must wait
        for a reconnect."""
        for batch in batches:
            batch.stream.failed = True

    def _store_batches(
        self, conn: sa.Connection, batches: Sequence[_QueuedBatch]
    ) -> list[CommittedBatch | BaseException]:
        if len(batches) > 1 and not any(b.stream.failed for b in batches):
            try:
                with conn.begin_nested():
                    return list(self._store(conn, batches))
            except Exception as exc:  # noqa: BLE001 - isolated below
                self._log.warning("ingest.group_failed_isolating", batches=len(batches),
                                  error=str(exc))
        # One batch may be bad: store each alone, in order, within this job, so that no later
        # batch of its stream can commit before it.
        return [self._store_alone(conn, batch) for batch in batches]

    def _store_alone(
        self, conn: sa.Connection, batch: _QueuedBatch
    ) -> CommittedBatch | BaseException:
        if batch.stream.failed:
            return StreamFailedError("an earlier batch of this stream failed; reconnect")
        try:
            with conn.begin_nested():
                return self._store(conn, [batch])[0]
        except Exception as exc:  # noqa: BLE001 - this batch's caller gets it
            batch.stream.failed = True
            self._log.exception("ingest.batch_failed", agent_id=batch.stream.agent_id,
                                error=str(exc))
            return exc

    def _store(self, conn: sa.Connection, batches: Sequence[_QueuedBatch]) -> list[CommittedBatch]:
        received_at = self._clock.now()
        acked_seqs = acked_seqs_of(conn, {b.stream.agent_id for b in batches})

        # Rows as tuples for the driver (collector/store/driver_rows.py).
        stored_time = time_to_db(conn)
        received_at_db = stored_time(received_at)
        result_rows: list[tuple[Any, ...]] = []
        folder = CheckStateFolder()
        committed: list[CommittedBatch] = []
        for batch in batches:
            stream, items = batch.stream, batch.items
            agent_id, customer = stream.agent_id, stream.customer
            stored_acked_seq = acked_seqs.get(agent_id, 0)
            fresh = [i for i in items if i.seq > stored_acked_seq]
            # An item that names no host is the stream's host's.
            accepted = [i if i.host else replace(i, host=stream.host)
                        for i in fresh if i.customer == customer]
            refused = [i for i in fresh if i.customer != customer]
            if refused:
                self._refuse(conn, agent_id, customer, refused, received_at)
            for incoming in accepted:
                item = incoming.item
                item_host = incoming.host
                if isinstance(item, Result):
                    observed_at = item.observed_at.astimezone(UTC)
                    metrics_json = _metrics_json(item.metrics)
                    status = item.status.name
                    result_rows.append((
                        agent_id, incoming.seq, customer, item_host, item.probe, item.check,
                        status, metrics_json, item.summary, item.detail,
                        stored_time(observed_at), received_at_db,
                    ))
                    folder.observe(customer, item_host, item.check, item.probe, status,
                                   item.summary, metrics_json, observed_at, agent_id)
                else:
                    _upsert_job_run(conn, agent_id, customer, item_host, item)
            acked_seq = max(stored_acked_seq, items[-1].seq if items else 0)
            acked_seqs[agent_id] = acked_seq
            committed.append(CommittedBatch(
                agent_id=agent_id,
                customer=customer,
                acked_seq=acked_seq,
                accepted=accepted,
                replayed=len(items) - len(fresh),
                refused=len(refused),
            ))
        _INSERT_RESULTS.execute(conn, result_rows)
        folder.write(conn)
        record_acked_seqs(conn, {b.agent_id: b.acked_seq for b in committed}, at=received_at)
        return committed

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

    def _evaluate(
        self, conn: sa.Connection, outcomes: Sequence[CommittedBatch | BaseException]
    ) -> None:
        if self._evaluator is None:
            return
        # Per (agent, customer, host), items in the order they were committed.
        units: dict[tuple[str, str, str], list[Item]] = defaultdict(list)
        for batch in outcomes:
            if isinstance(batch, CommittedBatch):
                for incoming in batch.accepted:
                    units[(batch.agent_id, batch.customer, incoming.host)].append(incoming.item)
        if not units:
            return
        try:
            # One savepoint for the job. A savepoint per host cost two more SQLite calls per
            # host (a relay's batch names dozens), a quarter of the writer's time at 5,000 hosts
            # (bench/incidents.py); hosts are isolated only when one of them fails, below.
            with conn.begin_nested():
                for (agent_id, customer, host), items in units.items():
                    self._evaluator.on_items(conn, agent_id, customer, host, items)
        except Exception as exc:  # noqa: BLE001 - the batches are committed and acked already
            if len(units) == 1:
                self._evaluation_failed(*next(iter(units.items())), exc)
                return
            self._forget_rolled_back()
        else:
            return
        # One host's evaluation failed and took the others' with it: judge again host by host,
        # each in a savepoint of its own, so only the failing host's is lost. Counts the engine
        # keeps in memory (threshold streaks) see the hosts judged before the failure twice;
        # this path runs only when an evaluation raises.
        for (agent_id, customer, host), items in units.items():
            try:
                with conn.begin_nested():
                    self._evaluator.on_items(conn, agent_id, customer, host, items)
            except Exception as exc:  # noqa: BLE001 - the batches are committed and acked already
                self._evaluation_failed((agent_id, customer, host), items, exc)

    def _evaluation_failed(self, unit: tuple[str, str, str], items: Sequence[Item],
                           exc: Exception) -> None:
        """Called while handling `exc`: logged with its traceback."""
        agent_id, customer, host = unit
        self._log.exception(
            "ingest.evaluation_failed", agent_id=agent_id, customer=customer,
            host=host, items=len(items), error=str(exc),
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
