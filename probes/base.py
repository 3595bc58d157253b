"""The probe interface every probe type implements, and what a run hands back.

A probe is built once from its validated config and keeps state between runs (a log tailer's
offsets, a disk's usage history). `run()` blocks and is called from the agent's thread pool, never
on the event loop, and never twice at once for the same probe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from probes.clock import Clock
from probes.result import Item


@dataclass(frozen=True, slots=True)
class ProbeContext:
    clock: Clock
    # A folder the probe owns for state that must survive restarts (offsets, history).
    state_dir: Path


@dataclass(slots=True)
class ProbeOutput:
    items: Sequence[Item]
    # Called by the agent once `items` are durably spooled: a tailer saves its offsets here, so
    # a crash between reading and spooling re-reads rather than loses.
    commit: Callable[[], None] | None = None
    # Human-readable notes about what the probe skipped or cut (logged by the agent).
    notes: Sequence[str] = field(default_factory=tuple)


class Probe(Protocol):
    name: str

    def run(self) -> ProbeOutput: ...


class ProbeConfigBase(BaseModel):
    """What every probe entry in an agent's `probes:` list has; each type adds its own keys.

    Each probe type subclasses this with `type: Literal["<type>"]`, so the list is a union
    discriminated by `type` and a wrong key is refused with the probe's index named.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    # Down to 1 s: a job log checked every second lists its failure within 2 s.
    interval_s: float = Field(default=60.0, ge=1.0, le=86400.0)
    # Spread of the start of each run, so a fleet does not probe in lockstep. None: 10 % of the
    # interval, at most 30 s.
    jitter_s: float | None = Field(default=None, ge=0.0, le=3600.0)
    # A run that takes longer is abandoned and reported UNKNOWN. None: the interval, at most 60 s.
    timeout_s: float | None = Field(default=None, gt=0.0, le=3600.0)

    @property
    def needs_ssl(self) -> bool:
        """Whether the probe uses Python's ssl module (an HTTPS or TLS check). The agent leaves
        ssl out of its memory unless a configured probe says yes here (agent/cli.py)."""
        return False

    @property
    def effective_jitter_s(self) -> float:
        return self.jitter_s if self.jitter_s is not None else min(self.interval_s * 0.1, 30.0)

    @property
    def effective_timeout_s(self) -> float:
        return self.timeout_s if self.timeout_s is not None else min(self.interval_s, 60.0)
