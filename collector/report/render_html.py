"""The morning report as one HTML file a desk can open in a browser and forward: everything in
the file (styles inline, no scripts, no images, no links to fetch), every value from the store
escaped, since job names, titles and log lines come from customer systems."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from zoneinfo import ZoneInfo

from collector.report.display import (
    customers_problems_first,
    job_lines,
    local_time,
    status_word,
    summary_text,
    window_text,
)
from collector.report.shapes import PROBLEM_STATUSES, CustomerReport, Job, MorningReport

_STYLE = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1f2328; margin: 24px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
.meta { color: #59636e; margin: 0 0 20px; }
section { border: 1px solid #d1d9e0; border-radius: 8px; margin: 0 0 24px; padding: 14px 18px; }
section.trouble { border-left: 6px solid #cf222e; }
section.calm { border-left: 6px solid #1a7f37; }
h2 { font-size: 18px; margin: 0; }
h2 .id { color: #59636e; font-weight: normal; }
.window { color: #59636e; margin: 2px 0 6px; }
.summary { font-weight: 600; margin: 0 0 6px; }
.note { color: #59636e; font-style: italic; margin: 0 0 6px; }
h3 { font-size: 14px; text-transform: uppercase; letter-spacing: .04em; color: #59636e;
     margin: 16px 0 6px; }
table { border-collapse: collapse; width: 100%; }
th { text-align: left; font-weight: 600; color: #59636e; border-bottom: 1px solid #d1d9e0;
     padding: 4px 10px 4px 0; white-space: nowrap; }
td { padding: 4px 10px 4px 0; border-bottom: 1px solid #eff2f5; vertical-align: top; }
td.time, td.num { white-space: nowrap; font-variant-numeric: tabular-nums; }
td.detail { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
            font-size: 12px; word-break: break-word; }
tr.problem td { background: #fff5f5; }
.status { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px;
          font-weight: 600; white-space: nowrap; }
.s-failed, .s-did_not_start, .s-critical { background: #ffebe9; color: #a40e26; }
.s-late, .s-warning, .s-running { background: #fff8c5; color: #7d4e00; }
.s-scheduled, .s-acknowledged { background: #eff2f5; color: #59636e; }
.s-open { background: #ddf4ff; color: #0550ae; }
.s-succeeded { background: #dafbe1; color: #116329; }
.empty { color: #59636e; margin: 0; }
"""


def _badge(status: str, word: str | None = None) -> str:
    css = "".join(ch if ch.isalnum() or ch == "_" else "-" for ch in status)
    return f'<span class="status s-{css}">{escape(word or status_word(status))}</span>'


def _table(headers: Sequence[str], rows: Sequence[tuple[Sequence[str], bool]],
           classes: Sequence[str]) -> str:
    """rows: (cells already escaped, is a problem); classes: one per column."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    problem_row = '<tr class="problem">'
    body = "".join(
        (problem_row if problem else "<tr>")
        + "".join(f'<td class="{c}">{cell}</td>' if c else f"<td>{cell}</td>"
                  for c, cell in zip(classes, cells, strict=True))
        + "</tr>"
        for cells, problem in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _jobs_table(jobs: list[Job], report: CustomerReport) -> str:
    zone = ZoneInfo(report.timezone)
    rows = [([_badge(line.status), escape(line.job), escape(line.host), escape(line.run_id),
              escape(line.started), escape(line.finished), escape(line.duration),
              escape(line.detail)], line.status in PROBLEM_STATUSES)
            for line in job_lines(jobs, zone, report.window.end)]
    return _table(["Status", "Job", "Host", "Run", "Started", "Finished", "Duration", "Detail"],
                  rows, ["", "", "", "", "time", "time", "num", "detail"])


def _section(title: str, body: str | None, empty: str) -> str:
    inner = body if body else f'<p class="empty">{escape(empty)}</p>'
    return f"<h3>{escape(title)}</h3>{inner}"


def customer_html(report: CustomerReport) -> str:
    zone = ZoneInfo(report.timezone)
    end = report.window.end
    parts = [
        f'<h2>{escape(report.name)} <span class="id">({escape(report.customer)})</span></h2>',
        f'<p class="window">{escape(window_text(report))}</p>',
        f'<p class="summary">{escape(summary_text(report))}</p>',
    ]
    if not report.schedules_known:
        parts.append('<p class="note">No schedules known yet: late and missed runs show as '
                     "incidents.</p>")
    parts.append(_section("Jobs", _jobs_table(report.jobs, report) if report.jobs else None,
                          "No job runs in the window."))
    if report.loads:
        parts.append(_section("Loads", _jobs_table(report.loads, report), ""))
    incidents = [([escape(f"#{i.id}"), _badge(i.severity, i.severity), _badge(i.state, i.state),
                   escape(i.host), escape(local_time(i.since, zone, end)), escape(i.title)],
                  i.severity == "critical") for i in report.open_incidents]
    parts.append(_section("Open incidents", _table(
        ["ID", "Severity", "State", "Host", "Since", "Title"], incidents,
        ["num", "", "", "", "time", ""]) if incidents else None, "None."))
    if report.silent_agents:
        agents = [([escape(a.agent_id), escape(a.host or "-"),
                    escape(local_time(a.last_seen_at, zone, end) if a.last_seen_at
                           else "never")], True) for a in report.silent_agents]
        parts.append(_section("Silent agents", _table(["Agent", "Host", "Last seen"], agents,
                                                      ["", "", "time"]), ""))
    if report.dropped:
        dropped = [([escape(d.agent_id), escape(d.host or "-"), escape(str(d.results_dropped)),
                     escape("unknown" if d.dropped_in_window is None
                            else str(d.dropped_in_window))], True) for d in report.dropped]
        parts.append(_section("Dropped results", _table(
            ["Agent", "Host", "Dropped in total", "In the window"], dropped,
            ["", "", "num", "num"]), ""))
    mood = "trouble" if report.counts.problems else "calm"
    return f'<section class="{mood}">{"".join(parts)}</section>'


def render_html(report: MorningReport) -> str:
    generated = report.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    blocks = "".join(customer_html(c) for c in customers_problems_first(report.customers))
    if not blocks:
        blocks = '<p class="empty">No customers in your scope.</p>'
    title = f"Daybreak morning report, {generated}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Morning report</h1>"
        f'<p class="meta">{escape(generated)}, since {escape(report.since)} '
        f"in each customer's time zone</p>"
        f"{blocks}</body></html>\n"
    )
