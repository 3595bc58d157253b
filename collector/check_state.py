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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from collector.store.schema import check_state


@dataclass(frozen=True, slots=True)
class CheckObservation:
    customer: str
    host: str
    check_key: str
    probe: str
    status: str
    summary: str
    metrics_json: str
    observed_at: datetime
    agent_id: str
    # When this status began, as far as the batch can tell.
    status_since: datetime
    status_changed_in_batch: bool = False


def fold_observations(observations: Iterable[CheckObservation]) -> list[CheckObservation]:
    """One observation per check: the latest, with status_since as the module docstring says.

    `observations` must be in sequence order.
    """
    latest: dict[tuple[str, str, str], CheckObservation] = {}
    for observation in observations:
        key = (observation.customer, observation.host, observation.check_key)
        previous = latest.get(key)
        if previous is None:
            latest[key] = observation
        elif previous.status == observation.status:
            latest[key] = replace(
                observation,
                status_since=previous.status_since,
                status_changed_in_batch=previous.status_changed_in_batch,
            )
        else:
            latest[key] = replace(observation, status_changed_in_batch=True)
    return list(latest.values())


def _insert(conn: sa.Connection) -> Any:
    # Both dialects spell the upsert the same way; only the import differs.
    if conn.dialect.name == "postgresql":
        return postgresql.insert(check_state)
    return sqlite.insert(check_state)


def _row(observation: CheckObservation) -> dict[str, Any]:
    return {
        "customer": observation.customer,
        "host": observation.host,
        "check_key": observation.check_key,
        "probe": observation.probe,
        "status": observation.status,
        "summary": observation.summary,
        "metrics_json": observation.metrics_json,
        "observed_at": observation.observed_at,
        "status_since": observation.status_since,
        "agent_id": observation.agent_id,
    }


def upsert_check_states(conn: sa.Connection, observations: Sequence[CheckObservation]) -> None:
    """Write folded observations (see fold_observations) into check_state."""
    continuing = [_row(o) for o in observations if not o.status_changed_in_batch]
    changed = [_row(o) for o in observations if o.status_changed_in_batch]
    for rows, keep_since_when_unchanged in ((continuing, True), (changed, False)):
        if not rows:
            continue
        statement = _insert(conn)
        excluded = statement.excluded
        status_since: Any = excluded.status_since
        if keep_since_when_unchanged:
            status_since = sa.case(
                (check_state.c.status == excluded.status, check_state.c.status_since),
                else_=excluded.status_since,
            )
        statement = statement.on_conflict_do_update(
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
        conn.execute(statement, rows)
