"""The collector's HTTP API: FastAPI, served by uvicorn on the collector's event loop.

The routes are plain `def`s: they read the store with blocking SQLAlchemy calls, which FastAPI
runs in its threadpool, so a slow query never stalls gRPC ingest on the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from fastapi import FastAPI

from collector.api.deps import ApiContext, ApiToken
from collector.api.routes import actions, agents, audit, health, incidents, outbox, reload, report
from collector.customers import CustomerSet
from probes.clock import Clock

API_VERSION = "1"


def create_app(
    engine: sa.Engine,
    api_tokens: Sequence[ApiToken],
    clock: Clock,
    reload_customers: Callable[[], str] | None = None,
    *,
    customers: Callable[[], CustomerSet] | None = None,
) -> FastAPI:
    """Build the API over engine. `customers` returns the current customer set (it changes on
    reload); with it, incidents carry their customer's timezone for display."""
    app = FastAPI(
        title="Daybreak collector API",
        version=API_VERSION,
        description="Incidents and agents of the customers your API token covers. "
                    "Every /api/v1 route needs `Authorization: Bearer <token>`.",
    )
    app.state.daybreak = ApiContext(
        engine=engine,
        api_tokens=tuple(api_tokens),
        clock=clock,
        reload_customers=reload_customers,
        customers=customers,
    )
    for module in (health, incidents, actions, agents, audit, report, reload, outbox):
        app.include_router(module.router)
    return app
