"""`job_schedule`: a job must run on its schedule, start in time and complete by a deadline.

    - kind: job_schedule
      name: nightly-export-on-time
      job: nightly-export          # a glob over job names; any matching run fills the slot
      hosts: ["db-*"]
      schedule: "0 2 * * *"        # cron, in the customer's timezone
      start_by: 15m                # after the slot, or a time of day ("02:15")
      complete_by: "06:30"         # a time of day in the customer's zone, or a duration
      max_runtime: 3h              # optional: still running after this opens a warning
      min_runtime: 1m              # optional: a run that ends faster counts as failed
      severity: critical

Each scheduled run is its own **slot**, and the slot is part of the incident's subject
(`nightly-export@2025-03-04T02:00+01:00`), so tonight's miss is not last night's incident.
Slots live in the store (`job_slots`), materialised ahead for the hosts the collector knows, so
the silence of a job that never runs is noticed, and survives a collector restart.

What opens, and what resolves (all about one slot):
- a failed run opens at once; so does a successful run shorter than `min_runtime`
  ("suspiciously fast": a job that exits at once usually did nothing);
- no run started by `start_by`: "did not start";
- no successful run by `complete_by`: "did not complete by 06:30" (the customer's clock);
- still running `max_runtime` after its start: a warning, while there is time left;
- a successful run resolves the slot's incident, with a note when it was late
  ("completed late at 06:52") or started late. A manual rerun that succeeds after a failure
  resolves it too: the slot is what the desk cares about.

A run belongs to the latest slot at or before its start (a few minutes of clock skew allowed),
so a run that starts at 02:40 for the 02:00 slot is that slot's late start, not an extra run.
`max_runtime` is judged while the run is running; a finished run is judged by its deadline.

The model is pure (due times, texts); `SlotBook` keeps the slots in the store. The due-time loop
(`collector/timers.py`) polls `next_check_at` earliest first and calls `SlotBook.evaluate`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, ClassVar, Literal, Self

import sqlalchemy as sa
from pydantic import PrivateAttr, field_validator, model_validator
from sqlalchemy.dialects import postgresql, sqlite

from collector.durations import Duration, format_duration, parse_duration
from collector.expectations.base import (
    ExpectationBase,
    Glob,
    Outcome,
    Severity,
    Verdict,
    compile_glob,
    failure_line,
)
from collector.expectations.schedule import (
    check_schedule,
    clock_time,
    latest_slot_at_or_before,
    local_label,
    next_wall_time,
    parse_clock_time,
    slots_between,
)
from collector.store.schema import job_slots
from probes.result import JobOutcome, JobRun, one_line

# A run that starts this much before its slot still belongs to it: the host's clock and the
# scheduler's (cron starts at second 0, a wrapper may log a moment earlier) are not one clock.
EARLY_START_TOLERANCE = timedelta(minutes=5)
# A due time of day ("06:30") is at most a day (and a DST hour) after its slot.
LONGEST_CLOCK_WINDOW = timedelta(hours=25)
# How far ahead slots are materialised: a night's slots exist long before they are due.
MATERIALIZE_HORIZON = timedelta(hours=24)


class SlotState:
    WAITING = "waiting"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    MISSED = "missed"
    LATE = "late"


SETTLED_STATES = frozenset({SlotState.SUCCEEDED, SlotState.LATE})


def _due_value(value: str) -> str:
    text = value.strip()
    if parse_clock_time(text) is None:
        parse_duration(text)  # raises with the accepted forms
    return text


class JobScheduleExpectation(ExpectationBase):
    watches_job_runs: ClassVar[bool] = True

    kind: Literal["job_schedule"]
    job: Glob
    schedule: str
    start_by: str | None = None
    complete_by: str
    max_runtime: Duration | None = None
    min_runtime: Duration | None = None
    severity: Severity = Severity.CRITICAL

    _job_re: re.Pattern[str] = PrivateAttr(default=re.compile(""))


    @field_validator("schedule")
    @classmethod
    def _schedule_parses(cls, schedule: str) -> str:
        return check_schedule(schedule)

    @field_validator("start_by", "complete_by")
    @classmethod
    def _due_is_a_time_or_duration(cls, value: str | None) -> str | None:
        return None if value is None else _due_value(value)

    @model_validator(mode="after")
    def _runtimes_make_sense(self) -> Self:
        if (self.min_runtime is not None and self.max_runtime is not None
                and self.min_runtime >= self.max_runtime):
            raise ValueError("min_runtime must be shorter than max_runtime")
        return self

    def model_post_init(self, context: object, /) -> None:
        super().model_post_init(context)
        self._job_re = compile_glob(self.job)

    def applies_to_job(self, job: str) -> bool:
        return self._job_re.match(job) is not None

    # ---- due times ------------------------------------------------------------------------

    @staticmethod
    def _due_after(slot_at: datetime, value: str, zone: tzinfo) -> datetime:
        at = parse_clock_time(value)
        if at is not None:
            return next_wall_time(slot_at, at, zone)
        return slot_at + parse_duration(value)

    def due_times(self, slot_at: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
        """(due start, due completion) of a slot, UTC. Without start_by the start is due when
        the completion is: only "did not complete" is said."""
        complete = self._due_after(slot_at, self.complete_by, zone)
        if self.start_by is None:
            return complete, complete
        return min(self._due_after(slot_at, self.start_by, zone), complete), complete

    def longest_window(self) -> timedelta:
        """How far back a slot can lie and still have a due time ahead."""
        if parse_clock_time(self.complete_by) is not None:
            return LONGEST_CLOCK_WINDOW
        return parse_duration(self.complete_by)

    def subject(self, slot_at: datetime, zone: tzinfo) -> str:
        return f"{self.job}@{local_label(slot_at, zone)}"

    # ---- verdicts -------------------------------------------------------------------------

    def _problem(self, slot: SlotView, at: datetime, title: str, observed: str, *,
                 severity: Severity | None = None, occurrence: str, summary: str = "",
                 evidence: str = "", evidence_source: str = "") -> Verdict:
        zone = slot.zone
        return Verdict(
            self.name, self.subject(slot.slot_at, zone), Outcome.PROBLEM, at,
            severity=severity or self.severity,
            title=title,
            summary=one_line(summary or title),
            expected=self.expected_text(slot),
            observed=observed,
            evidence=evidence,
            evidence_source=evidence_source,
            runbook=self.runbook,
            occurrence=occurrence,
        )

    def expected_text(self, slot: SlotView) -> str:
        zone = slot.zone
        parts = [f"{self.job} runs at {clock_time(slot.slot_at, zone)} ({self.schedule}, "
                 f"{getattr(zone, 'key', zone)})"]
        if self.start_by is not None:
            parts.append(f"starts by {clock_time(slot.due_start_at, zone)}")
        parts.append(f"completes by {clock_time(slot.due_complete_at, zone)}")
        if self.min_runtime is not None:
            parts.append(f"runs at least {format_duration(self.min_runtime)}")
        if self.max_runtime is not None:
            parts.append(f"runs at most {format_duration(self.max_runtime)}")
        return ", ".join(parts)

    def did_not_start(self, host: str, slot: SlotView) -> Verdict:
        by = clock_time(slot.due_start_at, slot.zone)
        return self._problem(
            slot, slot.due_start_at,
            f"job {self.job} did not start by {by} on {host} "
            f"(run of {clock_time(slot.slot_at, slot.zone)})",
            f"no run of {self.job} started by {by}",
            occurrence=f"slot:{slot.slot_at.isoformat()}",
        )

    def did_not_complete(self, host: str, slot: SlotView) -> Verdict:
        by = clock_time(slot.due_complete_at, slot.zone)
        if slot.started_at is None:
            observed = f"no run of {self.job} started by {by}"
        else:
            observed = (f"run {slot.run_id} started at {clock_time(slot.started_at, slot.zone)} "
                        f"and had not completed by {by}")
        return self._problem(
            slot, slot.due_complete_at,
            f"job {self.job} did not complete by {by} on {host} "
            f"(run of {clock_time(slot.slot_at, slot.zone)})",
            observed,
            # The same slot's "did not start" told better: one occurrence, a better title.
            occurrence=f"slot:{slot.slot_at.isoformat()}",
        )

    def running_too_long(self, host: str, slot: SlotView, at: datetime) -> Verdict:
        assert self.max_runtime is not None  # noqa: S101 - only called with a max_runtime
        started = slot.started_at or slot.slot_at
        return self._problem(
            slot, at,
            f"job {self.job} still running after {format_duration(self.max_runtime)} on {host} "
            f"(started {clock_time(started, slot.zone)})",
            f"run {slot.run_id} running since {clock_time(started, slot.zone)}",
            severity=Severity.WARNING,
            occurrence=f"slot:{slot.slot_at.isoformat()}",
        )

    def failed(self, host: str, slot: SlotView, run: JobRun) -> Verdict:
        exit_text = f"exit code {run.exit_code}" if run.exit_code is not None else "failed"
        return self._problem(
            slot, run.observed_at,
            f"job {self.job} failed on {host} (run of {clock_time(slot.slot_at, slot.zone)}, "
            f"{exit_text})",
            f"run {run.run_id} failed, {exit_text}",
            summary=f"run {run.run_id} failed: {failure_line(run.excerpt) or '(no log excerpt)'}",
            evidence=run.excerpt, evidence_source=run.source, occurrence=run.run_id,
        )

    def too_fast(self, host: str, slot: SlotView, run: JobRun, ran: timedelta) -> Verdict:
        assert self.min_runtime is not None  # noqa: S101 - only called with a min_runtime
        return self._problem(
            slot, run.observed_at,
            f"job {self.job} ended suspiciously fast on {host}: {format_duration(ran)}, "
            f"expected at least {format_duration(self.min_runtime)}",
            f"run {run.run_id} succeeded after {format_duration(ran)}",
            evidence=run.excerpt, evidence_source=run.source, occurrence=run.run_id,
        )

    def completed(self, slot: SlotView, run: JobRun, finished_at: datetime,
                  *, after_failure: bool) -> Verdict:
        zone = slot.zone
        finished = clock_time(finished_at, zone)
        if finished_at > slot.due_complete_at:
            note = f"completed late at {finished} (due {clock_time(slot.due_complete_at, zone)})"
        elif slot.started_at is not None and slot.started_at > slot.due_start_at:
            note = (f"started late at {clock_time(slot.started_at, zone)}, "
                    f"completed at {finished}")
        elif after_failure:
            note = f"run {run.run_id} succeeded at {finished} after the failure"
        else:
            note = f"completed at {finished}"
        return Verdict(self.name, self.subject(slot.slot_at, zone), Outcome.RECOVERED,
                       run.observed_at, note=note)


@dataclass(frozen=True, slots=True)
class SlotView:
    """One job_slots row, with aware UTC times and the customer's zone for texts."""

    slot_id: int
    slot_at: datetime
    due_start_at: datetime
    due_complete_at: datetime
    state: str
    run_id: str
    started_at: datetime | None
    finished_at: datetime | None
    next_check_at: datetime | None
    zone: tzinfo

    @classmethod
    def of(cls, row: Any, zone: tzinfo) -> SlotView:
        return cls(row.id, _utc(row.slot_at), _utc(row.due_start_at), _utc(row.due_complete_at),
                   row.state, row.run_id, _utc_or_none(row.started_at),
                   _utc_or_none(row.finished_at), _utc_or_none(row.next_check_at), zone)


