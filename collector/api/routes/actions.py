"""`POST /api/v1/incidents/{id}/ack` and `/resolve`: a person works an incident.

Who may act:
- the token's customer scope first: another customer's incident is 404, as if it did not exist;
- `admin` may act on every incident; `tier2` on every incident in its scope;
- `service_desk` only on incidents assigned to `service_desk`: those of a `tier2_only`
  customer (assignment group `tier2`, or the customer file says so now) answer 403.
State: ack needs an open incident, resolve an open or acknowledged one; otherwise 409 naming the
current state. The incident's change, its event (actor = the token's name) and the audit row are
written in one transaction that takes SQLite's write lock up front (`WRITER`): a read-then-write
transaction would otherwise fail with "database is locked" when ingest committed in between.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
import structlog
from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from collector.api.deps import ApiContext, ApiToken, Caller, Context
from collector.api.routes.incidents import get_incident
from collector.api.schemas import IncidentDetail, Problem
from collector.customers import Access
from collector.outbox import enqueue_event
from collector.store.audit import AUDIT_DETAIL_MAX_CHARS, record_audit
from collector.store.engine import WRITER
from collector.store.schema import incident_events, incidents

NOTE_MAX_CHARS = AUDIT_DETAIL_MAX_CHARS
# What each action requires of the incident's state, and what it makes of it.
_FROM_STATES = {"acknowledged": ("open",), "resolved": ("open", "acknowledged")}
_LOG_EVENTS = {"acknowledged": "incident.acknowledged", "resolved": "incident.resolved_by_hand"}

router = APIRouter(prefix="/api/v1", tags=["incidents"], responses={
    401: {"model": Problem, "description": "no or a wrong token"},
    403: {"model": Problem, "description": "your role may not act on this incident"},
    404: {"model": Problem, "description": "no such incident in your scope"},
    409: {"model": Problem, "description": "the incident's state does not allow this"},
})


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    note: str = Field(default="", max_length=NOTE_MAX_CHARS,
                      description="why, or what was done; kept in the history and the audit log")


def forbidden_reason(caller: ApiToken, assignment_group: str, customer_access: Access | None,
                     incident_id: int) -> str | None:
    """Why caller may not act on the incident, or None when it may."""
    if caller.role in ("admin", "tier2"):
        return None
    if caller.role == "service_desk":
        if assignment_group == "service_desk" and customer_access is not Access.TIER2_ONLY:
            return None
        return (f"incident {incident_id} is assigned to {assignment_group}: only tier2 or "
                f"admin tokens may act on it ({caller.name!r} is service_desk)")
    return f"the role {caller.role!r} of {caller.name!r} may not act on incidents"


def _customer_access(context: ApiContext, customer: str) -> Access | None:
    if context.customers is None:
        return None
    found = context.customers().get(customer)
    return found.access if found is not None else None


def _act(context: ApiContext, caller: ApiToken, incident_id: int,
         action: Literal["acknowledged", "resolved"], note: str) -> None:
    now = context.clock.now().astimezone(UTC)
    with context.engine.connect().execution_options(**WRITER) as conn, conn.begin():
        row = conn.execute(
            sa.select(incidents.c.customer, incidents.c.state, incidents.c.assignment_group)
            .where(incidents.c.id == incident_id, caller.scope_filter(incidents.c.customer))
        ).first()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                detail=f"incident {incident_id} not found")
        reason = forbidden_reason(caller, row.assignment_group,
                                  _customer_access(context, row.customer), incident_id)
        if reason is not None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=reason)
        if row.state not in _FROM_STATES[action]:
            verb = "acknowledge" if action == "acknowledged" else "resolve"
            raise HTTPException(status.HTTP_409_CONFLICT,
                                detail=f"cannot {verb} incident {incident_id}: it is "
                                       f"{row.state}")
        changed = conn.execute(
            incidents.update()
            .where(incidents.c.id == incident_id, incidents.c.state == row.state)
            .values(_incident_values(action, caller, note, now))
        ).rowcount
        if changed != 1:
            # Only where writers do not lock up front (PostgreSQL): someone got there first.
            raise HTTPException(status.HTTP_409_CONFLICT,
                                detail=f"incident {incident_id} changed meanwhile; try again")
        conn.execute(incident_events.insert().values(
            incident_id=incident_id, at=now, kind=action, actor=caller.name[:128], note=note))
        record_audit(conn, at=now, actor=caller.name, action=f"incident.{action}",
                     target=f"incident:{incident_id}", detail=note)
        # The customer's ticket system and mailbox hear of it too, in the same transaction.
        customer = context.customers().get(row.customer) if context.customers else None
        if customer is not None:
            event = "updated" if action == "acknowledged" else "resolved"
            enqueue_event(conn, incident_id, event, customer, now, change=action)
    structlog.get_logger("collector.api").info(
        _LOG_EVENTS[action], incident_id=incident_id, actor=caller.name, customer=row.customer)


def _incident_values(action: str, caller: ApiToken, note: str,
                     now: datetime) -> dict[str, Any]:
    if action == "resolved":
        resolution = f"resolved by {caller.name}" + (f": {note}" if note else "")
        return {"state": "resolved", "resolved_at": now, "resolution": resolution[:2000]}
    values: dict[str, Any] = {"state": "acknowledged"}
    # Columns of migration 0003_sla, used once the store has them.
    if "acknowledged_at" in incidents.c:
        values["acknowledged_at"] = now
    if "acknowledged_by" in incidents.c:
        values["acknowledged_by"] = caller.name[:128]
    return values


def _note(body: ActionRequest | None) -> str:
    return " ".join(body.note.split()) if body is not None else ""


@router.post("/incidents/{incident_id}/ack", response_model=IncidentDetail)
def acknowledge(context: Context, caller: Caller, incident_id: int,
                body: ActionRequest | None = None) -> IncidentDetail:
    """Acknowledge an open incident: someone is on it."""
    _act(context, caller, incident_id, "acknowledged", _note(body))
    return get_incident(context, caller, incident_id)


@router.post("/incidents/{incident_id}/resolve", response_model=IncidentDetail)
def resolve(context: Context, caller: Caller, incident_id: int,
            body: ActionRequest | None = None) -> IncidentDetail:
    """Resolve an open or acknowledged incident by hand."""
    _act(context, caller, incident_id, "resolved", _note(body))
    return get_incident(context, caller, incident_id)
