"""The agent's side of the wire: the one module of the agent that knows protobuf and gRPC.

One bidirectional stream to a collector (docs/wire-contract.md):

    agent                                collector
    Hello (identity, last_acked_seq) ->
                                     <-  Welcome (acked_seq, max_batch_items)
    ItemBatch (seqs ascending)       ->
    ItemBatch ...                    ->
                                     <-  Ack (acked_seq, sent after commit)
    Heartbeat (every N s; none while batches carry its figures) ->
                                     <-  Command
    CommandResult                    ->

Items are encoded once, when spooled (`ItemEncoder`); a batch is made of spooled payloads with
their seq set. Only acks delete from the spool, so after a reconnect everything unacked is sent
again and the collector's dedupe by (agent, seq) keeps each item counted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import structlog
from daybreak.v1 import stream_pb2, stream_pb2_grpc
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from agent.config import AgentConfig, read_token
from agent.own_usage import OwnUsage
from agent.spool import Spool, SpoolEntry
from probes.clock import Clock
from probes.result import Item, JobOutcome, Result, Status

log = structlog.get_logger("agent.stream")

# Both ends refuse bigger messages; a batch is capped well below so that it always fits with
# its framing (an item is at most ~33 KiB: summary, detail and excerpt are capped in
# probes.result).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_BATCH_BYTES = 4 * 1024 * 1024
# Batches sent but not yet acked. More than one keeps the pipe full while the collector
# commits; a bound keeps a slow collector from having the whole spool pushed at it.
MAX_BATCHES_IN_FLIGHT = 4
COMMANDS_DISABLED = "remote commands are not enabled on this agent"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS_TO_WIRE = {
    Status.OK: stream_pb2.STATUS_OK,
    Status.WARN: stream_pb2.STATUS_WARN,
    Status.CRIT: stream_pb2.STATUS_CRIT,
    Status.UNKNOWN: stream_pb2.STATUS_UNKNOWN,
}
_OUTCOME_TO_WIRE = {
    JobOutcome.RUNNING: stream_pb2.JOB_OUTCOME_RUNNING,
    JobOutcome.SUCCEEDED: stream_pb2.JOB_OUTCOME_SUCCEEDED,
    JobOutcome.FAILED: stream_pb2.JOB_OUTCOME_FAILED,
}


# -- encoding ----------------------------------------------------------------------------------


def epoch_ms(moment: datetime | None) -> int:
    """Unix epoch milliseconds; 0 for an unknown time, as the contract says."""
    if moment is None:
        return 0
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def encode_item(item: Item, customer: str, host: str) -> SpoolEntry:
    """A Result or JobRun as a serialized `Item` with seq unset (seq is set when batched)."""
    if isinstance(item, Result):
        message = stream_pb2.Item(
            result=stream_pb2.Result(
                customer=customer,
                host=host,
                probe=item.probe,
                check=item.check,
                status=_STATUS_TO_WIRE[item.status],
                metrics=dict(item.metrics),
                summary=item.summary,
                detail=item.detail,
                observed_at_ms=epoch_ms(item.observed_at),
            )
        )
        return SpoolEntry(is_job_run=False, payload=message.SerializeToString())
    run = stream_pb2.JobRun(
        customer=customer,
        host=host,
        probe=item.probe,
        job=item.job,
        run_id=item.run_id,
        outcome=_OUTCOME_TO_WIRE[item.outcome],
        started_at_ms=epoch_ms(item.started_at),
        finished_at_ms=epoch_ms(item.finished_at),
        excerpt=item.excerpt,
        source=item.source,
        observed_at_ms=epoch_ms(item.observed_at),
    )
    if item.exit_code is not None:
        run.exit_code = item.exit_code
    return SpoolEntry(is_job_run=True, payload=stream_pb2.Item(job_run=run).SerializeToString())


@dataclass(frozen=True, slots=True)
class ItemEncoder:
    """encode_item bound to this agent's identity: what the scheduler calls."""

    customer: str
    host: str

    def __call__(self, item: Item) -> SpoolEntry:
        return encode_item(item, self.customer, self.host)


def build_batch(rows: Sequence[tuple[int, bytes]], max_bytes: int) -> stream_pb2.ItemBatch:
    """Spooled payloads with their seqs set, as many as fit in max_bytes (at least one)."""
    batch = stream_pb2.ItemBatch()
    size = 0
    for seq, payload in rows:
        # 16 bytes: the seq field and the item's framing, generously.
        if batch.items and size + len(payload) + 16 > max_bytes:
            break
        item = batch.items.add()
        item.MergeFromString(payload)
        item.seq = seq
        size += len(payload) + 16
    return batch


# -- the connection ----------------------------------------------------------------------------


class StreamRefused(Exception):
    """The collector refused our credentials: an operator has to act on one side."""


class StreamEnded(Exception):
    """The stream ended or stalled without a gRPC error."""


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    # Exponential backoff with full jitter, capped: thousands of agents reconnecting after a
    # collector restart must not arrive together.
    multiplier_s: float = 0.5
    max_wait_s: float = 30.0
    # A refused token will not fix itself in seconds; retry slowly, but retry (never a crash
    # loop, and the operator may be fixing the collector side right now).
    refused_min_s: float = 60.0
    refused_max_s: float = 120.0
    # A session that lasted this long was healthy: its end starts the backoff from scratch.
    healthy_after_s: float = 60.0
    # No ack for this long while batches are in flight: the connection is dead (a vanished
    # host does not always close TCP), reconnect.
    ack_timeout_s: float = 120.0
    # The Welcome must follow the Hello within this.
    welcome_timeout_s: float = 30.0


def _is_refusal(error: BaseException) -> bool:
    return isinstance(error, grpc.aio.AioRpcError) and error.code() in (
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    )


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return f"{type(error).__name__}: {error}"


class _Session:
    """One open stream: what the sender and receiver share."""

    def __init__(self, call: Any, max_batch_items: int, sent_up_to: int, now: float,
                 heartbeat_interval_s: float) -> None:
        self.call = call
        self.max_batch_items = max_batch_items
        self.sent_up_to = sent_up_to
        self.heartbeat_interval_s = heartbeat_interval_s
        # When the agent's figures last went out, alone or on a batch (loop time).
        self.figures_sent_at = -math.inf
        self.in_flight: deque[int] = deque()  # the last seq of each unacked batch
        self.window_open = asyncio.Event()
        self.window_open.set()
        self.last_progress = now
        # grpc.aio allows one write at a time; batches, heartbeats and command results share it.
        self.write_lock = asyncio.Lock()

    async def write(self, message: stream_pb2.AgentMessage) -> None:
        async with self.write_lock:
            await self.call.write(message)


