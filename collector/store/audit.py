"""The audit log: who did what, when. Refused agents, acknowledgements, remote commands."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from collector.store.schema import audit_log

# Long enough for a reason with a few names in it; an attacker's input must not grow the table.
AUDIT_DETAIL_MAX_CHARS = 2000


def record_audit(
    conn: sa.Connection, *, at: datetime, actor: str, action: str, target: str = "",
    detail: str = "",
) -> None:
    conn.execute(
        audit_log.insert().values(
            at=at, actor=actor[:128], action=action[:64], target=target[:512],
            detail=detail[:AUDIT_DETAIL_MAX_CHARS],
        )
    )
