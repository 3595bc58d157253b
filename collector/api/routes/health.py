"""`GET /healthz`: is the HTTP side up. No token, so load balancers and tests can poll it."""

from __future__ import annotations

from fastapi import APIRouter

from collector.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")
