"""`GET /api/v1/outbox`: the notifications owed to sinks, for admins.

`?state=dead` lists what was given up (a permanent refusal, too old, too many attempts) with
its last error; `pending` what is waiting, with its next attempt. The payload itself stays in the
store: it is the incident, which `GET /incidents/{id}` shows.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from collector.api.deps import Admin, Context
from collector.api.schemas import Problem, UtcDateTime
from collector.outbox import outbox_rows
from collector.store.schema import outbox

router = APIRouter(prefix="/api/v1", tags=["outbox"], responses={
    401: {"model": Problem, "description": "no or a wrong token"},
    403: {"model": Problem, "description": "this needs an admin token"},
})


class OutboxRow(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    incident_id: int
    customer: str
    sink: str
    event: str
    sequence: int
    idempotency_key: str
    state: Literal["pending", "delivered", "dead"]
    attempts: int
    created_at: UtcDateTime
    next_attempt_at: UtcDateTime
    delivered_at: UtcDateTime | None
    last_error: str


class OutboxList(BaseModel):
    model_config = ConfigDict(frozen=True)

    rows: list[OutboxRow]
    truncated: bool


@router.get("/outbox", response_model=OutboxList)
def list_outbox(
    context: Context,
    caller: Admin,
    state: Annotated[Literal["pending", "delivered", "dead"] | None,
                     Query(description="only rows in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> OutboxList:
    with context.engine.connect() as conn:
        rows = outbox_rows(conn, state=state, limit=limit + 1,
                           customer_filter=caller.scope_filter(outbox.c.customer))
    return OutboxList(rows=[OutboxRow.model_validate(row) for row in rows[:limit]],
                      truncated=len(rows) > limit)

