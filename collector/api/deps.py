"""What every route depends on: the app's long-lived objects, and the caller's API token.

A token is a bearer secret; the collector keeps only its SHA-256 (`ApiToken.token_sha256`) and
compares digests with `hmac.compare_digest` against every configured token, so neither a wrong
token's prefix nor which token matched shows in the timing. A token's customer scope filters
everything it reads: staff of customer A never see customer B's incidents or agents.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from collector.customers import CustomerSet
from probes.clock import Clock

ALL_CUSTOMERS = "*"
ROLES = ("admin", "service_desk", "tier2")


@dataclass(frozen=True)
class ApiToken:
    name: str
    role: str  # admin | service_desk | tier2
    customers: frozenset[str]  # "*" = all
    token_sha256: str

    def sees(self, customer: str) -> bool:
        return ALL_CUSTOMERS in self.customers or customer in self.customers

    def scope_filter(self, column: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
        """A WHERE clause limiting rows to this token's customers."""
        if ALL_CUSTOMERS in self.customers:
            return sa.true()
        return column.in_(sorted(self.customers))


@dataclass(frozen=True)
class ApiContext:
    """The long-lived objects `create_app` was given; routes reach them through `api_context`."""

    engine: sa.Engine
    api_tokens: Sequence[ApiToken]
    clock: Clock
    reload_customers: Callable[[], str] | None
    customers: Callable[[], CustomerSet] | None

    def customer_timezone(self, customer: str) -> str | None:
        return self.customers().timezone_of(customer) if self.customers is not None else None


def api_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.daybreak
    return context


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=message,
                         headers={"WWW-Authenticate": "Bearer"})


_bearer = HTTPBearer(auto_error=False, description="An API token from the collector's "
                     "`api_tokens:` (the content of its token_file)")


def authenticated(
    context: Annotated[ApiContext, Depends(api_context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiToken:
    if credentials is None:
        raise _unauthorized("no API token: send `Authorization: Bearer <token>`")
    digest = hashlib.sha256(credentials.credentials.strip().encode("utf-8")).hexdigest()
    found: ApiToken | None = None
    for token in context.api_tokens:
        # No early exit: every token is compared, whichever matches.
        if hmac.compare_digest(token.token_sha256, digest):
            found = token
    if found is None:
        raise _unauthorized("the API token was refused")
    return found


def admin(token: Annotated[ApiToken, Depends(authenticated)]) -> ApiToken:
    if token.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"this needs an admin token; {token.name!r} is {token.role}")
    return token


Context = Annotated[ApiContext, Depends(api_context)]
Caller = Annotated[ApiToken, Depends(authenticated)]
Admin = Annotated[ApiToken, Depends(admin)]
