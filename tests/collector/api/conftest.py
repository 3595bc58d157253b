from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from collector.api.app import create_app
from collector.api.deps import ApiToken
from collector.customers import CustomerSet, load_customer_text
from collector.store.schema import agents, incident_events, incidents, metadata
from probes.clock import ManualClock
from tests.collector.live_server import live_server

T0 = datetime(2025, 3, 4, 1, 0, tzinfo=UTC)
TOKENS = {
    "admin": "admin-secret-0123456789",
    "acme-desk": "acme-desk-secret-0123456789",
    "globex-tier2": "globex-tier2-secret-0123456789",
}


def api_token(name: str, role: str, *customers: str) -> ApiToken:
    digest = hashlib.sha256(TOKENS[name].encode()).hexdigest()
    return ApiToken(name=name, role=role, customers=frozenset(customers), token_sha256=digest)


def incident_row(number: int, customer: str, state: str = "open", **extra: Any) -> dict[str, Any]:
    opened = T0 + timedelta(minutes=number)
    return {
        "dedup_key": f"{customer}/host-{number}/disk-space/disk:/data",
        "customer": customer, "host": f"host-{number}", "expectation": "disk-space",
        "subject": "disk:/data", "state": state, "severity": "warning",
        "title": f"disk:/data on host-{number}: used_percent 85 is above 80",
        "summary": "/data 85% used", "expected": "used_percent not above 80 (warning)",
        "observed": "used_percent = 85", "evidence": "df output", "evidence_source": "probe disk",
        "assignment_group": "service_desk", "runbook": "", "occurrences": number,
        "opened_at": opened, "last_seen_at": opened + timedelta(minutes=5),
        "resolved_at": opened + timedelta(hours=1) if state == "resolved" else None,
        "resolution": "",
        **extra,
    }


# The routes only read, so one store and one server serve a whole test module.
@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """A real SQLite file: acme has incidents 1-3 (open, acknowledged, resolved), globex 4."""
    path = tmp_path_factory.mktemp("store") / "daybreak.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(incidents.insert(), [
            incident_row(1, "acme"),
            incident_row(2, "acme", "acknowledged"),
            incident_row(3, "acme", "resolved", resolution="recovered: used_percent = 40"),
            incident_row(4, "globex", assignment_group="tier2"),
        ])
        conn.execute(incident_events.insert(), [
            {"incident_id": 1, "at": T0 + timedelta(minutes=1), "kind": "opened",
             "note": "opened"},
            {"incident_id": 3, "at": T0 + timedelta(minutes=3), "kind": "opened", "note": ""},
            {"incident_id": 3, "at": T0 + timedelta(hours=1), "kind": "resolved",
             "note": "recovered: used_percent = 40"},
        ])
        conn.execute(agents.insert(), [
            {"agent_id": "acme-web-01", "customer": "acme", "token_sha256": "x" * 64,
             "host": "web-01", "version": "0.1.0", "connected": True, "last_seen_at": T0,
             "spool_depth": 3, "results_dropped": 0},
            {"agent_id": "globex-db-01", "customer": "globex", "token_sha256": "y" * 64,
             "host": "db-01", "version": "0.1.0", "connected": False, "last_seen_at": None,
             "spool_depth": 0, "results_dropped": 12},
        ])
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def customers() -> CustomerSet:
    acme = load_customer_text("customer: acme\nname: ACME\ntimezone: Europe/Berlin\n",
                              Path("acme.yaml"))
    return CustomerSet({"acme": acme})


Serve = Callable[[FastAPI], str]


@pytest.fixture(scope="module")
def serve() -> Iterator[Serve]:
    """Start apps on real servers for the test; all are stopped when it ends."""
    with ExitStack() as stack:
        yield lambda app: stack.enter_context(live_server(app))


@pytest.fixture(scope="module")
def tokens() -> list[ApiToken]:
    return [api_token("admin", "admin", "*"),
            api_token("acme-desk", "service_desk", "acme"),
            api_token("globex-tier2", "tier2", "globex")]


@pytest.fixture(scope="module")
def client(db: sa.Engine, customers: CustomerSet, tokens: list[ApiToken],
           serve: Serve) -> Iterator[httpx.Client]:
    app = create_app(db, tokens, ManualClock(T0), lambda: "reloaded 2 customers",
                     customers=lambda: customers)
    with httpx.Client(base_url=serve(app), timeout=5) as http:
        yield http


Auth = Callable[[str], dict[str, str]]


@pytest.fixture(scope="module")
def auth() -> Auth:
    return lambda name: {"Authorization": f"Bearer {TOKENS[name]}"}
