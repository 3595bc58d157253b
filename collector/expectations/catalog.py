"""Every expectation kind a customer file may name, as one union discriminated by `kind`.

A new kind (issue 5: deadline, duration, heartbeat, freshness) is one module in this folder and
one line here; a wrong `kind` is then refused with the list of the known ones.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from collector.expectations.deadline import JobScheduleExpectation
from collector.expectations.duration import JobDurationExpectation
from collector.expectations.freshness import CheckFreshnessExpectation
from collector.expectations.heartbeat import AgentHeartbeatExpectation
from collector.expectations.job_fails import JobMustNotFailExpectation
from collector.expectations.threshold import ThresholdExpectation

Expectation = Annotated[
    ThresholdExpectation | JobMustNotFailExpectation | JobScheduleExpectation
    | JobDurationExpectation | AgentHeartbeatExpectation | CheckFreshnessExpectation,
    Field(discriminator="kind"),
]
