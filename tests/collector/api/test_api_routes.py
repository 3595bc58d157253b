"""The HTTP API over a real SQLite file: tokens, customer scope, filters, shapes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from collector.api.app import create_app
from collector.api.deps import ApiToken
from probes.clock import ManualClock

Auth = Callable[[str], dict[str, str]]


def ids(body: dict[str, list[dict[str, object]]]) -> list[object]:
    return [incident["id"] for incident in body["incidents"]]


def test_healthz_answers_without_a_token(client: httpx.Client, auth: Auth) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_the_openapi_document_lists_the_routes_and_the_bearer_scheme(
    client: httpx.Client, auth: Auth,
) -> None:
    document = client.get("/openapi.json").json()
    assert {"/api/v1/incidents", "/api/v1/incidents/{incident_id}", "/api/v1/agents",
            "/healthz"} <= set(document["paths"])
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_no_token_is_refused_with_401(client: httpx.Client, auth: Auth) -> None:
    response = client.get("/api/v1/incidents")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "no API token" in response.json()["detail"]


def test_a_wrong_token_is_refused_with_401(client: httpx.Client, auth: Auth) -> None:
    for path in ("/api/v1/incidents", "/api/v1/incidents/1", "/api/v1/agents"):
        response = client.get(path, headers={"Authorization": "Bearer not-a-real-token"})
        assert response.status_code == 401
        assert response.json() == {"detail": "the API token was refused"}


def test_open_is_the_default_and_includes_acknowledged(client: httpx.Client, auth: Auth) -> None:
    body = client.get("/api/v1/incidents", headers=auth("admin")).json()
    assert ids(body) == [4, 2, 1]  # newest first
    assert body["truncated"] is False


def test_state_and_customer_filter_the_list(client: httpx.Client, auth: Auth) -> None:
    def listed(**params: str) -> list[object]:
        return ids(client.get("/api/v1/incidents", params=params, headers=auth("admin")).json())

    assert listed(state="resolved") == [3]
    assert listed(state="all") == [4, 3, 2, 1]
    assert listed(state="all", customer="globex") == [4]


def test_a_bad_state_is_refused_with_422(client: httpx.Client, auth: Auth) -> None:
    response = client.get("/api/v1/incidents", params={"state": "closed"}, headers=auth("admin"))
    assert response.status_code == 422


def test_limit_cuts_the_list_and_says_so(client: httpx.Client, auth: Auth) -> None:
    body = client.get("/api/v1/incidents", params={"state": "all", "limit": 2},
                      headers=auth("admin")).json()
    assert ids(body) == [4, 3]
    assert body["truncated"] is True


def test_a_customer_scoped_token_sees_only_its_customer(client: httpx.Client, auth: Auth) -> None:
    acme = client.get("/api/v1/incidents", params={"state": "all"}, headers=auth("acme-desk"))
    assert ids(acme.json()) == [3, 2, 1]
    asked_for_other = client.get("/api/v1/incidents", params={"customer": "globex"},
                                 headers=auth("acme-desk"))
    assert ids(asked_for_other.json()) == []
    globex = client.get("/api/v1/incidents", headers=auth("globex-tier2"))
    assert ids(globex.json()) == [4]


def test_another_customers_incident_is_not_found(client: httpx.Client, auth: Auth) -> None:
    response = client.get("/api/v1/incidents/4", headers=auth("acme-desk"))
    assert response.status_code == 404
    assert response.json() == {"detail": "incident 4 not found"}
    assert client.get("/api/v1/incidents/4", headers=auth("globex-tier2")).status_code == 200
    assert client.get("/api/v1/incidents/999", headers=auth("admin")).status_code == 404


def test_one_incident_comes_with_evidence_events_and_timezone(
    client: httpx.Client, auth: Auth,
) -> None:
    body = client.get("/api/v1/incidents/3", headers=auth("acme-desk")).json()
    assert body["state"] == "resolved"
    assert body["customer_timezone"] == "Europe/Berlin"
    assert body["evidence"] == "df output"
    assert body["opened_at"] == "2025-03-04T01:03:00Z"
    assert body["resolved_at"] == "2025-03-04T02:03:00Z"
    assert body["resolution"] == "recovered: used_percent = 40"
    assert [(e["kind"], e["note"]) for e in body["events"]] == [
        ("opened", ""), ("resolved", "recovered: used_percent = 40")]


def test_the_list_leaves_out_the_evidence(client: httpx.Client, auth: Auth) -> None:
    [incident] = client.get("/api/v1/incidents", params={"customer": "globex"},
                            headers=auth("admin")).json()["incidents"]
    assert "evidence" not in incident
    assert incident["customer_timezone"] is None  # globex is not in the customer set
    assert incident["assignment_group"] == "tier2"


def test_agents_are_listed_within_the_tokens_scope(client: httpx.Client, auth: Auth) -> None:
    everyone = client.get("/api/v1/agents", headers=auth("admin")).json()["agents"]
    assert [a["agent_id"] for a in everyone] == ["acme-web-01", "globex-db-01"]
    assert everyone[0] == {
        "agent_id": "acme-web-01", "customer": "acme", "host": "web-01", "version": "0.1.0",
        "connected": True, "last_seen_at": "2025-03-04T01:00:00Z", "spool_depth": 3,
        "results_dropped": 0,
    }
    acme = client.get("/api/v1/agents", headers=auth("acme-desk")).json()["agents"]
    assert [a["agent_id"] for a in acme] == ["acme-web-01"]


def test_reload_is_for_admins_only(client: httpx.Client, auth: Auth) -> None:
    assert client.post("/api/v1/reload", headers=auth("acme-desk")).status_code == 403
    response = client.post("/api/v1/reload", headers=auth("admin"))
    assert response.status_code == 200
    assert response.json() == {"message": "reloaded 2 customers"}


def test_reload_without_support_says_so(
    db: sa.Engine, tokens: list[ApiToken], serve: Callable[[FastAPI], str], auth: Auth,
) -> None:
    app = create_app(db, tokens, ManualClock(datetime(2025, 1, 1, tzinfo=UTC)))
    response = httpx.post(f"{serve(app)}/api/v1/reload", headers=auth("admin"), timeout=5)
    assert response.status_code == 503
