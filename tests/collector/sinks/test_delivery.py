"""The delivery loop, one round at a time on a ManualClock: retries, backoff, dead rows, the API."""

from __future__ import annotations

import asyncio
import hashlib
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from collector.api.app import create_app
from collector.api.deps import ApiToken
from collector.customers import CustomerSet
from collector.sinks.build import SinkFactory
from collector.sinks.delivery import DeliveryRound, OutboxDelivery, RetryPolicy
from collector.store.schema import outbox

from .conftest import HttpReceiver, Store, customer_with_sinks, live_api, secret_file

POLICY = RetryPolicy(first_delay_s=10, max_delay_s=80, max_age=timedelta(hours=1),
                     max_attempts=20)


def hook_sink(url: str, timeout_s: float = 5) -> str:
    return f"""\
sinks:
  - {{type: webhook, name: desk-hook, url: "{url}/hook", secret_file: hook.key,
     timeout_s: {timeout_s}}}
"""


def _delivery(store: Store, factory: SinkFactory) -> OutboxDelivery:
    return OutboxDelivery(store.writer, store.clock, lambda: store.customers, factory.build,
                          policy=POLICY, rng=random.Random(7))  # noqa: S311 - test jitter


def rounds(store: Store, steps: list[float]) -> list[DeliveryRound]:
    """One delivery round, then one after each clock step (seconds)."""
    async def scenario() -> list[DeliveryRound]:
        factory = SinkFactory(store.writer, store.clock)
        delivery = _delivery(store, factory)
        done = [await delivery.deliver_due()]
        for step in steps:
            store.clock.advance(step)
            done.append(await delivery.deliver_due())
        await factory.aclose()
        return done
    return asyncio.run(scenario())


def use_hook(store: Store, tmp_path: Path, url: str, timeout_s: float = 5) -> None:
    secret_file(tmp_path, "hook.key", "k" * 32)
    store.use(customer_with_sinks(tmp_path, hook_sink(url, timeout_s)))


def _row(store: Store) -> Any:
    (row,) = store.rows()
    return row


def test_a_failing_receiver_delays_delivery_with_growing_backoff_and_loses_nothing(
    store: Store, tmp_path: Path, receiver: HttpReceiver,
) -> None:
    receiver.fail_first = 3
    use_hook(store, tmp_path, receiver.url)
    store.feed(95)
    created = store.clock.now()

    first = rounds(store, [])[0]
    assert first.retried
    assert not first.delivered
    row = _row(store)
    gap = row.next_attempt_at - created.replace(tzinfo=None)
    assert timedelta(seconds=5) <= gap <= timedelta(seconds=10)  # step 10 s, equal jitter
    assert "HTTP 503" in row.last_error

    # Not due yet: nothing is sent.
    assert rounds(store, [4])[0] == DeliveryRound()
    assert len(receiver.requests) == 1

    # 2nd attempt fails (step 20 s), 3rd fails (step 40 s), 4th is delivered.
    done = rounds(store, [10, 20, 40])
    assert [bool(r.retried) for r in done] == [False, True, True, False]
    assert done[-1].delivered
    row = _row(store)
    assert (row.state, row.attempts, row.last_error) == ("delivered", 4, "")
    keys = {r.headers["idempotency-key"] for r in receiver.requests}
    bodies = {r.body for r in receiver.requests}
    assert len(receiver.requests) == 4
    assert len(keys) == 1
    assert len(bodies) == 1


def test_a_receiver_that_is_down_is_retried_until_it_listens(
    store: Store, tmp_path: Path,
) -> None:
    down = HttpReceiver(listening=False)
    try:
        use_hook(store, tmp_path, down.url)
        store.feed(95)
        assert rounds(store, [])[0].retried
        assert "ConnectError" in _row(store).last_error
        down.start_listening()
        assert rounds(store, [60])[-1].delivered
        assert len(down.requests) == 1
    finally:
        down.close()


@pytest.mark.parametrize("status", [408, 429, 500, 502])
def test_these_answers_mean_later(store: Store, tmp_path: Path, receiver: HttpReceiver,
                                  status: int) -> None:
    receiver.status = status
    use_hook(store, tmp_path, receiver.url)
    store.feed(95)
    assert rounds(store, [])[0].retried
    assert _row(store).state == "pending"


