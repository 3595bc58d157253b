"""The current status of every check, kept beside the history so "is it OK now?" is one read.

A batch can hold several results for one check (a 1 s probe, a 5 s batch). They are folded into
one row per check first, in sequence order, so the upsert writes each check once and
`status_since` is the moment the check entered the status it has now:

- the status never changed within the batch: the stored `status_since` stays if the stored
  status is the same, else it becomes the batch's first observation of the status;
- the status changed within the batch: `status_since` is the observation where the last change
  happened, whatever was stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from collector.store.driver_rows import DriverInsert, time_to_db
from collector.store.schema import check_state


class CheckStateFolder:
    """Folds a batch's results, in sequence order, into one observation per check.

    Cheap per result (a dict lookup and a tuple): it runs for every result ingested.
    """

    def __init__(self) -> None:
        # Per check: the latest result's fields, when its status began, whether it changed.
        self._latest: dict[tuple[str, str, str], tuple[tuple[Any, ...], datetime, bool]] = {}

    def observe(
        self, customer: str, host: str, check_key: str, probe: str, status: str, summary: str,
        metrics_json: str, observed_at: datetime, agent_id: str,
    ) -> None:
        key = (customer, host, check_key)
        fields = (probe, status, summary, metrics_json, observed_at, agent_id)
        previous = self._latest.get(key)
        if previous is None:
            self._latest[key] = (fields, observed_at, False)
        elif previous[0][1] == status:
            self._latest[key] = (fields, previous[1], previous[2])
        else:
            self._latest[key] = (fields, observed_at, True)

    def write(self, conn: sa.Connection) -> None:
        """Upsert the folded checks into check_state, one statement per kind."""
        stored_time = time_to_db(conn)
        continuing: list[tuple[Any, ...]] = []
        changed: list[tuple[Any, ...]] = []
        for (customer, host, check_key), (fields, since, changed_in_batch) in (
                self._latest.items()):
            probe, status, summary, metrics_json, observed_at, agent_id = fields
            (changed if changed_in_batch else continuing).append((
                customer, host, check_key, probe, status, summary, metrics_json,
                stored_time(observed_at), stored_time(since), agent_id,
            ))
        # A check whose status changed within the batch takes the batch's status_since; the
        # others keep the stored one when the stored status is the same.
        _UPSERTS[True].execute(conn, continuing)
        _UPSERTS[False].execute(conn, changed)


def _upsert(dialect_insert: Any, keep_since_when_unchanged: bool) -> Any:
    statement = dialect_insert(check_state)
    excluded = statement.excluded
    status_since: Any = excluded.status_since
    if keep_since_when_unchanged:
        status_since = sa.case(
            (check_state.c.status == excluded.status, check_state.c.status_since),
            else_=excluded.status_since,
        )
    return statement.on_conflict_do_update(
        index_elements=[check_state.c.customer, check_state.c.host, check_state.c.check_key],
        set_={
            "probe": excluded.probe,
            "status": excluded.status,
            "summary": excluded.summary,
            "metrics_json": excluded.metrics_json,
            "observed_at": excluded.observed_at,
            "agent_id": excluded.agent_id,
            "status_since": status_since,
        },
    )


_COLUMNS = ("customer", "host", "check_key", "probe", "status", "summary", "metrics_json",
            "observed_at", "status_since", "agent_id")
# Built once: building the upsert (its `excluded` alias, its cache key) for every batch was a
# third of the writer's time per small batch (bench/incidents.py, 5,000 agents). Both dialects
# spell it the same way; only the import differs. Keyed by keep_since_when_unchanged.
_UPSERTS: Mapping[bool, DriverInsert] = MappingProxyType({
    keep: DriverInsert(_upsert(sqlite.insert, keep), _upsert(postgresql.insert, keep), _COLUMNS)
    for keep in (True, False)
})

