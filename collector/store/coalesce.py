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

From the event loop, `write(entry)` is the cheaper form of `await wrap_future(add(entry))`: the
entry waits on a plain loop future, and the writer wakes the loop once per job for all of them
(at 5,000 agents, 500 batches a second, the per-entry future, its wrapper and a wake-up each
were a sixth of the event loop's time: bench/incidents.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
import structlog

from collector.store.writer import StoreWriter

E = TypeVar("E")
R = TypeVar("R")

# What an entry's caller waits on: a thread-safe future (add) or a loop future (write).
_Waiter = Future[Any] | asyncio.Future[Any]


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
        self._queued: list[tuple[E, _Waiter]] = []
        self._job_waiting = False

    def add(self, entry: E) -> Future[R]:
        """Queue an entry; its future resolves after the commit of the job that wrote it."""
        future: Future[R] = Future()
        self._queue(entry, future)
        return future

    async def write(self, entry: E) -> R:
        """From the event loop: queue an entry and wait for its value, once committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue(entry, future)
        return await future

    def _queue(self, entry: E, waiter: _Waiter) -> None:
        with self._lock:
            self._queued.append((entry, waiter))
            if self._job_waiting:
                return
            self._job_waiting = True
        self._submit_job()

    def _submit_job(self) -> None:
        taken: list[tuple[E, _Waiter]] = []

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
            _resolve([(waiter, exc) for _, waiter in failed])
            return
        job.add_done_callback(lambda done: self._settle(taken, done))

    def _take(self) -> list[tuple[E, _Waiter]]:
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
        self, taken: list[tuple[E, _Waiter]], done: Future[Sequence[R | BaseException]]
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
            _resolve([(waiter, error) for _, waiter in taken])
            return
        _resolve([(waiter, value) for (_, waiter), value in
                  zip(taken, done.result(), strict=True)])


def _resolve(outcomes: Sequence[tuple[_Waiter, Any]]) -> None:
    """Each waiter gets its value (an exception instance fails it); loop futures are set in
    their loop, by one callback per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = (
        defaultdict(list))
    for waiter, value in outcomes:
        if isinstance(waiter, asyncio.Future):
            by_loop[waiter.get_loop()].append((waiter, value))
        else:
            _set(waiter, value)
    for loop, in_loop in by_loop.items():
        # A closed loop raises RuntimeError: nobody is waiting there any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_set_all, in_loop)


def _set_all(outcomes: Sequence[tuple[asyncio.Future[Any], Any]]) -> None:
    for waiter, value in outcomes:
        if not waiter.done():  # its caller may have been cancelled meanwhile
            _set(waiter, value)


def _set(waiter: _Waiter, value: Any) -> None:
    if isinstance(value, BaseException):
        waiter.set_exception(value)
    else:
        waiter.set_result(value)
