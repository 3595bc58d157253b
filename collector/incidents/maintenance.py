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
    # Look back from `at`: the latest start at or before it is the occurrence that ends last
    # (all have the same duration), so if it is over, every earlier one is too. cronsim's
    # reverse iteration skips `dt` itself unless dt carries microseconds; a window starting
    # exactly at `at` is running, so give it some.
    local = at.astimezone(customer.zone)
    look_back_from = local if local.microsecond else local.replace(microsecond=1)
    latest_start = next(CronSim(window.cron, look_back_from, reverse=True), None)
    if latest_start is None:
        return None  # an expression that never matches ("0 0 30 2 *")
    start = latest_start.astimezone(UTC)
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
