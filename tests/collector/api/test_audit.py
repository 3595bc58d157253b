"""`GET /api/v1/audit`: admins read everything; other tokens what was done to their customers'
incidents, nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from collector.api.app import create_app
from collector.store.audit import record_audit
from collector.store.schema import incidents, metadata
from probes.clock import ManualClock
from tests.collector.api.conftest import TOKENS, api_token, incident_row, live_server

T = datetime(2025, 3, 4, 6, 0, tzinfo=UTC)


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """Incident 1 is acme's, 2 globex's; the log has what people did to both, and a refused
    agent."""
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('audit') / 'd.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(incidents.insert(), [incident_row(1, "acme"),
                                          incident_row(2, "globex", assignment_group="tier2")])
        record_audit(conn, at=T, actor="agent:evil", action="stream.refused",
                     target="wrong customer", detail="claimed globex")
        record_audit(conn, at=T + timedelta(minutes=1), actor="acme-desk",
                     action="incident.acknowledged", target="incident:1", detail="on it")
        record_audit(conn, at=T + timedelta(minutes=2), actor="globex-tier2",
                     action="incident.acknowledged", target="incident:2", detail="")
        record_audit(conn, at=T + timedelta(minutes=3), actor="acme-desk",
                     action="incident.resolved", target="incident:1", detail="freed space")
    tokens = [api_token("admin", "admin", "*"), api_token("acme-desk", "service_desk", "acme"),
              api_token("globex-tier2", "tier2", "globex")]
    app = create_app(engine, tokens, ManualClock(T))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client
    engine.dispose()


def actions(body: dict[str, list[dict[str, object]]]) -> list[tuple[object, ...]]:
    return [(e["actor"], e["action"], e["target"]) for e in body["entries"]]


def test_an_admin_reads_the_whole_log_newest_first(api: httpx.Client) -> None:
    body = api.get("/api/v1/audit", headers=auth("admin")).json()
    assert actions(body) == [
        ("acme-desk", "incident.resolved", "incident:1"),
        ("globex-tier2", "incident.acknowledged", "incident:2"),
        ("acme-desk", "incident.acknowledged", "incident:1"),
        ("agent:evil", "stream.refused", "wrong customer"),
    ]
    assert body["truncated"] is False
    assert body["entries"][0] == {"id": 4, "at": "2025-03-04T06:03:00Z", "actor": "acme-desk",
                                  "action": "incident.resolved", "target": "incident:1",
                                  "detail": "freed space"}


def test_a_scoped_token_reads_only_its_customers_incident_actions(api: httpx.Client) -> None:
    acme = api.get("/api/v1/audit", headers=auth("acme-desk")).json()
    assert actions(acme) == [("acme-desk", "incident.resolved", "incident:1"),
                             ("acme-desk", "incident.acknowledged", "incident:1")]
    globex = api.get("/api/v1/audit", headers=auth("globex-tier2")).json()
    assert actions(globex) == [("globex-tier2", "incident.acknowledged", "incident:2")]


def test_since_and_limit_narrow_the_log(api: httpx.Client) -> None:
    since = api.get("/api/v1/audit", params={"since": "2025-03-04T06:02:00Z"},
                    headers=auth("admin")).json()
    assert [e["id"] for e in since["entries"]] == [4, 3]
    naive_is_utc = api.get("/api/v1/audit", params={"since": "2025-03-04T06:02:00"},
                           headers=auth("admin")).json()
    assert naive_is_utc == since
    cut = api.get("/api/v1/audit", params={"limit": 1}, headers=auth("admin")).json()
    assert [e["id"] for e in cut["entries"]] == [4]
    assert cut["truncated"] is True


def test_the_audit_log_needs_a_token(api: httpx.Client) -> None:
    assert api.get("/api/v1/audit").status_code == 401
    assert api.get("/api/v1/audit", params={"limit": 0}, headers=auth("admin")).status_code == 422
