"""The morning report's text, JSON and HTML, from a real store holding one night."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector.report.morning import build_morning_report
from collector.report.render_html import render_html
from collector.report.render_text import render_text
from collector.report.shapes import MorningReport
from collector.report.window import parse_since
from collector.store.schema import job_runs
from tests.collector.report.night import (
    MORNING,
    at,
    create_tables,
    fill_night,
    job_run,
    night_customers,
)

EVIL_JOB = '<script>alert("x")</script>'


@pytest.fixture
def report(tmp_path: Path) -> Iterator[MorningReport]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'daybreak.db'}")
    create_tables(engine)
    customers = night_customers()
    fill_night(engine, customers)
    with engine.begin() as conn:
        conn.execute(job_runs.insert().values(job_run(
            "globex", "app-01", EVIL_JOB, "1", "failed", at(4, 0, 10), at(4, 0, 11),
            excerpt="<b>boom</b> & more")))
    with engine.connect() as conn:
        yield build_morning_report(conn, customers=customers, visible=lambda _: True,
                                   since=parse_since("18:00"), now=MORNING)
    engine.dispose()


def block(text: str, title: str) -> list[str]:
    """The lines of one section of a customer block, up to the next blank line."""
    lines = text.splitlines()
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def test_text_groups_per_customer_with_the_most_problems_first(report: MorningReport) -> None:
    text = render_text(report)
    assert text.startswith("Morning report, 2025-03-04 06:00 UTC (since 18:00 in each "
                           "customer's zone)\n")
    assert text.index("== ACME Logistics (acme) ==") < text.index("== Globex Corporation")
    acme = text.split("== Globex")[0]
    assert "Mon 2025-03-03 18:00 to Tue 2025-03-04 07:00 Europe/Berlin" in acme
    assert ("3 problems: 1 failed, 1 silent agent, 1 agent dropped results; 1 running, "
            "2 succeeded, 1 open incident") in acme


def test_text_lists_jobs_problems_first_in_aligned_columns_on_the_customers_clock(
    report: MorningReport,
) -> None:
    acme = render_text(report).split("== Globex")[0]
    header, *rows = block(acme, "Jobs")
    assert header.split() == ["STATUS", "JOB", "HOST", "RUN", "STARTED", "FINISHED",
                              "DURATION", "DETAIL"]
    assert [row.split()[0] for row in rows] == ["failed", "running", "succeeded"]
    failed, running, succeeded = rows
    assert failed.split()[1:7] == ["nightly-export", "db-01", "20250304-0200", "02:00", "02:30",
                                   "30m"]
    assert failed.endswith("exit 3: 02:30:01 ERROR: warehouse refused the connection")
    assert running.split()[4:6] == ["05:30", "-"]
    assert "1h 30m" in running
    assert succeeded.split()[1:7] == ["backup", "db-01", "20250304-0100", "01:00", "01:42",
                                      "42m"]
    for column in ("JOB", "HOST", "STARTED", "DETAIL"):
        at_column = header.index(column)
        assert all(row[at_column - 2:at_column] == "  " for row in rows), column
    loads = block(acme, "Loads")
    assert loads[1].split()[:3] == ["succeeded", "sales-load", "etl-01"]


def test_text_names_incidents_silent_agents_and_dropped_results(report: MorningReport) -> None:
    acme = render_text(report).split("== Globex")[0]
    assert block(acme, "Open incidents")[1].split()[:5] == ["#1", "critical", "open", "db-01",
                                                            "02:30"]
    assert block(acme, "Silent agents")[1].split() == ["acme-etl-01", "etl-01", "04:00"]
    assert block(acme, "Dropped results")[1].split() == ["acme-etl-01", "etl-01", "40",
                                                         "15"]
    assert "(no schedules known yet: late and missed runs show as incidents)" in acme


def test_globex_is_shown_on_new_yorks_clock(report: MorningReport) -> None:
    globex = render_text(report).split("== Globex")[1]
    assert "Mon 2025-03-03 18:00 to Tue 2025-03-04 01:00 America/New_York" in globex
    [failed, succeeded] = block(globex, "Jobs")[1:]
    assert failed.split()[:1] == ["failed"]
    assert EVIL_JOB in failed  # text for a terminal is not HTML: shown as it is
    # Monday evening in New York, seen from its Tuesday 01:00: the weekday says which evening.
    assert succeeded.split()[1:8] == ["billing-run", "app-01", "20250304-0000", "Mon", "19:00",
                                      "Mon", "19:05"]


def test_no_customers_in_scope_says_so() -> None:
    empty = MorningReport(generated_at=MORNING, since="18:00", customers=[])
    assert render_text(empty).endswith("\n\nno customers in your scope")
    assert "No customers in your scope." in render_html(empty)


def test_the_json_shape_round_trips_and_keeps_its_documented_keys(
    report: MorningReport,
) -> None:
    data = json.loads(report.model_dump_json())
    assert MorningReport.model_validate(data) == report
    assert set(data) == {"generated_at", "since", "customers"}
    assert data["generated_at"] == "2025-03-04T06:00:00Z"
    acme = data["customers"][0]
    assert set(acme) == {"customer", "name", "timezone", "window", "schedules_known", "counts",
                         "jobs", "loads", "open_incidents", "silent_agents", "dropped"}
    assert acme["window"] == {"start": "2025-03-03T17:00:00Z", "end": "2025-03-04T06:00:00Z"}
    assert acme["jobs"][0] == {
        "job": "nightly-export", "host": "db-01", "kind": "job", "status": "failed",
        "runs": [{"run_id": "20250304-0200", "outcome": "failed",
                  "started_at": "2025-03-04T01:00:00Z", "finished_at": "2025-03-04T01:30:00Z",
                  "duration_s": 1800.0, "exit_code": 3,
                  "reason": "02:30:01 ERROR: warehouse refused the connection"}],
        "slots": [],
    }
    assert acme["open_incidents"][0] == {
        "id": 1, "severity": "critical", "state": "open", "host": "db-01",
        "title": "job nightly-export failed on db-01 (exit code 3)",
        "since": "2025-03-04T01:30:00Z"}
    assert acme["silent_agents"] == [{"agent_id": "acme-etl-01", "host": "etl-01",
                                      "last_seen_at": "2025-03-04T03:00:00Z"}]
    assert acme["dropped"] == [{"agent_id": "acme-etl-01", "host": "etl-01",
                                "results_dropped": 40, "dropped_in_window": 15}]


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_escapes_what_came_from_customer_systems(report: MorningReport) -> None:
    page = render_html(report)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<b>" not in page
    assert "&lt;b&gt;boom&lt;/b&gt; &amp; more" in page
    parsed = _Elements()
    parsed.feed(page)
    assert "script" not in parsed.tags
    assert EVIL_JOB in "".join(parsed.text)  # the reader sees the name as it is


def test_html_is_one_self_contained_file(report: MorningReport) -> None:
    page = render_html(report)
    parsed = _Elements()
    parsed.feed(page)
    assert page.startswith("<!DOCTYPE html>")
    assert {"img", "link", "iframe", "object", "embed", "script"}.isdisjoint(parsed.tags)
    assert not [value for name, value in parsed.attributes
                if name in ("src", "href") or (name or "").startswith("on")]
    assert not re.search(r"url\(|@import|https?://", page)
    assert parsed.tags.count("section") == 2
    assert "ACME Logistics" in page
    assert "Globex Corporation" in page


def test_html_marks_problem_rows_and_statuses(report: MorningReport) -> None:
    page = render_html(report)
    assert page.index("ACME Logistics") < page.index("Globex Corporation")
    assert '<span class="status s-failed">failed</span>' in page
    assert '<tr class="problem"><td><span class="status s-failed">' in page
    assert '<section class="trouble">' in page
