"""The collector process: builds every long-lived object, serves, and stops in order.

One asyncio loop carries the agents' gRPC streams (grpc.aio) and the HTTP API (uvicorn); the
store is written by one writer thread. Shutdown, on SIGTERM or SIGINT:

1. refuse new streams and end live ones at their next read; a batch being committed is still
   committed and acked (the health service says NOT_SERVING first);
2. stop the HTTP API, letting requests in progress finish;
3. stop the due-time loop (its state is in the store: deadlines survive the restart), retention,
   and outbox delivery after its sends in flight (within a grace; a send cut
   short is sent again after the restart: the outbox keeps it pending);
4. finish queued writes and close the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
import structlog
import uvicorn

from collector.api.app import create_app
from collector.api.deps import ApiToken
from collector.auth import AgentAuthenticator, agent_credentials, token_sha256_from_file
from collector.config import CollectorConfig, split_listen
from collector.customers import CustomerSet, load_customers
from collector.grpc_service import AgentStreamService, build_grpc_server, mark_serving
from collector.incidents.engine import IncidentEngine
from collector.ingest import Ingest
from collector.retention import ResultsRetention
from collector.runtime import freeze_startup_objects, tune_interpreter
from collector.sinks.build import SinkFactory
from collector.sinks.delivery import OutboxDelivery
from collector.store.agents import AgentCredential, mark_all_disconnected, register_credentials
from collector.store.engine import open_store
from collector.store.writer import StoreWriter
from collector.timers import DueTimers
from probes.clock import Clock
from probes.configfile import ConfigError

# How long live streams get to finish their batch in flight before they are cut.
GRPC_SHUTDOWN_GRACE_S = 10.0
HTTP_SHUTDOWN_GRACE_S = 10.0
OUTBOX_SHUTDOWN_GRACE_S = 10.0


class _UvicornWithoutSignals(uvicorn.Server):
    """uvicorn.Server that leaves SIGTERM/SIGINT to CollectorApp, which owns the shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass(frozen=True, slots=True)
class _Prepared:
    engine: sa.Engine
    agent_credentials: list[AgentCredential]
    api_tokens: list[ApiToken]
    customers: CustomerSet


