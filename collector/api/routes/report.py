"""`GET /api/v1/reports/morning`: the night per customer in the token's scope (docs/report.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from collector.api.deps import Caller, Context
from collector.api.schemas import Problem
from collector.report.morning import build_morning_report
from collector.report.shapes import MorningReport
from collector.report.window import DEFAULT_SINCE, parse_since

router = APIRouter(prefix="/api/v1", tags=["reports"],
                   responses={401: {"model": Problem, "description": "no or a wrong token"}})


@router.get("/reports/morning", response_model=MorningReport,
            responses={422: {"model": Problem, "description": "since is not HH:MM or a time"}})
def morning_report(
    context: Context,
    caller: Caller,
    customer: Annotated[str | None, Query(description="only this customer")] = None,
    since: Annotated[str, Query(description="HH:MM in each customer's zone (the most recent "
                                            "one before now), or an ISO 8601 time")
                     ] = DEFAULT_SINCE,
) -> MorningReport:
    try:
        parsed = parse_since(since)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    with context.engine.connect() as conn:
        return build_morning_report(
            conn,
            customers=context.customers() if context.customers is not None else None,
            visible=caller.sees,
            since=parsed,
            now=context.clock.now(),
            only_customer=customer,
        )
