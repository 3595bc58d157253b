"""The SSH form of a probe: the commands to run on a remote host and the parser of their output.

The collector's SSH poller (a later issue) runs `commands` over paramiko and hands the outputs to
`parse`; the probe's local run and its SSH form share one pure parser, so both give the same
result for the same host (the node_exporter split: read here, parse there). A parser never
trusts its input: a failing command, a warning before a header or a truncated row becomes an
UNKNOWN result or a skipped row with a reason, never a crash and never a made-up number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from probes.result import Item


@dataclass(frozen=True, slots=True)
class CommandOutput:
    command: str
    exit_status: int
    stdout: str
    stderr: str = ""


class SshForm(Protocol):
    def commands(self) -> Sequence[str]:
        """Shell-free command lines, run as the SSH user, in this order."""
        ...

    def parse(self, outputs: Mapping[str, CommandOutput], observed_at: datetime) -> list[Item]:
        """Turn the outputs (keyed by command line) into the probe's items."""
        ...