class CollectorApp:
    def __init__(
        self,
        config: CollectorConfig,
        clock: Clock,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._log = logger or structlog.get_logger("collector.app")
        self.grpc_port: int | None = None
        self.http_port: int | None = None
        self._started = asyncio.Event()
        self._reload_customers: Callable[[], str] | None = None
        self._owns_process = False

    async def wait_started(self) -> None:
        await self._started.wait()

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; returns the process exit code."""
        # The process is ours (`daybreak serve`): tune the interpreter for serving.
        tune_interpreter()
        self._owns_process = True
        return asyncio.run(self._run_until_signalled())

    async def _run_until_signalled(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        # SIGHUP rereads the customer files (systemd's ExecReload); a bad set is refused and the
        # old one kept, which reload_customers logs.
        loop.add_signal_handler(signal.SIGHUP, self._reload_on_signal, loop)
        await self.serve(stop)
        return 0

    def _reload_on_signal(self, loop: asyncio.AbstractEventLoop) -> None:
        reload_customers = self._reload_customers
        if reload_customers is None:
            return

        def reload_and_log() -> None:
            with contextlib.suppress(ConfigError):  # logged as customers.reload_failed
                reload_customers()

        loop.run_in_executor(None, reload_and_log)

    def _prepare(self) -> _Prepared:
        """The blocking part of starting: token files, customer files, store and migrations."""
        config = self._config
        credentials = agent_credentials(config, self._log)
        api_tokens = [
            ApiToken(
                name=entry.name,
                role=entry.role,
                customers=frozenset(entry.customers),
                token_sha256=token_sha256_from_file(
                    entry.token_file, field=f"api_tokens[{index}].token_file", logger=self._log
                ),
            )
            for index, entry in enumerate(config.api_tokens)
        ]
        customers = load_customers(config.customers_dir)
        engine = open_store(config.store_url)
        return _Prepared(engine, credentials, api_tokens, customers)

    async def serve(self, stop: asyncio.Event) -> None:
        """Start everything, serve until `stop` is set, then shut down in order."""
        config = self._config
        prepared = await asyncio.to_thread(self._prepare)
        engine = prepared.engine
        writer = StoreWriter(engine)
        await writer.run(lambda conn: register_credentials(conn, prepared.agent_credentials))
        await writer.run(mark_all_disconnected)
        incident_engine = IncidentEngine(prepared.customers, self._clock)

        def reload_customers() -> str:
            # Called from the API's worker threads; the swap happens in the writer thread so
            # it never lands in the middle of an evaluation.
            try:
                customers = load_customers(config.customers_dir)
            except ConfigError as exc:
                # The old set stays in force; the caller (API or SIGHUP) says so.
                self._log.warning("customers.reload_failed", problems=str(exc))
                raise
            writer.submit(lambda _conn: incident_engine.replace_customers(customers)).result()
            self._log.info("customers.reloaded", customers=len(customers))
            return f"reloaded {len(customers)} customer file(s) from {config.customers_dir}"

        self._reload_customers = reload_customers
        ingest = Ingest(writer, self._clock, incident_engine)
        service = AgentStreamService(
            authenticator=AgentAuthenticator(prepared.agent_credentials),
            ingest=ingest,
            writer=writer,
            clock=self._clock,
            max_batch_items=config.grpc.max_batch_items,
            heartbeat_interval_s=config.heartbeat_interval_s,
        )
        grpc_server, health = build_grpc_server(
            service, max_message_bytes=config.grpc.max_message_bytes
        )
        grpc_host, grpc_port = split_listen(config.grpc.listen)
        self.grpc_port = grpc_server.add_insecure_port(f"{_bracketed(grpc_host)}:{grpc_port}")
        if self.grpc_port == 0:
            raise OSError(f"grpc.listen: cannot listen on {config.grpc.listen}")

        http_host, http_port = split_listen(config.http.listen)
        http_socket = _bind(http_host, http_port)
        self.http_port = int(http_socket.getsockname()[1])
        api = create_app(engine, prepared.api_tokens, self._clock, reload_customers,
                         customers=lambda: incident_engine.customers)
        http_server = _UvicornWithoutSignals(uvicorn.Config(
            api, log_config=None, lifespan="on", access_log=False,
            timeout_graceful_shutdown=int(HTTP_SHUTDOWN_GRACE_S),
        ))
        retention = ResultsRetention(
            writer, self._clock,
            retention_days=config.store.results_retention_days,
            prune_interval_s=config.store.prune_interval_s,
        )

        timers = DueTimers(writer, incident_engine, self._clock,
                           heartbeat_interval=timedelta(seconds=config.heartbeat_interval_s))
        incident_engine.wake_timers = timers.wake
        sink_factory = SinkFactory(writer, self._clock)
        delivery = OutboxDelivery(writer, self._clock, lambda: incident_engine.customers,
                                  sink_factory.build)

        await grpc_server.start()
        await mark_serving(health, True)
        http_task = asyncio.create_task(http_server.serve(sockets=[http_socket]))
        retention_task = asyncio.create_task(retention.run())
        delivery_task = asyncio.create_task(delivery.run())
        timers_task = asyncio.create_task(timers.run())
        self._log.info(
            "collector.listening",
            grpc=f"{grpc_host}:{self.grpc_port}",
            http=f"{http_host}:{self.http_port}",
            store=engine.url.render_as_string(hide_password=True),
            agents=len(prepared.agent_credentials),
            customers=len(prepared.customers),
        )
        self._started.set()
        if self._owns_process:
            freeze_startup_objects()
        try:
            stop_task = asyncio.create_task(stop.wait())
            await asyncio.wait({stop_task, http_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
        finally:
            self._log.info("collector.stopping")
            service.begin_shutdown()
            await mark_serving(health, False)
            await grpc_server.stop(GRPC_SHUTDOWN_GRACE_S)
            http_server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await http_task
            timers_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timers_task
            retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retention_task
            delivery.stop()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(delivery_task, OUTBOX_SHUTDOWN_GRACE_S)
            await sink_factory.aclose()
            await asyncio.to_thread(writer.close)
            engine.dispose()
            http_socket.close()
            self._log.info("collector.stopped")


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"http.listen: cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock
