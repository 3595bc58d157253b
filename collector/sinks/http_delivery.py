"""One HTTP request of a sink, and what its answer means for delivery.

The rule every HTTP sink follows (webhook, PagerDuty, REST tickets):
- 2xx: delivered;
- 4xx: the receiver refuses this request as it is; sending it again will not change that, so
  the error is permanent. Except 408 (request timeout) and 429 (rate limited): they say "later";
- 3xx: not followed (a webhook that moved should be reconfigured, not chased with a signed body
  to wherever it points); retried, so nothing is lost while the operator fixes the URL;
- 5xx, timeouts, refused connections, connections dropped mid-answer: retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from collector.sinks.base import SinkError

# 4xx answers that mean "not now" rather than "not this".
RETRYABLE_CLIENT_ERRORS = frozenset({408, 429})
# Enough of an error body to say what went wrong in last_error, not a page of HTML.
ERROR_EXCERPT_CHARS = 200


def raise_for_delivery(response: httpx.Response, what: str) -> None:
    """Return if the answer means delivered; raise SinkError (permanent or not) otherwise."""
    code = response.status_code
    if 200 <= code < 300:
        return
    excerpt = " ".join(response.text[:ERROR_EXCERPT_CHARS].split())
    message = f"{what}: HTTP {code}" + (f": {excerpt}" if excerpt else "")
    permanent = 400 <= code < 500 and code not in RETRYABLE_CLIENT_ERRORS
    raise SinkError(message, permanent=permanent)


async def request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    timeout_s: float,
    content: bytes | None = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Send one request; transport failures become retryable SinkErrors. The caller judges the
    status (with raise_for_delivery or its own rule, e.g. a 404 on a lookup)."""
    try:
        return await client.request(method, url, content=content, params=params,
                                    headers=headers, timeout=timeout_s)
    except httpx.TimeoutException as exc:
        raise SinkError(f"{what}: no answer within {timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise SinkError(f"{what}: {type(exc).__name__}: {exc}") from exc


def json_of(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise SinkError(f"{what}: the answer is not JSON") from exc
