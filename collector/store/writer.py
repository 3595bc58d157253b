"""The one thread that writes to the store, grouping queued writes into one transaction.

Every write of the collector (ingest batches, heartbeats, retention, audit) is a job for this
writer. SQLite has one writer at a time anyway; serialising in one thread makes that explicit,
keeps the event loop free, and lets the jobs that queue up while a commit runs share the next
commit, which is where ingest throughput comes from (one commit per group, not per batch).

Each job runs in its own SAVEPOINT inside the group's transaction, so a job that fails rolls
back alone and only its caller sees the error. A job may name an `after_commit` step: it runs
after the group is committed and its callers are answered (an ingest batch is acked before its
expectations are evaluated), in a transaction of its own; its failure is logged, never undoes
the committed job.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
import structlog

from collector.store.engine import WRITER

T = TypeVar("T")

# Bounds one grouped transaction, so a burst of queued batches cannot hold the write lock (and
# every waiting stream's ack) for long: 32 batches of 500 results is a few tens of ms of work.
DEFAULT_MAX_JOBS_PER_GROUP = 32


@dataclass(slots=True)
class _Job(Generic[T]):
    work: Callable[[sa.Connection], T]
    after_commit: Callable[[sa.Connection, T], None] | None
    future: Future[T] = field(default_factory=Future)


class WriterClosedError(RuntimeError):
    """The writer was closed; the write was not attempted."""


class StoreWriter:
    """Owns the writer thread and its connection; `run(work)` from async code, `submit` from any."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        max_jobs_per_group: int = DEFAULT_MAX_JOBS_PER_GROUP,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self._engine = engine
        self._max_jobs_per_group = max_jobs_per_group
        self._log = logger or structlog.get_logger("collector.store.writer")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._pending: deque[_Job[Any]] = deque()
        self._lock = threading.Lock()
        self._closed = False
        # Opened lazily in the writer thread, and only ever used there.
        self._connection: sa.Connection | None = None

    def submit(
        self,
        work: Callable[[sa.Connection], T],
        after_commit: Callable[[sa.Connection, T], None] | None = None,
    ) -> Future[T]:
        """Queue a write; the future resolves once it is committed (or failed)."""
        job: _Job[T] = _Job(work, after_commit)
        with self._lock:
            if self._closed:
                raise WriterClosedError("the store writer is closed")
            self._pending.append(job)
            # One drain per job queued: a drain that finds the queue empty (an earlier one took
            # its job into a group) returns at once.
            self._executor.submit(self._drain)
        return job.future

    async def run(
        self,
        work: Callable[[sa.Connection], T],
        after_commit: Callable[[sa.Connection, T], None] | None = None,
    ) -> T:
        return await asyncio.wrap_future(self.submit(work, after_commit))

    def close(self) -> None:
        """Refuse new writes, finish the queued ones, then close the connection."""
        with self._lock:
            self._closed = True
        self._executor.submit(self._close_connection)
        self._executor.shutdown(wait=True)

    # ---- in the writer thread ------------------------------------------------------------

    def _take_group(self) -> list[_Job[Any]]:
        with self._lock:
            group: list[_Job[Any]] = []
            while self._pending and len(group) < self._max_jobs_per_group:
                group.append(self._pending.popleft())
            return group

    def _conn(self) -> sa.Connection:
        if self._connection is None or self._connection.closed:
            self._connection = self._engine.connect().execution_options(**WRITER)
        return self._connection

    def _drain(self) -> None:
        group = self._take_group()
        if not group:
            return
        outcomes: list[tuple[_Job[Any], Any, BaseException | None]] = []
        try:
            conn = self._conn()
            with conn.begin():
                for job in group:
                    try:
                        with conn.begin_nested():
                            outcomes.append((job, job.work(conn), None))
                    except Exception as exc:  # noqa: BLE001 - handed to the job's caller
                        outcomes.append((job, None, exc))
        except Exception as exc:  # noqa: BLE001 - the commit failed: every caller learns it
            self._log.error("store.commit_failed", jobs=len(group), error=str(exc))
            self._discard_connection()
            for job in group:
                job.future.set_exception(exc)
            return
        # Callers hear about their write only now, after the commit: this is the ack rule.
        for job, value, error in outcomes:
            if error is None:
                job.future.set_result(value)
            else:
                job.future.set_exception(error)
        for job, value, error in outcomes:
            if error is None and job.after_commit is not None:
                self._run_after_commit(job.after_commit, value)

    def _run_after_commit(self, step: Callable[[sa.Connection, Any], None], value: Any) -> None:
        try:
            conn = self._conn()
            with conn.begin():
                step(conn, value)
        except Exception as exc:  # noqa: BLE001 - the committed write stands; log and go on
            self._log.exception("store.after_commit_failed", error=str(exc))

    def _discard_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close too
                self._log.warning("store.connection_close_failed")
            self._connection = None

    def _close_connection(self) -> None:
        self._discard_connection()
