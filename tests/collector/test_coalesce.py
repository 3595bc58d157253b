"""The Coalescer in front of a real StoreWriter on a real SQLite file."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector.store.coalesce import Coalescer
from collector.store.writer import StoreWriter


class Recorder:
    """A work function that records the entries of each job, and fails the ones it is told."""

    def __init__(self, bad: set[str] | None = None) -> None:
        self.jobs: list[list[str]] = []
        self.bad = bad or set()

    def work(self, conn: sa.Connection, entries: Sequence[str]) -> list[str | BaseException]:
        self.jobs.append(list(entries))
        conn.execute(sa.text("SELECT 1"))
        return [ValueError(e) if e in self.bad else e.upper() for e in entries]


def hold_writer(writer: StoreWriter) -> threading.Event:
    """Keeps the writer busy with a job until the returned event is set."""
    release = threading.Event()
    started = threading.Event()

    def blocker(conn: sa.Connection) -> None:
        started.set()
        release.wait(10)

    writer.submit(blocker)
    assert started.wait(10)
    return release


def test_entries_queued_while_the_writer_is_busy_are_written_by_one_job(
    writer: StoreWriter,
) -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, str] = Coalescer(writer, recorder.work)
    release = hold_writer(writer)
    futures = [coalescer.add(name) for name in ("a", "b", "c")]
    release.set()
    assert [f.result(10) for f in futures] == ["A", "B", "C"]
    assert recorder.jobs == [["a", "b", "c"]]
    # The writer is idle now: the next entry gets a job of its own at once.
    assert coalescer.add("d").result(10) == "D"
    assert recorder.jobs[-1] == ["d"]


def test_a_job_takes_at_most_its_limit_and_queues_the_next(writer: StoreWriter) -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, str] = Coalescer(writer, recorder.work, max_entries_per_job=2)
    release = hold_writer(writer)
    futures = [coalescer.add(name) for name in "abcde"]
    release.set()
    assert [f.result(10) for f in futures] == list("ABCDE")
    assert recorder.jobs == [["a", "b"], ["c", "d"], ["e"]]


def test_an_entry_the_work_refuses_fails_alone(writer: StoreWriter) -> None:
    recorder = Recorder(bad={"b"})
    coalescer: Coalescer[str, str] = Coalescer(writer, recorder.work)
    release = hold_writer(writer)
    futures = [coalescer.add(name) for name in "abc"]
    release.set()
    assert futures[0].result(10) == "A"
    with pytest.raises(ValueError, match="b"):
        futures[1].result(10)
    assert futures[2].result(10) == "C"


def test_when_the_work_raises_every_entry_fails_and_on_failure_hears_first(
    writer: StoreWriter,
) -> None:
    heard: list[tuple[list[str], str]] = []
    failures_seen_before_settle: list[bool] = []

    def broken(conn: sa.Connection, entries: Sequence[str]) -> list[str | BaseException]:
        raise RuntimeError("disk I/O error")

    def on_failure(entries: Sequence[str], error: BaseException) -> None:
        heard.append((list(entries), str(error)))

    coalescer: Coalescer[str, str] = Coalescer(writer, broken, on_failure=on_failure)
    release = hold_writer(writer)
    futures: list[Future[str]] = [coalescer.add(name) for name in "ab"]
    for future in futures:
        future.add_done_callback(lambda _: failures_seen_before_settle.append(bool(heard)))
    release.set()
    for future in futures:
        with pytest.raises(RuntimeError, match="disk I/O error"):
            future.result(10)
    assert heard == [(["a", "b"], "disk I/O error")]
    assert failures_seen_before_settle == [True, True]


def test_after_commit_gets_the_values_of_the_job(writer: StoreWriter) -> None:
    seen: list[list[str | BaseException]] = []
    recorder = Recorder()
    coalescer: Coalescer[str, str] = Coalescer(
        writer, recorder.work, after_commit=lambda conn, values: seen.append(list(values)))
    coalescer.add("a").result(10)
    writer.submit(lambda conn: None).result(10)  # after_commit steps run before the next job
    assert seen == [["A"]]


def test_when_the_store_cannot_be_opened_every_entry_fails_and_none_waits(
    tmp_path: Path,
) -> None:
    # The writer fails its jobs before they run: nothing may stay queued behind them.
    unopenable = StoreWriter(sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}"))
    try:
        coalescer: Coalescer[str, str] = Coalescer(unopenable, Recorder().work)
        for name in "ab":
            with pytest.raises(sa.exc.OperationalError):
                coalescer.add(name).result(10)
    finally:
        unopenable.close()


def test_entries_written_from_the_event_loop_share_a_job_and_each_gets_its_own_outcome(
    writer: StoreWriter,
) -> None:
    recorder = Recorder(bad={"b"})
    coalescer: Coalescer[str, str] = Coalescer(writer, recorder.work)

    async def scenario() -> list[str | BaseException]:
        release = hold_writer(writer)
        writes = [asyncio.ensure_future(coalescer.write(name)) for name in "abcd"]
        await asyncio.sleep(0)  # every write queued behind the held writer
        writes[3].cancel()  # a caller that gave up: the others are answered all the same
        release.set()
        return await asyncio.gather(*writes[:3], return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert outcomes[0] == "A"
    assert isinstance(outcomes[1], ValueError)
    assert outcomes[2] == "C"
    assert recorder.jobs == [["a", "b", "c", "d"]]
