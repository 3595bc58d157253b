"""A collector small enough to read in a minute, for the agent's tests: it commits every new seq
to a list and acks after that "commit", and remembers everything the agent said."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from daybreak.v1 import stream_pb2, stream_pb2_grpc

TOKEN = "agent-token-0123456789"  # noqa: S105 - a test token for a test server


class TinyCollector(stream_pb2_grpc.AgentStreamServicer):
    """Commits every new seq to a list, then acks; remembers what the agent said."""

    def __init__(self, max_batch_items: int = 1000, acked_seq: int = 0,
                 heartbeat_interval_s: int = 1) -> None:
        self.max_batch_items = max_batch_items
        self.heartbeat_interval_s = heartbeat_interval_s
        self.acked_seq = acked_seq
        self.committed: list[int] = []
        self.items: list[stream_pb2.Item] = []
        self.batch_sizes: list[int] = []
        self.hellos: list[stream_pb2.Hello] = []
        self.heartbeats: list[stream_pb2.Heartbeat] = []
        # Figures that rode on a batch instead of a Heartbeat message.
        self.batch_heartbeats: list[stream_pb2.Heartbeat] = []
        self.command_results: list[stream_pb2.CommandResult] = []
        self.commands: list[stream_pb2.Command] = []
        self.refusals = 0
        # False: receive batches but never commit nor ack them (a collector about to crash).
        self.acking = True

    async def Connect(
        self, request_iterator: AsyncIterator[stream_pb2.AgentMessage], context: Any
    ) -> AsyncIterator[stream_pb2.CollectorMessage]:
        metadata = dict(context.invocation_metadata())
        if metadata.get("authorization") != f"Bearer {TOKEN}":
            self.refusals += 1
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown agent token")
        first = await anext(aiter(request_iterator))
        self.hellos.append(first.hello)
        yield stream_pb2.CollectorMessage(
            welcome=stream_pb2.Welcome(
                acked_seq=self.acked_seq,
                max_batch_items=self.max_batch_items,
                heartbeat_interval_s=self.heartbeat_interval_s,
            )
        )
        for command in self.commands:
            yield stream_pb2.CollectorMessage(command=command)
        async for message in request_iterator:
            kind = message.WhichOneof("body")
            if kind == "batch":
                self.batch_sizes.append(len(message.batch.items))
                if message.batch.HasField("heartbeat"):
                    self.batch_heartbeats.append(message.batch.heartbeat)
                if not self.acking:
                    continue
                for item in message.batch.items:
                    if item.seq > self.acked_seq:  # dedupe by seq, as the real collector does
                        self.committed.append(item.seq)
                        self.items.append(item)
                        self.acked_seq = item.seq
                yield stream_pb2.CollectorMessage(ack=stream_pb2.Ack(acked_seq=self.acked_seq))
            elif kind == "heartbeat":
                self.heartbeats.append(message.heartbeat)
            elif kind == "command_result":
                self.command_results.append(message.command_result)


async def start_server(collector: TinyCollector, port: int = 0) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    stream_pb2_grpc.add_AgentStreamServicer_to_server(collector, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound
