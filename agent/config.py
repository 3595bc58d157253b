"""The agent's configuration file (`agent.yaml`), validated into AgentConfig.

Relative paths are relative to the folder of the configuration file, so a config and its token
can move together. The token itself never appears in YAML: only the path of a file that only the
agent's user may read (checked on the host: `load_agent_config(path, check_files=True)`, and
again at every connect by `read_token`).
"""

from __future__ import annotations

import socket
import stat
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from probes.base import ProbeConfigBase
from probes.configfile import ConfigError, ConfigProblem, parse_yaml, read_text, validate
from probes.registry import PROBE_TYPES, probe_config_union

MIB = 1024 * 1024

# host:port, where host is a name, an IPv4 address or a bracketed IPv6 address.
Endpoint = Annotated[
    str,
    Field(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):[0-9]{1,5}$"),
]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]


class SpoolSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # At a result per probe per second, 100k items is more than a day of outage for a small
    # host; the byte bound keeps a chatty job log from filling the disk first.
    max_items: int = Field(default=100_000, ge=100, le=10_000_000)
    max_bytes: int = Field(default=64 * MIB, ge=1 * MIB, le=4096 * MIB)


class BatchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The collector spends 0.2 to 0.9 ms per message: batching is what makes ingest scale.
    max_items: int = Field(default=500, ge=1, le=5000)
    # How long a partly filled batch waits for more items before it is sent anyway.
    linger_ms: int = Field(default=200, ge=0, le=10_000)


class LogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # auto: JSON when stderr is not a terminal (systemd, docker), readable lines when it is.
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


def _relative_to_config_file(value: Path, info: ValidationInfo) -> Path:
    config_path = (info.context or {}).get("config_path")
    if value.is_absolute() or not config_path:
        return value
    return Path(config_path).parent / value


class HandoffSettings(BaseModel):
    """Where `daybreak-agent run` (the job wrapper) hands its job runs to the agent.

    The wrapper usually runs as another user than the agent (a crontab's owner), and the
    state_dir is private to the agent: when it does, point both paths outside state_dir (e.g.
    /run/daybreak/handoff.sock and /var/spool/daybreak/inbox) and name the group whose members
    may hand off (docs/wrapper.md).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # None: <state_dir>/handoff.sock and <state_dir>/inbox.
    socket: Path | None = None
    inbox: Path | None = None
    # The group allowed to write to the socket and the inbox; None: the socket is the agent's
    # group's (mode 0660) and the inbox is world-writable and sticky, like /tmp.
    group: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
    # How often the inbox (runs handed off while the agent was down) is drained.
    drain_interval_s: float = Field(default=5.0, ge=0.1, le=3600.0)

    @field_validator("socket", "inbox")
    @classmethod
    def _resolve_relative_paths(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _relative_to_config_file(value, info)


def check_token_file(path: Path) -> None:
    """Refuse a missing token file or one that others could read (ValueError says what to do)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ValueError(f"token file {path} does not exist") from None
    except OSError as exc:
        raise ValueError(f"token file {path} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"token file {path} is not a regular file")
    if mode & 0o077:
        raise ValueError(
            f"token file {path} has mode {stat.S_IMODE(mode):04o} and may be read by group or "
            f"others; run: chmod 600 {path}"
        )


def read_token(path: Path) -> str:
    """The agent's bearer token. Read at every connect, so a rotated token needs no restart."""
    check_token_file(path)
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise ValueError(f"token file {path} is empty")
    return token


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agent_id: Identifier
    customer: Identifier
    host: str = Field(default_factory=socket.gethostname, min_length=1, max_length=255)
    # Tried in turn on reconnect: several collectors may share the work (DESIGN.md).
    collectors: list[Endpoint] = Field(min_length=1, max_length=32)
    token_file: Path
    # The spool and each probe's state (offsets) live here; created at start if missing.
    state_dir: Path
    spool: SpoolSettings = Field(default_factory=SpoolSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    heartbeat_interval_s: float = Field(default=10.0, ge=1.0, le=3600.0)
    # Narrowed to the probe types the file names by agent_config_model(): each type's module is
    # imported only when a host runs it (probes/registry.py says why).
    probes: list[ProbeConfigBase] = Field(default_factory=list)
    log: LogSettings = Field(default_factory=LogSettings)
    handoff: HandoffSettings = Field(default_factory=HandoffSettings)

    @field_validator("token_file", "state_dir")
    @classmethod
    def _resolve_relative_paths(cls, value: Path, info: ValidationInfo) -> Path:
        return _relative_to_config_file(value, info)

    @field_validator("probes")
    @classmethod
    def _probe_names_are_unique(cls, probes: list[ProbeConfigBase]) -> list[ProbeConfigBase]:
        # A probe's name is its identity in the collector's check keys and in its state folder:
        # two probes with one name would overwrite each other's offsets and results.
        first_index: dict[str, int] = {}
        errors: list[InitErrorDetails] = []
        for index, probe in enumerate(probes):
            if probe.name in first_index:
                message = f"probe name is already used by probes[{first_index[probe.name]}]"
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError("duplicate_probe_name", message),
                        loc=(index, "name"),
                        input=probe.name,
                    )
                )
            first_index.setdefault(probe.name, index)
        if errors:
            # Raised as a ValidationError so the location points at the repeated name's line.
            raise ValidationError.from_exception_data("probes", errors)
        return probes

    @property
    def spool_path(self) -> Path:
        return self.state_dir / "spool.sqlite3"

    def probe_state_dir(self, probe_name: str) -> Path:
        return self.state_dir / "probes" / probe_name

    @property
    def handoff_socket_path(self) -> Path:
        return self.handoff.socket or self.state_dir / "handoff.sock"

    @property
    def handoff_inbox_path(self) -> Path:
        return self.handoff.inbox or self.state_dir / "inbox"


