"""How report values read to people: times on the customer's clock, short durations, statuses
in words. Shared by the text and the HTML render, so both say the same thing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from collector.report.shapes import CustomerReport, Job, Run, Slot

STATUS_WORDS = {
    "failed": "failed",
    "did_not_start": "did not start",
    "late": "late",
    "running": "running",
    "scheduled": "scheduled",
    "succeeded": "succeeded",
}
# Beyond this a weekday name is ambiguous; the date is clearer.
WEEKDAY_RANGE = timedelta(days=6)


def status_word(status: str) -> str:
    return STATUS_WORDS.get(status, status.replace("_", " "))


def local_time(moment: datetime | None, zone: ZoneInfo, reference: datetime) -> str:
    """`02:30` on the reference's local day, `Mon 18:05` within the week, else the date."""
    if moment is None:
        return "-"
    local = moment.astimezone(zone)
    reference_local = reference.astimezone(zone)
    if local.date() == reference_local.date():
        return local.strftime("%H:%M")
    if abs(reference_local - local) <= WEEKDAY_RANGE:
        return local.strftime("%a %H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def window_text(report: CustomerReport) -> str:
    zone = ZoneInfo(report.timezone)
    start = report.window.start.astimezone(zone)
    end = report.window.end.astimezone(zone)
    return (f"{start.strftime('%a %Y-%m-%d %H:%M')} to {end.strftime('%a %Y-%m-%d %H:%M')} "
            f"{report.timezone}")


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def run_detail(run: Run) -> str:
    if run.outcome == "failed":
        exit_text = f"exit {run.exit_code}" if run.exit_code is not None else ""
        if run.reason and not run.reason.startswith("exit code"):
            return f"{exit_text}: {run.reason}" if exit_text else run.reason
        return run.reason or exit_text
    if run.outcome == "running":
        return "still running"
    return ""


def slot_detail(slot: Slot, zone: ZoneInfo, reference: datetime) -> str:
    """`scheduled 02:00, start by 02:15, complete by 06:30` on the customer's clock."""
    return (f"scheduled {local_time(slot.scheduled_for, zone, reference)}, start by "
            f"{local_time(slot.start_by, zone, reference)}, complete by "
            f"{local_time(slot.complete_by, zone, reference)}")


def unfilled_slots(job: Job) -> list[Slot]:
    """The slots no run of the report filled: not started, not yet due, or a run elsewhere."""
    run_ids = {run.run_id for run in job.runs}
    return [slot for slot in job.slots if not slot.run_id or slot.run_id not in run_ids]


def summary_text(report: CustomerReport) -> str:
    """`3 problems: 1 failed, 1 did not start, 1 silent agent; 2 open incidents`."""
    counts = report.counts
    parts = [f"{n} {status_word(s)}" for s, n in (
        ("failed", counts.failed), ("did_not_start", counts.did_not_start),
        ("late", counts.late)) if n]
    if counts.silent_agents:
        parts.append(f"{counts.silent_agents} silent agent"
                     f"{'s' if counts.silent_agents != 1 else ''}")
    if report.dropped:
        parts.append(f"{len(report.dropped)} agent{'s' if len(report.dropped) != 1 else ''} "
                     f"dropped results")
    head = (f"{counts.problems} problem{'s' if counts.problems != 1 else ''}: "
            f"{', '.join(parts)}" if counts.problems else "no problems")
    tail = [f"{counts.running} running"] if counts.running else []
    tail.append(f"{counts.succeeded} succeeded")
    tail.append(f"{counts.open_incidents} open incident"
                f"{'s' if counts.open_incidents != 1 else ''}")
    return f"{head}; {', '.join(tail)}"


def customers_problems_first(customers: list[CustomerReport]) -> list[CustomerReport]:
    return sorted(customers, key=lambda c: (-c.counts.problems, -c.counts.open_incidents,
                                            c.customer))


@dataclass(frozen=True, slots=True)
class JobLine:
    """One line of a jobs or loads table: a run, or a slot that was missed or is late."""

    status: str  # a JobStatus or run outcome, as in the JSON
    job: str
    host: str
    run_id: str
    started: str
    finished: str
    duration: str
    detail: str


def job_lines(jobs: list[Job], zone: ZoneInfo, reference: datetime) -> list[JobLine]:
    """Jobs in the report's order (problems first); each job's runs and the slots no run filled
    in time order. A run that filled a late slot says so."""
    lines: list[JobLine] = []
    for job in jobs:
        slot_of_run = {slot.run_id: slot for slot in job.slots if slot.run_id}
        entries: list[tuple[datetime, JobLine]] = []
        for run in job.runs:
            detail = run_detail(run)
            slot = slot_of_run.get(run.run_id)
            status: str = run.outcome
            if slot is not None and slot.state == "late":
                status = "late"
                detail = "; ".join(filter(None, [
                    f"late for {slot_detail(slot, zone, reference)}", detail]))
            entries.append((run.started_at or reference, JobLine(
                status, job.job, job.host, run.run_id,
                local_time(run.started_at, zone, reference),
                local_time(run.finished_at, zone, reference),
                duration_text(run.duration_s), detail)))
        for slot in unfilled_slots(job):
            entries.append((slot.scheduled_for, JobLine(
                slot.state, job.job, job.host, "-", "-", "-", "-",
                slot_detail(slot, zone, reference))))
        lines += [line for _, line in sorted(entries, key=lambda e: e[0])]
    return lines
