"""`daybreak report morning`, run as a real process against a real API server and store."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from collector.api.app import create_app
from collector.api.deps import ApiToken
from probes.clock import ManualClock
from tests.collector.cli.conftest import live_server, run_daybreak
from tests.collector.report.night import MORNING, create_tables, fill_night, night_customers


class Server:
    def __init__(self, url: str, admin: str, acme: str) -> None:
        self.url, self.admin, self.acme = url, admin, acme

    def run(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAYBREAK_")}
        env.update(DAYBREAK_URL=self.url, DAYBREAK_TOKEN=token or self.admin)
        return run_daybreak(*args, env=env)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('night') / 'd.db'}")
    create_tables(engine)
    customers = night_customers()
    fill_night(engine, customers)
    admin, acme = secrets.token_urlsafe(24), secrets.token_urlsafe(24)

    def token(name: str, role: str, secret: str, *scope: str) -> ApiToken:
        return ApiToken(name, role, frozenset(scope), hashlib.sha256(secret.encode()).hexdigest())

    app = create_app(engine, [token("admin", "admin", admin, "*"),
                              token("acme-desk", "service_desk", acme, "acme")],
                     ManualClock(MORNING), customers=lambda: customers)
    with live_server(app) as url:
        yield Server(url, admin, acme)
    engine.dispose()


def test_the_text_report_has_every_customer_problems_first(server: Server) -> None:
    done = server.run("report", "morning")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("Morning report, 2025-03-04 06:00 UTC (since 18:00 in each "
                           "customer's zone)\n")
    assert text.index("== ACME Logistics (acme) ==") < text.index("== Globex Corporation")
    assert "  failed     nightly-export  db-01  20250304-0200  02:00    02:30" in text


def test_customer_and_since_narrow_the_report(server: Server) -> None:
    done = server.run("report", "morning", "--customer", "globex", "--since", "22:00")
    assert done.returncode == 0, done.stderr
    assert "ACME" not in done.stdout
    # 22:00 in New York on Monday is 03:00 UTC Tuesday: the 19:00 billing run is before it.
    assert "Mon 2025-03-03 22:00 to Tue 2025-03-04 01:00 America/New_York" in done.stdout
    assert "billing-run" not in done.stdout


def test_json_is_exactly_the_apis(server: Server) -> None:
    done = server.run("report", "morning", "--json")
    assert done.returncode == 0, done.stderr
    api = httpx.get(f"{server.url}/api/v1/reports/morning", timeout=10,
                    headers={"Authorization": f"Bearer {server.admin}"}).json()
    assert json.loads(done.stdout) == api
    assert [c["customer"] for c in api["customers"]] == ["acme", "globex"]


def test_a_scoped_token_gets_only_its_customer(server: Server) -> None:
    done = server.run("report", "morning", "--json", token=server.acme)
    assert [c["customer"] for c in json.loads(done.stdout)["customers"]] == ["acme"]
    other = server.run("report", "morning", "--customer", "globex", token=server.acme)
    assert other.returncode == 0
    assert other.stdout.endswith("no customers in your scope\n")


def test_html_is_written_to_the_file_and_the_text_still_printed(
    server: Server, tmp_path: Path,
) -> None:
    page = tmp_path / "morning.html"
    done = server.run("report", "morning", "--html", str(page))
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"daybreak: wrote {page}\n"
    assert "== ACME Logistics (acme) ==" in done.stdout
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "nightly-export" in html


def test_a_bad_since_is_a_usage_error(server: Server) -> None:
    done = server.run("report", "morning", "--since", "6pm")
    assert done.returncode == 2
    assert "since must be a time of day like 18:00" in done.stderr


def test_the_api_refuses_a_bad_since_with_422(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/v1/reports/morning", params={"since": "6pm"},
                         headers={"Authorization": f"Bearer {server.admin}"}, timeout=10)
    assert response.status_code == 422
    assert "since must be a time of day" in response.json()["detail"]


def test_an_unwritable_html_file_is_one_line(server: Server, tmp_path: Path) -> None:
    done = server.run("report", "morning", "--html", str(tmp_path / "no" / "such" / "r.html"))
    assert done.returncode == 1
    assert done.stderr.startswith("daybreak: cannot write ")
    assert len(done.stderr.splitlines()) == 1