def test_a_receiver_too_slow_to_answer_is_retried(
    store: Store, tmp_path: Path, receiver: HttpReceiver,
) -> None:
    receiver.delay_s = 1.0
    use_hook(store, tmp_path, receiver.url, timeout_s=0.2)
    store.feed(95)
    assert rounds(store, [])[0].retried
    assert "no answer within 0.2 s" in _row(store).last_error


def test_a_permanent_refusal_makes_the_row_dead_and_admins_see_it(
    store: Store, tmp_path: Path, receiver: HttpReceiver,
) -> None:
    receiver.status = 400
    use_hook(store, tmp_path, receiver.url)
    store.feed(95)
    done = rounds(store, [3600])
    assert done[0].dead
    assert done[1] == DeliveryRound()
    assert len(receiver.requests) == 1
    assert _row(store).state == "dead"

    admin_token, desk_token = "admin-token-0123456789", "desk-token-0123456789"
    tokens = [
        ApiToken("ops", "admin", frozenset({"*"}),
                 hashlib.sha256(admin_token.encode()).hexdigest()),
        ApiToken("desk", "service_desk", frozenset({"*"}),
                 hashlib.sha256(desk_token.encode()).hexdigest()),
    ]
    app = create_app(store.engine, tokens, store.clock, customers=lambda: store.customers)
    with live_api(app) as base_url, httpx.Client(base_url=base_url) as client:
        dead = client.get("/api/v1/outbox", params={"state": "dead"},
                          headers={"Authorization": f"Bearer {admin_token}"})
        pending = client.get("/api/v1/outbox", params={"state": "pending"},
                             headers={"Authorization": f"Bearer {admin_token}"})
        refused = client.get("/api/v1/outbox",
                             headers={"Authorization": f"Bearer {desk_token}"})
    assert dead.status_code == 200
    (listed,) = dead.json()["rows"]
    assert (listed["sink"], listed["event"], listed["state"]) == ("desk-hook", "opened", "dead")
    assert "HTTP 400" in listed["last_error"]
    assert pending.json()["rows"] == []
    assert refused.status_code == 403


def test_a_notification_older_than_the_max_age_goes_dead(
    store: Store, tmp_path: Path, receiver: HttpReceiver,
) -> None:
    receiver.status = 503
    use_hook(store, tmp_path, receiver.url)
    store.feed(95)
    done = rounds(store, [600, 600, 600, 600, 600, 600])  # an hour of failures
    assert done[-1].dead
    assert _row(store).state == "dead"
    requests_when_dead = len(receiver.requests)
    rounds(store, [3600])
    assert len(receiver.requests) == requests_when_dead


def test_a_sink_removed_from_the_customer_file_makes_its_rows_dead(
    store: Store, tmp_path: Path, receiver: HttpReceiver,
) -> None:
    use_hook(store, tmp_path, receiver.url)
    store.feed(95)
    customer = store.customers.get("acme")
    assert customer is not None
    store.customers = CustomerSet({"acme": customer.model_copy(update={"sinks": ()})})
    assert rounds(store, [])[0].dead
    assert "no longer configured" in _row(store).last_error
    assert receiver.requests == []


def test_opened_is_delivered_before_resolved_even_when_opened_had_to_wait(
    store: Store, tmp_path: Path, receiver: HttpReceiver,
) -> None:
    receiver.fail_first = 2
    use_hook(store, tmp_path, receiver.url)
    store.feed(95)
    store.feed(50)
    rounds(store, [100, 100, 100])
    events = [r.headers["x-daybreak-event"] for r in receiver.requests]
    assert events == ["opened", "opened", "opened", "resolved"]
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(outbox.c.state)).scalars().all() == [
            "delivered", "delivered"]


def test_backoff_grows_to_its_cap_with_jitter_never_below_half() -> None:
    rng = random.Random(1)  # noqa: S311 - test jitter
    for attempts, step in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 80), (30, 80)]:
        delays = [POLICY.delay_after(attempts, rng).total_seconds() for _ in range(50)]
        assert all(step / 2 <= d <= step for d in delays)
        assert len(set(delays)) > 1
