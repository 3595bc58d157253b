"""Every probe type the agent knows: the config union and the one place probes are built.

Adding a type is two lines: its config class in the union, its branch in `build_probe`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from probes.base import Probe, ProbeContext
from probes.command import CommandConfig, CommandProbe
from probes.disk import DiskConfig, DiskProbe
from probes.joblog.probe import JoblogConfig, JoblogProbe
from probes.load import LoadConfig, LoadProbe
from probes.service import ServiceConfig, ServiceProbe
from probes.system import SystemConfig, SystemProbe
from probes.systemd import SystemdConfig, SystemdProbe

# Discriminated by `type`, so a wrong key in a disk probe is reported against the disk model
# only, and an unknown type names the types that exist.
ProbeConfig = Annotated[
    DiskConfig | JoblogConfig | CommandConfig | ServiceConfig | SystemConfig | LoadConfig
    | SystemdConfig,
    Field(discriminator="type"),
]


def build_probe(config: ProbeConfig, ctx: ProbeContext) -> Probe:
    if isinstance(config, DiskConfig):
        return DiskProbe(config, ctx)
    if isinstance(config, JoblogConfig):
        return JoblogProbe(config, ctx)
    if isinstance(config, CommandConfig):
        return CommandProbe(config, ctx)
    if isinstance(config, ServiceConfig):
        return ServiceProbe(config, ctx)
    if isinstance(config, SystemConfig):
        return SystemProbe(config, ctx)
    if isinstance(config, LoadConfig):
        return LoadProbe(config, ctx)
    if isinstance(config, SystemdConfig):
        return SystemdProbe(config, ctx)
    raise TypeError(f"no probe is built from {type(config).__name__}")