def _utc(moment: datetime) -> datetime:
    """SQLite hands stored times back naive; they were stored in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


@dataclass(frozen=True, slots=True)
class SlotChange:
    """What a slot became: its new state, when to look at it next, and what to tell."""

    state: str
    next_check_at: datetime | None
    verdicts: tuple[Verdict, ...] = ()
    run_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


def _insert(conn: sa.Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(job_slots)
    return sqlite.insert(job_slots)


class SlotBook:
    """The slots of job_schedule expectations in the store: materialised, matched, evaluated.

    Every method writes through the caller's connection and never commits; the caller (the
    engine for job runs, the due-time loop for deadlines) owns the transaction.
    """

    # ---- materialising --------------------------------------------------------------------

    def materialize(self, conn: sa.Connection, customer: str, zone: tzinfo,
                    expectation: JobScheduleExpectation, hosts: Iterable[str],
                    now: datetime, horizon: timedelta) -> int:
        """Slots from the last still-judgeable one up to now + horizon, for each host; slots
        already stored stay as they are. Returns how many slot rows were offered."""
        slot_times = slots_between(expectation.schedule, zone,
                                   now - expectation.longest_window(), now + horizon)
        rows: list[dict[str, Any]] = []
        for slot_at in slot_times:
            due_start, due_complete = expectation.due_times(slot_at, zone)
            if due_complete <= now:
                continue  # already over before we knew of it: nothing fair to say
            for host in hosts:
                if expectation.applies_to_host(host):
                    rows.append(_new_slot(customer, host, expectation.name, slot_at,
                                          due_start, due_complete))
        if rows:
            conn.execute(_insert(conn).on_conflict_do_nothing(index_elements=[
                job_slots.c.customer, job_slots.c.host, job_slots.c.expectation,
                job_slots.c.slot_at]), rows)
        return len(rows)

    def _slot(self, conn: sa.Connection, customer: str, host: str,
              expectation: JobScheduleExpectation, slot_at: datetime, zone: tzinfo) -> SlotView:
        due_start, due_complete = expectation.due_times(slot_at, zone)
        conn.execute(_insert(conn).on_conflict_do_nothing(index_elements=[
            job_slots.c.customer, job_slots.c.host, job_slots.c.expectation,
            job_slots.c.slot_at]), [_new_slot(customer, host, expectation.name, slot_at,
                                              due_start, due_complete)])
        row = conn.execute(sa.select(job_slots).where(
            job_slots.c.customer == customer, job_slots.c.host == host,
            job_slots.c.expectation == expectation.name, job_slots.c.slot_at == slot_at,
        )).one()
        return SlotView.of(row, zone)

    # ---- job runs -------------------------------------------------------------------------

    def on_job_run(self, conn: sa.Connection, customer: str, zone: tzinfo,
                   expectation: JobScheduleExpectation, host: str, run: JobRun,
                   now: datetime) -> list[Verdict]:
        """Match a run to its slot, move the slot on, and say what that means."""
        started = run.started_at or run.finished_at or run.observed_at
        slot_at = latest_slot_at_or_before(expectation.schedule, zone,
                                           started + EARLY_START_TOLERANCE)
        if slot_at is None:
            return []
        slot = self._slot(conn, customer, host, expectation, slot_at, zone)
        change = judge_run(expectation, host, slot, run, now)
        if change is None:
            return []
        self._write(conn, slot, change, evaluated_at=None)
        return list(change.verdicts)

    # ---- deadlines ------------------------------------------------------------------------

    def due(self, conn: sa.Connection, now: datetime, limit: int) -> Sequence[Any]:
        """Slots whose next check is due, earliest first."""
        return conn.execute(
            sa.select(job_slots).where(job_slots.c.next_check_at <= now)
            .order_by(job_slots.c.next_check_at).limit(limit)
        ).all()

    def next_check_at(self, conn: sa.Connection) -> datetime | None:
        found = conn.execute(sa.select(sa.func.min(job_slots.c.next_check_at))).scalar()
        return None if found is None else _utc(found)

    def evaluate(self, conn: sa.Connection, row: Any, zone: tzinfo,
                 expectation: JobScheduleExpectation, now: datetime,
                 maintenance_ends: datetime | None = None) -> list[Verdict] | None:
        """Judge a due slot. None: another worker changed the slot first (nothing done).

        `maintenance_ends`: the slot's due moment fell inside a maintenance window that ends
        then; the deadline is judged again at that moment rather than suppressed for good.
        """
        slot = SlotView.of(row, zone)
        if maintenance_ends is not None and maintenance_ends > now:
            change = SlotChange(slot.state, maintenance_ends)
        else:
            change = judge_deadline(expectation, row.host, slot, now)
        # Dated at the due moment, not now: after a restart the history says when it happened.
        # A slot looked at later than its due time on purpose (after a maintenance window, or
        # a failed evaluation) is dated then: inside the window it would be suppressed again.
        due_at = slot.next_check_at or now
        if not self._write(conn, slot, change, evaluated_at=min(due_at, now)):
            return None
        return [replace(v, observed_at=due_at) if v.observed_at < due_at else v
                for v in change.verdicts]

    def postpone(self, conn: sa.Connection, slot_id: int, until: datetime) -> None:
        """Move a slot whose evaluation failed out of the way (healthchecks' sendalerts:
        "Otherwise sendalerts may end up in a crash loop")."""
        conn.execute(job_slots.update().where(job_slots.c.id == slot_id)
                     .values(next_check_at=until))

    def settle(self, conn: sa.Connection, slot_id: int) -> None:
        """A slot nobody judges any more (its expectation was removed): never due again."""
        conn.execute(job_slots.update().where(job_slots.c.id == slot_id)
                     .values(next_check_at=None))

    @staticmethod
    def _write(conn: sa.Connection, slot: SlotView, change: SlotChange,
               evaluated_at: datetime | None) -> bool:
        values: dict[str, Any] = {"state": change.state, "next_check_at": change.next_check_at}
        if evaluated_at is not None:
            values["evaluated_at"] = evaluated_at
        if change.run_id is not None:
            values["run_id"] = change.run_id
        if change.started_at is not None:
            values["started_at"] = change.started_at
        if change.finished_at is not None:
            values["finished_at"] = change.finished_at
        # Conditional, as healthchecks' sendalerts: only if nobody moved the slot meanwhile.
        updated = conn.execute(
            job_slots.update()
            .where(job_slots.c.id == slot.slot_id, job_slots.c.state == slot.state)
            .values(values)
        ).rowcount
        return bool(updated == 1)


def _new_slot(customer: str, host: str, expectation: str, slot_at: datetime,
              due_start: datetime, due_complete: datetime) -> dict[str, Any]:
    return {
        "customer": customer, "host": host, "expectation": expectation, "slot_at": slot_at,
        "due_start_at": due_start, "due_complete_at": due_complete,
        "state": SlotState.WAITING, "run_id": "", "next_check_at": due_start,
    }


def judge_run(expectation: JobScheduleExpectation, host: str, slot: SlotView, run: JobRun,
              now: datetime) -> SlotChange | None:
    """What a run of the job means for its slot (pure)."""
    started_at = run.started_at.astimezone(UTC) if run.started_at else slot.started_at
    if run.outcome is JobOutcome.RUNNING:
        if slot.state in SETTLED_STATES or slot.state == SlotState.FAILED:
            return None  # a rerun starting: its end will tell
        started = started_at or run.observed_at.astimezone(UTC)
        if slot.state == SlotState.MISSED and slot.due_complete_at <= now:
            # Past the deadline already: the incident stands until the run completes.
            return SlotChange(SlotState.MISSED, None, run_id=run.run_id, started_at=started)
        next_check = slot.due_complete_at
        if expectation.max_runtime is not None:
            next_check = min(next_check, started + expectation.max_runtime)
        return SlotChange(SlotState.STARTED, next_check, run_id=run.run_id, started_at=started)

    finished_at = (run.finished_at or run.observed_at).astimezone(UTC)
    if run.outcome is JobOutcome.FAILED:
        return SlotChange(SlotState.FAILED, None, (expectation.failed(host, slot, run),),
                          run_id=run.run_id, started_at=started_at, finished_at=finished_at)

    # Succeeded.
    if slot.state in SETTLED_STATES and slot.run_id != run.run_id:
        return None  # an extra run of a slot that is already fine
    ran = (finished_at - started_at) if started_at is not None else None
    if expectation.min_runtime is not None and ran is not None and ran < expectation.min_runtime:
        return SlotChange(SlotState.FAILED, None, (expectation.too_fast(host, slot, run, ran),),
                          run_id=run.run_id, started_at=started_at, finished_at=finished_at)
    view = SlotView(slot.slot_id, slot.slot_at, slot.due_start_at, slot.due_complete_at,
                    slot.state, run.run_id, started_at, finished_at, None, slot.zone)
    late = finished_at > slot.due_complete_at or (
        started_at is not None and started_at > slot.due_start_at)
    verdict = expectation.completed(view, run, finished_at,
                                    after_failure=slot.state == SlotState.FAILED)
    return SlotChange(SlotState.LATE if late else SlotState.SUCCEEDED, None, (verdict,),
                      run_id=run.run_id, started_at=started_at, finished_at=finished_at)


def judge_deadline(expectation: JobScheduleExpectation, host: str, slot: SlotView,
                   now: datetime) -> SlotChange:
    """What the passing of a slot's due time means (pure). Called when next_check_at <= now."""
    if slot.state == SlotState.WAITING:
        if now >= slot.due_complete_at:
            return SlotChange(SlotState.MISSED, None, (expectation.did_not_complete(host, slot),))
        if now >= slot.due_start_at:
            return SlotChange(SlotState.MISSED, slot.due_complete_at,
                              (expectation.did_not_start(host, slot),))
        return SlotChange(SlotState.WAITING, slot.due_start_at)
    if slot.state == SlotState.MISSED:
        if now >= slot.due_complete_at:
            return SlotChange(SlotState.MISSED, None, (expectation.did_not_complete(host, slot),))
        return SlotChange(SlotState.MISSED, slot.due_complete_at)
    if slot.state == SlotState.STARTED:
        if now >= slot.due_complete_at:
            return SlotChange(SlotState.MISSED, None, (expectation.did_not_complete(host, slot),))
        if expectation.max_runtime is not None and slot.started_at is not None:
            too_long_at = slot.started_at + expectation.max_runtime
            if now >= too_long_at:
                return SlotChange(SlotState.STARTED, slot.due_complete_at,
                                  (expectation.running_too_long(host, slot, too_long_at),))
            return SlotChange(SlotState.STARTED, min(too_long_at, slot.due_complete_at))
        return SlotChange(SlotState.STARTED, slot.due_complete_at)
    return SlotChange(slot.state, None)
