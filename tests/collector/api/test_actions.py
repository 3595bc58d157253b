"""Acknowledging and resolving incidents through the API, on a real server and SQLite file:
who may, in which state, and what is written (the incident, its history, the audit log)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from collector.api.app import create_app
from collector.api.deps import ApiToken
from collector.customers import CustomerSet, load_customer_text
from collector.store.engine import WRITER, open_store
from collector.store.schema import audit_log, incident_events, incidents, results
from probes.clock import ManualClock
from tests.collector.api.conftest import incident_row, live_server

NOW = datetime(2025, 3, 4, 7, 15, tzinfo=UTC)
SECRETS = {"admin": "admin-secret-0123456789", "acme-desk": "acme-desk-secret-0123456789",
           "globex-desk": "globex-desk-secret-0123456789",
           "globex-tier2": "globex-tier2-secret-0123456789"}


def api_token(name: str, role: str, *customers: str) -> ApiToken:
    digest = hashlib.sha256(SECRETS[name].encode()).hexdigest()
    return ApiToken(name=name, role=role, customers=frozenset(customers), token_sha256=digest)


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[name]}"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sa.Engine]:
    """A migrated store: acme 1 open, 2 acknowledged, 3 resolved; globex (tier2_only) 4 open."""
    engine = open_store(f"sqlite:///{tmp_path / 'daybreak.db'}")
    with engine.begin() as conn:
        conn.execute(incidents.insert(), [
            incident_row(1, "acme"), incident_row(2, "acme", "acknowledged"),
            incident_row(3, "acme", "resolved"),
            incident_row(4, "globex", assignment_group="tier2"),
        ])
    yield engine
    engine.dispose()


@pytest.fixture
def api(store: sa.Engine) -> Iterator[httpx.Client]:
    customers = CustomerSet({
        "acme": load_customer_text("customer: acme\nname: ACME\n", Path("acme.yaml")),
        "globex": load_customer_text("customer: globex\nname: Globex\naccess: tier2_only\n",
                                     Path("globex.yaml")),
    })
    tokens: list[ApiToken] = [
        api_token("admin", "admin", "*"),
        api_token("acme-desk", "service_desk", "acme"),
        api_token("globex-desk", "service_desk", "globex"),
        api_token("globex-tier2", "tier2", "globex"),
    ]
    app = create_app(store, tokens, ManualClock(NOW), customers=lambda: customers)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def events(store: sa.Engine, incident_id: int) -> list[tuple[str, str, str]]:
    with store.connect() as conn:
        rows = conn.execute(sa.select(incident_events.c.kind, incident_events.c.actor,
                                      incident_events.c.note)
                            .where(incident_events.c.incident_id == incident_id)
                            .order_by(incident_events.c.id)).all()
    return [tuple(row) for row in rows]


def audit_rows(store: sa.Engine) -> list[tuple[str, str, str, str]]:
    with store.connect() as conn:
        rows = conn.execute(sa.select(audit_log.c.actor, audit_log.c.action, audit_log.c.target,
                                      audit_log.c.detail).order_by(audit_log.c.id)).all()
    return [tuple(row) for row in rows]


def test_acknowledging_an_open_incident_records_who_when_and_why(
    api: httpx.Client, store: sa.Engine,
) -> None:
    response = api.post("/api/v1/incidents/1/ack", json={"note": "looking at the disk"},
                        headers=auth("acme-desk"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "acknowledged"
    assert body["events"][-1] == {"at": "2025-03-04T07:15:00Z", "kind": "acknowledged",
                                  "actor": "acme-desk", "note": "looking at the disk"}
    assert events(store, 1) == [("acknowledged", "acme-desk", "looking at the disk")]
    assert audit_rows(store) == [("acme-desk", "incident.acknowledged", "incident:1",
                                  "looking at the disk")]
    with store.connect() as conn:
        row = conn.execute(sa.select(incidents).where(incidents.c.id == 1)).one()
    assert row.state == "acknowledged"
    assert row.acknowledged_by == "acme-desk"  # migration 0003_sla's columns
    assert row.acknowledged_at.replace(tzinfo=UTC) == NOW


def test_resolving_by_hand_closes_it_with_the_note_as_resolution(
    api: httpx.Client, store: sa.Engine,
) -> None:
    response = api.post("/api/v1/incidents/2/resolve", json={"note": "freed 20 GB"},
                        headers=auth("acme-desk"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "resolved"
    assert body["resolved_at"] == "2025-03-04T07:15:00Z"
    assert body["resolution"] == "resolved by acme-desk: freed 20 GB"
    assert audit_rows(store) == [("acme-desk", "incident.resolved", "incident:2", "freed 20 GB")]


def test_the_note_is_optional(api: httpx.Client, store: sa.Engine) -> None:
    assert api.post("/api/v1/incidents/1/ack", headers=auth("admin")).status_code == 200
    assert events(store, 1) == [("acknowledged", "admin", "")]
    response = api.post("/api/v1/incidents/1/resolve", json={}, headers=auth("admin"))
    assert response.json()["resolution"] == "resolved by admin"


def test_acknowledging_twice_or_a_resolved_incident_is_a_conflict_naming_the_state(
    api: httpx.Client, store: sa.Engine,
) -> None:
    again = api.post("/api/v1/incidents/2/ack", headers=auth("acme-desk"))
    assert again.status_code == 409
    assert again.json() == {"detail": "cannot acknowledge incident 2: it is acknowledged"}
    resolved = api.post("/api/v1/incidents/3/resolve", headers=auth("admin"))
    assert resolved.status_code == 409
    assert resolved.json() == {"detail": "cannot resolve incident 3: it is resolved"}
    assert api.post("/api/v1/incidents/3/ack", headers=auth("admin")).status_code == 409
    assert audit_rows(store) == []
    assert events(store, 2) == []


def test_another_customers_incident_is_not_found_and_untouched(
    api: httpx.Client, store: sa.Engine,
) -> None:
    for action in ("ack", "resolve"):
        response = api.post(f"/api/v1/incidents/4/{action}", headers=auth("acme-desk"))
        assert response.status_code == 404
        assert response.json() == {"detail": "incident 4 not found"}
        missing = api.post(f"/api/v1/incidents/99/{action}", headers=auth("admin"))
        assert missing.json() == {"detail": "incident 99 not found"}
    assert audit_rows(store) == []


def test_service_desk_may_not_touch_a_tier2_only_customers_incident(
    api: httpx.Client, store: sa.Engine,
) -> None:
    response = api.post("/api/v1/incidents/4/ack", headers=auth("globex-desk"))
    assert response.status_code == 403
    assert response.json() == {"detail": "incident 4 is assigned to tier2: only tier2 or admin "
                                         "tokens may act on it ('globex-desk' is service_desk)"}
    assert audit_rows(store) == []
    assert api.post("/api/v1/incidents/4/ack", headers=auth("globex-tier2")).status_code == 200
    assert api.post("/api/v1/incidents/4/resolve", headers=auth("admin")).status_code == 200
    assert [row[:3] for row in audit_rows(store)] == [
        ("globex-tier2", "incident.acknowledged", "incident:4"),
        ("admin", "incident.resolved", "incident:4")]


def test_no_token_or_a_bad_body_is_refused(api: httpx.Client) -> None:
    assert api.post("/api/v1/incidents/1/ack").status_code == 401
    extra = api.post("/api/v1/incidents/1/ack", json={"note": "x", "state": "resolved"},
                     headers=auth("admin"))
    assert extra.status_code == 422
    long_note = api.post("/api/v1/incidents/1/ack", json={"note": "x" * 2001},
                         headers=auth("admin"))
    assert long_note.status_code == 422


def test_acting_while_ingest_writes_never_hits_a_locked_database(
    api: httpx.Client, store: sa.Engine,
) -> None:
    """A writer commits batches in a loop (as the StoreWriter does under load) while incidents
    are acknowledged and resolved: every action succeeds, each written once."""
    with store.begin() as conn:
        conn.execute(incidents.insert(), [
            incident_row(n, "acme", id=n, dedup_key=f"acme/h/{n}") for n in range(10, 30)])
    stop = threading.Event()

    def ingest() -> None:
        seq = 0
        while not stop.is_set():
            with store.connect().execution_options(**WRITER) as conn, conn.begin():
                for _ in range(50):
                    seq += 1
                    conn.execute(results.insert().values(
                        agent_id="a", seq=seq, customer="acme", host="h", probe="disk",
                        check_key="disk:/", status="OK", observed_at=NOW, received_at=NOW))
            # The StoreWriter's batches come a few milliseconds apart; a loop that retook the
            # lock at once would starve every other writer, which is not what ingest does.
            stop.wait(0.005)

    writer = threading.Thread(target=ingest)
    writer.start()
    try:
        def work(incident_id: int) -> tuple[int, int]:
            ack = api.post(f"/api/v1/incidents/{incident_id}/ack", headers=auth("admin"))
            done = api.post(f"/api/v1/incidents/{incident_id}/resolve", headers=auth("admin"))
            return ack.status_code, done.status_code

        with ThreadPoolExecutor(max_workers=6) as pool:
            outcomes = list(pool.map(work, range(10, 30)))
    finally:
        stop.set()
        writer.join(30)
    assert outcomes == [(200, 200)] * 20
    assert len(audit_rows(store)) == 40
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(results)).scalar_one() > 0


def test_the_audit_time_is_the_injected_clocks(api: httpx.Client, store: sa.Engine) -> None:
    api.post("/api/v1/incidents/1/ack", headers=auth("admin"))
    with store.connect() as conn:
        at = conn.execute(sa.select(audit_log.c.at)).scalar_one()
    assert at.replace(tzinfo=UTC) == NOW
    assert NOW - timedelta(seconds=1) < at.replace(tzinfo=UTC) <= NOW


def test_an_acknowledgement_and_a_resolution_are_queued_for_the_customers_sinks(
    store: sa.Engine, tmp_path: Path
) -> None:
    from collector.store.schema import outbox

    acme = load_customer_text(
        "customer: acme\nname: ACME\nsinks:\n  - type: webhook\n    name: desk\n"
        "    url: http://127.0.0.1:9/hook\n    secret_file: hook.key\n",
        tmp_path / "acme.yaml")
    customers = CustomerSet({"acme": acme})
    app = create_app(store, [api_token("admin", "admin", "*")], ManualClock(NOW),
                     customers=lambda: customers)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.post("/api/v1/incidents/1/ack", json={"note": "on it"},
                           headers=auth("admin")).status_code == 200
        assert client.post("/api/v1/incidents/1/resolve", json={"note": "restarted"},
                           headers=auth("admin")).status_code == 200
    with store.connect() as conn:
        queued = conn.execute(sa.select(outbox.c.sink, outbox.c.event, outbox.c.payload)
                              .where(outbox.c.incident_id == 1)
                              .order_by(outbox.c.sequence)).all()
    assert [(row.sink, row.event) for row in queued] == [("desk", "updated"),
                                                          ("desk", "resolved")]
    assert '"change": "acknowledged"' in queued[0].payload
