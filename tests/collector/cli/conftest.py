from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector.api.app import create_app
from collector.api.deps import ApiToken
from collector.customers import CustomerSet, load_customers
from collector.incidents.engine import IncidentEngine
from collector.store.schema import agents, metadata
from probes.clock import ManualClock
from probes.result import JobOutcome, JobRun, Result, Status
from tests.collector.live_server import live_server

REPO = Path(__file__).resolve().parents[3]
# 01:30 UTC is 02:30 in Berlin (acme) and 20:30 the evening before in New York (globex).
NIGHT = datetime(2025, 3, 4, 1, 30, tzinfo=UTC)


def _token(name: str, role: str, secret: str, *customers: str) -> ApiToken:
    return ApiToken(name, role, frozenset(customers), hashlib.sha256(secret.encode()).hexdigest())


def _fill_store(engine: sa.Engine, customers: CustomerSet) -> None:
    """Incidents opened the way the collector opens them: items through the IncidentEngine."""
    clock = ManualClock(NIGHT)
    incident_engine = IncidentEngine(customers, clock)
    failed_export = JobRun(
        probe="joblog", job="nightly-export", run_id="20250304-0200",
        outcome=JobOutcome.FAILED, observed_at=NIGHT, exit_code=3,
        excerpt="02:29:58 exporting orders\n02:30:01 ERROR: warehouse refused the connection\n",
        source="/var/log/nightly-export.log:18211",
    )
    full_disk = Result(probe="disk", check="disk:/data", status=Status.WARN,
                       summary="/data 85.0% used", observed_at=NIGHT,
                       metrics={"used_percent": 85.0})
    globex_disk = Result(probe="disk", check="disk:/srv", status=Status.CRIT,
                         summary="/srv 97% used", observed_at=NIGHT)
    with engine.begin() as conn:
        incident_engine.on_items(conn, "acme-db-01", "acme", "db-01", [failed_export])
        clock.advance(60)
        incident_engine.on_items(conn, "acme-web-01", "acme", "web-01", [full_disk])
        clock.advance(60)
        incident_engine.on_items(conn, "globex-db-01", "globex", "db-07", [globex_disk])
        conn.execute(agents.insert(), [
            {"agent_id": "acme-db-01", "customer": "acme", "token_sha256": "a" * 64,
             "host": "db-01", "version": "0.1.0", "connected": True, "last_seen_at": NIGHT,
             "spool_depth": 0, "results_dropped": 0},
            {"agent_id": "globex-db-01", "customer": "globex", "token_sha256": "b" * 64,
             "host": "db-07", "version": "0.1.0", "connected": False, "last_seen_at": NIGHT,
             "spool_depth": 250, "results_dropped": 4},
        ])


@dataclass(frozen=True)
class Collector:
    url: str
    home: Path
    admin_token: str  # sees every customer
    acme_token: str  # a service-desk token scoped to acme

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment: no token or URL leaks in from the person running the tests."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("DAYBREAK_") and k != "XDG_CONFIG_HOME"}
        return {**env, "HOME": str(self.home), "DAYBREAK_URL": self.url,
                "DAYBREAK_TOKEN": self.admin_token, **extra}


Daybreak = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    """The example customers, a store with three incidents and two agents, a real API server."""
    root = tmp_path_factory.mktemp("collector")
    engine = sa.create_engine(f"sqlite:///{root / 'daybreak.db'}")
    metadata.create_all(engine)
    customers = load_customers(REPO / "config" / "customers")
    _fill_store(engine, customers)
    admin_token, acme_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    tokens = [_token("admin", "admin", admin_token, "*"),
              _token("acme-desk", "service_desk", acme_token, "acme")]
    app = create_app(engine, tokens, ManualClock(NIGHT), customers=lambda: customers)
    home = root / "home"
    home.mkdir()
    with live_server(app) as url:
        yield Collector(url, home, admin_token, acme_token)
    engine.dispose()


def run_daybreak(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real command, as a person runs it."""
    return subprocess.run([sys.executable, "-m", "collector.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=60, cwd=REPO, check=False)


@pytest.fixture
def daybreak(collector: Collector) -> Daybreak:
    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_daybreak(*args, env=collector.env(**env))

    return run


@pytest.fixture
def daybreak_offline() -> Daybreak:
    """The real command with no collector and no DAYBREAK_* settings."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAYBREAK_")}
        return run_daybreak(*args, env=env)

    return run


@pytest.fixture
def repo() -> Path:
    return REPO
