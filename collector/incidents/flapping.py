"""Flapping: a check whose incident opens and resolves over and over. Damp the notifications,
never the state.

A flip is an incident change of the key between problem and fine: opened, reopened, resolved,
recovered (the incident events say when). The shape is sensu-go's `isFlapping()`: enter above a
high threshold, leave below a low one, so a check at the edge of flapping does not flap in and
out of flapping. Sensu measures a weighted percentage over the last 21 results; we count flips in
a time window instead, because our checks report at very different rates (a 10 s service check,
a 15 min disk check) and a window of results would mean an hour for one and a week for the other:

- `ENTER_FLIPS = 6` in `WINDOW = 1 h`: the ticket would have been opened and closed three times
  in an hour. No desk wants the fourth e-mail.
- `LEAVE_FLIPS = 2`: at most one open and one resolve in the last hour, which is what an
  ordinary problem that came and went looks like.

While a key flaps, its changes still happen in the store (the incident opens and resolves as the
check says: the state is the truth) but carry `notify=False`, so the outbox sends nothing. When
flapping ends, the key's current state is always sent once more (FLAPPING_ENDED): a ticket
opened before the flapping, whose resolution fell in it, is closed then, and none stays open.

The flapping keys are a table (`flapping`), so a restart in the middle keeps them, and the due-
time loop asks `ended()` at each key's `check_at`: the moment its flips would have aged out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from collector.store.schema import flapping, incident_events, incidents

WINDOW = timedelta(hours=1)
ENTER_FLIPS = 6
LEAVE_FLIPS = 2
# The incident event kinds that are a flip between problem and fine.
FLIP_EVENTS = ("opened", "reopened", "resolved", "recovered")


@dataclass(frozen=True, slots=True)
class FlapPolicy:
    window: timedelta = WINDOW
    enter_flips: int = ENTER_FLIPS
    leave_flips: int = LEAVE_FLIPS

    def __post_init__(self) -> None:
        if not 0 <= self.leave_flips < self.enter_flips:
            raise ValueError("leave_flips must be below enter_flips (that gap is the hysteresis)")


@dataclass(frozen=True, slots=True)
class FlapEnd:
    """A key that stopped flapping, and its latest incident (what the final notice is about)."""

    dedup_key: str
    customer: str
    host: str
    incident_id: int
    incident_open: bool


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class FlapDetector:
    def __init__(self, policy: FlapPolicy | None = None) -> None:
        self._policy = policy or FlapPolicy()

    def _flip_times(self, conn: sa.Connection, key: str, since: datetime) -> list[datetime]:
        rows = conn.execute(
            sa.select(incident_events.c.at)
            .select_from(incident_events.join(incidents,
                                              incidents.c.id == incident_events.c.incident_id))
            .where(incidents.c.dedup_key == key, incident_events.c.at > since,
                   incident_events.c.kind.in_(FLIP_EVENTS))
            .order_by(incident_events.c.at)
        ).scalars().all()
        return [_utc(at) for at in rows]

    def _check_at(self, flips: list[datetime], now: datetime) -> datetime:
        """When the flips in the window will have dropped to leave_flips, if none come."""
        surplus = len(flips) - self._policy.leave_flips
        if surplus <= 0:
            return now
        return flips[surplus - 1] + self._policy.window

    def on_flip(self, conn: sa.Connection, key: str, customer: str, host: str,
                incident_id: int, at: datetime) -> bool:
        """Record that key flipped (its event is already written); True while it flaps, and
        then the change must not be notified."""
        at = _utc(at)
        flips = self._flip_times(conn, key, at - self._policy.window)
        flapping_since = conn.execute(
            sa.select(flapping.c.since).where(flapping.c.dedup_key == key)).scalar()
        if flapping_since is not None:
            conn.execute(flapping.update().where(flapping.c.dedup_key == key)
                         .values(check_at=self._check_at(flips, at)))
            return True
        if len(flips) < self._policy.enter_flips:
            return False
        conn.execute(flapping.insert().values(
            dedup_key=key, customer=customer, host=host, since=at,
            check_at=self._check_at(flips, at)))
        conn.execute(incident_events.insert().values(
            incident_id=incident_id, at=at, kind="flapping", actor="daybreak",
            note=f"flapping: {len(flips)} changes in {_minutes(self._policy.window)}; "
                 f"notifications held until it settles"))
        return True

    def is_flapping(self, conn: sa.Connection, key: str) -> bool:
        return conn.execute(
            sa.select(flapping.c.dedup_key).where(flapping.c.dedup_key == key)
        ).first() is not None

    def ended(self, conn: sa.Connection, now: datetime) -> list[FlapEnd]:
        """Keys whose flapping is over at `now`; their rows are gone and an event says so."""
        now = _utc(now)
        ends: list[FlapEnd] = []
        due = conn.execute(sa.select(flapping).where(flapping.c.check_at <= now)).all()
        for row in due:
            flips = self._flip_times(conn, row.dedup_key, now - self._policy.window)
            if len(flips) > self._policy.leave_flips:
                conn.execute(flapping.update().where(flapping.c.dedup_key == row.dedup_key)
                             .values(check_at=self._check_at(flips, now)))
                continue
            deleted = conn.execute(flapping.delete().where(
                flapping.c.dedup_key == row.dedup_key, flapping.c.check_at == row.check_at,
            )).rowcount
            if deleted != 1:
                continue  # another worker got there first
            latest = conn.execute(
                sa.select(incidents.c.id, incidents.c.state)
                .where(incidents.c.dedup_key == row.dedup_key)
                .order_by(incidents.c.id.desc()).limit(1)
            ).first()
            if latest is None:
                continue
            conn.execute(incident_events.insert().values(
                incident_id=latest.id, at=now, kind="flapping_ended", actor="daybreak",
                note=f"flapping ended (since {_utc(row.since).isoformat(timespec='minutes')}); "
                     f"the incident is {latest.state}"))
            ends.append(FlapEnd(row.dedup_key, row.customer, row.host, latest.id,
                                latest.state != "resolved"))
        return ends

    def next_check_at(self, conn: sa.Connection) -> datetime | None:
        found = conn.execute(sa.select(sa.func.min(flapping.c.check_at))).scalar()
        return None if found is None else _utc(found)


def _minutes(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"
