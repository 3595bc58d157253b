"""The morning report's data: per customer, what the night brought.

Read from the store in one read transaction (a consistent snapshot, never waiting for ingest):
- job runs in the customer's window (started or finished in it; still running and started up to
  a day before it), grouped per job and host, each load apart from the jobs: a job run is a load
  when the same host reports a `load:<job>` check, which the load probe always does;
- the schedule engine's slots (`job_slots`: late, did not start, still to come) when the store
  has them; without, `schedules_known` is false and only the open incidents tell of misses;
- the open incidents, agents not connected since before the window ended, and agents whose
  spool dropped results.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from collector.customers import CustomerFile, CustomerSet
from collector.expectations.base import failure_line
from collector.report.shapes import (
    JOB_STATUS_ORDER,
    PROBLEM_STATUSES,
    Counts,
    CustomerReport,
    Dropped,
    Job,
    JobStatus,
    MorningReport,
    OpenIncident,
    Run,
    SilentAgent,
    Slot,
    Window,
)
from collector.report.window import Since, window_start
from collector.store.schema import agent_dropped, agents, check_state, incidents, job_runs
from probes.result import one_line

# A run that never reported its end would otherwise be "still running" in every report after;
# a day covers the longest night job we have heard of.
RUNNING_LOOKBACK = timedelta(days=1)
REASON_MAX_CHARS = 200
LOAD_CHECK_PREFIX = "load:"
# The schedule engine's slots table (migration 0004_schedules), read only when it exists.
SLOT_TABLE_NAME = "job_slots"
SLOT_COLUMNS = ("customer", "host", "expectation", "slot_at", "due_start_at", "due_complete_at",
                "state", "run_id", "started_at")
_SEVERITY_RANK = {"critical": 0, "warning": 1}


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands stored times back naive; they were stored in UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def failure_reason(excerpt: str, exit_code: int | None) -> str:
    """One line for a failed run: the excerpt's error line, else the exit code."""
    line = failure_line(excerpt)
    if line:
        return one_line(line, REASON_MAX_CHARS)
    return f"exit code {exit_code}" if exit_code is not None else "failed"


@dataclass(frozen=True, slots=True)
class _SlotRow:
    host: str
    expectation: str
    slot: Slot


def slot_status(engine_state: str, started: bool, due_start: datetime, due_complete: datetime,
                now: datetime) -> JobStatus:
    """The schedule engine's slot state (collector/expectations/deadline.py) in the report's
    words, at now: the engine moves a slot only when its due time is polled, so a slot still
    waiting past its start-by reads as not started here already."""
    if engine_state == "waiting":
        return "did_not_start" if now >= due_start else "scheduled"
    if engine_state == "started":
        return "late" if now >= due_complete else "running"
    if engine_state == "missed":
        # Missed before a run began: did not start; a run began but not done by the deadline.
        return "late" if started else "did_not_start"
    if engine_state in ("succeeded", "failed", "late"):
        return engine_state  # type: ignore[return-value]
    return "scheduled"


class _SlotReader:
    """The schedule engine's `job_slots` (migration 0004_schedules), when this store has it.

    Read by reflection, not through the engine's code, so the report works on a store before
    and after that migration. A slot names its expectation; the job is the run that filled it,
    else the expectation's `job` from the customer file.
    """

    def __init__(self, conn: sa.Connection) -> None:
        self._table: sa.Table | None = None
        if sa.inspect(conn).has_table(SLOT_TABLE_NAME):
            table = sa.Table(SLOT_TABLE_NAME, sa.MetaData(), autoload_with=conn)
            if set(SLOT_COLUMNS) <= set(table.c.keys()):
                self._table = table

    @property
    def known(self) -> bool:
        return self._table is not None

    def slots(self, conn: sa.Connection, customer: str, start: datetime,
              end: datetime) -> list[_SlotRow]:
        table = self._table
        if table is None:
            return []
        rows = conn.execute(
            sa.select(*(table.c[name] for name in SLOT_COLUMNS))
            .where(table.c.customer == customer, table.c.slot_at < end,
                   sa.or_(table.c.slot_at >= start, table.c.due_complete_at >= start))
            .order_by(table.c.slot_at)
        ).all()
        found: list[_SlotRow] = []
        for row in rows:
            slot_at, due_start, due_complete = (
                _utc(_as_datetime(row.slot_at)) or start,
                _utc(_as_datetime(row.due_start_at)) or start,
                _utc(_as_datetime(row.due_complete_at)) or start)
            state = slot_status(str(row.state), row.started_at is not None, due_start,
                                due_complete, end)
            found.append(_SlotRow(row.host, row.expectation, Slot(
                scheduled_for=slot_at, start_by=due_start, complete_by=due_complete,
                state=state, run_id=row.run_id or "")))
        return found


