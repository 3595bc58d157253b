"""`daybreak incidents show` as a desk agent reads it: the contract lines of the ticket."""

from __future__ import annotations

from typing import Any

from collector.cli.incidents import ticket_text

INCIDENT: dict[str, Any] = {
    "id": 7, "title": "disk:/data on db-01: used_percent 85 is above 80", "customer": "acme",
    "customer_timezone": "Europe/Berlin", "host": "db-01", "expectation": "disk-space",
    "subject": "disk:/data", "state": "open", "severity": "warning", "priority": "P3",
    "assignment_group": "service_desk", "runbook": "https://wiki.example/disk",
    "occurrences": 3, "opened_at": "2025-03-08T01:00:00Z", "last_seen_at": "2025-03-08T02:00:00Z",
    "resolved_at": None, "resolution": "",
    "respond_by": "2025-03-10T07:00:00Z", "resolve_by": "2025-03-11T13:00:00Z",
    "acknowledged_at": None, "acknowledged_by": None, "escalated_at": None,
    "escalation_level": 0, "recovered_at": "2025-03-08T03:00:00Z",
    "expected": "used_percent not above 80", "observed": "used_percent = 85",
    "evidence": "Filesystem ...", "evidence_source": "probe disk", "events": [],
    "related": [{"id": 3, "state": "resolved", "severity": "warning", "title": "disk full",
                 "host": "db-01", "subject": "disk:/data", "opened_at": "2025-03-01T01:00:00Z",
                 "resolved_at": "2025-03-01T02:00:00Z"}],
}


def test_the_ticket_gives_due_times_in_the_customers_time_and_utc() -> None:
    lines = ticket_text(INCIDENT).splitlines()
    for line in (
        "priority          P3",
        "respond by        Mon 2025-03-10 08:00 Europe/Berlin (2025-03-10 07:00 UTC)",
        "resolve by        Tue 2025-03-11 14:00 Europe/Berlin (2025-03-11 13:00 UTC)",
        "state             open, recovered 2025-03-08 03:00:00 UTC (04:00:00 Europe/Berlin) "
        "(resolve it)",
        "occurrences       3",
    ):
        assert line in lines, f"{line!r} not in:\n" + "\n".join(lines)


def test_the_ticket_lists_related_incidents() -> None:
    text = ticket_text(INCIDENT)
    related = text.split("related (same host or subject, 30 days)\n", 1)[1].splitlines()
    assert related[0].split() == ["ID", "STATE", "OPENED", "HOST", "TITLE"]
    assert related[1].split() == ["#3", "resolved", "2025-03-01", "01:00:00", "UTC", "db-01",
                                  "disk", "full"]


def test_a_ticket_without_a_contract_leaves_those_lines_out() -> None:
    plain = {k: v for k, v in INCIDENT.items()
             if k not in ("priority", "respond_by", "resolve_by", "recovered_at", "related")}
    text = ticket_text(plain)
    assert "respond by" not in text
    assert "related" not in text
    assert "state             open" in text.splitlines()


def test_a_problem_reported_late_says_when_the_host_saw_it() -> None:
    # The agent's results waited in its spool through an outage: seen at 02:13, opened 06:40.
    late = {**INCIDENT, "first_observed_at": "2025-03-08T01:13:00Z",
            "opened_at": "2025-03-08T05:40:00Z"}
    assert ("seen on host      2025-03-08 01:13:00 UTC (02:13:00 Europe/Berlin), "
            "reported 4h 27m later") in ticket_text(late).splitlines()
    on_time = {**INCIDENT, "first_observed_at": "2025-03-08T00:59:40Z"}
    assert "seen on host" not in ticket_text(on_time)
