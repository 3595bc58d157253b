"""`systemctl show` output: `Key=value` properties, one block per unit.

`systemctl show a.service b.service` prints each unit's properties and a blank line between units.
Values are everything after the first `=` (empty values such as `LimitMEMLOCK=` are kept as "").
An `Exec*` property is printed as `{ path=... ; argv[]=... ; ... }`, and when an argument holds a
newline the value runs on over the following lines until one ends with `}` (ansible's
parse_systemctl_show, test_multiline_exec). Only `Exec*` values that start with `{` continue
this way: `Description={ this is confusing` is a one-line value (test_single_line_with_brace).

Recorded outputs also carry Exec values cut short (insights-core's fixtures end them mid-word
with no `}`). A continuation line that looks like the start of a property (`Name=`) therefore
ends the cut value instead of being swallowed, and so does the blank line between units: one
damaged value never eats the rest of the unit.
"""

from __future__ import annotations

import re

# systemd property names are CamelCase identifiers (`ExecStartPre`, `CPUQuotaPerSecUSec`).
_PROPERTY_START = re.compile(r"^[A-Za-z][A-Za-z0-9]*=")


def _starts_multiline_exec(key: str, value: str) -> bool:
    stripped = value.strip()
    return key.startswith("Exec") and stripped.startswith("{") and not stripped.endswith("}")


def parse_show(text: str) -> list[dict[str, str]]:
    """One dict of properties per unit, in output order; a unit's repeated key keeps the last.

    Lines without `=` outside a multi-line Exec value (wrapped text in hand-edited fixtures) are
    ignored, as ansible does.
    """
    units: list[dict[str, str]] = []
    current: dict[str, str] = {}
    pending_key: str | None = None
    pending_lines: list[str] = []

    def finish_pending() -> None:
        nonlocal pending_key, pending_lines
        if pending_key is not None:
            current[pending_key] = "\n".join(pending_lines).strip()
        pending_key = None
        pending_lines = []

    def finish_unit() -> None:
        nonlocal current
        finish_pending()
        if current:
            units.append(current)
        current = {}

    for raw_line in text.splitlines():
        line = raw_line.rstrip("\r")
        if not line.strip():
            finish_unit()
            continue
        if pending_key is not None:
            if _PROPERTY_START.match(line):
                # The Exec value was cut before its `}`: keep what there is, read this property.
                finish_pending()
            else:
                pending_lines.append(line)
                if line.rstrip().endswith("}"):
                    finish_pending()
                continue
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if not key:
            continue
        if _starts_multiline_exec(key, value):
            pending_key = key
            pending_lines = [value]
            continue
        current[key] = value.strip()
    finish_unit()
    return units


def parse_show_single(text: str) -> dict[str, str]:
    """The properties of `systemctl show ONE-UNIT`: the first block, or {} when there is none."""
    units = parse_show(text)
    return units[0] if units else {}