class StreamClient:
    """Keeps one stream open to one of the collectors, for as long as the agent runs."""

    def __init__(
        self,
        config: AgentConfig,
        spool: Spool,
        items_waiting: asyncio.Event,
        clock: Clock,
        version: str,
        rng: random.Random,
        policy: ReconnectPolicy | None = None,
        max_batches_in_flight: int = MAX_BATCHES_IN_FLIGHT,
    ) -> None:
        self._rng = rng
        self._config = config
        self._spool = spool
        self._items_waiting = items_waiting
        self._clock = clock
        self._version = version
        self._policy = policy or ReconnectPolicy()
        self._max_batches_in_flight = max_batches_in_flight
        self._started_monotonic = clock.monotonic()
        self._endpoint_index = 0
        self._own_usage = OwnUsage(clock)
        self.connected_endpoint: str | None = None
        self.sessions_opened = 0

    # -- reconnecting ----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, stream, reconnect; returns only when cancelled."""
        while True:
            retrying = AsyncRetrying(
                wait=self._wait_before_retry,
                retry=retry_if_exception_type(Exception),
                before_sleep=self._log_retry,
            )
            async for attempt in retrying:
                with attempt:
                    await self._session_on_next_endpoint()
            # A healthy session ended: reconnect after a short random pause, so a restarted
            # collector is not hit by every agent in the same instant.
            await asyncio.sleep(self._rng.uniform(0, self._policy.multiplier_s * 2))

    def _wait_before_retry(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, StreamRefused):
            return self._rng.uniform(self._policy.refused_min_s, self._policy.refused_max_s)
        backoff = wait_random_exponential(
            multiplier=self._policy.multiplier_s, max=self._policy.max_wait_s
        )
        return float(backoff(state))

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait_s = state.next_action.sleep if state.next_action else 0.0
        log.info("stream.retrying", attempt=state.attempt_number, wait_s=round(wait_s, 2),
                 error=None if error is None else _describe(error))

    async def _session_on_next_endpoint(self) -> None:
        endpoints = self._config.collectors
        endpoint = endpoints[self._endpoint_index % len(endpoints)]
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await self._session(endpoint)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Rotate: the next attempt tries the next collector in the list.
            self._endpoint_index += 1
            if _is_refusal(exc):
                log.error(  # noqa: TRY400 - a refusal is expected; its traceback says nothing
                    "stream.refused",
                    endpoint=endpoint,
                    error=_describe(exc),
                    hint="check this agent's token file and its entry on the collector",
                )
                raise StreamRefused(_describe(exc)) from exc
            log.warning("stream.disconnected", endpoint=endpoint, error=_describe(exc))
            if loop.time() - started < self._policy.healthy_after_s:
                raise
            return
        finally:
            self.connected_endpoint = None

    # -- one session -----------------------------------------------------------------------

    async def _session(self, endpoint: str) -> None:
        token = read_token(self._config.token_file)
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        async with grpc.aio.insecure_channel(endpoint, options=options) as channel:
            stub = stream_pb2_grpc.AgentStreamStub(channel)
            call = stub.Connect(metadata=(("authorization", f"Bearer {token}"),))
            await call.write(stream_pb2.AgentMessage(hello=self._hello()))
            first = await asyncio.wait_for(call.read(), timeout=self._policy.welcome_timeout_s)
            if first is grpc.aio.EOF:
                raise StreamEnded("the collector closed the stream before its Welcome")
            if first.WhichOneof("body") != "welcome":
                raise StreamEnded(f"expected Welcome, got {first.WhichOneof('body')}")
            heartbeat_interval_s = first.welcome.heartbeat_interval_s or (
                self._config.heartbeat_interval_s
            )
            session = self._welcome(first.welcome, call, heartbeat_interval_s)
            self.connected_endpoint = endpoint
            self.sessions_opened += 1
            log.info(
                "stream.connected",
                endpoint=endpoint,
                acked_seq=first.welcome.acked_seq,
                spool_depth=self._spool.depth,
                max_batch_items=session.max_batch_items,
            )
            tasks = [
                asyncio.create_task(self._send_batches(session), name="stream.sender"),
                asyncio.create_task(self._receive(session), name="stream.receiver"),
                asyncio.create_task(
                    self._send_heartbeats(session), name="stream.heartbeat"
                ),
                asyncio.create_task(self._watch_acks(session), name="stream.watchdog"),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
            raise StreamEnded("the collector closed the stream")

    def _hello(self) -> stream_pb2.Hello:
        return stream_pb2.Hello(
            agent_id=self._config.agent_id,
            customer=self._config.customer,
            host=self._config.host,
            version=self._version,
            last_acked_seq=self._spool.last_acked_seq,
            next_seq=self._spool.next_seq,
            probes=[p.name for p in self._config.probes],
        )

    def _welcome(
        self, welcome: stream_pb2.Welcome, call: Any, heartbeat_interval_s: float
    ) -> _Session:
        acked_seq = welcome.acked_seq
        if acked_seq >= self._spool.next_seq:
            # The collector has more from us than this spool ever numbered: a reset spool.
            self._spool.advance_seq_to(acked_seq)
        else:
            if acked_seq < self._spool.last_acked_seq:
                log.warning(
                    "stream.collector_behind",
                    collector_acked_seq=acked_seq,
                    agent_acked_seq=self._spool.last_acked_seq,
                )
            self._spool.ack(acked_seq)
        limit = self._config.batch.max_items
        if welcome.max_batch_items:
            limit = min(limit, welcome.max_batch_items)
        loop = asyncio.get_running_loop()
        # Everything above the collector's ack is sent (again): acks alone delete.
        return _Session(call, max(1, limit), sent_up_to=acked_seq, now=loop.time(),
                        heartbeat_interval_s=heartbeat_interval_s)

    async def _send_batches(self, session: _Session) -> None:
        while True:
            while len(session.in_flight) >= self._max_batches_in_flight:
                session.window_open.clear()
                await session.window_open.wait()
            rows = await self._gather_rows(session)
            batch = build_batch(rows, MAX_BATCH_BYTES)
            now = asyncio.get_running_loop().time()
            # Figures ride on a batch once half an interval old, so a stream that sends a batch
            # at least every half interval needs no Heartbeat message of its own.
            if now - session.figures_sent_at >= session.heartbeat_interval_s / 2:
                batch.heartbeat.CopyFrom(self.heartbeat())
                session.figures_sent_at = now
            last_seq = batch.items[-1].seq
            await session.write(stream_pb2.AgentMessage(batch=batch))
            if not session.in_flight:
                session.last_progress = asyncio.get_running_loop().time()
            session.in_flight.append(last_seq)
            session.sent_up_to = last_seq
            log.debug("batch.sent", first_seq=batch.items[0].seq, last_seq=last_seq,
                      items=len(batch.items))

    async def _gather_rows(self, session: _Session) -> list[tuple[int, bytes]]:
        """Rows for the next batch: at once when a full batch is waiting, else what arrives
        within linger_ms of the first row."""
        loop = asyncio.get_running_loop()
        limit = session.max_batch_items
        linger_s = self._config.batch.linger_ms / 1000
        rows: list[tuple[int, bytes]] = []
        after = session.sent_up_to
        send_by: float | None = None
        while True:
            # Cleared before reading: a set() after our read wakes the wait below.
            self._items_waiting.clear()
            rows += self._spool.read_after(after, limit - len(rows))
            if rows:
                after = rows[-1][0]
            if len(rows) >= limit:
                return rows
            if not rows:
                await self._items_waiting.wait()
                continue
            if send_by is None:
                send_by = loop.time() + linger_s
            remaining = send_by - loop.time()
            if remaining <= 0:
                return rows
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._items_waiting.wait(), timeout=remaining)

    async def _receive(self, session: _Session) -> None:
        while True:
            message = await session.call.read()
            if message is grpc.aio.EOF:
                return
            kind = message.WhichOneof("body")
            if kind == "ack":
                self._on_ack(session, message.ack.acked_seq)
            elif kind == "command":
                await self._refuse_command(session, message.command)
            else:
                log.warning("stream.unexpected_message", kind=kind)

    def _on_ack(self, session: _Session, acked_seq: int) -> None:
        deleted = self._spool.ack(acked_seq)
        while session.in_flight and session.in_flight[0] <= acked_seq:
            session.in_flight.popleft()
        session.last_progress = asyncio.get_running_loop().time()
        session.window_open.set()
        log.debug(
            "batch.acked", acked_seq=acked_seq, deleted=deleted, spool_depth=self._spool.depth
        )

    async def _refuse_command(self, session: _Session, command: stream_pb2.Command) -> None:
        log.warning(
            "command.refused",
            command_id=command.command_id,
            probe=command.probe,
            requested_by=command.requested_by,
            reason=COMMANDS_DISABLED,
        )
        result = stream_pb2.CommandResult(command_id=command.command_id, error=COMMANDS_DISABLED)
        await session.write(stream_pb2.AgentMessage(command_result=result))

    async def _send_heartbeats(self, session: _Session) -> None:
        """A Heartbeat when the figures have not gone out on a batch for a whole interval."""
        loop = asyncio.get_running_loop()
        interval_s = session.heartbeat_interval_s
        while True:
            since_figures = loop.time() - session.figures_sent_at
            if since_figures >= interval_s:
                await session.write(stream_pb2.AgentMessage(heartbeat=self.heartbeat()))
                session.figures_sent_at = loop.time()
                since_figures = 0.0
            await asyncio.sleep(interval_s - since_figures)

    def heartbeat(self) -> stream_pb2.Heartbeat:
        return stream_pb2.Heartbeat(
            sent_at_ms=epoch_ms(self._clock.now()),
            uptime_s=self._clock.monotonic() - self._started_monotonic,
            spool_depth=self._spool.depth,
            results_dropped=self._spool.dropped,
            rss_bytes=self._own_usage.resident_bytes(),
            cpu_percent=self._own_usage.cpu_percent(),
        )

    async def _watch_acks(self, session: _Session) -> None:
        check_every_s = min(5.0, self._policy.ack_timeout_s / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(check_every_s)
            waited = loop.time() - session.last_progress
            if session.in_flight and waited > self._policy.ack_timeout_s:
                raise StreamEnded(f"no ack for {waited:.0f}s with batches in flight")