def _line_of_top_level_key(node: yaml.Node | None, key: str) -> int | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if key_node.value == key:
                return int(key_node.start_mark.line) + 1
    return None


def probe_types_named_in(data: object) -> set[str] | None:
    """The probe types a parsed agent.yaml names; None when one is unknown or unreadable, so
    validation uses every type and its error lists the types that exist."""
    probes = data.get("probes") if isinstance(data, dict) else None
    if not isinstance(probes, list):
        return set()
    names = {entry.get("type") if isinstance(entry, dict) else None for entry in probes}
    if not all(isinstance(name, str) and name in PROBE_TYPES for name in names):
        return None
    return {name for name in names if isinstance(name, str)}


def agent_config_model(probe_types: Collection[str] | None = None) -> type[AgentConfig]:
    """AgentConfig whose `probes` accepts the given probe types (every type when None)."""
    if probe_types is not None and not probe_types:
        return AgentConfig
    union = probe_config_union(probe_types)
    model: type[AgentConfig] = create_model(
        "AgentConfig", __base__=AgentConfig,
        probes=(list[union], Field(default_factory=list)),  # type: ignore[valid-type]
    )
    return model


def load_agent_config(path: Path, *, check_files: bool = False) -> AgentConfig:
    """Read and validate agent.yaml; raises probes.configfile.ConfigError (file:line: field).

    check_files: also refuse a token file that is missing or readable by others. The agent and
    `daybreak-agent check` do, on the host; an offline check elsewhere (`daybreak check` on the
    operator's machine, the example files' test) cannot, as the token lives on the host only.
    """
    text = read_text(path)
    data, node = parse_yaml(text, str(path))
    config = validate(agent_config_model(probe_types_named_in(data)), data, node, str(path))
    if check_files:
        try:
            check_token_file(config.token_file)
        except ValueError as exc:
            line = _line_of_top_level_key(node, "token_file")
            raise ConfigError([ConfigProblem(str(path), line, "token_file", str(exc))]) from exc
    return config
