"""How the command line prints: aligned tables and labelled fields for people, JSON for scripts.

`--json` prints the API's JSON exactly as it came (docs/api.md is its contract); nothing here
reshapes it. Times are shown in UTC, and in the customer's zone beside it when known: the desk
talks to the customer in the customer's time.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

COLUMN_GAP = "  "


def write(text: str, out: TextIO | None = None) -> None:
    (out or sys.stdout).write(text if text.endswith("\n") else text + "\n")


def complain(text: str) -> None:
    """A message for the person at the terminal, on stderr so pipes carry only the answer."""
    write(f"daybreak: {text}", sys.stderr)


def print_json(data: Any, out: TextIO | None = None) -> None:
    write(json.dumps(data, indent=2, ensure_ascii=False), out)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns as wide as their widest cell; the last column is not padded."""
    widths = [len(h) for h in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(cells[:-1])]
        return COLUMN_GAP.join([*padded, cells[-1]]).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def fields(pairs: Sequence[tuple[str, str]]) -> str:
    """`label   value` lines, labels aligned; empty values are left out."""
    shown = [(label, value) for label, value in pairs if value]
    width = max((len(label) for label, _ in shown), default=0)
    return "\n".join(f"{label.ljust(width)}{COLUMN_GAP}{value}" for label, value in shown)


def indented(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line for line in text.rstrip("\n").splitlines())


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def utc_text(value: str | None) -> str:
    moment = parse_time(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def time_text(value: str | None, zone_name: str | None) -> str:
    """`2025-03-04 01:00:00 UTC (02:00:00 Europe/Berlin)`, the zone's date added if it differs."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    shown = utc_text(value)
    if not zone_name or zone_name == "UTC":
        return shown
    try:
        local = moment.astimezone(ZoneInfo(zone_name))
    except (ZoneInfoNotFoundError, ValueError):
        return shown
    utc_date = moment.astimezone(UTC).date()
    local_format = "%H:%M:%S" if local.date() == utc_date else "%Y-%m-%d %H:%M:%S"
    return f"{shown} ({local.strftime(local_format)} {zone_name})"
