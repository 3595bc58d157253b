"""Which of a customer's expectations judge an item: a route per (host, check key or job).

Routes are looked up for every result ingested, so they are cached per (customer, host, check
key or job). A fleet of 5,000 hosts x 10 checks has 50,000 of them, all missed at once after a
start or a reload; a miss is therefore built from two far smaller caches instead of matching
every expectation's globs again: the expectations that watch the subject (per check key or
job: tens of entries), and whether an expectation's host globs take a host (per expectation and
host). A runaway key space (a check key with a counter in it) cannot eat memory: each cache is
bounded and starts over when full.
"""

from __future__ import annotations

from typing import TypeVar

from collector.customers import CustomerFile
from collector.expectations.base import ExpectationBase

K = TypeVar("K")
V = TypeVar("V")

# A fleet has far fewer distinct keys than this (5,000 hosts x 10 checks).
ROUTE_CACHE_MAX = 200_000


class Routes:
    """Caches of routes for one set of customer files; make a new one when they are reloaded."""

    def __init__(self, max_entries: int = ROUTE_CACHE_MAX) -> None:
        self._max_entries = max_entries
        self._routes: dict[tuple[str, str, bool, str], tuple[ExpectationBase, ...]] = {}
        self._by_subject: dict[tuple[str, bool, str], tuple[ExpectationBase, ...]] = {}
        # Keyed by the expectation object's id: the objects live as long as this cache.
        self._host_taken: dict[tuple[int, str], bool] = {}

    def route(self, customer: CustomerFile, host: str, is_result: bool,
              subject: str) -> tuple[ExpectationBase, ...]:
        """The expectations that judge this check key (is_result) or job on host, in file
        order."""
        key = (customer.customer, host, is_result, subject)
        found = self._routes.get(key)
        if found is None:
            found = tuple(e for e in self._watching(customer, is_result, subject)
                          if self._takes_host(e, host))
            self._routes = _bounded(self._routes, self._max_entries)
            self._routes[key] = found
        return found

    def _watching(self, customer: CustomerFile, is_result: bool,
                  subject: str) -> tuple[ExpectationBase, ...]:
        key = (customer.customer, is_result, subject)
        found = self._by_subject.get(key)
        if found is None:
            if is_result:
                found = tuple(e for e in customer.expectations
                              if e.watches_results and e.applies_to_check(subject))
            else:
                found = tuple(e for e in customer.expectations
                              if e.watches_job_runs and e.applies_to_job(subject))
            self._by_subject = _bounded(self._by_subject, self._max_entries)
            self._by_subject[key] = found
        return found

    def _takes_host(self, expectation: ExpectationBase, host: str) -> bool:
        key = (id(expectation), host)
        taken = self._host_taken.get(key)
        if taken is None:
            taken = expectation.applies_to_host(host)
            self._host_taken = _bounded(self._host_taken, self._max_entries)
            self._host_taken[key] = taken
        return taken


def _bounded(cache: dict[K, V], max_entries: int) -> dict[K, V]:
    return {} if len(cache) >= max_entries else cache
