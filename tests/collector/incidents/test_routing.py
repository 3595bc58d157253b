"""Routes: which expectations judge a host's check key or job, from the customer's file."""

from __future__ import annotations

from pathlib import Path

from collector.customers import load_customer_text
from collector.incidents.routing import Routes

ACME = load_customer_text("""\
customer: acme
name: ACME Logistics
timezone: Europe/Berlin
expectations:
  - kind: threshold
    name: disk-space
    check: "disk:*"
    metric: used_percent
    warn: 80
  - kind: threshold
    name: data-disk-on-db
    check: "disk:/data"
    hosts: ["db-*"]
    metric: used_percent
    crit: 95
  - kind: threshold
    name: services
    check: "service:*"
  - kind: job_must_not_fail
    name: export-fails
    job: nightly-export
    hosts: ["db-*"]
""", Path("acme.yaml"))


def names(routes: Routes, host: str, is_result: bool, subject: str) -> list[str]:
    return [e.name for e in routes.route(ACME, host, is_result, subject)]


def test_a_route_takes_the_expectations_of_the_subject_and_host_in_file_order() -> None:
    routes = Routes()
    assert names(routes, "db-1", True, "disk:/data") == ["disk-space", "data-disk-on-db"]
    assert names(routes, "web-1", True, "disk:/data") == ["disk-space"]
    assert names(routes, "web-1", True, "service:nginx") == ["services"]
    assert names(routes, "db-1", False, "nightly-export") == ["export-fails"]
    assert names(routes, "web-1", False, "nightly-export") == []
    # A job named like a check key is not a check.
    assert names(routes, "db-1", False, "disk:/data") == []


def test_full_caches_start_over_and_keep_answering_right() -> None:
    routes = Routes(max_entries=3)
    expected = {}
    for n in range(20):
        host = f"db-{n}" if n % 2 else f"web-{n}"
        expected[host] = names(routes, host, True, f"disk:/data{n % 3}")
    for n in range(20):
        host = f"db-{n}" if n % 2 else f"web-{n}"
        assert names(routes, host, True, f"disk:/data{n % 3}") == expected[host]
    assert expected["db-1"] == ["disk-space"]  # disk:/data1 is not disk:/data
    assert names(routes, "db-7", True, "disk:/data") == ["disk-space", "data-disk-on-db"]
