"""`agent_heartbeat`: an agent that stops talking is an incident, and only one.

    - kind: agent_heartbeat
      name: agents-alive
      hosts: ["*"]
      allow: 2m          # optional; default 3 heartbeat intervals (collector.yaml)

An agent is silent when nothing (heartbeat or batch) came from it for longer than `allow`
(`agents.last_seen_at`). Three intervals, because one late heartbeat is a busy network and
not an outage. The incident says since when, in the customer's time ("agent db1 silent since
02:14"), and dates itself at the moment the allowance ran out, not at the moment the loop
noticed.

While an agent is silent, the incidents its checks would open (a check with no fresh data is
the obvious one) are held back: one incident about the agent, not one per check, and its
text counts them ("3 checks without data held back"). When the agent is back its incident
resolves; the held-back checks were never opened, and if they are still stale they open then.
The due-time loop (`collector/timers.py`) does the watching; the engine holds back.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Literal

from pydantic import Field

from collector.durations import Duration, format_duration
from collector.expectations.base import ExpectationBase, Outcome, Severity, Verdict
from collector.expectations.schedule import clock_time

# How many heartbeat intervals an agent may miss before it counts as silent.
DEFAULT_MISSED_HEARTBEATS = 3


def agent_subject(agent_id: str) -> str:
    return f"agent:{agent_id}"


class AgentHeartbeatExpectation(ExpectationBase):
    kind: Literal["agent_heartbeat"]
    allow: Duration | None = Field(default=None)
    severity: Severity = Severity.CRITICAL

    def allowance(self, heartbeat_interval: timedelta) -> timedelta:
        return self.allow if self.allow is not None else (
            heartbeat_interval * DEFAULT_MISSED_HEARTBEATS)

    def silent(self, agent_id: str, host: str, last_seen_at: datetime, silent_at: datetime,
               zone: tzinfo, held_back: int) -> Verdict:
        since = clock_time(last_seen_at, zone)
        held = f"; {held_back} check(s) without data held back" if held_back else ""
        return Verdict(
            self.name, agent_subject(agent_id), Outcome.PROBLEM, silent_at,
            severity=self.severity,
            title=f"agent {agent_id} on {host} silent since {since}",
            summary=f"no heartbeat from agent {agent_id} since {since}{held}",
            expected="a heartbeat at least every "
                     f"{format_duration(silent_at - last_seen_at)}",
            observed=f"last heard from at {since}{held}",
            runbook=self.runbook,
            # One silence is one occurrence: the loop refreshes the held-back count in the
            # text without counting the same silence again.
            occurrence=f"silent:{last_seen_at.isoformat()}",
        )

    def back(self, agent_id: str, last_seen_at: datetime, zone: tzinfo,
             held_back: int) -> Verdict:
        held = f"; {held_back} held-back check(s) released" if held_back else ""
        return Verdict(self.name, agent_subject(agent_id), Outcome.RECOVERED, last_seen_at,
                       note=f"agent {agent_id} back at {clock_time(last_seen_at, zone)}{held}")
