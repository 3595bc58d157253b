"""check_state upserts: one statement per dialect and kind, built once, right for every batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from collector.check_state import CheckStateFolder
from collector.store.engine import WRITER
from collector.store.schema import check_state

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
POSTGRESQL = postgresql.dialect()  # type: ignore[no-untyped-call]


def _batch(conn: sa.Connection, minute: int, statuses: dict[tuple[str, str], list[str]]) -> None:
    folder = CheckStateFolder()
    for (host, check), seen in statuses.items():
        for offset, status in enumerate(seen):
            at = T0 + timedelta(minutes=minute, seconds=offset)
            folder.observe("acme", host, check, "p", status, status, "{}", at, "relay")
    folder.write(conn)


def _rows(conn: sa.Connection) -> dict[tuple[str, str], tuple[str, datetime]]:
    return {(r.host, r.check_key): (r.status, r.status_since.replace(tzinfo=UTC))
            for r in conn.execute(sa.select(check_state))}


def test_every_batch_keeps_or_moves_status_since_per_check(store: sa.Engine) -> None:
    with store.connect().execution_options(**WRITER) as conn, conn.begin():
        _batch(conn, 0, {("web1", "disk:/"): ["OK"], ("web2", "disk:/"): ["OK"]})
        # web1 stays OK (kept since minute 0); web2 turns CRIT within the batch.
        _batch(conn, 1, {("web1", "disk:/"): ["OK"], ("web2", "disk:/"): ["OK", "CRIT"]})
        _batch(conn, 2, {("web1", "disk:/"): ["WARN"], ("web2", "disk:/"): ["CRIT"]})
        rows = _rows(conn)
    assert rows[("web1", "disk:/")] == ("WARN", T0 + timedelta(minutes=2))
    assert rows[("web2", "disk:/")] == ("CRIT", T0 + timedelta(minutes=1, seconds=1))


def test_the_postgresql_upsert_is_an_on_conflict_update_keeping_status_since() -> None:
    from collector.check_state import _UPSERTS

    sql = str(_UPSERTS[True].portable.compile(dialect=POSTGRESQL))
    assert "ON CONFLICT (customer, host, check_key) DO UPDATE" in sql
    assert "CASE WHEN (check_state.status = excluded.status)" in sql
    assert "CASE" not in str(_UPSERTS[False].portable.compile(dialect=POSTGRESQL))
