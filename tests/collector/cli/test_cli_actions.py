"""`daybreak incidents ack|resolve ID [--note]`, run as real processes against a real server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Daybreak = Callable[..., Any]


def test_ack_then_resolve_with_notes_shows_in_the_history(daybreak: Daybreak) -> None:
    ack = daybreak("incidents", "ack", "1", "--note", "restarting the export")
    assert ack.returncode == 0, ack.stderr
    assert ack.stdout == "#1 acknowledged: job nightly-export failed on db-01 (exit code 3)\n"
    done = daybreak("incidents", "resolve", "1", "--note", "re-ran it by hand", "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["state"] == "resolved"
    assert body["resolution"] == "resolved by admin: re-ran it by hand"
    assert [(e["kind"], e["actor"], e["note"]) for e in body["events"]][-2:] == [
        ("acknowledged", "admin", "restarting the export"),
        ("resolved", "admin", "re-ran it by hand")]
    shown = daybreak("incidents", "show", "1")
    assert "restarting the export" in shown.stdout


def test_acting_twice_is_a_conflict_with_exit_code_6(daybreak: Daybreak) -> None:
    assert daybreak("incidents", "ack", "2").returncode == 0
    again = daybreak("incidents", "ack", "2")
    assert again.returncode == 6
    assert again.stderr == "daybreak: 409: cannot acknowledge incident 2: it is acknowledged\n"


def test_another_customers_incident_is_not_found(daybreak: Daybreak, collector: Any) -> None:
    done = daybreak("incidents", "resolve", "3", DAYBREAK_TOKEN=collector.acme_token)
    assert done.returncode == 5
    assert done.stderr == "daybreak: 404: incident 3 not found\n"
