"""`daybreak incidents list|show|ack|resolve`: the incident queue, one incident read as a ticket,
and working it (acknowledge, resolve, with a note that goes into its history and the audit log)."""

from __future__ import annotations

import argparse
from datetime import UTC, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector.cli.client import EXIT_OK, add_client_arguments, client_from_args
from collector.cli.output import (
    complain,
    fields,
    indented,
    parse_time,
    print_json,
    table,
    time_text,
    utc_text,
    write,
)
from collector.durations import format_duration


def register(subparsers: Any) -> None:
    incidents = subparsers.add_parser("incidents", help="list incidents or show one")
    commands = incidents.add_subparsers(dest="incidents_command", required=True,
                                        metavar="{list,show,ack,resolve}")

    listing = commands.add_parser("list", help="incidents, newest first (default: open ones)")
    listing.add_argument("--customer", help="only this customer")
    listing.add_argument("--state", choices=("open", "resolved", "all"), default="open",
                         help="open (the default; includes acknowledged), resolved or all")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    listing.add_argument("--json", action="store_true", help="print the API's JSON")
    add_client_arguments(listing)
    listing.set_defaults(func=run_list)

    show = commands.add_parser("show", help="one incident with its evidence and history")
    show.add_argument("incident_id", metavar="ID", type=int)
    show.add_argument("--json", action="store_true", help="print the API's JSON")
    add_client_arguments(show)
    show.set_defaults(func=run_show)

    for name, help_text in (("ack", "acknowledge an open incident: someone is on it"),
                            ("resolve", "resolve an open or acknowledged incident")):
        action = commands.add_parser(name, help=help_text)
        action.add_argument("incident_id", metavar="ID", type=int)
        action.add_argument("--note", default="", help="why, or what was done (kept in the "
                            "incident's history and the audit log)")
        action.add_argument("--json", action="store_true", help="print the API's JSON")
        add_client_arguments(action)
        action.set_defaults(func=run_action, action=name)


def run_list(args: argparse.Namespace) -> int:
    body = client_from_args(args).get(
        "/incidents", {"customer": args.customer, "state": args.state, "limit": args.limit})
    if args.json:
        print_json(body)
        return EXIT_OK
    incidents: list[dict[str, Any]] = body["incidents"]
    if not incidents:
        scope = f" for {args.customer}" if args.customer else ""
        write(f"no {'' if args.state == 'all' else args.state + ' '}incidents{scope}")
        return EXIT_OK
    write(table(
        ["ID", "SEVERITY", "STATE", "CUSTOMER", "HOST", "OPENED", "SEEN", "TITLE"],
        [[str(i["id"]), i["severity"], i["state"], i["customer"], i["host"],
          utc_text(i["opened_at"]), f"{i['occurrences']}x", i["title"]] for i in incidents],
    ))
    if body.get("truncated"):
        complain(f"showing the newest {len(incidents)}; use --limit for more")
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    incident = client_from_args(args).get(f"/incidents/{args.incident_id}")
    if args.json:
        print_json(incident)
    else:
        write(ticket_text(incident))
    return EXIT_OK


def run_action(args: argparse.Namespace) -> int:
    incident = client_from_args(args).post(f"/incidents/{args.incident_id}/{args.action}",
                                           {"note": args.note})
    if args.json:
        print_json(incident)
    else:
        done = "acknowledged" if args.action == "ack" else "resolved"
        write(f"#{incident['id']} {done}: {incident['title']}")
    return EXIT_OK


# Results normally arrive within seconds; beyond this the ticket says when the host saw it.
REPORTED_LATE = timedelta(minutes=1)


def seen_late_text(incident: dict[str, Any], zone: str | None) -> str:
    """When the host saw the problem, if its results arrived late (an outage), else empty."""
    seen = parse_time(incident.get("first_observed_at"))
    opened = parse_time(incident["opened_at"])
    if seen is None or opened is None or opened - seen < REPORTED_LATE:
        return ""
    return (f"{time_text(incident['first_observed_at'], zone)}, "
            f"reported {format_duration(opened - seen)} later")


def ticket_text(incident: dict[str, Any]) -> str:
    """One incident the way a service-desk agent reads a ticket: what, where, since when,
    what was expected and seen, the evidence, what to do, what happened so far."""
    zone = incident.get("customer_timezone")
    state = incident["state"]
    if state == "resolved":
        state = f"resolved {time_text(incident.get('resolved_at'), zone)}"
    elif incident.get("recovered_at"):
        state = f"{state}, recovered {time_text(incident['recovered_at'], zone)} (resolve it)"
    acknowledged = ""
    if incident.get("acknowledged_at"):
        acknowledged = (f"{time_text(incident['acknowledged_at'], zone)}"
                        f" by {incident.get('acknowledged_by') or '?'}")
    escalated = ""
    if incident.get("escalated_at"):
        escalated = (f"level {incident.get('escalation_level', 0)}, "
                     f"{time_text(incident['escalated_at'], zone)}")
    header = fields([
        ("customer", incident["customer"]),
        ("host", incident["host"]),
        ("severity", incident["severity"]),
        ("priority", incident.get("priority", "")),
        ("state", state),
        ("resolution", incident.get("resolution", "")),
        ("assignment group", incident["assignment_group"]),
        ("respond by", due_text(incident.get("respond_by"), zone)),
        ("resolve by", due_text(incident.get("resolve_by"), zone)),
        ("acknowledged", acknowledged),
        ("escalated", escalated),
        ("expectation", f"{incident['expectation']} ({incident['subject']})"),
        ("opened", time_text(incident["opened_at"], zone)),
        ("seen on host", seen_late_text(incident, zone)),
        ("last seen", time_text(incident["last_seen_at"], zone)),
        ("occurrences", str(incident["occurrences"])),
        ("runbook", incident.get("runbook", "")),
    ])
    parts = [f"#{incident['id']}  {incident['title']}", "", header]
    for label, key in (("summary", "summary"), ("expected", "expected"),
                       ("observed", "observed")):
        if incident.get(key):
            parts += ["", label, indented(incident[key])]
    if incident.get("evidence"):
        source = incident.get("evidence_source")
        parts += ["", f"evidence ({source})" if source else "evidence",
                  indented(incident["evidence"], "  | ")]
    events = incident.get("events") or []
    if events:
        parts += ["", "history", indented(table(
            ["WHEN", "WHAT", "WHO", "NOTE"],
            [[utc_text(e["at"]), e["kind"], e["actor"], e["note"]] for e in events],
        ))]
    related = incident.get("related") or []
    if related:
        parts += ["", "related (same host or subject, 30 days)", indented(table(
            ["ID", "STATE", "OPENED", "HOST", "TITLE"],
            [[f"#{r['id']}", r["state"], utc_text(r["opened_at"]), r["host"], r["title"]]
             for r in related],
        ))]
    return "\n".join(parts)


def due_text(value: str | None, zone_name: str | None) -> str:
    """A due time as the desk tells the customer, with UTC beside it:
    `Mon 2025-03-10 08:00 Europe/Berlin (2025-03-10 07:00 UTC)`."""
    moment = parse_time(value)
    if moment is None:
        return ""
    in_utc = moment.astimezone(UTC)
    try:
        zone = ZoneInfo(zone_name) if zone_name and zone_name != "UTC" else None
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    if zone is None:
        return in_utc.strftime("%a %Y-%m-%d %H:%M UTC")
    local = moment.astimezone(zone)
    return f"{local.strftime('%a %Y-%m-%d %H:%M')} {zone_name} ({in_utc:%Y-%m-%d %H:%M} UTC)"
