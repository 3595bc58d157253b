"""One night in a real SQLite store, for the morning report's tests (and the CLI's).

The report runs at 06:00 UTC on Tuesday 2025-03-04: 07:00 in Berlin (acme), 01:00 in New York
(globex). With --since 18:00, acme's window starts Monday 18:00 CET (17:00 UTC) and globex's
Monday 18:00 EST (23:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from collector.customers import CustomerSet, load_customer_text
from collector.incidents.engine import IncidentEngine
from collector.store.schema import agent_dropped, agents, check_state, job_runs, metadata
from probes.clock import ManualClock
from probes.result import JobOutcome, JobRun, Result, Status

MORNING = datetime(2025, 3, 4, 6, 0, tzinfo=UTC)
ACME_WINDOW_START = datetime(2025, 3, 3, 17, 0, tzinfo=UTC)
GLOBEX_WINDOW_START = datetime(2025, 3, 3, 23, 0, tzinfo=UTC)

ACME_YAML = """\
customer: acme
name: ACME Logistics
timezone: Europe/Berlin
access: service_desk
expectations:
  - kind: job_must_not_fail
    name: nightly-export-fails
    job: nightly-export
    severity: critical
  - kind: job_schedule
    name: archive-on-time
    job: archive
    schedule: "0 2 * * *"
    start_by: 15m
    complete_by: "06:30"
"""
GLOBEX_YAML = """\
customer: globex
name: Globex Corporation
timezone: America/New_York
access: tier2_only
expectations:
  - kind: threshold
    name: disk-status
    check: "disk:*"
"""


def create_tables(engine: sa.Engine, *, with_slots: bool = False) -> None:
    """The store's tables; the schedule engine's `job_slots` only when asked for, so a test
    sees the report both before and after migration 0004_schedules."""
    metadata.create_all(engine, tables=[t for t in metadata.sorted_tables
                                        if t.name != "job_slots"])
    if with_slots:
        slots = metadata.tables.get("job_slots")
        if slots is None:  # before the schedule engine's schema: its columns, as it writes them
            slots = sa.Table(
                "job_slots", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                *(sa.Column(name, sa.String(255), nullable=False)
                  for name in ("customer", "host", "expectation", "state", "run_id")),
                *(sa.Column(name, sa.DateTime(timezone=True))
                  for name in ("slot_at", "due_start_at", "due_complete_at", "started_at")))
        slots.create(engine)


def night_customers() -> CustomerSet:
    return CustomerSet({
        "acme": load_customer_text(ACME_YAML, Path("acme.yaml")),
        "globex": load_customer_text(GLOBEX_YAML, Path("globex.yaml")),
    })


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


def job_run(customer: str, host: str, job: str, run_id: str, outcome: str,
            started: datetime | None, finished: datetime | None = None,
            **extra: Any) -> dict[str, Any]:
    duration = (finished - started).total_seconds() if started and finished else None
    return {"customer": customer, "host": host, "job": job, "run_id": run_id,
            "probe": extra.pop("probe", "night-jobs"), "agent_id": f"{customer}-{host}",
            "outcome": outcome, "started_at": started, "finished_at": finished,
            "exit_code": extra.pop("exit_code", None), "duration_s": duration,
            "excerpt": extra.pop("excerpt", ""), "source": "",
            "observed_at": finished or started or MORNING, **extra}


EXPORT_EXCERPT = ("02:29:58 exporting orders\n"
                  "02:30:01 ERROR: warehouse refused the connection\n")


def fill_night(engine: sa.Engine, customers: CustomerSet) -> None:
    """acme: a failed export (and its incident), a backup that went well, a reindex still
    running, a load that completed, runs outside the window, a silent agent that dropped
    results. globex: a billing run in its window, one before it, a disk incident."""
    clock = ManualClock(at(4, 1, 30))
    incident_engine = IncidentEngine(customers, clock)
    with engine.begin() as conn:
        conn.execute(job_runs.insert(), [
            job_run("acme", "db-01", "nightly-export", "20250304-0200", "failed",
                    at(4, 1, 0), at(4, 1, 30), exit_code=3, excerpt=EXPORT_EXCERPT),
            job_run("acme", "db-01", "backup", "20250304-0100", "succeeded",
                    at(4, 0, 0), at(4, 0, 42)),
            job_run("acme", "db-01", "reindex", "20250304-0530", "running", at(4, 4, 30)),
            # The night before: outside the window.
            job_run("acme", "db-01", "backup", "20250303-0100", "succeeded",
                    at(3, 0, 0), at(3, 0, 40)),
            # Never reported its end, three days ago: not "still running" any more.
            job_run("acme", "db-01", "reindex", "20250301-0530", "running", at(1, 4, 30)),
            job_run("acme", "etl-01", "sales-load", "2025-03-04", "succeeded",
                    at(4, 0, 0), at(4, 2, 10), probe="sales"),
            job_run("globex", "app-01", "billing-run", "20250304-0000", "succeeded",
                    at(4, 0, 0), at(4, 0, 5)),
            # 17:00 in New York: before globex's window of 18:00.
            job_run("globex", "app-01", "billing-close", "20250303-1700", "succeeded",
                    at(3, 22, 0), at(3, 22, 30)),
        ])
        conn.execute(check_state.insert(), [{
            "customer": "acme", "host": "etl-01", "check_key": "load:sales-load",
            "probe": "sales", "status": "OK", "summary": "sales-load complete",
            "observed_at": at(4, 2, 10), "status_since": at(4, 2, 10), "agent_id": "acme-etl-01",
        }])
        conn.execute(agents.insert(), [
            {"agent_id": "acme-db-01", "customer": "acme", "token_sha256": "a" * 64,
             "host": "db-01", "connected": True, "last_seen_at": MORNING, "results_dropped": 0},
            {"agent_id": "acme-etl-01", "customer": "acme", "token_sha256": "b" * 64,
             "host": "etl-01", "connected": False, "last_seen_at": at(4, 3, 0),
             "results_dropped": 40},
            {"agent_id": "globex-app-01", "customer": "globex", "token_sha256": "c" * 64,
             "host": "app-01", "connected": True, "last_seen_at": MORNING,
             "results_dropped": 0},
        ])
        # etl-01's spool had dropped 25 before the evening and 15 more during the night.
        conn.execute(agent_dropped.insert(), [
            {"agent_id": "acme-etl-01", "at": at(3, 9, 0), "results_dropped": 25},
            {"agent_id": "acme-etl-01", "at": at(4, 2, 55), "results_dropped": 40},
        ])
        failed_export = JobRun(probe="night-jobs", job="nightly-export", run_id="20250304-0200",
                               outcome=JobOutcome.FAILED, observed_at=at(4, 1, 30), exit_code=3,
                               excerpt=EXPORT_EXCERPT)
        incident_engine.on_items(conn, "acme-db-01", "acme", "db-01", [failed_export])
        clock.advance(60)
        full_disk = Result(probe="disk", check="disk:/srv", status=Status.CRIT,
                           summary="/srv 97% used", observed_at=clock.now())
        incident_engine.on_items(conn, "globex-app-01", "globex", "app-01", [full_disk])
