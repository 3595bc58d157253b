"""`daybreak agents list`: which agents report, from where, and how full their spools are."""

from __future__ import annotations

import argparse
from typing import Any

from collector.cli.client import EXIT_OK, add_client_arguments, client_from_args
from collector.cli.output import print_json, table, utc_text, write


def register(subparsers: Any) -> None:
    agents = subparsers.add_parser("agents", help="list agents")
    commands = agents.add_subparsers(dest="agents_command", required=True, metavar="{list}")
    listing = commands.add_parser("list", help="every agent that ever connected")
    listing.add_argument("--customer", help="only this customer")
    listing.add_argument("--json", action="store_true", help="print the API's JSON")
    add_client_arguments(listing)
    listing.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    body = client_from_args(args).get("/agents", {"customer": args.customer})
    if args.json:
        print_json(body)
        return EXIT_OK
    agents: list[dict[str, Any]] = body["agents"]
    if not agents:
        write("no agents have connected yet")
        return EXIT_OK
    write(table(
        ["CUSTOMER", "HOST", "AGENT", "VERSION", "CONNECTED", "LAST SEEN", "SPOOL", "DROPPED"],
        [[a["customer"], a["host"], a["agent_id"], a["version"] or "-",
          "yes" if a["connected"] else "no", utc_text(a["last_seen_at"]),
          str(a["spool_depth"]), str(a["results_dropped"])] for a in agents],
    ))
    return EXIT_OK
