"""The incidents related to one: the history a desk agent checks first ("has this happened
before?"): the same customer's incidents on the same host, or about the same check or job on
any host, opened in the 30 days before it (or since), newest first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from collector.store.schema import incidents

# A ticket shows a short list; a host that failed every night of the month still fits, and a
# runaway check cannot make the API answer with thousands of rows.
RELATED_MAX = 20

RELATED_COLUMNS = (incidents.c.id, incidents.c.state, incidents.c.severity, incidents.c.title,
                   incidents.c.host, incidents.c.subject, incidents.c.opened_at,
                   incidents.c.resolved_at)


def related_incidents(conn: sa.Connection, incident_row: Any, days: int = 30,
                      limit: int = RELATED_MAX) -> Sequence[sa.RowMapping]:
    """Mappings (RELATED_COLUMNS) of the customer's other incidents on the same host or about the
    same subject, opened at most `days` before incident_row was, newest first."""
    since = incident_row.opened_at - timedelta(days=days)
    return conn.execute(
        sa.select(*RELATED_COLUMNS)
        .where(
            incidents.c.customer == incident_row.customer,
            sa.or_(incidents.c.host == incident_row.host,
                   incidents.c.subject == incident_row.subject),
            incidents.c.id != incident_row.id,
            incidents.c.opened_at >= since,
        )
        .order_by(incidents.c.opened_at.desc(), incidents.c.id.desc())
        .limit(limit)
    ).mappings().all()
