"""Writes that arrive while one is waiting for the writer are done together, by one writer job.

At thousands of agents the store writer's cost is per write, not per row: a savepoint, a few
statements compiled and sent, a future resolved. A Coalescer sits in front of the StoreWriter
for one kind of write (ingest batches, heartbeats): `add(entry)` queues the entry and, unless a
job of this coalescer is already queued and not yet started, submits one. That job takes every
entry queued by the time it starts and hands them to `work` together, so 500 batches a second
become a handful of jobs (group commit, as PostgreSQL's WAL writer does it).

Each entry's future resolves once the job that took it is committed, with that entry's own
value, or with the exception `work` returned for that entry alone (work isolates a bad entry
itself, inside the job, so that nothing of another job can slip in between: an agent's later
batch must never commit before its earlier one). When `work` raises, every entry of the job
fails with that error, and `on_failure` hears of it in the writer thread before the writer
takes its next job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

import sqlalchemy as sa
import structlog

from collector.store.writer import StoreWriter

E = TypeVar("E")
R = TypeVar("R")


class Coalescer(Generic[E, R]):
    """Queues entries for `work(conn, entries) -> one value per entry`, run in the writer.

    A value that is an exception instance fails that entry's future alone.
    """

    def __init__(
        self,
        writer: StoreWriter,
        work: Callable[[sa.Connection, Sequence[E]], Sequence[R | BaseException]],
        *,
        after_commit: Callable[[sa.Connection, Sequence[R | BaseException]], None] | None = None,
        on_failure: Callable[[Sequence[E], BaseException], None] | None = None,
        max_entries_per_job: int = 1000,
        name: str = "coalescer",
    ) -> None:
        self._writer = writer
        self._work = work
        self._after_commit = after_commit
        self._on_failure = on_failure
        self._max_entries = max_entries_per_job
        self._log = structlog.get_logger("collector.store.coalesce").bind(coalescer=name)
        # Touched by the event loop (add) and the writer thread (_take): under the lock.
        self._lock = threading.Lock()
        self._queued: list[tuple[E, Future[R]]] = []
        self._job_waiting = False

    def add(self, entry: E) -> Future[R]:
        """Queue an entry; its future resolves after the commit of the job that wrote it."""
        future: Future[R] = Future()
        with self._lock:
            self._queued.append((entry, future))
            if self._job_waiting:
                return future
            self._job_waiting = True
        self._submit_job()
        return future

    def _submit_job(self) -> None:
        taken: list[tuple[E, Future[R]]] = []

        def run(conn: sa.Connection) -> Sequence[R | BaseException]:
            taken.extend(self._take())
            values = self._work(conn, [entry for entry, _ in taken])
            if len(values) != len(taken):
                raise RuntimeError(f"work returned {len(values)} values for {len(taken)} entries")
            return values

        try:
            job = self._writer.submit(run, self._after_commit)
        except Exception as exc:  # noqa: BLE001 - the writer is closed: fail what is queued
            with self._lock:
                self._job_waiting = False
                failed, self._queued = self._queued, []
            for _, future in failed:
                future.set_exception(exc)
            return
        job.add_done_callback(lambda done: self._settle(taken, done))

    def _take(self) -> list[tuple[E, Future[R]]]:
        with self._lock:
            taken = self._queued[: self._max_entries]
            del self._queued[: self._max_entries]
            more = bool(self._queued)
            self._job_waiting = more
        if more:
            # More than one job's worth queued: the next job is queued behind this one now.
            self._submit_job()
        return taken

    def _settle(
        self, taken: list[tuple[E, Future[R]]], done: Future[Sequence[R | BaseException]]
    ) -> None:
        error = done.exception()
        if error is not None:
            if not taken:
                # The writer failed the job before it ran (no connection): the entries it
                # would have taken fail with it, or they would wait for a job that never comes.
                taken.extend(self._take())
            self._log.warning("coalesce.job_failed", entries=len(taken), error=str(error))
            if self._on_failure is not None:
                # In the writer thread, before it takes its next job.
                self._on_failure([entry for entry, _ in taken], error)
            for _, future in taken:
                future.set_exception(error)
            return
        for (_, future), value in zip(taken, done.result(), strict=True):
            if isinstance(value, BaseException):
                future.set_exception(value)
            else:
                future.set_result(value)
