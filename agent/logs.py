"""Structured logs for the agent: configured once, by the entry point.

JSON lines when stderr is not a terminal (systemd's journal, docker), readable lines on one.
Every event carries the agent_id and customer bound by the entry point (structlog contextvars).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from agent.config import LogSettings


def configure_logging(settings: LogSettings, stream: TextIO = sys.stderr) -> None:
    as_json = settings.format == "json" or (settings.format == "auto" and not stream.isatty())
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if as_json:
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=stream.isatty()))
    level = logging.getLevelNamesMapping()[settings.level.upper()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
