"""`daybreak reload`: the collector rereads its customer files (as on SIGHUP).

When the new files have problems the collector keeps the old set; the problems are printed,
file:line: field: message, and the exit code is not 0."""

from __future__ import annotations

import argparse
from typing import Any

from collector.cli.client import EXIT_OK, add_client_arguments, client_from_args
from collector.cli.output import write


def register(subparsers: Any) -> None:
    reload = subparsers.add_parser(
        "reload", help="reread the customer files (the old set stays when the new one is invalid)"
    )
    add_client_arguments(reload)
    reload.set_defaults(func=run_reload)


def run_reload(args: argparse.Namespace) -> int:
    body = client_from_args(args).post("/reload", {})
    write(body["message"])
    return EXIT_OK
