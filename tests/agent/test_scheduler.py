from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daybreak.v1 import stream_pb2

from agent.scheduler import ScheduledProbe, Scheduler
from agent.spool import Spool
from agent.stream import ItemEncoder
from probes.base import ProbeOutput
from probes.clock import ManualClock
from probes.result import Result, Status

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


class CountingProbe:
    """Reports one OK result per run; records what the spool held when commit was called."""

    def __init__(self, name: str, spool: Spool) -> None:
        self.name = name
        self.runs = 0
        self.depth_at_commit: list[int] = []
        self._spool = spool

    def run(self) -> ProbeOutput:
        self.runs += 1
        result = Result(
            probe=self.name,
            check=f"count:{self.name}",
            status=Status.OK,
            summary=f"run {self.runs}",
            observed_at=NOW,
        )
        return ProbeOutput(items=[result], commit=self._commit, notes=["a note"])

    def _commit(self) -> None:
        self.depth_at_commit.append(self._spool.depth)


class RaisingProbe:
    name = "broken"

    def __init__(self) -> None:
        self.runs = 0

    def run(self) -> ProbeOutput:
        self.runs += 1
        raise RuntimeError("disk on fire")


class HangingProbe:
    """Blocks until released, like a statvfs on a dead NFS mount."""

    name = "hung"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = 0

    def run(self) -> ProbeOutput:
        self.started += 1
        self.release.wait(timeout=30)
        return ProbeOutput(items=[])


def spooled_results(spool: Spool) -> list[stream_pb2.Result]:
    return [stream_pb2.Item.FromString(p).result for _, p in spool.read_after(0, 10_000)]


async def eventually(condition: Callable[[], bool], what: str, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def make_scheduler(
    spool: Spool, *scheduled: ScheduledProbe, items_waiting: asyncio.Event | None = None
) -> Scheduler:
    return Scheduler(
        scheduled,
        spool,
        ItemEncoder(customer="acme", host="web-01"),
        items_waiting or asyncio.Event(),
        ManualClock(NOW),
        random.Random(7),  # noqa: S311 - jitter, not a secret
    )


def every(probe: Any, interval_s: float = 0.05, timeout_s: float = 5.0) -> ScheduledProbe:
    return ScheduledProbe(probe, interval_s=interval_s, jitter_s=0.01, timeout_s=timeout_s)


def test_results_are_spooled_before_commit_and_the_stream_is_told(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path / "spool.sqlite3", max_items=1000, max_bytes=1 << 20)
        probe = CountingProbe("counter", spool)
        items_waiting = asyncio.Event()
        scheduler = make_scheduler(spool, every(probe), items_waiting=items_waiting)
        scheduler.start()
        await eventually(lambda: probe.runs >= 3 and len(probe.depth_at_commit) >= 3, "3 runs")
        await scheduler.stop(grace_s=2)
        assert items_waiting.is_set()
        # At each commit the run's item was already in the spool.
        assert probe.depth_at_commit[:3] == [1, 2, 3]
        results = spooled_results(spool)
        assert [r.summary for r in results[:3]] == ["run 1", "run 2", "run 3"]
        assert results[0].customer == "acme"
        assert results[0].host == "web-01"
        assert results[0].status == stream_pb2.STATUS_OK
        assert scheduler.stats("counter").items == probe.runs

    run(scenario)


def test_a_probe_that_raises_becomes_unknown_and_keeps_being_scheduled(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path / "spool.sqlite3", max_items=1000, max_bytes=1 << 20)
        probe = RaisingProbe()
        scheduler = make_scheduler(spool, every(probe))
        scheduler.start()
        await eventually(lambda: probe.runs >= 2 and spool.depth >= 2, "two failed runs")
        await scheduler.stop(grace_s=2)
        first = spooled_results(spool)[0]
        assert first.check == "probe:broken"
        assert first.status == stream_pb2.STATUS_UNKNOWN
        assert first.summary == "probe broken failed: RuntimeError: disk on fire"
        assert scheduler.stats("broken").failures == probe.runs

    run(scenario)


def test_a_run_that_times_out_is_unknown_and_the_next_waits_for_its_thread(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path / "spool.sqlite3", max_items=1000, max_bytes=1 << 20)
        hung = HangingProbe()
        counter = CountingProbe("counter", spool)
        scheduler = make_scheduler(spool, every(hung, timeout_s=0.1), every(counter))
        scheduler.start()
        try:
            await eventually(lambda: scheduler.stats("hung").skipped >= 2, "skipped runs")
            # Other probes keep running while one thread hangs.
            await eventually(lambda: counter.runs >= 3, "the other probe's runs")
            assert hung.started == 1
            assert scheduler.busy_abandoned_runs == 1
            [timed_out] = [r for r in spooled_results(spool) if r.check == "probe:hung"]
            assert timed_out.status == stream_pb2.STATUS_UNKNOWN
            assert timed_out.summary == "probe hung timed out after 0.1s"
        finally:
            hung.release.set()
        # Once the thread returns, the probe is scheduled again.
        await eventually(lambda: hung.started >= 2, "a new run after the hung one returned")
        await scheduler.stop(grace_s=2)

    run(scenario)


def test_stop_lets_a_run_in_progress_finish_and_spool(tmp_path: Path) -> None:
    class SlowProbe:
        name = "slow"

        def __init__(self) -> None:
            self.started = threading.Event()

        def run(self) -> ProbeOutput:
            self.started.set()
            time.sleep(0.3)
            return ProbeOutput(items=[
                Result(probe="slow", check="slow", status=Status.OK, summary="done",
                       observed_at=NOW)
            ])

    async def scenario() -> None:
        spool = Spool(tmp_path / "spool.sqlite3", max_items=1000, max_bytes=1 << 20)
        probe = SlowProbe()
        scheduler = make_scheduler(spool, every(probe, interval_s=60))
        scheduler.start()
        await eventually(probe.started.is_set, "the slow run to start")
        await scheduler.stop(grace_s=5)
        assert [r.summary for r in spooled_results(spool)] == ["done"]

    run(scenario)


def test_the_first_run_comes_soon_after_start_within_the_jitter(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path / "spool.sqlite3", max_items=1000, max_bytes=1 << 20)
        probe = CountingProbe("hourly", spool)
        scheduled = ScheduledProbe(probe, interval_s=3600, jitter_s=0.2, timeout_s=5)
        scheduler = make_scheduler(spool, scheduled)
        scheduler.start()
        await eventually(lambda: probe.runs == 1, "the first run", within_s=5)
        await scheduler.stop(grace_s=2)

    run(scenario)
