"""`daybreak report morning`: what the night brought, per customer, for the first shift.

The collector builds the report (`GET /api/v1/reports/morning`); this prints it as text, as
the API's JSON (`--json`), and writes it as one HTML file to open and forward (`--html FILE`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from collector.cli.client import EXIT_OK, CliError, add_client_arguments, client_from_args
from collector.cli.output import complain, print_json, write
from collector.report.render_html import render_html
from collector.report.render_text import render_text
from collector.report.shapes import MorningReport
from collector.report.window import DEFAULT_SINCE, parse_since

EXIT_CANNOT_WRITE = 1


def _since(text: str) -> str:
    try:
        parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def register(subparsers: Any) -> None:
    report = subparsers.add_parser("report", help="reports: the morning report")
    commands = report.add_subparsers(dest="report_command", required=True, metavar="{morning}")
    morning = commands.add_parser(
        "morning", help="per customer: the night's jobs and loads, open incidents, silent "
                        "agents, dropped results")
    morning.add_argument("--customer", help="only this customer")
    morning.add_argument("--since", type=_since, default=DEFAULT_SINCE,
                         help="HH:MM on each customer's clock, the most recent before now "
                              "(default 18:00: yesterday evening, in the morning), or an "
                              "ISO 8601 time")
    morning.add_argument("--json", action="store_true", help="print the API's JSON")
    morning.add_argument("--html", type=Path, metavar="FILE",
                         help="also write the report as a self-contained HTML file")
    add_client_arguments(morning)
    morning.set_defaults(func=run_morning)


def run_morning(args: argparse.Namespace) -> int:
    body = client_from_args(args).get("/reports/morning",
                                      {"customer": args.customer, "since": args.since})
    if args.json:
        print_json(body)
    report = MorningReport.model_validate(body)
    if not args.json:
        write(render_text(report))
    if args.html is not None:
        try:
            args.html.write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {args.html}: {exc.strerror}",
                           EXIT_CANNOT_WRITE) from exc
        complain(f"wrote {args.html}")
    return EXIT_OK
