"""From committed items to incidents: route each result or job run to the expectations that
judge it, and hand their verdicts to the lifecycle.

This runs for every result the collector ingests (20,000 a second), and nearly all of them are
OK. So the hot path is dict lookups: which expectations judge (customer, host, check) is worked
out once and cached, and a recovery touches the store only when an incident is actually open
for its key, which an in-memory set of open dedup keys answers. The set is loaded from the store
on first use; `invalidate()` drops it when a transaction that changed incidents was rolled back.

Issue 5 adds, around the lifecycle: job runs also go to their schedule slot (deadline.py) and
their duration history (duration.py), both in the store; thresholds with `open_after` /
`close_after` pass their verdicts through in-memory Streaks; problems of a host whose agent is
silent are held back and counted (heartbeat.py); flips of a flapping key are not notified
(flapping.py). The due-time loop (collector/timers.py) hands its verdicts in through
`apply_verdict`, so its incidents share the open-key cache, the hold-back and the damping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa
import structlog

from collector.customers import CustomerFile, CustomerSet
from collector.expectations.base import ExpectationBase, Verdict
from collector.expectations.deadline import (
    MATERIALIZE_HORIZON,
    JobScheduleExpectation,
    SlotBook,
)
from collector.expectations.duration import JobDurationExpectation
from collector.expectations.duration import judge_run as judge_duration
from collector.expectations.threshold import Streaks, ThresholdExpectation
from collector.incidents.flapping import FlapDetector, FlapEnd
from collector.incidents.lifecycle import (
    ChangeKind,
    IncidentChange,
    IncidentLifecycle,
    dedup_key,
)
from collector.incidents.routing import Routes
from collector.outbox import enqueue, enqueue_event
from probes.clock import Clock
from probes.result import Item, JobRun, Result

# Hosts remembered as having their slots; a runaway host-name space cannot eat memory.
NEW_HOSTS_REMEMBERED = 100_000
# Changes that move a key between problem and fine: what flapping counts.
_FLIPS = frozenset({ChangeKind.OPENED, ChangeKind.REOPENED, ChangeKind.RESOLVED,
                    ChangeKind.RECOVERED})


class IncidentEngine:
    def __init__(self, customers: CustomerSet, clock: Clock) -> None:
        self._customers = customers
        self._clock = clock
        self._lifecycle = IncidentLifecycle(clock)
        self._routes = Routes()
        # (customer, host) whose job slots were made by this process (_materialize_new_host).
        self._hosts_with_slots: set[tuple[str, str]] = set()
        self._open_keys: set[str] | None = None
        self._log = structlog.get_logger("collector.incidents")
        self.slots = SlotBook()
        self._streaks = Streaks()
        self._flaps = FlapDetector()
        # (customer, host) of silent agents -> dedup keys held back meanwhile. Rebuilt by the
        # due-time loop's first heartbeat pass after a restart.
        self._silent: dict[tuple[str, str], set[str]] = {}
        # Set by the app to the due-time loop's wake(): a started run may bring a due time
        # (its max_runtime) nearer than the loop's next poll.
        self.wake_timers: Callable[[], None] | None = None

    @property
    def customers(self) -> CustomerSet:
        return self._customers

    def replace_customers(self, customers: CustomerSet) -> None:
        """Judge from now on with a reloaded set; open incidents stay as they are."""
        self._customers = customers
        self._routes = Routes()

    def invalidate(self) -> None:
        """Forget the cached open keys; call after rolling back a transaction given to
        on_items, so the cache cannot claim an incident the store does not have (or miss one)."""
        self._open_keys = None

    def on_items(self, conn: sa.Connection, agent_id: str, customer: str, host: str,
                 items: Sequence[Item]) -> None:
        """Judge one committed batch of one agent. Writes through conn, never commits."""
        customer_file = self._customers.get(customer)
        if customer_file is None or not customer_file.expectations:
            return
        if self._open_keys is None:
            self._open_keys = self._lifecycle.open_dedup_keys(conn)
        if (customer, host) not in self._hosts_with_slots:
            self._materialize_new_host(conn, customer_file, host)
        for item in items:
            if isinstance(item, Result):
                for expectation in self._routes.route(customer_file, host, True, item.check):
                    if (isinstance(expectation, ThresholdExpectation)
                            and not expectation.counts_results
                            and not expectation.may_be_problem(item)
                            and dedup_key(customer, host, expectation.name, item.check)
                            not in self._open_keys):
                        continue  # fine, and nothing open: its verdict would change nothing
                    verdict = expectation.evaluate_result(host, item)
                    if verdict is None:
                        continue
                    if (isinstance(expectation, ThresholdExpectation)
                            and expectation.counts_results and not self._streaks.admit(
                                self._key(customer_file, host, verdict), expectation, verdict,
                                self._key(customer_file, host, verdict) in self._open_keys)):
                        continue
                    self._apply(conn, customer_file, host, verdict, agent_id)
            else:
                for expectation in self._routes.route(customer_file, host, False, item.job):
                    for verdict in self._judge_job_run(conn, customer_file, expectation, host,
                                                       item):
                        self._apply(conn, customer_file, host, verdict, agent_id)

    def _materialize_new_host(self, conn: sa.Connection, customer: CustomerFile,
                              host: str) -> None:
        """A host's first items since the start: its job slots are made now rather than at the
        due-time loop's next hourly pass, which could come after tonight's deadline (a host
        enrolled at 05:45 for a job due by 06:30). Slots already stored stay as they are."""
        if len(self._hosts_with_slots) >= NEW_HOSTS_REMEMBERED:
            self._hosts_with_slots = set()  # making slots again is harmless, only wasted
        self._hosts_with_slots.add((customer.customer, host))
        schedules = [e for e in customer.expectations
                     if isinstance(e, JobScheduleExpectation) and e.applies_to_host(host)]
        now = self._clock.now()
        for expectation in schedules:
            try:
                # Its own savepoint: judging the host's items must not fail with it; the
                # hourly pass makes the slots then.
                with conn.begin_nested():
                    self.slots.materialize(conn, customer.customer, customer.zone, expectation,
                                           [host], now, MATERIALIZE_HORIZON)
            except Exception as exc:  # noqa: BLE001 - logged with its traceback
                self._log.exception("incidents.new_host_slots_failed", customer=customer.customer,
                                    host=host, expectation=expectation.name, error=str(exc))
        if schedules and self.wake_timers is not None:
            self.wake_timers()

    def _judge_job_run(self, conn: sa.Connection, customer: CustomerFile,
                       expectation: ExpectationBase, host: str,
                       run: JobRun) -> Sequence[Verdict]:
        # Two kinds judge a run against what the store remembers: its slot, its history.
        if isinstance(expectation, JobScheduleExpectation):
            verdicts = self.slots.on_job_run(conn, customer.customer, customer.zone,
                                             expectation, host, run, self._clock.now())
            if self.wake_timers is not None:
                self.wake_timers()
            return verdicts
        if isinstance(expectation, JobDurationExpectation):
            found = judge_duration(conn, customer.customer, expectation, host, run)
        else:
            found = expectation.evaluate_job_run(host, run)
        return () if found is None else (found,)

    @staticmethod
    def _key(customer: CustomerFile, host: str, verdict: Verdict) -> str:
        return dedup_key(customer.customer, host, verdict.expectation, verdict.subject)

    # ---- for the due-time loop (collector/timers.py), in the writer thread ----------------

    def apply_verdict(self, conn: sa.Connection, customer: CustomerFile, host: str,
                      verdict: Verdict, *, hold_if_silent: bool = True) -> None:
        """Hand a timer's verdict to the lifecycle, as ingest's are handed."""
        if self._open_keys is None:
            self._open_keys = self._lifecycle.open_dedup_keys(conn)
        self._apply(conn, customer, host, verdict, "", hold_if_silent=hold_if_silent)

    def is_open(self, conn: sa.Connection, key: str) -> bool:
        if self._open_keys is None:
            self._open_keys = self._lifecycle.open_dedup_keys(conn)
        return key in self._open_keys

    def mark_silent(self, customer: str, host: str) -> None:
        """The host's agent is silent: hold back the problems of its checks."""
        self._silent.setdefault((customer, host), set())

    def mark_back(self, customer: str, host: str) -> int:
        """The host's agent is back; returns how many problems were held back."""
        return len(self._silent.pop((customer, host), set()))

    def is_silent(self, customer: str, host: str) -> bool:
        return (customer, host) in self._silent

    def held_back(self, customer: str, host: str) -> int:
        return len(self._silent.get((customer, host), set()))

    def announce_flapping_ended(self, conn: sa.Connection, end: FlapEnd) -> None:
        """Send the key's current state once more now that it stopped flapping."""
        customer = self._customers.get(end.customer)
        if customer is None:
            return
        if end.incident_open:
            change = IncidentChange(end.incident_id, ChangeKind.FLAPPING_ENDED, end.dedup_key)
            enqueue(conn, change, customer, self._clock.now())
        else:
            enqueue_event(conn, end.incident_id, "resolved", customer, self._clock.now(),
                          change=ChangeKind.FLAPPING_ENDED.value)
        self._log.info("incident.flapping_ended", incident_id=end.incident_id,
                       dedup_key=end.dedup_key, customer=end.customer, host=end.host,
                       incident_open=end.incident_open)

    def flapping_ended(self, conn: sa.Connection, now: datetime) -> list[FlapEnd]:
        ends = self._flaps.ended(conn, now)
        for end in ends:
            self.announce_flapping_ended(conn, end)
        return ends

    def next_flapping_check_at(self, conn: sa.Connection) -> datetime | None:
        return self._flaps.next_check_at(conn)


    def _apply(self, conn: sa.Connection, customer: CustomerFile, host: str, verdict: Verdict,
               agent_id: str, *, hold_if_silent: bool = True) -> None:
        open_keys = self._open_keys if self._open_keys is not None else set()
        change: IncidentChange | None
        if verdict.is_problem:
            held = self._silent.get((customer.customer, host)) if hold_if_silent else None
            if held is not None:
                key = self._key(customer, host, verdict)
                if key not in open_keys:
                    held.add(key)  # the agent's incident counts it; nothing opens meanwhile
                    return
            change = self._lifecycle.record_problem(conn, customer, host, verdict)
            if change.kind is not ChangeKind.SUPPRESSED:
                open_keys.add(change.dedup_key)
        else:
            key = dedup_key(customer.customer, host, verdict.expectation, verdict.subject)
            if key not in open_keys:
                return  # the common case: OK, and nothing was wrong
            # Also when marked recovered (still open): further OK results have nothing to add.
            open_keys.discard(key)
            change = self._lifecycle.record_recovery(conn, customer, host, verdict)
        if change is None or change.kind is ChangeKind.REPEATED:
            return
        if change.kind in _FLIPS and self._flaps.on_flip(
                conn, change.dedup_key, customer.customer, host, change.incident_id,
                self._clock.now()):
            change = replace(change, notify=False)
        # Same transaction as the change: a committed incident always has its notifications.
        # A flapping key's flips are not sent; flapping_ended() sends its state at the end.
        if change.notify:
            enqueue(conn, change, customer, self._clock.now())
        log = self._log.bind(incident_id=change.incident_id, dedup_key=change.dedup_key,
                             customer=customer.customer, host=host, agent_id=agent_id)
        if change.kind is ChangeKind.OPENED:
            log.info("incident.opened", severity=verdict.severity.value, title=verdict.title)
        elif change.kind is ChangeKind.REOPENED:
            log.info("incident.reopened", severity=verdict.severity.value, title=verdict.title)
        elif change.kind is ChangeKind.SUPPRESSED:
            log.info("incident.suppressed", severity=verdict.severity.value, title=verdict.title)
        elif change.kind is ChangeKind.UPGRADED:
            log.info("incident.upgraded", severity=verdict.severity.value)
        elif change.kind is ChangeKind.RECOVERED:
            log.info("incident.recovered", note=verdict.note)
        else:
            log.info("incident.resolved", note=verdict.note)
