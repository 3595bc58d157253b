"""Maintenance windows: is (host, expectation) under maintenance at a given instant, and until when.

A window comes from the customer file (`maintenance:`): one-off with `start` and `end`, or
recurring with a `cron` expression and a `duration`, all in the customer's zone. While a window
is active, problems it covers open no incident (the lifecycle records them as suppressed), and
a deadline that passed inside it is judged again at `window_end_after()`.

Recurring windows run through cronsim in the customer's zone, so they follow Debian cron's
daylight-saving rule: a window that starts in the skipped hour starts right after the gap, one
in the repeated hour starts once. The duration is elapsed time: a 4 h window from 22:00 on a
spring-forward night ends at 03:00 local, four real hours later.

Pure: the instant is handed in; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cronsim import CronSim

from collector.customers import CustomerFile, MaintenanceWindow
from collector.incidents.service_hours import wall_to_utc

# Windows that overlap or touch are followed to the end of the whole stretch, but not forever:
# "* * * * *" with a 1 m duration never ends, and the caller simply asks again at the end given.
MAX_CHAINED_WINDOWS = 100
# A window is looked up by walking its cron starts over one duration; "* * * * *" with a
# duration of a week is 10,080 starts, and a file like that is wrong rather than slow to judge.
MAX_STARTS_IN_ONE_DURATION = 20_000


@dataclass(frozen=True, slots=True)
class Window:
    """One occurrence of a maintenance window, as UTC instants; `end` is exclusive."""

    reason: str
    start: datetime
    end: datetime
    recurring: bool

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


def occurrence_at(window: MaintenanceWindow, customer: CustomerFile,
                  at: datetime) -> Window | None:
    """The occurrence of window that is running at `at`, if one is."""
    at = at.astimezone(UTC)
    if window.cron is None or window.duration is None:
        if window.start is None or window.end is None:  # pragma: no cover - the model refuses
            return None
        found = Window(window.reason, wall_to_utc(window.start, customer.zone),
                       wall_to_utc(window.end, customer.zone), recurring=False)
        return found if found.contains(at) else None
    # Look back from `at` by the duration: a start in (at - duration, at] means an occurrence
    # is running, and the latest such start is the one that ends last. cronsim iterates in
    # wall-clock terms, so in the repeated hour of a fall-back night it can hand back a start
    # that is before `dt` in real time: compare in UTC, never trust the order alone. (Its
    # reverse iteration has the same blind spot, hence forward from the look-back point.)
    look_back_to = at - window.duration
    latest: datetime | None = None
    starts = CronSim(window.cron, look_back_to.astimezone(customer.zone))
    for _ in range(MAX_STARTS_IN_ONE_DURATION):
        candidate = next(starts, None)
        if candidate is None:
            break
        start = candidate.astimezone(UTC)
        if start > at:
            break
        if start > look_back_to:
            latest = start
    if latest is None:
        return None
    start = latest
    found = Window(window.reason, start, start + window.duration, recurring=True)
    return found if found.contains(at) else None


def active_window(customer: CustomerFile, host: str, expectation: str,
                  at: datetime) -> Window | None:
    """The maintenance window covering (host, expectation) at `at`; of several, the one that
    ends last (it says how long problems stay suppressed)."""
    running = [
        occurrence
        for window in customer.maintenance
        if window.covers(host, expectation)
        and (occurrence := occurrence_at(window, customer, at)) is not None
    ]
    return max(running, key=lambda w: w.end, default=None)


def window_end_after(customer: CustomerFile, host: str, expectation: str,
                     at: datetime) -> datetime | None:
    """When maintenance of (host, expectation) that is running at `at` is over (UTC), following
    windows that overlap it or start right at its end; None when none is running."""
    end: datetime | None = None
    moment = at
    for _ in range(MAX_CHAINED_WINDOWS):
        window = active_window(customer, host, expectation, moment)
        if window is None:
            break
        end = moment = window.end
    return end
