"""`daybreak incidents list|show`, run as a real process against a real API server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

Daybreak = Callable[..., Any]


def api(collector: Any, path: str, **params: str) -> Any:
    response = httpx.get(f"{collector.url}/api/v1{path}", params=params, timeout=5,
                         headers={"Authorization": f"Bearer {collector.admin_token}"})
    response.raise_for_status()
    return response.json()


def test_list_prints_an_aligned_table_of_open_incidents(daybreak: Daybreak) -> None:
    done = daybreak("incidents", "list")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["ID", "SEVERITY", "STATE", "CUSTOMER", "HOST", "OPENED", "SEEN",
                              "TITLE"]
    assert [row.split()[0] for row in rows] == ["3", "2", "1"]  # newest first
    title_column = header.index("TITLE")
    assert rows[2][title_column:] == "job nightly-export failed on db-01 (exit code 3)"
    assert "2025-03-04 01:30:00 UTC" in rows[2]
    assert {row.index("acme") for row in rows if "acme" in row} == {header.index("CUSTOMER")}


def test_list_json_is_exactly_the_api_shape(daybreak: Daybreak, collector: Any) -> None:
    done = daybreak("incidents", "list", "--json", "--customer", "acme", "--state", "all")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == api(collector, "/incidents", customer="acme", state="all")
    assert [i["id"] for i in json.loads(done.stdout)["incidents"]] == [2, 1]


def test_an_empty_list_says_so(daybreak: Daybreak) -> None:
    done = daybreak("incidents", "list", "--state", "resolved")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "no resolved incidents\n"


def test_show_prints_the_incident_as_a_ticket(daybreak: Daybreak) -> None:
    done = daybreak("incidents", "show", "1")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("#1  job nightly-export failed on db-01 (exit code 3)\n")
    for line in (
        "customer          acme",
        "host              db-01",
        "severity          critical",
        "state             open",
        "assignment group  service_desk",
        "expectation       nightly-export-fails (nightly-export)",
        "opened            2025-03-04 01:30:00 UTC (02:30:00 Europe/Berlin)",
        "occurrences       1",
        "runbook           https://wiki.example.com/runbooks/acme/nightly-export",
        "  every run of nightly-export succeeds",
        "  run 20250304-0200 failed, exit code 3",
        "evidence (/var/log/nightly-export.log:18211)",
        "  | 02:30:01 ERROR: warehouse refused the connection",
    ):
        assert line in text.splitlines(), f"{line!r} not in:\n{text}"
    assert "history" in text
    assert "opened" in text.split("history", 1)[1]


def test_show_gives_the_customers_date_when_it_differs(daybreak: Daybreak) -> None:
    done = daybreak("incidents", "show", "3")
    assert done.returncode == 0, done.stderr
    assert ("opened            2025-03-04 01:32:00 UTC (2025-03-03 20:32:00 America/New_York)"
            in done.stdout.splitlines())
    assert "assignment group  tier2" in done.stdout.splitlines()


def test_show_json_is_exactly_the_api_shape(daybreak: Daybreak, collector: Any) -> None:
    done = daybreak("incidents", "show", "2", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == api(collector, "/incidents/2")


def test_an_unknown_incident_exits_5_with_one_line(daybreak: Daybreak) -> None:
    done = daybreak("incidents", "show", "999")
    assert done.returncode == 5
    assert done.stderr == "daybreak: 404: incident 999 not found\n"


def test_a_customer_scoped_token_never_shows_another_customer(
    daybreak: Daybreak, collector: Any,
) -> None:
    listed = daybreak("incidents", "list", "--json", DAYBREAK_TOKEN=collector.acme_token)
    assert {i["customer"] for i in json.loads(listed.stdout)["incidents"]} == {"acme"}
    other = daybreak("incidents", "show", "3", DAYBREAK_TOKEN=collector.acme_token)
    assert other.returncode == 5
