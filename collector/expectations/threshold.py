"""`threshold`: a check's status, or one of its metrics, must stay within limits.

    - kind: threshold
      name: disk-space
      check: "disk:*"
      metric: used_percent      # omit to follow the result's own status
      warn: 80
      crit: 90

With a metric, a value above `warn` is a warning and above `crit` is critical (`above: false`
turns both around: below is bad, for free space or a queue that must not run dry). Without a
metric the probe's verdict is followed: WARN is a warning, CRIT is critical, OK recovers. An
UNKNOWN result (a probe that timed out) neither opens nor resolves: it says nothing about the
disk.

So that a value hovering at the line does not open and resolve all night:

      open_after: 3             # 3 bad results in a row before an incident opens
      close_after: 2            # 2 good results in a row before it resolves
      clear_below: 75           # with a metric: back below 75, not just below warn, to resolve
                                # (clear_above with above: false)

Between the clear level and warn a result says nothing: an open incident stays open, none
opens, and a streak of bad results is not broken by it (the value is not fine yet).

The consecutive counts are kept in memory per incident key (`Streaks`, owned by the engine).
After a collector restart they start from zero: an open incident stays open (the store has it)
and still needs `close_after` good results; a problem not yet opened needs `open_after` fresh
results again. That costs at most N result intervals once, and keeps the hot path free of
store reads.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal, Self

from pydantic import Field, PrivateAttr, model_validator

from collector.expectations.base import (
    ExpectationBase,
    Glob,
    Outcome,
    Severity,
    Verdict,
    compile_glob,
)
from probes.result import Result, Status

_SEVERITY_OF_STATUS = {Status.WARN: Severity.WARNING, Status.CRIT: Severity.CRITICAL}


class ThresholdExpectation(ExpectationBase):
    watches_results: ClassVar[bool] = True

    kind: Literal["threshold"]
    # A check-key glob: `disk:*` for every mount, `disk:/data` for one.
    check: Glob
    metric: str | None = Field(default=None, min_length=1, max_length=128)
    warn: float | None = None
    crit: float | None = None
    above: bool = True
    open_after: int = Field(default=1, ge=1, le=1000)
    close_after: int = Field(default=1, ge=1, le=1000)
    clear_below: float | None = None
    clear_above: float | None = None

    _check_re: re.Pattern[str] = PrivateAttr(default=re.compile(""))


    @model_validator(mode="after")
    def _limits_fit_the_mode(self) -> Self:
        if self.metric is None:
            if self.warn is not None or self.crit is not None:
                raise ValueError("warn/crit need a metric; without one the result's status is "
                                 "followed")
            if self.clear_below is not None or self.clear_above is not None:
                raise ValueError("clear_below/clear_above need a metric")
            return self
        self._check_clear_level()
        if self.warn is None and self.crit is None:
            raise ValueError(f"metric {self.metric!r} needs warn, crit or both")
        if self.warn is not None and self.crit is not None and self._worse(self.warn, self.crit):
            order = "above" if self.above else "below"
            raise ValueError(f"warn ({self.warn:g}) is already worse than crit ({self.crit:g}); "
                             f"with above: {str(self.above).lower()} crit must be {order} warn")
        return self

    def _check_clear_level(self) -> None:
        lowest_limit = min(x for x in (self.warn, self.crit) if x is not None) if self.above \
            else max(x for x in (self.warn, self.crit) if x is not None)
        if self.above:
            if self.clear_above is not None:
                raise ValueError("clear_above goes with above: false; use clear_below")
            if self.clear_below is not None and self.clear_below > lowest_limit:
                raise ValueError(f"clear_below ({self.clear_below:g}) must not be above the "
                                 f"first limit ({lowest_limit:g})")
        else:
            if self.clear_below is not None:
                raise ValueError("clear_below goes with above: true; use clear_above")
            if self.clear_above is not None and self.clear_above < lowest_limit:
                raise ValueError(f"clear_above ({self.clear_above:g}) must not be below the "
                                 f"first limit ({lowest_limit:g})")

    @property
    def counts_results(self) -> bool:
        """Whether verdicts must pass the engine's Streaks (open_after/close_after > 1)."""
        return self.open_after > 1 or self.close_after > 1

    def model_post_init(self, context: object, /) -> None:
        super().model_post_init(context)
        self._check_re = compile_glob(self.check)

    def applies_to_check(self, check_key: str) -> bool:
        return self._check_re.match(check_key) is not None

    def _worse(self, value: float, limit: float) -> bool:
        return value > limit if self.above else value < limit

    def evaluate_result(self, host: str, result: Result) -> Verdict | None:
        if self.metric is None:
            return self._follow_status(host, result)
        return self._compare_metric(host, result, self.metric)

    def _follow_status(self, host: str, result: Result) -> Verdict | None:
        if result.status is Status.OK:
            return Verdict(self.name, result.check, Outcome.RECOVERED, result.observed_at,
                           note=f"recovered: {result.check} is OK ({result.summary})")
        severity = _SEVERITY_OF_STATUS.get(result.status)
        if severity is None:  # UNKNOWN tells nothing about the check itself
            return None
        return Verdict(
            self.name, result.check, Outcome.PROBLEM, result.observed_at,
            severity=severity,
            title=f"{result.check} is {result.status.name} on {host}",
            summary=result.summary,
            expected=f"{result.check} OK",
            observed=f"{result.status.name}: {result.summary}",
            evidence=result.detail,
            evidence_source=f"probe {result.probe}",
            runbook=self.runbook,
        )

    def may_be_problem(self, result: Result) -> bool:
        """False when evaluate_result would give no PROBLEM: the engine then skips building a
        verdict that says "fine" about a check with nothing open (most results)."""
        if self.metric is None:
            return result.status in _SEVERITY_OF_STATUS
        value = result.metrics.get(self.metric)
        return value is not None and self._breached(value) is not None

    def _breached(self, value: float) -> tuple[Severity, float] | None:
        if self.crit is not None and self._worse(value, self.crit):
            return Severity.CRITICAL, self.crit
        if self.warn is not None and self._worse(value, self.warn):
            return Severity.WARNING, self.warn
        return None

    def _compare_metric(self, host: str, result: Result, metric: str) -> Verdict | None:
        value = result.metrics.get(metric)
        if value is None:
            return None
        breached = self._breached(value)
        if breached is not None:
            severity, limit = breached
        else:
            clear = self.clear_below if self.above else self.clear_above
            if clear is not None and self._worse(value, clear):
                return None  # between the clear level and the limit: no change either way
            return Verdict(self.name, result.check, Outcome.RECOVERED, result.observed_at,
                           note=f"recovered: {metric} = {value:g}")
        direction = "above" if self.above else "below"
        return Verdict(
            self.name, result.check, Outcome.PROBLEM, result.observed_at,
            severity=severity,
            title=f"{result.check} on {host}: {metric} {value:g} is {direction} {limit:g}",
            summary=result.summary,
            expected=self._expected_text(metric),
            observed=f"{metric} = {value:g} ({result.status.name}: {result.summary})",
            evidence=result.detail,
            evidence_source=f"probe {result.probe}",
            runbook=self.runbook,
        )

    def _expected_text(self, metric: str) -> str:
        direction = "above" if self.above else "below"
        limits = [f"{limit:g} ({label})" for label, limit in
                  (("warning", self.warn), ("critical", self.crit)) if limit is not None]
        return f"{metric} not {direction} " + " or ".join(limits)


class Streaks:
    """Consecutive bad and good results per incident key, for open_after / close_after.

    Only keys in a streak are kept (a key back at zero is dropped), so memory follows the
    checks that are misbehaving, not the fleet. Lost on restart: see the module docstring.
    """

    def __init__(self) -> None:
        self._bad: dict[str, int] = {}
        self._good: dict[str, int] = {}

    def admit(self, key: str, expectation: ThresholdExpectation, verdict: Verdict,
              incident_open: bool) -> bool:
        """Whether the verdict may reach the lifecycle now."""
        if verdict.outcome is Outcome.PROBLEM:
            self._good.pop(key, None)
            bad = self._bad.get(key, 0) + 1
            self._bad[key] = bad
            return incident_open or bad >= expectation.open_after
        self._bad.pop(key, None)
        if not incident_open:
            self._good.pop(key, None)
            return False
        good = self._good.get(key, 0) + 1
        if good >= expectation.close_after:
            self._good.pop(key, None)
            return True
        self._good[key] = good
        return False
