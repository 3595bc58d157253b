"""The morning report's data, built from a real SQLite store holding one night."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector.customers import CustomerSet
from collector.report.morning import build_morning_report, failure_reason, slot_status
from collector.report.shapes import CustomerReport, MorningReport
from collector.report.window import parse_since
from collector.store.schema import job_runs
from probes.clock import ManualClock
from tests.collector.report.night import (
    ACME_WINDOW_START,
    GLOBEX_WINDOW_START,
    MORNING,
    at,
    create_tables,
    fill_night,
    job_run,
    night_customers,
)


@pytest.fixture
def customers() -> CustomerSet:
    return night_customers()


@pytest.fixture
def store(tmp_path: Path, customers: CustomerSet) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'daybreak.db'}")
    create_tables(engine)
    fill_night(engine, customers)
    yield engine
    engine.dispose()


def build(store: sa.Engine, customers: CustomerSet | None, *, clock: ManualClock | None = None,
          since: str = "18:00", visible: frozenset[str] = frozenset({"acme", "globex"}),
          only: str | None = None) -> MorningReport:
    now = (clock or ManualClock(MORNING)).now()
    with store.connect() as conn:
        return build_morning_report(conn, customers=customers, visible=visible.__contains__,
                                    since=parse_since(since), now=now, only_customer=only)


def customer(report: MorningReport, name: str) -> CustomerReport:
    [found] = [c for c in report.customers if c.customer == name]
    return found


def test_each_customer_gets_its_own_window_on_its_own_clock(
    store: sa.Engine, customers: CustomerSet,
) -> None:
    report = build(store, customers)
    assert report.generated_at == MORNING
    assert report.since == "18:00"
    acme, globex = report.customers
    assert (acme.customer, acme.timezone, acme.name) == ("acme", "Europe/Berlin",
                                                         "ACME Logistics")
    assert (acme.window.start, acme.window.end) == (ACME_WINDOW_START, MORNING)
    assert (globex.window.start, globex.window.end) == (GLOBEX_WINDOW_START, MORNING)


def test_every_job_of_the_night_with_its_runs_problems_first(
    store: sa.Engine, customers: CustomerSet,
) -> None:
    acme = customer(build(store, customers), "acme")
    assert [(j.job, j.status) for j in acme.jobs] == [
        ("nightly-export", "failed"), ("reindex", "running"), ("backup", "succeeded")]
    export, reindex, backup = acme.jobs
    [failed] = export.runs
    assert failed.reason == "02:30:01 ERROR: warehouse refused the connection"
    assert failed.exit_code == 3
    assert failed.duration_s == 1800
    # Only tonight's backup, not last night's; only tonight's reindex, not the stale one.
    assert [r.run_id for r in backup.runs] == ["20250304-0100"]
    assert backup.runs[0].duration_s == 42 * 60
    assert [r.run_id for r in reindex.runs] == ["20250304-0530"]
    assert reindex.runs[0].duration_s == 90 * 60  # running for so long, at 06:00


def test_a_run_before_the_customers_window_is_left_out(
    store: sa.Engine, customers: CustomerSet,
) -> None:
    globex = customer(build(store, customers), "globex")
    assert [j.job for j in globex.jobs] == ["billing-run"]


def test_a_job_run_is_a_load_when_its_host_reports_the_load_check(
    store: sa.Engine, customers: CustomerSet,
) -> None:
    acme = customer(build(store, customers), "acme")
    assert [(j.job, j.host, j.kind, j.status) for j in acme.loads] == [
        ("sales-load", "etl-01", "load", "succeeded")]
    assert "sales-load" not in [j.job for j in acme.jobs]


def test_open_incidents_silent_agents_and_dropped_results(
    store: sa.Engine, customers: CustomerSet,
) -> None:
    report = build(store, customers)
    acme, globex = customer(report, "acme"), customer(report, "globex")
    [export] = acme.open_incidents
    assert (export.severity, export.state, export.host) == ("critical", "open", "db-01")
    assert export.title == "job nightly-export failed on db-01 (exit code 3)"
    assert export.since == at(4, 1, 30)
    assert [(a.agent_id, a.last_seen_at) for a in acme.silent_agents] == [
        ("acme-etl-01", at(4, 3, 0))]
    assert [(d.agent_id, d.results_dropped, d.dropped_in_window) for d in acme.dropped] == [
        ("acme-etl-01", 40, 15)]
    assert [i.title for i in globex.open_incidents] == ["disk:/srv is CRIT on app-01"]
    assert globex.silent_agents == []
    assert globex.dropped == []


def test_the_counts_add_up_the_problems(store: sa.Engine, customers: CustomerSet) -> None:
    counts = customer(build(store, customers), "acme").counts
    # failed export + silent agent + agent that dropped results
    assert counts.problems == 3
    assert (counts.failed, counts.running, counts.succeeded) == (1, 1, 2)
    assert (counts.open_incidents, counts.silent_agents) == (1, 1)


def test_without_schedule_slots_the_report_says_so(
    store: sa.Engine, customers: CustomerSet,
) -> None:
    for report in build(store, customers).customers:
        assert report.schedules_known is False
        assert all(job.slots == [] for job in report.jobs)


def slot(host: str, expectation: str, slot_at: datetime, state: str, run_id: str = "",
         started_at: datetime | None = None) -> dict[str, object]:
    return {"customer": "acme", "host": host, "expectation": expectation, "slot_at": slot_at,
            "due_start_at": slot_at + timedelta(minutes=15),
            "due_complete_at": slot_at + timedelta(hours=4), "state": state, "run_id": run_id,
            "started_at": started_at}


def test_schedule_slots_add_late_did_not_start_and_still_to_come(
    tmp_path: Path, customers: CustomerSet,
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'slots.db'}")
    create_tables(engine, with_slots=True)
    fill_night(engine, customers)
    slots = sa.Table("job_slots", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        # The engine made slots when it first heard of each host; this night sets them by hand.
        conn.execute(slots.delete())
        conn.execute(slots.insert(), [
            # The engine marked it missed before any run: did not start.
            slot("db-01", "archive-on-time", at(4, 1, 0), "missed"),
            # Still waiting, its start-by passed at 03:15 and the loop has not looked yet.
            slot("db-02", "archive-on-time", at(4, 3, 0), "waiting"),
            # The backup's slot, filled late by tonight's run (a expectation the file lacks).
            slot("db-01", "backup-on-time", at(3, 23, 0), "late", "20250304-0100", at(4, 0, 0)),
            # Not yet due at 06:00.
            slot("db-01", "archive-on-time", at(4, 5, 50), "waiting"),
        ])
    acme = customer(build(engine, customers, visible=frozenset({"acme"})), "acme")
    assert acme.schedules_known is True
    assert [(j.job, j.host, j.status) for j in acme.jobs] == [
        ("nightly-export", "db-01", "failed"), ("archive", "db-01", "did_not_start"),
        ("archive", "db-02", "did_not_start"), ("backup", "db-01", "late"),
        ("reindex", "db-01", "running")]
    archive = acme.jobs[1]
    assert archive.runs == []
    assert [(s.scheduled_for, s.state) for s in archive.slots] == [
        (at(4, 1, 0), "did_not_start"), (at(4, 5, 50), "scheduled")]
    backup = acme.jobs[3]
    assert [(s.state, s.run_id) for s in backup.slots] == [("late", "20250304-0100")]
    assert acme.counts.problems == 6
    engine.dispose()


def test_slot_states_read_at_the_reports_time() -> None:
    due_start, due_complete = at(4, 2, 15), at(4, 6, 30)
    assert slot_status("waiting", False, due_start, due_complete, at(4, 2, 0)) == "scheduled"
    assert slot_status("waiting", False, due_start, due_complete, at(4, 2, 15)) == "did_not_start"
    assert slot_status("started", True, due_start, due_complete, at(4, 6, 0)) == "running"
    assert slot_status("started", True, due_start, due_complete, at(4, 6, 30)) == "late"
    assert slot_status("missed", True, due_start, due_complete, at(4, 7, 0)) == "late"
    assert slot_status("missed", False, due_start, due_complete, at(4, 7, 0)) == "did_not_start"
    for state in ("succeeded", "failed", "late"):
        assert slot_status(state, True, due_start, due_complete, at(4, 7, 0)) == state


def test_a_tokens_scope_and_the_customer_filter_limit_the_customers(
    store: sa.Engine, customers: CustomerSet,
) -> None:
    assert [c.customer for c in build(store, customers,
                                      visible=frozenset({"acme"})).customers] == ["acme"]
    assert [c.customer for c in build(store, customers, only="globex").customers] == ["globex"]
    assert build(store, customers, visible=frozenset({"acme"}), only="globex").customers == []


def test_a_customer_without_a_file_is_reported_in_utc(store: sa.Engine) -> None:
    report = build(store, None)
    assert [(c.customer, c.name, c.timezone) for c in report.customers] == [
        ("acme", "acme", "UTC"), ("globex", "globex", "UTC")]
    assert report.customers[0].window.start == datetime(2025, 3, 3, 18, 0, tzinfo=UTC)


def test_the_window_follows_the_clock_into_the_next_evening(
    store: sa.Engine, customers: CustomerSet,
) -> None:
    clock = ManualClock(MORNING)
    clock.advance(14 * 3600)  # 21:00 in Berlin: tonight's 18:00 has passed
    acme = customer(build(store, customers, clock=clock), "acme")
    assert acme.window.start == datetime(2025, 3, 4, 17, 0, tzinfo=UTC)
    assert [j.job for j in acme.jobs] == ["reindex"]  # still running, so still shown


def test_a_window_across_the_spring_change_keeps_the_runs_of_the_short_night(
    tmp_path: Path, customers: CustomerSet,
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'dst.db'}")
    create_tables(engine)
    # Berlin, 2025-03-30: the clock jumps from 02:00 to 03:00. 17:30 UTC is 18:30 CET on
    # Saturday, inside the window; 16:30 UTC (17:30 CET) is before it.
    saturday = datetime(2025, 3, 29, 17, 30, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(job_runs.insert(), [
            job_run("acme", "db-01", "early", "1", "succeeded", saturday,
                    saturday.replace(hour=17, minute=45)),
            job_run("acme", "db-01", "too-early", "1", "succeeded",
                    saturday.replace(hour=16), saturday.replace(hour=16, minute=50)),
        ])
    clock = ManualClock(datetime(2025, 3, 30, 5, 0, tzinfo=UTC))  # 07:00 CEST
    acme = customer(build(engine, customers, clock=clock, visible=frozenset({"acme"})), "acme")
    assert acme.window.start == datetime(2025, 3, 29, 17, 0, tzinfo=UTC)
    assert [j.job for j in acme.jobs] == ["early"]
    engine.dispose()


def test_a_failed_runs_reason_is_one_line() -> None:
    assert failure_reason("a\nERROR: b  c\n\n", 1) == "ERROR: b c"
    assert failure_reason("", 4) == "exit code 4"
    assert failure_reason("", None) == "failed"
    assert len(failure_reason("x" * 500, None)) == 200
