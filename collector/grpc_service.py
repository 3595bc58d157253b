"""The agents' stream (`daybreak.v1.AgentStream.Connect`) on grpc.aio: the collector's wire side.

This is the only collector module that knows the protobuf messages: it authenticates the
stream, checks the Hello, turns batches into probes.result objects for ingest, and sends the
Ack only after ingest says the batch is committed. docs/wire-contract.md is the contract.

One live stream per agent: a second stream from the same agent (it reconnected before the old
connection timed out) replaces the first, which is ended at its next read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

import grpc
import sqlalchemy as sa
import structlog
from daybreak.v1 import stream_pb2, stream_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from collector.auth import AgentAuthenticator, AuthenticatedAgent, bearer_token
from collector.ingest import IncomingItem, Ingest
from collector.store import agents as agent_rows
from collector.store.audit import record_audit
from collector.store.coalesce import Coalescer
from collector.store.writer import StoreWriter
from probes.clock import Clock
from probes.result import (
    DETAIL_MAX_BYTES,
    EXCERPT_MAX_BYTES,
    JobOutcome,
    JobRun,
    Result,
    Status,
    cap_text,
    one_line,
)

SERVICE_NAME = "daybreak.v1.AgentStream"
# An agent that connects and says nothing holds a connection for nothing.
HELLO_TIMEOUT_S = 30.0
# The schema's column widths: refused here rather than truncated or failed on PostgreSQL.
NAME_MAX_CHARS = 128
HOST_MAX_CHARS = 255
CHECK_MAX_CHARS = 512
METRICS_MAX = 64

_STATUS_FROM_WIRE = {
    stream_pb2.STATUS_OK: Status.OK,
    stream_pb2.STATUS_WARN: Status.WARN,
    stream_pb2.STATUS_CRIT: Status.CRIT,
    stream_pb2.STATUS_UNKNOWN: Status.UNKNOWN,
}
_OUTCOME_FROM_WIRE = {
    stream_pb2.JOB_OUTCOME_RUNNING: JobOutcome.RUNNING,
    stream_pb2.JOB_OUTCOME_SUCCEEDED: JobOutcome.SUCCEEDED,
    stream_pb2.JOB_OUTCOME_FAILED: JobOutcome.FAILED,
}


class BatchRejectedError(ValueError):
    """A batch that breaks the contract; the message goes back to the agent."""


def _time_from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _check_length(what: str, value: str, limit: int, seq: int) -> None:
    if not value:
        raise BatchRejectedError(f"item seq {seq}: {what} is empty")
    if len(value) > limit:
        raise BatchRejectedError(f"item seq {seq}: {what} is longer than {limit} characters")


def _result_from_wire(seq: int, wire: stream_pb2.Result) -> Result:
    # Each field is read once: every read of a upb string field builds a new Python str, and
    # this runs for every result ingested (bench/ingest.py).
    status = _STATUS_FROM_WIRE.get(wire.status)
    if status is None:
        raise BatchRejectedError(f"item seq {seq}: result has no status")
    probe, check, wire_metrics = wire.probe, wire.check, wire.metrics
    _check_length("probe", probe, NAME_MAX_CHARS, seq)
    _check_length("check", check, CHECK_MAX_CHARS, seq)
    if len(wire_metrics) > METRICS_MAX:
        raise BatchRejectedError(f"item seq {seq}: more than {METRICS_MAX} metrics")
    detail = wire.detail
    return Result(
        probe=probe,
        check=check,
        status=status,
        summary=one_line(wire.summary),
        observed_at=_time_from_ms(wire.observed_at_ms),
        # A comprehension over the keys is 3x faster than dict(map): the upb map container
        # iterates through the Mapping ABC.
        metrics={name: wire_metrics[name] for name in wire_metrics},
        detail=cap_text(detail, DETAIL_MAX_BYTES) if detail else "",
    )


def _job_run_from_wire(seq: int, wire: stream_pb2.JobRun) -> JobRun:
    outcome = _OUTCOME_FROM_WIRE.get(wire.outcome)
    if outcome is None:
        raise BatchRejectedError(f"item seq {seq}: job run has no outcome")
    _check_length("probe", wire.probe, NAME_MAX_CHARS, seq)
    _check_length("job", wire.job, HOST_MAX_CHARS, seq)
    _check_length("run_id", wire.run_id, HOST_MAX_CHARS, seq)
    return JobRun(
        probe=wire.probe,
        job=wire.job,
        run_id=wire.run_id,
        outcome=outcome,
        observed_at=_time_from_ms(wire.observed_at_ms),
        started_at=_time_from_ms(wire.started_at_ms) if wire.started_at_ms else None,
        finished_at=_time_from_ms(wire.finished_at_ms) if wire.finished_at_ms else None,
        exit_code=wire.exit_code if wire.HasField("exit_code") else None,
        excerpt=cap_text(wire.excerpt, EXCERPT_MAX_BYTES),
        source=cap_text(wire.source, 1024),
    )


def items_from_batch(batch: stream_pb2.ItemBatch, max_items: int) -> list[IncomingItem]:
    """Validate a batch (size, ascending seq, complete items) and convert it for ingest."""
    if len(batch.items) > max_items:
        raise BatchRejectedError(f"batch of {len(batch.items)} items; the limit is {max_items}")
    converted: list[IncomingItem] = []
    previous_seq = 0
    for wire_item in batch.items:
        seq = wire_item.seq
        if seq <= previous_seq:
            raise BatchRejectedError(f"seq {seq} after {previous_seq}: seqs must ascend, from 1")
        previous_seq = seq
        kind = wire_item.WhichOneof("kind")
        if kind == "result":
            wire_result = wire_item.result
            if len(wire_result.host) > HOST_MAX_CHARS:
                raise BatchRejectedError(f"item seq {seq}: host is too long")
            converted.append(IncomingItem(
                seq, wire_result.customer, wire_result.host, _result_from_wire(seq, wire_result)
            ))
        elif kind == "job_run":
            wire_run = wire_item.job_run
            if len(wire_run.host) > HOST_MAX_CHARS:
                raise BatchRejectedError(f"item seq {seq}: host is too long")
            converted.append(IncomingItem(
                seq, wire_run.customer, wire_run.host, _job_run_from_wire(seq, wire_run)
            ))
        else:
            raise BatchRejectedError(f"item seq {seq} is neither a result nor a job run")
    return converted


@dataclass(eq=False, slots=True)
class _LiveStream:
    """A stream being served. `stop()` ends it: at once if its handler is waiting for the
    agent's next message (the wait is cancelled), else before its next read."""

    agent_id: str
    stop_requested: bool = False
    stop_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    stop_reason: str = ""
    # The handler's task while it waits in a read; cancelling it is how stop() interrupts.
    reading: asyncio.Task[Any] | None = None

    def stop(self, code: grpc.StatusCode, reason: str) -> None:
        if self.stop_requested:
            return
        self.stop_code, self.stop_reason, self.stop_requested = code, reason, True
        if self.reading is not None:
            self.reading.cancel(reason)

    async def read(self, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        """The agent's next message; aborts the call with the stop code once stopped.

        One await per message: racing each read against a stop event cost a task and a wait
        per message, a fifth of the event loop's time at 5,000 agents (bench/incidents.py).
        """
        if not self.stop_requested:
            task = asyncio.current_task()
            self.reading = task
            try:
                return await context.read()
            except asyncio.CancelledError:
                if not self.stop_requested or task is None:
                    raise  # the server is cancelling the call: not ours to handle
                task.uncancel()
            finally:
                self.reading = None
        await context.abort(self.stop_code, self.stop_reason)


class AgentStreamService(stream_pb2_grpc.AgentStreamServicer):
    def __init__(
        self,
        *,
        authenticator: AgentAuthenticator,
        ingest: Ingest,
        writer: StoreWriter,
        clock: Clock,
        max_batch_items: int,
        heartbeat_interval_s: int,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self._authenticator = authenticator
        self._ingest = ingest
        self._writer = writer
        self._clock = clock
        self._max_batch_items = max_batch_items
        self._heartbeat_interval_s = heartbeat_interval_s
        self._log = logger or structlog.get_logger("collector.grpc")
        self._streams: dict[str, _LiveStream] = {}
        # Heartbeats are not awaited by the stream; those that arrive together are one write.
        self._heartbeats: Coalescer[agent_rows.Heartbeat, None] = Coalescer(
            writer, self._write_heartbeats, name="heartbeats")
        # A reconnect storm's streams are recorded together too.
        self._opened: Coalescer[agent_rows.StreamOpened, int] = Coalescer(
            writer, agent_rows.record_streams_opened, name="streams_opened")
        self._closing = False
        self._handlers_done = asyncio.Event()
        self._handlers_done.set()
        self._handlers_running = 0

    @property
    def connected_agents(self) -> Sequence[str]:
        return sorted(self._streams)

    def begin_shutdown(self) -> None:
        """Refuse new streams; end live ones at their next read (a batch in flight is acked)."""
        self._closing = True
        for stream in list(self._streams.values()):
            stream.stop(grpc.StatusCode.UNAVAILABLE, "the collector is shutting down")

    async def wait_streams_ended(self) -> None:
        await self._handlers_done.wait()

    # grpc.aio also takes a coroutine that reads and writes through the context (we need that to
    # race reads against a stop request); the generated stub knows only the generator forms.
    async def Connect(  # type: ignore[override]
        self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        self._handlers_running += 1
        self._handlers_done.clear()
        try:
            await self._serve_stream(context)
        finally:
            self._handlers_running -= 1
            if self._handlers_running == 0:
                self._handlers_done.set()

    async def _serve_stream(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        peer = context.peer()
        if self._closing:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the collector is shutting down")
        agent = self._authenticator.authenticate(bearer_token(context.invocation_metadata() or ()))
        if agent is None:
            await self._refuse(
                context, grpc.StatusCode.UNAUTHENTICATED, "unknown or missing agent token",
                actor=f"peer:{peer}", reason="bad_token",
            )
        log = self._log.bind(agent_id=agent.agent_id, customer=agent.customer)

        try:
            first = await asyncio.wait_for(context.read(), HELLO_TIMEOUT_S)
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no Hello received in time")
        if first is grpc.aio.EOF:
            return
        if first.WhichOneof("body") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be Hello")
        hello = first.hello
        if hello.agent_id != agent.agent_id or hello.customer != agent.customer:
            await self._refuse(
                context, grpc.StatusCode.PERMISSION_DENIED,
                "Hello names another agent or customer than the token is issued for",
                actor=f"agent:{agent.agent_id}", reason="identity_mismatch",
                detail=f"token for {agent.agent_id}/{agent.customer}, "
                f"Hello says {hello.agent_id[:128]}/{hello.customer[:128]} (peer {peer})",
                log=log,
            )

        stream = _LiveStream(agent.agent_id)
        previous = self._streams.get(agent.agent_id)
        if previous is not None:
            previous.stop(grpc.StatusCode.ABORTED, "replaced by a newer stream of the same agent")
            log.info("stream.replaced")
        self._streams[agent.agent_id] = stream
        try:
            await self._converse(context, agent, hello, stream, log)
        finally:
            if self._streams.get(agent.agent_id) is stream:
                del self._streams[agent.agent_id]
                # Not awaited: the handler may be ending by cancellation.
                self._writer.submit(
                    lambda conn: agent_rows.mark_disconnected(
                        conn, agent.agent_id, at=self._clock.now()
                    )
                )
            log.info("stream.closed", reason=stream.stop_reason or "agent ended the stream")

    async def _converse(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        agent: AuthenticatedAgent,
        hello: stream_pb2.Hello,
        stream: _LiveStream,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        host, version = hello.host[:HOST_MAX_CHARS], hello.version[:64]
        acked_seq = await self._opened.write(
            agent_rows.StreamOpened(agent.agent_id, host, version, self._clock.now()))
        if hello.last_acked_seq > acked_seq:
            # The store lost commits (restored from a backup): the agent already deleted them.
            log.warning("stream.agent_ahead", agent_acked_seq=hello.last_acked_seq,
                        stored_acked_seq=acked_seq)
        await context.write(stream_pb2.CollectorMessage(welcome=stream_pb2.Welcome(
            acked_seq=acked_seq,
            max_batch_items=self._max_batch_items,
            heartbeat_interval_s=self._heartbeat_interval_s,
        )))
        log.info("stream.opened", host=host, version=version, peer=context.peer(),
                 acked_seq=acked_seq, agent_next_seq=hello.next_seq)
        ingest_stream = self._ingest.stream(agent.agent_id, agent.customer, host)

        while True:
            message = await stream.read(context)
            if message is grpc.aio.EOF:
                return
            body = message.WhichOneof("body")
            if body == "batch":
                batch = message.batch
                try:
                    items = items_from_batch(batch, self._max_batch_items)
                except BatchRejectedError as exc:
                    log.warning("stream.batch_rejected", error=str(exc))
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
                if batch.HasField("heartbeat"):
                    self._record_heartbeat(agent.agent_id, batch.heartbeat, log)
                acked_seq = await ingest_stream.commit(items)
                # After the commit, never before: the agent deletes what this covers.
                await context.write(
                    stream_pb2.CollectorMessage(ack=stream_pb2.Ack(acked_seq=acked_seq))
                )
            elif body == "heartbeat":
                self._record_heartbeat(agent.agent_id, message.heartbeat, log)
            elif body == "command_result":
                log.info("stream.command_result", command_id=message.command_result.command_id)
            elif body == "hello":
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Hello sent twice")

    def _record_heartbeat(self, agent_id: str, heartbeat: stream_pb2.Heartbeat,
                          log: structlog.typing.FilteringBoundLogger) -> None:
        figures = agent_rows.HeartbeatFigures(
            spool_depth=heartbeat.spool_depth,
            results_dropped=heartbeat.results_dropped,
            rss_bytes=heartbeat.rss_bytes,
            cpu_percent=heartbeat.cpu_percent,
            uptime_s=heartbeat.uptime_s,
        )
        written = self._heartbeats.add(agent_rows.Heartbeat(agent_id, self._clock.now(), figures))

        def failed(done: Future[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.warning("stream.heartbeat_not_stored", error=str(done.exception()))

        written.add_done_callback(failed)

    @staticmethod
    def _write_heartbeats(
        conn: sa.Connection, heartbeats: Sequence[agent_rows.Heartbeat]
    ) -> list[None]:
        agent_rows.record_heartbeats(conn, heartbeats)
        return [None] * len(heartbeats)

    async def _refuse(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        code: grpc.StatusCode,
        message: str,
        *,
        actor: str,
        reason: str,
        detail: str = "",
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> NoReturn:
        (log or self._log).warning("stream.refused", reason=reason, peer=context.peer())
        await self._writer.run(
            lambda conn: record_audit(
                conn, at=self._clock.now(), actor=actor, action="stream.refused",
                target=reason, detail=detail or message,
            )
        )
        await context.abort(code, message)
        raise AssertionError("context.abort returned")  # abort always raises


def build_grpc_server(
    service: AgentStreamService, *, max_message_bytes: int
) -> tuple[grpc.aio.Server, Any]:
    """A grpc.aio server with the agent stream and the standard health service registered.

    Returns the server and its health servicer (set NOT_SERVING at shutdown). Ports are added by
    the caller.
    """
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # Detect dead agents' connections (a host powered off mid-stream) within minutes.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ])
    stream_pb2_grpc.add_AgentStreamServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    return server, health_servicer


async def mark_serving(health_servicer: Any, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, status)
