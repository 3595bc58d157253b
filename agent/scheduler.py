"""Runs each probe on its interval, off the event loop, and puts what it finds in the spool.

Each probe has its own task: it sleeps until the next due time (the interval plus a random
jitter, so a fleet does not probe in lockstep), runs the probe in the thread pool this scheduler
owns, bounded by the probe's timeout, and then:

    items -> encode -> spool.append -> output.commit() -> items_waiting.set()

`commit()` (a tailer saving its offsets) runs only after the items are durably spooled, so a
crash in between re-reads lines instead of losing them.

A run that raises or times out becomes an UNKNOWN result on the check `probe:<name>`: the
operator hears that a probe is broken instead of seeing its checks go quiet. A thread cannot be
killed, so a timed-out run is abandoned, and the probe is not started again until that thread
has returned (its later runs are skipped and counted): a probe stuck on a hung NFS mount holds
one worker, never the whole pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from agent.spool import Spool, SpoolEntry
from probes.base import Probe, ProbeConfigBase, ProbeOutput
from probes.clock import Clock
from probes.result import Item, Result, Status, one_line

log = structlog.get_logger("agent.scheduler")

Encoder = Callable[[Item], SpoolEntry]

# Enough for a handful of probes to run at once; the rest queue. Abandoned (hung) runs each hold
# one worker until they return, which the skip rule bounds at one per probe.
DEFAULT_MAX_WORKERS = 4


def probe_health_check(probe_name: str) -> str:
    """The check key on which a probe's own failures (exceptions, timeouts) are reported."""
    return f"probe:{probe_name}"


@dataclass(frozen=True, slots=True)
class ScheduledProbe:
    probe: Probe
    interval_s: float
    jitter_s: float
    timeout_s: float

    @classmethod
    def from_config(cls, probe: Probe, config: ProbeConfigBase) -> ScheduledProbe:
        return cls(
            probe=probe,
            interval_s=config.interval_s,
            jitter_s=config.effective_jitter_s,
            timeout_s=config.effective_timeout_s,
        )


@dataclass(slots=True)
class ProbeStats:
    runs: int = 0
    failures: int = 0
    timeouts: int = 0
    skipped: int = 0
    items: int = 0


@dataclass(slots=True)
class _Slot:
    scheduled: ScheduledProbe
    stats: ProbeStats = field(default_factory=ProbeStats)
    # The executor future of the current run, or of an abandoned one still running.
    running: asyncio.Future[ProbeOutput] | None = None


