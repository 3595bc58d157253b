"""Every probe type the agent knows: the config models and the one place probes are built.

A probe type's module is imported only when a configuration names it: a host pays in memory for
the probes it runs, not for all of them (the agent's target is 55 MiB resident, and the seven
modules with their parsers cost about 4 MiB more than the two an example host runs).

Adding a type is one line in PROBE_TYPES (and one in the TYPE_CHECKING union for mypy).
"""

from __future__ import annotations

import importlib
from collections.abc import Collection
from typing import TYPE_CHECKING, Annotated, Any, Final, Union

from pydantic import Field

from probes.base import Probe, ProbeConfigBase, ProbeContext

# type -> (module, config class, probe class)
PROBE_TYPES: Final[dict[str, tuple[str, str, str]]] = {
    "disk": ("probes.disk", "DiskConfig", "DiskProbe"),
    "joblog": ("probes.joblog.probe", "JoblogConfig", "JoblogProbe"),
    "command": ("probes.command", "CommandConfig", "CommandProbe"),
    "service": ("probes.service", "ServiceConfig", "ServiceProbe"),
    "system": ("probes.system", "SystemConfig", "SystemProbe"),
    "load": ("probes.load", "LoadConfig", "LoadProbe"),
    "systemd": ("probes.systemd", "SystemdConfig", "SystemdProbe"),
}


def config_class(type_name: str) -> type[ProbeConfigBase]:
    module, config_name, _ = PROBE_TYPES[type_name]
    cls: type[ProbeConfigBase] = getattr(importlib.import_module(module), config_name)
    return cls


def probe_config_union(type_names: Collection[str] | None = None) -> Any:
    """The `type`-discriminated union of the named probe types' configs (all when None).

    Discriminated, so a wrong key in a disk probe is reported against the disk model only, and
    an unknown type names the types that exist (callers pass None when a type is unknown).
    """
    names = sorted(PROBE_TYPES if type_names is None else type_names)
    classes = tuple(config_class(name) for name in names)
    if len(classes) == 1:
        return classes[0]  # its `type: Literal[...]` checks the tag
    return Annotated[Union[classes], Field(discriminator="type")]  # noqa: UP007


def build_probe(config: ProbeConfigBase, ctx: ProbeContext) -> Probe:
    type_name = getattr(config, "type", None)
    if type_name not in PROBE_TYPES:
        raise TypeError(f"no probe is built from {type(config).__name__}")
    module, _, probe_name = PROBE_TYPES[type_name]
    probe: Probe = getattr(importlib.import_module(module), probe_name)(config, ctx)
    return probe


if TYPE_CHECKING:
    from probes.command import CommandConfig
    from probes.disk import DiskConfig
    from probes.joblog.probe import JoblogConfig
    from probes.load import LoadConfig
    from probes.service import ServiceConfig
    from probes.system import SystemConfig
    from probes.systemd import SystemdConfig

    ProbeConfig = Annotated[
        DiskConfig | JoblogConfig | CommandConfig | ServiceConfig | SystemConfig | LoadConfig
        | SystemdConfig,
        Field(discriminator="type"),
    ]
else:

    def __getattr__(name: str) -> Any:
        # `from probes.registry import ProbeConfig` (tests, the SSH poller) gets every type.
        if name == "ProbeConfig":
            return probe_config_union()
        raise AttributeError(name)
