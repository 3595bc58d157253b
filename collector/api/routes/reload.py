"""`POST /api/v1/reload`: re-read the customer files (admin only); the collector keeps the
old set when the new one is invalid, and the message says which happened."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from collector.api.deps import Admin, Context
from collector.api.schemas import Problem, ReloadOutcome
from probes.configfile import ConfigError

router = APIRouter(prefix="/api/v1", tags=["admin"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}})


@router.post("/reload", response_model=ReloadOutcome,
             responses={
                 422: {"model": Problem,
                       "description": "the new files have problems; the old set stays"},
                 503: {"model": Problem, "description": "this collector cannot reload"},
             })
def reload_customers(context: Context, caller: Admin) -> ReloadOutcome:
    if context.reload_customers is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail="this collector was started without reload support")
    try:
        return ReloadOutcome(message=context.reload_customers())
    except ConfigError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"not reloaded, the customer files have problems (the old ones stay):\n{exc}",
        ) from exc
