"""`daybreak serve --config PATH` runs the collector; `daybreak migrate --config PATH` only
brings the store's schema to the newest migration (serve does that too, at start)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import structlog

from collector.config import CollectorConfig, LogConfig, load_collector_config
from probes.clock import SystemClock
from probes.configfile import ConfigError

DEFAULT_CONFIG = Path("config/collector.yaml")


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve", help="run the collector (gRPC for agents, HTTP API) until SIGTERM or SIGINT"
    )
    serve.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                       help=f"collector configuration file (default: {DEFAULT_CONFIG})")
    serve.set_defaults(func=run_serve)
    migrate = subparsers.add_parser(
        "migrate", help="bring the store's schema to the newest migration, then exit"
    )
    migrate.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                         help=f"collector configuration file (default: {DEFAULT_CONFIG})")
    migrate.set_defaults(func=run_migrate)


def configure_logging(log: LogConfig) -> None:
    """JSON lines for a service (stderr not a terminal), readable lines for a person."""
    level = logging.getLevelNamesMapping()[log.level.upper()]
    as_json = log.format == "json" or (log.format == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def _load(path: Path) -> CollectorConfig | None:
    try:
        return load_collector_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)  # noqa: T201 - the operator's answer, file:line: field
        return None


def run_serve(args: argparse.Namespace) -> int:
    # The server's imports (SQLAlchemy, gRPC, FastAPI) cost every other command 0.3 s.
    from collector.app import CollectorApp
    from collector.auth import CredentialError

    config = _load(args.config)
    if config is None:
        return 2
    configure_logging(config.log)
    try:
        return CollectorApp(config, SystemClock()).run()
    except (ConfigError, CredentialError) as exc:
        print(exc, file=sys.stderr)  # noqa: T201
        return 2


def run_migrate(args: argparse.Namespace) -> int:
    from collector.store.engine import open_store

    config = _load(args.config)
    if config is None:
        return 2
    configure_logging(config.log)
    open_store(config.store_url).dispose()
    structlog.get_logger("collector.cli").info("store.migrated", url=config.store_url)
    return 0
