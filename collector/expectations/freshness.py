"""`check_freshness`: a check that stopped reporting is a problem, even if its last word was OK.

    - kind: check_freshness
      name: data-disk-fresh
      check: "disk:/data"        # a glob over check keys
      max_age: 10m

A check is stale when its newest result (`check_state.observed_at`, the time on the host) is
older than `max_age`: "no data from disk:/data since 02:14" in the customer's time. Only checks
that have reported at least once are watched: a check that never existed is not stale, it is a
configuration matter. A fresh result resolves the incident. The due-time loop watches; while
the check's agent is silent, the incident is held back (see heartbeat.py).
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from typing import Literal

from pydantic import PrivateAttr

from collector.durations import Duration, format_duration
from collector.expectations.base import (
    ExpectationBase,
    Glob,
    Outcome,
    Severity,
    Verdict,
    compile_glob,
)
from collector.expectations.schedule import clock_time


class CheckFreshnessExpectation(ExpectationBase):
    kind: Literal["check_freshness"]
    check: Glob
    max_age: Duration
    severity: Severity = Severity.WARNING

    _check_re: re.Pattern[str] = PrivateAttr(default=re.compile(""))


    def model_post_init(self, context: object, /) -> None:
        super().model_post_init(context)
        self._check_re = compile_glob(self.check)

    def watches(self, check_key: str) -> bool:
        """Whether this check key's freshness is judged here (the loop asks; results are not
        routed to this kind)."""
        return self._check_re.match(check_key) is not None

    def stale_at(self, observed_at: datetime) -> datetime:
        return observed_at + self.max_age

    def stale(self, host: str, check_key: str, observed_at: datetime, zone: tzinfo) -> Verdict:
        since = clock_time(observed_at, zone)
        return Verdict(
            self.name, check_key, Outcome.PROBLEM, self.stale_at(observed_at),
            severity=self.severity,
            title=f"no data from {check_key} on {host} since {since}",
            summary=f"the newest result of {check_key} is from {since}",
            expected=f"a result of {check_key} at least every {format_duration(self.max_age)}",
            observed=f"last result at {since}",
            runbook=self.runbook,
            occurrence=f"stale:{observed_at.isoformat()}",
        )

    def fresh(self, check_key: str, observed_at: datetime, zone: tzinfo) -> Verdict:
        return Verdict(self.name, check_key, Outcome.RECOVERED, observed_at,
                       note=f"{check_key} reported again at {clock_time(observed_at, zone)}")