class Scheduler:
    def __init__(
        self,
        scheduled: Sequence[ScheduledProbe],
        spool: Spool,
        encode: Encoder,
        items_waiting: asyncio.Event,
        clock: Clock,
        rng: random.Random,
        max_workers: int = DEFAULT_MAX_WORKERS,
    ) -> None:
        names = [s.probe.name for s in scheduled]
        if len(set(names)) != len(names):
            raise ValueError("probe names must be unique")
        self._slots = {s.probe.name: _Slot(s) for s in scheduled}
        self._spool = spool
        self._encode = encode
        self._items_waiting = items_waiting
        self._clock = clock
        self._rng = rng
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, min(max_workers, len(scheduled))), thread_name_prefix="probe"
        )
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def stats(self, probe_name: str) -> ProbeStats:
        return self._slots[probe_name].stats

    def start(self) -> None:
        """Start one task per probe on the running loop."""
        for name, slot in self._slots.items():
            self._tasks.append(asyncio.create_task(self._loop(slot), name=f"probe:{name}"))

    @property
    def busy_abandoned_runs(self) -> int:
        """Runs that timed out and whose thread has not returned yet."""
        return sum(
            1 for s in self._slots.values() if s.running is not None and not s.running.done()
        )

    async def stop(self, grace_s: float) -> None:
        """Stop scheduling; let runs in progress finish (and spool) within grace_s."""
        self._stopping.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in pending:
                log.warning("probe.cancelled_at_stop", probe=task.get_name())
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # Do not wait for hung threads; queued runs that never started are cancelled.
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _loop(self, slot: _Slot) -> None:
        loop = asyncio.get_running_loop()
        scheduled = slot.scheduled
        # Due times stay on a fixed grid (start + k * interval), each run offset by its own
        # jitter, so the schedule does not drift by the run time.
        grid_start = loop.time()
        k = 0
        while not self._stopping.is_set():
            jitter = self._rng.uniform(0, scheduled.jitter_s)
            due_at = grid_start + k * scheduled.interval_s + jitter
            if await self._sleep_until_stopping(due_at - loop.time()):
                return
            await self.run_once(scheduled.probe.name)
            # After a run longer than the interval, skip the grid points already past.
            elapsed_periods = int((loop.time() - grid_start) // scheduled.interval_s)
            k = max(k + 1, elapsed_periods + 1)

    async def _sleep_until_stopping(self, delay_s: float) -> bool:
        """Sleep delay_s; True if the scheduler is stopping."""
        if delay_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay_s)
        return self._stopping.is_set()

    async def run_once(self, probe_name: str) -> None:
        """Run one probe now, bounded by its timeout, and spool what it produced."""
        slot = self._slots[probe_name]
        scheduled = slot.scheduled
        if slot.running is not None and not slot.running.done():
            slot.stats.skipped += 1
            log.warning(
                "probe.skipped",
                probe=probe_name,
                reason="previous run timed out and is still running",
                skipped=slot.stats.skipped,
            )
            return
        slot.stats.runs += 1
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, scheduled.probe.run)
        slot.running = future
        try:
            # shield: on timeout only our wait is cancelled; the future keeps tracking the
            # thread, which is how the next run knows it is still busy.
            output = await asyncio.wait_for(asyncio.shield(future), timeout=scheduled.timeout_s)
        except TimeoutError:
            slot.stats.timeouts += 1
            future.add_done_callback(_log_abandoned_run_end(probe_name))
            log.warning("probe.timed_out", probe=probe_name, timeout_s=scheduled.timeout_s)
            summary = f"probe {probe_name} timed out after {scheduled.timeout_s:g}s"
            await self._spool_items([self._unknown(probe_name, summary)], commit=None)
            return
        except Exception as exc:
            # Any probe bug becomes an UNKNOWN result, never the end of the loop.
            slot.stats.failures += 1
            log.exception("probe.failed", probe=probe_name)
            summary = f"probe {probe_name} failed: {type(exc).__name__}: {exc}"
            await self._spool_items([self._unknown(probe_name, summary)], commit=None)
            return
        for note in output.notes:
            log.info("probe.note", probe=probe_name, note=note)
        slot.stats.items += len(output.items)
        await self._spool_items(output.items, commit=output.commit, probe_name=probe_name)

    def _unknown(self, probe_name: str, summary: str) -> Result:
        return Result(
            probe=probe_name,
            check=probe_health_check(probe_name),
            status=Status.UNKNOWN,
            summary=one_line(summary),
            observed_at=self._clock.now(),
        )

    async def _spool_items(
        self,
        items: Sequence[Item],
        commit: Callable[[], None] | None,
        probe_name: str = "",
    ) -> None:
        entries: list[SpoolEntry] = []
        for item in items:
            try:
                entries.append(self._encode(item))
            except Exception:
                # One bad item must not cost the others.
                log.exception("probe.item_not_encodable", probe=probe_name or item.probe)
        if entries:
            try:
                self._spool.append(entries)
            except Exception:
                # A full disk must not stop the probes. Nothing is committed: a tailer reads
                # the same lines again next time.
                log.exception("spool.append_failed", probe=probe_name, items=len(entries))
                return
            self._items_waiting.set()
        if commit is not None:
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self._pool, commit)
            except Exception:
                # A failed commit means lines are read again, not a crash.
                log.exception("probe.commit_failed", probe=probe_name)


def _log_abandoned_run_end(probe_name: str) -> Callable[[asyncio.Future[ProbeOutput]], None]:
    def on_done(future: asyncio.Future[ProbeOutput]) -> None:
        # Reading the exception also keeps asyncio from reporting it as never retrieved.
        error = None if future.cancelled() else future.exception()
        log.info(
            "probe.abandoned_run_ended",
            probe=probe_name,
            error=None if error is None else f"{type(error).__name__}: {error}",
        )

    return on_done
