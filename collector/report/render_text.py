"""The morning report for a terminal: one block per customer, the customers with problems
first, and in each block the failed, missed and late jobs before the ones that went well.
Columns are aligned; times are on the customer's clock, named once in the block's header."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from collector.cli.output import indented, table
from collector.report.display import (
    customers_problems_first,
    job_lines,
    local_time,
    status_word,
    summary_text,
    window_text,
)
from collector.report.shapes import CustomerReport, Job, MorningReport

_JOB_HEADERS = ["STATUS", "JOB", "HOST", "RUN", "STARTED", "FINISHED", "DURATION", "DETAIL"]


def _jobs_table(jobs: list[Job], report: CustomerReport) -> str:
    zone = ZoneInfo(report.timezone)
    lines = job_lines(jobs, zone, report.window.end)
    return table(_JOB_HEADERS, [
        [status_word(line.status), line.job, line.host, line.run_id, line.started,
         line.finished, line.duration, line.detail or "-"] for line in lines])


def _section(title: str, body: str | None, empty: str) -> list[str]:
    return ["", title, indented(body) if body else f"  {empty}"]


def customer_text(report: CustomerReport) -> str:
    zone = ZoneInfo(report.timezone)
    end = report.window.end
    parts = [f"== {report.name} ({report.customer}) ==",
             window_text(report),
             summary_text(report)]
    if not report.schedules_known:
        parts.append("(no schedules known yet: late and missed runs show as incidents)")
    parts += _section("Jobs", _jobs_table(report.jobs, report) if report.jobs else None,
                      "no job runs in the window")
    if report.loads:
        parts += _section("Loads", _jobs_table(report.loads, report), "")
    parts += _section("Open incidents", table(
        ["ID", "SEVERITY", "STATE", "HOST", "SINCE", "TITLE"],
        [[f"#{i.id}", i.severity, i.state, i.host, local_time(i.since, zone, end), i.title]
         for i in report.open_incidents]) if report.open_incidents else None, "none")
    if report.silent_agents:
        parts += _section("Silent agents", table(
            ["AGENT", "HOST", "LAST SEEN"],
            [[a.agent_id, a.host or "-",
              local_time(a.last_seen_at, zone, end) if a.last_seen_at else "never"]
             for a in report.silent_agents]), "")
    if report.dropped:
        parts += _section("Dropped results", table(
            ["AGENT", "HOST", "DROPPED IN TOTAL", "IN THE WINDOW"],
            [[d.agent_id, d.host or "-", str(d.results_dropped),
              "unknown" if d.dropped_in_window is None else str(d.dropped_in_window)]
             for d in report.dropped]), "")
    return "\n".join(parts)


def render_text(report: MorningReport) -> str:
    generated = report.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    since = (f"since {report.since} in each customer's zone" if ":" in report.since
             and "T" not in report.since else f"since {report.since}")
    head = f"Morning report, {generated} ({since})"
    if not report.customers:
        return f"{head}\n\nno customers in your scope"
    blocks = [customer_text(c) for c in customers_problems_first(report.customers)]
    return "\n\n".join([head, *blocks])