def _as_datetime(value: Any) -> datetime | None:
    # A reflected SQLite column may come back as text: its type is whatever the DDL said.
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _runs_in_window(conn: sa.Connection, customer: str, start: datetime,
                    end: datetime) -> Sequence[sa.Row[Any]]:
    began = sa.func.coalesce(job_runs.c.started_at, job_runs.c.observed_at)
    return conn.execute(
        sa.select(job_runs)
        .where(
            job_runs.c.customer == customer,
            sa.or_(
                sa.and_(began >= start, began < end),
                sa.and_(job_runs.c.finished_at >= start, job_runs.c.finished_at < end),
                sa.and_(job_runs.c.outcome == "running", began >= start - RUNNING_LOOKBACK,
                        began < end),
            ),
        )
        .order_by(began, job_runs.c.id)
    ).all()


def _load_keys(conn: sa.Connection, customer: str) -> set[tuple[str, str]]:
    rows = conn.execute(
        sa.select(check_state.c.host, check_state.c.check_key)
        .where(check_state.c.customer == customer,
               check_state.c.check_key.startswith(LOAD_CHECK_PREFIX))
    ).all()
    return {(row.host, row.check_key[len(LOAD_CHECK_PREFIX):]) for row in rows}


def _run(row: sa.Row[Any], end: datetime) -> Run:
    started = _utc(row.started_at)
    duration = row.duration_s
    if row.outcome == "running" and started is not None:
        duration = max(0.0, (end - started).total_seconds())
    return Run(
        run_id=row.run_id, outcome=row.outcome, started_at=started,
        finished_at=_utc(row.finished_at), duration_s=duration, exit_code=row.exit_code,
        reason=failure_reason(row.excerpt, row.exit_code) if row.outcome == "failed" else "",
    )


def _job_status(runs: Sequence[Run], slots: Sequence[Slot]) -> JobStatus:
    # The latest run says where the job stands (a failure re-run with success is done); each
    # slot says what became of one scheduled run; the worst of them is the job's standing.
    candidates: list[JobStatus] = [runs[-1].outcome] if runs else []
    candidates += [slot.state for slot in slots]
    return min(candidates, key=JOB_STATUS_ORDER.index) if candidates else "succeeded"


def _slot_job(slot: _SlotRow, runs: Iterable[sa.Row[Any]],
              customer: CustomerFile | None) -> str:
    if slot.slot.run_id:
        for row in runs:
            if row.host == slot.host and row.run_id == slot.slot.run_id:
                return str(row.job)
    if customer is not None:
        for expectation in customer.expectations:
            if expectation.name == slot.expectation:
                return str(getattr(expectation, "job", slot.expectation))
    return slot.expectation


def _jobs(runs: Sequence[sa.Row[Any]], slots: Iterable[_SlotRow], loads: set[tuple[str, str]],
          end: datetime, customer: CustomerFile | None) -> tuple[list[Job], list[Job]]:
    runs_by_job: dict[tuple[str, str], list[Run]] = defaultdict(list)
    slots_by_job: dict[tuple[str, str], list[Slot]] = defaultdict(list)
    for row in runs:
        runs_by_job[(row.job, row.host)].append(_run(row, end))
    for slot in slots:
        slots_by_job[(_slot_job(slot, runs, customer), slot.host)].append(slot.slot)
    jobs: list[Job] = []
    for job, host in sorted(runs_by_job.keys() | slots_by_job.keys()):
        job_runs_ = runs_by_job.get((job, host), [])
        job_slots = slots_by_job.get((job, host), [])
        jobs.append(Job(job=job, host=host, kind="load" if (host, job) in loads else "job",
                        status=_job_status(job_runs_, job_slots), runs=job_runs_,
                        slots=job_slots))
    jobs.sort(key=lambda j: (JOB_STATUS_ORDER.index(j.status), j.job, j.host))
    return [j for j in jobs if j.kind == "job"], [j for j in jobs if j.kind == "load"]


def _open_incidents(conn: sa.Connection, customer: str) -> list[OpenIncident]:
    rows = conn.execute(
        sa.select(incidents.c.id, incidents.c.severity, incidents.c.state, incidents.c.host,
                  incidents.c.title, incidents.c.opened_at)
        .where(incidents.c.customer == customer, incidents.c.state != "resolved")
        .order_by(incidents.c.opened_at, incidents.c.id)
    ).all()
    found = [OpenIncident(id=r.id, severity=r.severity, state=r.state, host=r.host,
                          title=r.title, since=r.opened_at) for r in rows]
    return sorted(found, key=lambda i: _SEVERITY_RANK.get(i.severity, len(_SEVERITY_RANK)))


