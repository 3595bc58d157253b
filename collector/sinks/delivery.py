"""The delivery loop: send due outbox rows through their sinks, retrying with backoff.

One round (`deliver_due`, which tests drive with a ManualClock, no sleeping):
1. claim up to `batch_size` due rows, earliest first (collector/outbox.py: a conditional update
   per row, so several collectors on one store never send a row twice at once);
2. send them concurrently (at most `concurrency` at a time), each within its sink's timeout;
3. record each outcome: delivered; or, on failure, rescheduled after an exponential backoff with
   jitter; or dead: a permanent SinkError (the receiver refused this notification for good),
   or too many attempts, or too old. A dead row is logged and listed by
   `GET /api/v1/outbox?state=dead`.

A sink that is down delays delivery and loses nothing: the rows stay pending in the store, also
across a restart of the collector. A collector that dies while sending leaves its claimed rows
due again when their claim lease ends; the sinks' idempotency (keys, Message-IDs, dedup keys,
ticket lookups) makes the second send harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from collector.customers import CustomerSet
from collector.outbox import claim_due, mark_dead, mark_delivered, reschedule
from collector.sinks.base import OutboxMessage, Sink, SinkError
from collector.sinks.config import MAX_TIMEOUT_S, SinkConfig
from collector.store.writer import StoreWriter
from probes.clock import Clock

# A claimed row is due again after this, should the collector die while sending it: longer
# than the longest send (a sink's timeout is at most MAX_TIMEOUT_S), short enough that a
# restarted collector sends what its predecessor left unfinished within minutes.
CLAIM_LEASE = timedelta(seconds=2 * MAX_TIMEOUT_S + 60)
# The loop's own guard on top of the sink's timeout (connect + send + answer are timed apart).
SEND_GUARD_S = 5.0
# last_error keeps the gist, not a stack of HTML.
ERROR_MAX_CHARS = 1000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff after the nth failed attempt: first_delay * 2^(n-1), capped at max_delay, with
    "equal jitter" (half fixed, half random) so a receiver that comes back is not hit by every
    collector's retries in the same second, yet a retry never comes sooner than half the step.

    Defaults: 15 s, 30 s, 1 min ... capped at 15 min; a notification is given up after 72 hours
    (a receiver down for a whole weekend still gets everything) or 500 attempts.
    """

    first_delay_s: float = 15.0
    max_delay_s: float = 900.0
    max_age: timedelta = timedelta(hours=72)
    max_attempts: int = 500

    def delay_after(self, attempts: int, rng: random.Random) -> timedelta:
        step = min(self.max_delay_s, self.first_delay_s * 2 ** max(0, attempts - 1))
        return timedelta(seconds=step / 2 + rng.uniform(0, step / 2))


@dataclass(frozen=True, slots=True)
class DeliveryRound:
    """What one round did, for logs and tests."""

    delivered: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)


class OutboxDelivery:
    def __init__(
        self,
        writer: StoreWriter,
        clock: Clock,
        customers: Callable[[], CustomerSet],
        build_sink: Callable[[SinkConfig], Sink],
        *,
        policy: RetryPolicy | None = None,
        batch_size: int = 100,
        concurrency: int = 16,
        poll_interval_s: float = 1.0,
        rng: random.Random | None = None,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self._writer = writer
        self._clock = clock
        self._customers = customers
        self._build_sink = build_sink
        self._policy = policy or RetryPolicy()
        self._batch_size = batch_size
        self._sending = asyncio.Semaphore(concurrency)
        self._poll_interval_s = poll_interval_s
        # Jitter only; nothing here is a secret.
        self._rng = rng or random.Random()  # noqa: S311
        self._log = logger or structlog.get_logger("collector.sinks.delivery")
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Deliver until stop(): a round, then a pause unless the round was full."""
        self._log.info("outbox.delivery_started", poll_interval_s=self._poll_interval_s)
        while not self._stopping.is_set():
            try:
                done = await self.deliver_due()
                full = len(done.delivered) + len(done.retried) + len(done.dead) \
                    >= self._batch_size
            except Exception as exc:  # noqa: BLE001 - the store may be busy; the loop goes on
                self._log.exception("outbox.round_failed", error=str(exc))
                full = False
            if not full:
                # Not asyncio.sleep: stop() ends the pause at once.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._poll_interval_s)
        self._log.info("outbox.delivery_stopped")

    def stop(self) -> None:
        """Let run() finish its round in flight and return."""
        self._stopping.set()

    async def deliver_due(self) -> DeliveryRound:
        now = self._clock.now()
        claimed = await self._writer.run(
            lambda conn: claim_due(conn, now, limit=self._batch_size, lease=CLAIM_LEASE))
        outcome = DeliveryRound()
        if claimed:
            await asyncio.gather(*(self._deliver(message, outcome) for message in claimed))
        return outcome

    def _config_of(self, message: OutboxMessage) -> SinkConfig | None:
        customer = self._customers().get(message.customer)
        if customer is None:
            return None
        return next((sink for sink in customer.sinks if sink.name == message.sink), None)

    async def _deliver(self, message: OutboxMessage, outcome: DeliveryRound) -> None:
        log = self._log.bind(outbox_id=message.outbox_id, incident_id=message.incident_id,
                             customer=message.customer, sink=message.sink, event=message.event,
                             sequence=message.sequence, attempt=message.attempts)
        config = self._config_of(message)
        error: SinkError | None
        if config is None:
            # Removed from the customer file on purpose (an invalid reload keeps the old set).
            error = SinkError(f"sink {message.sink!r} is no longer configured for customer "
                              f"{message.customer!r}", permanent=True)
        else:
            error = await self._send(config, message)
        now = self._clock.now()
        if error is None:
            await self._writer.run(lambda conn: mark_delivered(conn, message.outbox_id, now))
            outcome.delivered.append(message.outbox_id)
            log.info("outbox.delivered")
            return
        reason = error.message[:ERROR_MAX_CHARS]
        policy = self._policy
        too_old = now - message.created_at >= policy.max_age
        if error.permanent or too_old or message.attempts >= policy.max_attempts:
            await self._writer.run(lambda conn: mark_dead(conn, message.outbox_id, reason))
            outcome.dead.append(message.outbox_id)
            log.error("outbox.dead", error=reason, permanent=error.permanent, too_old=too_old)
            return
        next_attempt_at = now + policy.delay_after(message.attempts, self._rng)
        await self._writer.run(
            lambda conn: reschedule(conn, message.outbox_id, next_attempt_at, reason))
        outcome.retried.append(message.outbox_id)
        log.warning("outbox.retry_scheduled", error=reason,
                    next_attempt_at=next_attempt_at.isoformat())

    async def _send(self, config: SinkConfig, message: OutboxMessage) -> SinkError | None:
        async with self._sending:
            try:
                sink = self._build_sink(config)
                await asyncio.wait_for(sink.send(message), config.timeout_s + SEND_GUARD_S)
            except SinkError as exc:
                return exc
            except TimeoutError:
                return SinkError(f"{config.type} {config.name}: no answer within "
                                 f"{config.timeout_s:g} s")
            except Exception as exc:  # noqa: BLE001 - a sink's bug must not stop the others
                self._log.exception("outbox.sink_crashed", sink=config.name)
                return SinkError(f"{config.type} {config.name}: {type(exc).__name__}: {exc}")
        return None
