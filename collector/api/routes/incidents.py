"""`GET /api/v1/incidents` and `GET /api/v1/incidents/{id}`, filtered by the token's scope."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, status

from collector.api.deps import ApiContext, Caller, Context
from collector.api.schemas import (
    Incident,
    IncidentDetail,
    IncidentEvent,
    IncidentList,
    Problem,
    RelatedIncident,
)
from collector.incidents.related import related_incidents
from collector.store.schema import incident_events, incidents

router = APIRouter(prefix="/api/v1", tags=["incidents"],
                   responses={401: {"model": Problem, "description": "no or a wrong token"}})

# Everything but the evidence, which only the single-incident view carries (it may be 16 KiB).
_LIST_COLUMNS = [c for c in incidents.c if c.name not in ("dedup_key", "evidence")]


def _with_timezone(context: ApiContext, row: sa.Row[Any]) -> dict[str, Any]:
    return {**row._mapping, "customer_timezone": context.customer_timezone(row.customer)}


@router.get("/incidents", response_model=IncidentList)
def list_incidents(
    context: Context,
    caller: Caller,
    customer: Annotated[str | None, Query(description="only this customer")] = None,
    state: Annotated[Literal["open", "resolved", "all"],
                     Query(description="open includes acknowledged")] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> IncidentList:
    query = sa.select(*_LIST_COLUMNS).where(caller.scope_filter(incidents.c.customer))
    if customer is not None:
        query = query.where(incidents.c.customer == customer)
    if state == "open":
        query = query.where(incidents.c.state != "resolved")
    elif state == "resolved":
        query = query.where(incidents.c.state == "resolved")
    # One more than asked tells whether the list was cut, without a COUNT over the table.
    query = query.order_by(incidents.c.opened_at.desc(), incidents.c.id.desc()).limit(limit + 1)
    with context.engine.connect() as conn:
        rows = conn.execute(query).all()
    return IncidentList(
        incidents=[Incident.model_validate(_with_timezone(context, row)) for row in rows[:limit]],
        truncated=len(rows) > limit,
    )


@router.get("/incidents/{incident_id}", response_model=IncidentDetail,
            responses={404: {"model": Problem, "description": "no such incident in your scope"}})
def get_incident(context: Context, caller: Caller, incident_id: int) -> IncidentDetail:
    with context.engine.connect() as conn:
        row = conn.execute(
            sa.select(incidents).where(incidents.c.id == incident_id,
                                       caller.scope_filter(incidents.c.customer))
        ).first()
        if row is None:
            # Another customer's incident is "not found" too: its existence is not yours to see.
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                detail=f"incident {incident_id} not found")
        events = conn.execute(
            sa.select(incident_events)
            .where(incident_events.c.incident_id == incident_id)
            .order_by(incident_events.c.at, incident_events.c.id)
        ).all()
        related = related_incidents(conn, row)
    return IncidentDetail.model_validate({
        **_with_timezone(context, row),
        "events": [IncidentEvent.model_validate(event) for event in events],
        "related": [RelatedIncident.model_validate(dict(other)) for other in related],
    })