def _dropped_between(conn: sa.Connection, agent_id: str, start: datetime,
                     end: datetime) -> int:
    """How much an agent's dropped counter grew in [start, end), from its recorded changes."""
    def counter_at(at: datetime) -> int:
        value = conn.execute(
            sa.select(agent_dropped.c.results_dropped)
            .where(agent_dropped.c.agent_id == agent_id, agent_dropped.c.at < at)
            .order_by(agent_dropped.c.at.desc(), agent_dropped.c.id.desc()).limit(1)
        ).scalar_one_or_none()
        return int(value or 0)

    # A counter that went down is a new spool (reinstalled agent): count what it holds now.
    at_start, at_end = counter_at(start), counter_at(end)
    return at_end - at_start if at_end >= at_start else at_end


def _agents(conn: sa.Connection, customer: str, start: datetime,
            end: datetime) -> tuple[list[SilentAgent], list[Dropped]]:
    rows = conn.execute(
        sa.select(agents.c.agent_id, agents.c.host, agents.c.connected, agents.c.last_seen_at,
                  agents.c.results_dropped)
        .where(agents.c.customer == customer).order_by(agents.c.agent_id)
    ).all()
    silent: list[SilentAgent] = []
    dropped: list[Dropped] = []
    for row in rows:
        last_seen = _utc(row.last_seen_at)
        if not row.connected and (last_seen is None or last_seen < end):
            silent.append(SilentAgent(agent_id=row.agent_id, host=row.host,
                                      last_seen_at=last_seen))
        if row.results_dropped:
            dropped.append(Dropped(
                agent_id=row.agent_id, host=row.host, results_dropped=row.results_dropped,
                dropped_in_window=_dropped_between(conn, row.agent_id, start, end)))
    return silent, dropped


def _counts(jobs: Sequence[Job], silent: Sequence[SilentAgent], dropped: Sequence[Dropped],
            open_incidents: Sequence[OpenIncident]) -> Counts:
    by_status = {status: sum(1 for j in jobs if j.status == status) for status in JOB_STATUS_ORDER}
    job_problems = sum(1 for j in jobs if j.status in PROBLEM_STATUSES)
    return Counts(problems=job_problems + len(silent) + len(dropped), **by_status,
                  open_incidents=len(open_incidents), silent_agents=len(silent))


def _customers_in_store(conn: sa.Connection) -> set[str]:
    found = set(conn.execute(sa.select(agents.c.customer).distinct()).scalars())
    found |= set(conn.execute(
        sa.select(incidents.c.customer).where(incidents.c.state != "resolved").distinct()
    ).scalars())
    return found


def build_morning_report(
    conn: sa.Connection,
    *,
    customers: CustomerSet | None,
    visible: Callable[[str], bool],
    since: Since,
    now: datetime,
    only_customer: str | None = None,
) -> MorningReport:
    """The report at now for the customers visible (a token's scope), or only one of them.

    Customers are those of the customer files and any the store still has agents or open
    incidents of; one without a file is shown in UTC.
    """
    now = now.astimezone(UTC)
    known = customers.ids if customers is not None else frozenset()
    ids = sorted(c for c in known | _customers_in_store(conn)
                 if visible(c) and (only_customer is None or c == only_customer))
    slot_reader = _SlotReader(conn)
    reports: list[CustomerReport] = []
    for customer in ids:
        customer_file = customers.get(customer) if customers is not None else None
        zone_name = customer_file.timezone if customer_file is not None else "UTC"
        start = window_start(since, now, ZoneInfo(zone_name))
        jobs, loads = _jobs(_runs_in_window(conn, customer, start, now),
                            slot_reader.slots(conn, customer, start, now),
                            _load_keys(conn, customer), now, customer_file)
        open_incidents = _open_incidents(conn, customer)
        silent, dropped = _agents(conn, customer, start, now)
        reports.append(CustomerReport(
            customer=customer,
            name=customer_file.name if customer_file is not None else customer,
            timezone=zone_name,
            window=Window(start=start, end=now),
            schedules_known=slot_reader.known,
            counts=_counts([*jobs, *loads], silent, dropped, open_incidents),
            jobs=jobs, loads=loads, open_incidents=open_incidents, silent_agents=silent,
            dropped=dropped,
        ))
    return MorningReport(generated_at=now, since=str(since), customers=reports)
