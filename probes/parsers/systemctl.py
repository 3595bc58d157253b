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


# What systemctl prints, on stderr, on a host where systemd is not PID 1 (a container, WSL 1,
# an init-less chroot): there is no manager to ask, which is not the same as a stopped unit.
_NO_SYSTEMD_MESSAGES = (
    "System has not been booted with systemd",
    "Failed to connect to bus",
    "Failed to get D-Bus connection",
)

# `systemctl is-active`: exit 0 when the unit is active or reloading, 3 when it is not
# ("According to LSB: program is not running"); stdout holds the ActiveState (or "unknown" for a
# unit systemd does not know). Only the exit status decides (systemctl_is_active_notes.json).
IS_ACTIVE_UP_EXIT = 0
IS_ACTIVE_DOWN_EXIT = 3
UP_STATES = frozenset({"active", "reloading"})


def says_systemd_is_absent(output: str) -> bool:
    return any(message in output for message in _NO_SYSTEMD_MESSAGES)


def parse_is_active(exit_status: int, stdout: str) -> tuple[bool, str]:
    """(is up, the state word) from `systemctl is-active UNIT`; ValueError on another exit."""
    state = stdout.strip().splitlines()[0].strip() if stdout.strip() else "unknown"
    if exit_status == IS_ACTIVE_UP_EXIT:
        return True, state
    if exit_status == IS_ACTIVE_DOWN_EXIT:
        return False, state
    raise ValueError(f"systemctl is-active exited {exit_status}: {stdout.strip()[:200]}")
