"""`GET /api/v1/audit`: who did what, when.

Admins read the whole log: acknowledgements and resolutions, refused agents, reloads, remote
commands. Other tokens read only what people did to incidents of the customers in their scope
(entries with target `incident:<id>`): a desk lead sees who acknowledged what, but never another
customer's incidents nor the collector's security events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from collector.api.deps import Caller, Context
from collector.api.schemas import Problem, UtcDateTime
from collector.store.schema import audit_log, incidents

INCIDENT_TARGET_PREFIX = "incident:"

router = APIRouter(prefix="/api/v1", tags=["audit"],
                   responses={401: {"model": Problem, "description": "no or a wrong token"}})


class AuditEntry(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    at: UtcDateTime
    actor: str
    action: str
    target: str
    detail: str


class AuditLog(BaseModel):
    model_config = ConfigDict(frozen=True)

    entries: list[AuditEntry]
    # True when more entries matched than `limit`; the newest are returned.
    truncated: bool


@router.get("/audit", response_model=AuditLog)
def list_audit(
    context: Context,
    caller: Caller,
    since: Annotated[datetime | None, Query(description="only entries at or after this time "
                                                        "(ISO 8601; UTC when no offset)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditLog:
    query = sa.select(audit_log)
    if caller.role != "admin":
        incidents_in_scope = (
            sa.select(sa.literal(INCIDENT_TARGET_PREFIX)
                      + sa.cast(incidents.c.id, sa.String))
            .where(caller.scope_filter(incidents.c.customer))
        )
        query = query.where(audit_log.c.target.in_(incidents_in_scope))
    if since is not None:
        since_utc = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        query = query.where(audit_log.c.at >= since_utc)
    query = query.order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).limit(limit + 1)
    with context.engine.connect() as conn:
        rows = conn.execute(query).all()
    return AuditLog(entries=[AuditEntry.model_validate(row) for row in rows[:limit]],
                    truncated=len(rows) > limit)
