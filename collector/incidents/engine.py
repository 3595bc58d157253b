"""From committed items to incidents: route each result or job run to the expectations that
judge it, and hand their verdicts to the lifecycle.

This runs for every result the collector ingests (20,000 a second), and nearly all of them are
OK. So the hot path is dict lookups: which expectations judge (customer, host, check) is worked
out once and cached, and a recovery touches the store only when an incident is actually open
for its key, which an in-memory set of open dedup keys answers. The set is loaded from the store
on first use; `invalidate()` drops it when a transaction that changed incidents was rolled back.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import structlog

from collector.customers import CustomerFile, CustomerSet
from collector.expectations.base import ExpectationBase, Verdict, matching
from collector.incidents.lifecycle import (
    ChangeKind,
    IncidentChange,
    IncidentLifecycle,
    dedup_key,
)
from collector.outbox import enqueue
from probes.clock import Clock
from probes.result import Item, Result

# Routes are cached per (customer, host, check key or job); a fleet has far fewer distinct
# keys than this (5,000 hosts x 10 checks), and a runaway check-key space cannot eat memory.
ROUTE_CACHE_MAX = 200_000

_RouteKey = tuple[str, str, bool, str]


class IncidentEngine:
    def __init__(self, customers: CustomerSet, clock: Clock) -> None:
        self._customers = customers
        self._clock = clock
        self._lifecycle = IncidentLifecycle(clock)
        self._routes: dict[_RouteKey, tuple[ExpectationBase, ...]] = {}
        self._open_keys: set[str] | None = None
        self._log = structlog.get_logger("collector.incidents")

    @property
    def customers(self) -> CustomerSet:
        return self._customers

    def replace_customers(self, customers: CustomerSet) -> None:
        """Judge from now on with a reloaded set; open incidents stay as they are."""
        self._customers = customers
        self._routes = {}

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
        for item in items:
            if isinstance(item, Result):
                for expectation in self._route(customer_file, host, True, item.check):
                    verdict = expectation.evaluate_result(host, item)
                    if verdict is not None:
                        self._apply(conn, customer_file, host, verdict, agent_id)
            else:
                for expectation in self._route(customer_file, host, False, item.job):
                    verdict = expectation.evaluate_job_run(host, item)
                    if verdict is not None:
                        self._apply(conn, customer_file, host, verdict, agent_id)

    def _route(self, customer: CustomerFile, host: str, is_result: bool,
               subject: str) -> tuple[ExpectationBase, ...]:
        key = (customer.customer, host, is_result, subject)
        found = self._routes.get(key)
        if found is None:
            if is_result:
                found = matching(customer.expectations, host, check_key=subject)
            else:
                found = matching(customer.expectations, host, job=subject)
            if len(self._routes) >= ROUTE_CACHE_MAX:
                self._routes = {}
            self._routes[key] = found
        return found

    def _apply(self, conn: sa.Connection, customer: CustomerFile, host: str, verdict: Verdict,
               agent_id: str) -> None:
        open_keys = self._open_keys if self._open_keys is not None else set()
        change: IncidentChange | None
        if verdict.is_problem:
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
        # Same transaction as the change: a committed incident always has its notifications.
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
