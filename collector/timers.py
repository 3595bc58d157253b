"""The due-time loop: deadlines of scheduled jobs, silent agents, stale checks, flapping ends.

Silence cannot be noticed when something arrives; it is noticed when a due time passes. Every
due time lives in the store, so a restart in the middle of the night loses none:

- a job slot's `next_check_at` (job_slots: its due start, then its due completion);
- an agent's `last_seen_at` plus its allowance (agents);
- a check's `observed_at` plus its max age (check_state);
- a flapping key's `check_at` (flapping);
- an open incident's `respond_by` (incidents): not acknowledged by then, it escalates
  (collector/incidents/escalation.py).

One step, `run_due(conn, now)`, judges whatever is due at `now` and returns the next due time;
`run()` repeats it, sleeping until that time, at most `max_sleep_s`, and less when `wake()` is
called (a job run started: its max_runtime may fall due before the next poll). All work runs in
the StoreWriter's thread, like every other write, so it never races ingest. Tests call
`run_due` (or `step`) directly with a ManualClock: a whole night takes seconds.

From healthchecks' `sendalerts` (handle_going_down), four moves: the due time is a column polled
earliest first; the change is a conditional update (a slot changed meanwhile is left alone:
another worker got there first); the flip is dated at the due time, not now; and a row whose
evaluation throws moves an hour ahead, "otherwise sendalerts may end up in a crash loop".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog

from collector.customers import CustomerFile
from collector.expectations.deadline import MATERIALIZE_HORIZON, JobScheduleExpectation
from collector.expectations.freshness import CheckFreshnessExpectation
from collector.expectations.heartbeat import AgentHeartbeatExpectation, agent_subject
from collector.incidents.engine import IncidentEngine
from collector.incidents.escalation import Escalator
from collector.incidents.lifecycle import dedup_key
from collector.incidents.maintenance import window_end_after
from collector.store.schema import agents, check_state, incidents
from collector.store.writer import StoreWriter
from probes.clock import Clock

# Slots are materialised MATERIALIZE_HORIZON ahead (deadline.py), and again every
# MATERIALIZE_EVERY: a night's slots exist (and survive a restart) long before they are due. A
# host that first reports between two passes gets its slots at once (IncidentEngine.on_items).
MATERIALIZE_EVERY = timedelta(hours=1)
# A slot whose evaluation throws is looked at again this much later, not at once, forever.
RETRY_FAILED_AFTER = timedelta(hours=1)
# Slots judged per query; a backlog (after a long outage) is worked through in such bites.
SLOT_BATCH = 500
MAX_SLOT_BATCHES_PER_STEP = 20
# The loop polls at least this often, so a due time that appeared without a wake() (a new
# agent, a reloaded customer file) is at most this late.
DEFAULT_MAX_SLEEP_S = 5.0


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _earliest(*moments: datetime | None) -> datetime | None:
    found = [m for m in moments if m is not None]
    return min(found) if found else None


@dataclass(frozen=True, slots=True)
class _Silence:
    customer: CustomerFile
    expectation: AgentHeartbeatExpectation
    agent_id: str
    host: str
    last_seen_at: datetime
    silent_at: datetime


class DueTimers:
    def __init__(
        self,
        writer: StoreWriter,
        engine: IncidentEngine,
        clock: Clock,
        *,
        heartbeat_interval: timedelta,
        max_sleep_s: float = DEFAULT_MAX_SLEEP_S,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self._writer = writer
        self._engine = engine
        self._clock = clock
        self._heartbeat_interval = heartbeat_interval
        self._max_sleep_s = max_sleep_s
        self._log = logger or structlog.get_logger("collector.timers")
        self._materialized_at: datetime | None = None
        self._materialized_for: object = None
        # What was last told per incident key (the occurrence and the held-back count), so an
        # unchanged silence or staleness is not written again on every poll. In memory: after a
        # restart it is told once more, as the same occurrence (counted once).
        self._told: dict[str, str] = {}
        # (customer, agent_id) found silent by the last poll: the ones that may be back now.
        self._silent_agents: set[tuple[str, str]] = set()
        self._escalator = Escalator()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            try:
                next_due = await self.step()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive one bad step
                self._log.exception("timers.step_failed", error=str(exc))
                next_due = None
            delay = self._max_sleep_s
            if next_due is not None:
                delay = min(delay, max((next_due - self._clock.now()).total_seconds(), 0.0))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def step(self) -> datetime | None:
        """One pass at the clock's now, in the writer thread; returns the next due time."""
        now = self._clock.now()
        return await self._writer.run(lambda conn: self.run_due(conn, now))

    def wake(self) -> None:
        """Poll now rather than at the next due time; callable from any thread."""
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    # ---- one step, in the writer thread ---------------------------------------------------

    def run_due(self, conn: sa.Connection, now: datetime) -> datetime | None:
        """Judge everything due at `now`; returns the next due time (None: nothing pending)."""
        now = _utc(now)
        next_materialize = self._materialize_if_due(conn, now)
        next_slot = self._judge_due_slots(conn, now)
        silences, next_silence = self._find_silences(conn, now)
        next_stale = self._judge_freshness(conn, now)
        self._tell_silences(conn, silences)
        self._engine.flapping_ended(conn, now)
        next_escalation = self._escalator.run_due(conn, self._engine.customers, now)
        return _earliest(next_materialize, next_slot, next_silence, next_stale,
                         self._engine.next_flapping_check_at(conn), next_escalation)

    # ---- job slots ------------------------------------------------------------------------

    def _materialize_if_due(self, conn: sa.Connection, now: datetime) -> datetime:
        customers = self._engine.customers
        fresh = (self._materialized_at is not None and self._materialized_for is customers
                 and now - self._materialized_at < MATERIALIZE_EVERY)
        if not fresh:
            for customer in customers:
                schedules = [e for e in customer.expectations
                             if isinstance(e, JobScheduleExpectation)]
                if not schedules:
                    continue
                hosts = known_hosts(conn, customer)
                for expectation in schedules:
                    try:
                        with conn.begin_nested():
                            self._engine.slots.materialize(
                                conn, customer.customer, customer.zone, expectation, hosts,
                                now, MATERIALIZE_HORIZON)
                    except Exception as exc:  # noqa: BLE001 - one bad expectation, not all
                        self._log.exception("timers.materialize_failed",
                                            customer=customer.customer,
                                            expectation=expectation.name, error=str(exc))
            self._materialized_at = now
            self._materialized_for = customers
        return (self._materialized_at or now) + MATERIALIZE_EVERY

    def _judge_due_slots(self, conn: sa.Connection, now: datetime) -> datetime | None:
        slots = self._engine.slots
        for _ in range(MAX_SLOT_BATCHES_PER_STEP):
            rows = slots.due(conn, now, SLOT_BATCH)
            for row in rows:
                self._judge_slot(conn, row, now)
            if len(rows) < SLOT_BATCH:
                break
        return slots.next_check_at(conn)

    def _judge_slot(self, conn: sa.Connection, row: Any, now: datetime) -> None:
        customer = self._engine.customers.get(row.customer)
        expectation = _schedule_named(customer, row.expectation)
        if customer is None or expectation is None:
            self._engine.slots.settle(conn, row.id)  # its expectation is gone from the file
            return
        try:
            with conn.begin_nested():
                due_at = _utc(row.next_check_at)
                maintenance_ends = window_end_after(customer, row.host, row.expectation, due_at)
                verdicts = self._engine.slots.evaluate(conn, row, customer.zone, expectation,
                                                       now, maintenance_ends)
                for verdict in verdicts or ():
                    self._engine.apply_verdict(conn, customer, row.host, verdict)
                if maintenance_ends is not None and maintenance_ends > now:
                    self._log.info("timers.deadline_in_maintenance", slot_id=row.id,
                                   customer=row.customer, host=row.host,
                                   judged_again_at=maintenance_ends.isoformat())
        except Exception as exc:  # noqa: BLE001 - move the row ahead rather than crash-loop
            self._engine.invalidate()
            self._log.exception("timers.slot_failed", slot_id=row.id, customer=row.customer,
                                host=row.host, expectation=row.expectation, error=str(exc))
            self._engine.slots.postpone(conn, row.id, now + RETRY_FAILED_AFTER)

    # ---- silent agents --------------------------------------------------------------------

    def _find_silences(self, conn: sa.Connection,
                       now: datetime) -> tuple[list[_Silence], datetime | None]:
        """Mark silent hosts (so freshness holds back) and resolve agents that are back;
        the silences are told after freshness, with its held-back count."""
        silences: list[_Silence] = []
        next_due: datetime | None = None
        found_silent: set[tuple[str, str]] = set()
        for customer in self._engine.customers:
            watches = [e for e in customer.expectations
                       if isinstance(e, AgentHeartbeatExpectation)]
            if not watches:
                continue
            name = customer.customer
            allowances = [w.allowance(self._heartbeat_interval) for w in watches]
            cut = now - min(allowances)
            # Only agents that may be silent by now reach Python: a fleet of live agents costs
            # two indexed-free scans in SQLite per poll, not a row object per agent.
            rows = conn.execute(
                sa.select(agents.c.agent_id, agents.c.host, agents.c.last_seen_at)
                .where(agents.c.customer == name, agents.c.last_seen_at <= cut)
            ).all()
            for row in rows:
                last_seen = _utc(row.last_seen_at)
                for expectation in watches:
                    if not row.host or not expectation.applies_to_host(row.host):
                        continue
                    silent_at = last_seen + expectation.allowance(self._heartbeat_interval)
                    if now >= silent_at:
                        self._engine.mark_silent(name, row.host)
                        found_silent.add((name, row.agent_id))
                        silences.append(_Silence(customer, expectation, row.agent_id, row.host,
                                                 last_seen, silent_at))
                    else:
                        next_due = _earliest(next_due, silent_at)
            # The next silence among the others: the oldest last word plus the shortest
            # allowance (early for hosts no watch covers; then a poll finds nothing).
            oldest_live = conn.execute(
                sa.select(sa.func.min(agents.c.last_seen_at))
                .where(agents.c.customer == name, agents.c.last_seen_at > cut)
            ).scalar()
            if oldest_live is not None:
                next_due = _earliest(next_due, _utc(oldest_live) + min(allowances))
            self._agents_back(conn, customer, watches, now, found_silent)
        self._silent_agents = found_silent
        return silences, next_due

    def _agents_back(self, conn: sa.Connection, customer: CustomerFile,
                     watches: Sequence[AgentHeartbeatExpectation], now: datetime,
                     silent_now: set[tuple[str, str]]) -> None:
        """Resolve the silence of agents that talk again: those found silent by the last poll
        and those with an open incident (after a restart the store is all there is)."""
        name = customer.customer
        candidates = {agent_id for (owner, agent_id) in self._silent_agents if owner == name}
        candidates.update(
            subject.removeprefix("agent:") for subject in conn.execute(
                sa.select(incidents.c.subject).where(
                    incidents.c.customer == name, incidents.c.state != "resolved",
                    incidents.c.expectation.in_([w.name for w in watches]))
            ).scalars())
        for agent_id in sorted(candidates):
            if (name, agent_id) in silent_now:
                continue
            row = conn.execute(
                sa.select(agents.c.host, agents.c.last_seen_at)
                .where(agents.c.agent_id == agent_id, agents.c.customer == name)
            ).first()
            if row is None or row.last_seen_at is None or not row.host:
                continue
            last_seen = _utc(row.last_seen_at)
            for expectation in watches:
                if (expectation.applies_to_host(row.host)
                        and now < last_seen + expectation.allowance(self._heartbeat_interval)):
                    self._agent_back(conn, customer, expectation, agent_id, row.host, last_seen)

    def _agent_back(self, conn: sa.Connection, customer: CustomerFile,
                    expectation: AgentHeartbeatExpectation, agent_id: str, host: str,
                    last_seen: datetime) -> None:
        key = dedup_key(customer.customer, host, expectation.name, agent_subject(agent_id))
        self._told.pop(key, None)
        if not self._engine.is_open(conn, key):
            self._engine.mark_back(customer.customer, host)
            return
        held = self._engine.mark_back(customer.customer, host)
        self._engine.apply_verdict(conn, customer, host,
                                   expectation.back(agent_id, last_seen, customer.zone, held),
                                   hold_if_silent=False)

    def _tell_silences(self, conn: sa.Connection, silences: Iterable[_Silence]) -> None:
        for silence in silences:
            customer, host = silence.customer, silence.host
            held = self._engine.held_back(customer.customer, host)
            verdict = silence.expectation.silent(silence.agent_id, host, silence.last_seen_at,
                                                 silence.silent_at, customer.zone, held)
            key = dedup_key(customer.customer, host, verdict.expectation, verdict.subject)
            told = f"{verdict.occurrence}/{held}"
            if self._told.get(key) == told:
                continue
            self._engine.apply_verdict(conn, customer, host, verdict, hold_if_silent=False)
            self._told[key] = told

    # ---- stale checks ---------------------------------------------------------------------

    def _judge_freshness(self, conn: sa.Connection, now: datetime) -> datetime | None:
        """Tell stale checks, resolve the ones that report again; returns the next staleness.

        Only stale rows, and the rows of open freshness incidents, reach Python: with 50,000
        checks reporting every few seconds, reading every row on each poll held the writer
        (and with it every agent's ack) for about half a second (bench/incidents.py)."""
        next_due: datetime | None = None
        for customer in self._engine.customers:
            for expectation in customer.expectations:
                if isinstance(expectation, CheckFreshnessExpectation):
                    next_due = _earliest(next_due,
                                         self._judge_one_freshness(conn, customer, expectation,
                                                                   now))
        return next_due

    def _judge_one_freshness(self, conn: sa.Connection, customer: CustomerFile,
                             expectation: CheckFreshnessExpectation,
                             now: datetime) -> datetime | None:
        name = customer.customer
        cut = now - expectation.max_age
        stale_rows = conn.execute(
            sa.select(check_state.c.host, check_state.c.check_key, check_state.c.observed_at)
            .where(check_state.c.customer == name, check_state.c.observed_at <= cut)
        ).all()
        for row in stale_rows:
            if expectation.watches(row.check_key) and expectation.applies_to_host(row.host):
                key = dedup_key(name, row.host, expectation.name, row.check_key)
                self._tell_stale(conn, customer, expectation, row.host, row.check_key,
                                 _utc(row.observed_at), key)
        # Fresh again: only a check with an open incident has anything to resolve.
        open_rows = conn.execute(
            sa.select(incidents.c.host, incidents.c.subject).where(
                incidents.c.customer == name, incidents.c.expectation == expectation.name,
                incidents.c.state != "resolved")
        ).all()
        for host, check_key in open_rows:
            observed_at = conn.execute(
                sa.select(check_state.c.observed_at).where(
                    check_state.c.customer == name, check_state.c.host == host,
                    check_state.c.check_key == check_key)
            ).scalar()
            if observed_at is None or _utc(observed_at) <= cut:
                continue
            key = dedup_key(name, host, expectation.name, check_key)
            self._told.pop(key, None)
            if self._engine.is_open(conn, key):
                self._engine.apply_verdict(
                    conn, customer, host,
                    expectation.fresh(check_key, _utc(observed_at), customer.zone))
        # The next staleness: the oldest fresh check (early for checks the glob leaves out;
        # then a poll finds nothing).
        oldest_fresh = conn.execute(
            sa.select(sa.func.min(check_state.c.observed_at))
            .where(check_state.c.customer == name, check_state.c.observed_at > cut)
        ).scalar()
        return None if oldest_fresh is None else expectation.stale_at(_utc(oldest_fresh))

    def _tell_stale(self, conn: sa.Connection, customer: CustomerFile,
                    expectation: CheckFreshnessExpectation, host: str, check_key: str,
                    observed: datetime, key: str) -> None:
        verdict = expectation.stale(host, check_key, observed, customer.zone)
        if self._told.get(key) == verdict.occurrence:
            return
        held_back = self._engine.is_silent(customer.customer, host)
        self._engine.apply_verdict(conn, customer, host, verdict)
        if not held_back or self._engine.is_open(conn, key):
            # Told. A held-back one (silent agent) is not: when the agent is back and the check
            # is still stale, it opens then.
            self._told[key] = verdict.occurrence


def _schedule_named(customer: CustomerFile | None, name: str) -> JobScheduleExpectation | None:
    if customer is None:
        return None
    for expectation in customer.expectations:
        if isinstance(expectation, JobScheduleExpectation) and expectation.name == name:
            return expectation
    return None


def known_hosts(conn: sa.Connection, customer: CustomerFile) -> set[str]:
    """Hosts a schedule is materialised for: those that ever reported (an agent's host, or a
    check of an SSH-polled host) and those the customer file lists."""
    name = customer.customer
    found = {h for h in conn.execute(
        sa.select(agents.c.host).where(agents.c.customer == name, agents.c.host != "")
    ).scalars()}
    found.update(conn.execute(
        sa.select(check_state.c.host).where(check_state.c.customer == name).distinct()
    ).scalars())
    # `hosts:` in the customer file (issue 5, customers.py): names, or entries with a name.
    for listed in getattr(customer, "hosts", ()) or ():
        host = listed if isinstance(listed, str) else getattr(listed, "name", None)
        if isinstance(host, str) and host:
            found.add(host)
    return found
