"""The contract fields of an incident (priority, due times, acknowledgement, recovery) and its
related incidents, through the HTTP API over the shared seeded store (conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

Auth = Callable[[str], dict[str, str]]


def test_one_incident_lists_its_related_incidents_newest_first(client: httpx.Client,
                                                               auth: Auth) -> None:
    body = client.get("/api/v1/incidents/1", headers=auth("admin")).json()
    # 2 and 3 are acme's, about the same subject; 4 is globex's and never related.
    assert [r["id"] for r in body["related"]] == [3, 2]
    assert body["related"][0] == {
        "id": 3, "state": "resolved", "severity": "warning",
        "title": "disk:/data on host-3: used_percent 85 is above 80", "host": "host-3",
        "subject": "disk:/data", "opened_at": "2025-03-04T01:03:00Z",
        "resolved_at": "2025-03-04T02:03:00Z",
    }
    assert client.get("/api/v1/incidents/4", headers=auth("admin")).json()["related"] == []


def test_incidents_carry_the_contract_fields(client: httpx.Client, auth: Auth) -> None:
    [listed, *_] = client.get("/api/v1/incidents", headers=auth("admin")).json()["incidents"]
    for field, empty in (("priority", ""), ("respond_by", None), ("resolve_by", None),
                         ("acknowledged_at", None), ("acknowledged_by", None),
                         ("escalated_at", None), ("escalation_level", 0),
                         ("recovered_at", None)):
        assert listed[field] == empty, field
