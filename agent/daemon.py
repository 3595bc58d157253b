"""The running agent: builds the spool, the probes, the scheduler and the stream, and stops them
in order.

    start: spool -> handoff (inbox drained, socket) -> probes -> scheduler -> stream
    stop:  handoff -> scheduler (runs in progress finish and spool) -> stream -> spool
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import structlog

from agent.config import AgentConfig
from agent.handoff import HandoffListener
from agent.scheduler import ScheduledProbe, Scheduler
from agent.spool import Spool
from agent.stream import ItemEncoder, StreamClient
from probes.base import ProbeContext
from probes.clock import Clock
from probes.registry import build_probe

log = structlog.get_logger("agent.daemon")

# How long runs in progress get to finish at stop; systemd's default stop timeout is 90 s,
# so this stays well inside it.
STOP_GRACE_S = 5.0


class AgentDaemon:
    def __init__(self, config: AgentConfig, version: str, clock: Clock, rng: random.Random):
        self._config = config
        self._version = version
        self._clock = clock
        self._rng = rng
        self.hung_probe_threads = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Run until stop is set."""
        config = self._config
        # The spool and offsets may hold log excerpts: readable by the agent's user only.
        config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        spool = Spool(config.spool_path, config.spool.max_items, config.spool.max_bytes)
        items_waiting = asyncio.Event()
        encoder = ItemEncoder(config.customer, config.host)
        # Job runs from `daybreak-agent run` (the job wrapper), including those handed off
        # while the agent was down.
        handoff = HandoffListener(
            config.handoff_socket_path, config.handoff_inbox_path, spool, encoder,
            items_waiting, self._clock, group=config.handoff.group,
            drain_interval_s=config.handoff.drain_interval_s,
        )
        await handoff.start()
        scheduled: list[ScheduledProbe] = []
        for probe_config in config.probes:
            state_dir = config.probe_state_dir(probe_config.name)
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            probe = build_probe(probe_config, ProbeContext(clock=self._clock, state_dir=state_dir))
            scheduled.append(ScheduledProbe.from_config(probe, probe_config))
        scheduler = Scheduler(
            scheduled, spool, encoder, items_waiting,
            self._clock, self._rng,
        )
        stream = StreamClient(
            config, spool, items_waiting, self._clock, self._version, rng=self._rng
        )
        log.info(
            "agent.started",
            version=self._version,
            host=config.host,
            probes=[p.name for p in config.probes],
            collectors=config.collectors,
            spool_depth=spool.depth,
            spool_dropped=spool.dropped,
        )
        scheduler.start()
        stream_task = asyncio.create_task(stream.run(), name="stream")
        stop_task = asyncio.create_task(stop.wait(), name="stop")
        try:
            await asyncio.wait([stream_task, stop_task], return_when=asyncio.FIRST_COMPLETED)
            if stream_task.done() and not stream_task.cancelled():
                # stream.run() only returns by cancellation: anything else is a bug to report.
                log.error("agent.stream_ended", error=repr(stream_task.exception()))
        finally:
            log.info("agent.stopping", grace_s=STOP_GRACE_S)
            await handoff.stop()
            await scheduler.stop(grace_s=STOP_GRACE_S)
            for task in (stream_task, stop_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.hung_probe_threads = scheduler.busy_abandoned_runs
            spool.close()
            log.info(
                "agent.stopped", spool_depth=spool.depth, hung_probe_threads=self.hung_probe_threads
            )
