"""`GET /api/v1/agents`: every agent that ever connected, within the token's scope."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query

from collector.api.deps import Caller, Context
from collector.api.schemas import Agent, AgentList, Problem
from collector.store.schema import agents

router = APIRouter(prefix="/api/v1", tags=["agents"],
                   responses={401: {"model": Problem, "description": "no or a wrong token"}})


@router.get("/agents", response_model=AgentList)
def list_agents(
    context: Context,
    caller: Caller,
    customer: Annotated[str | None, Query(description="only this customer")] = None,
) -> AgentList:
    columns = [agents.c[name] for name in Agent.model_fields]
    query = sa.select(*columns).where(caller.scope_filter(agents.c.customer))
    if customer is not None:
        query = query.where(agents.c.customer == customer)
    with context.engine.connect() as conn:
        rows = conn.execute(query.order_by(agents.c.customer, agents.c.agent_id)).all()
    return AgentList(agents=[Agent.model_validate(row) for row in rows])
