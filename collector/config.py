"""The collector's configuration file (`collector.yaml`), validated into typed, frozen models.

Secrets are never in the YAML: agents and API tokens name a `token_file`, read once at start
(`collector.auth.token_sha256_from_file`), so `daybreak check collector.yaml` works on a machine
that does not hold the tokens. Relative paths are relative to the configuration file, so the same
file works whatever directory the collector is started from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from probes.configfile import load_file, relative_to_config

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


def _parse_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"port must be a number from 0 to 65535, got {port!r}")
    return value


# HOST:PORT; port 0 lets the system choose (the bound port is logged at start).
Listen = Annotated[str, AfterValidator(_parse_listen)]


def split_listen(listen: str) -> tuple[str, int]:
    """'127.0.0.1:8471' -> ('127.0.0.1', 8471); '[::1]:8471' -> ('::1', 8471)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GrpcConfig(_Model):
    listen: Listen = "127.0.0.1:8471"
    # A full batch of 1,000 results with capped details (16 KiB each) fits well below this;
    # anything bigger is refused by gRPC before it is parsed.
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)
    max_batch_items: int = Field(default=1000, ge=1, le=10_000)


class HttpConfig(_Model):
    listen: Listen = "127.0.0.1:8470"


class StoreConfig(_Model):
    # None: sqlite:///<state_dir>/daybreak.db. PostgreSQL: postgresql+psycopg://user@host/db.
    url: str | None = None
    results_retention_days: float = Field(default=14, gt=0, le=3650)
    prune_interval_s: float = Field(default=600.0, ge=1.0, le=86400.0)


class AgentEntry(_Model):
    agent_id: str = Field(pattern=NAME_PATTERN)
    customer: str = Field(pattern=NAME_PATTERN)
    token_file: Path

    @field_validator("token_file")
    @classmethod
    def _anchor(cls, value: Path, info: ValidationInfo) -> Path:
        return relative_to_config(value, info)


class ApiTokenEntry(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    role: Literal["admin", "service_desk", "tier2"]
    # "*": every customer. Tier 2 tokens usually name the few customers the team looks after.
    customers: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    token_file: Path

    @field_validator("token_file")
    @classmethod
    def _anchor(cls, value: Path, info: ValidationInfo) -> Path:
        return relative_to_config(value, info)


class LogConfig(_Model):
    # auto: JSON when stderr is not a terminal (a service), console when it is (a person).
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class CollectorConfig(_Model):
    grpc: GrpcConfig = Field(default_factory=GrpcConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    # Where the default SQLite store lives.
    state_dir: Path = Field(default=Path("var"), validate_default=True)
    store: StoreConfig = Field(default_factory=StoreConfig)
    customers_dir: Path = Field(default=Path("customers"), validate_default=True)
    agents: list[AgentEntry] = Field(default_factory=list)
    api_tokens: list[ApiTokenEntry] = Field(default_factory=list)
    # Told to every agent in Welcome; the heartbeat expectation allows a few missed ones.
    heartbeat_interval_s: int = Field(default=15, ge=1, le=3600)
    log: LogConfig = Field(default_factory=LogConfig)

    @field_validator("state_dir", "customers_dir")
    @classmethod
    def _anchor(cls, value: Path, info: ValidationInfo) -> Path:
        return relative_to_config(value, info)

    @model_validator(mode="after")
    def _names_are_unique(self) -> CollectorConfig:
        agent_ids = [a.agent_id for a in self.agents]
        if len(agent_ids) != len(set(agent_ids)):
            duplicates = sorted({a for a in agent_ids if agent_ids.count(a) > 1})
            raise ValueError(f"agents: agent_id listed twice: {', '.join(duplicates)}")
        token_names = [t.name for t in self.api_tokens]
        if len(token_names) != len(set(token_names)):
            duplicates = sorted({n for n in token_names if token_names.count(n) > 1})
            raise ValueError(f"api_tokens: name listed twice: {', '.join(duplicates)}")
        return self

    @property
    def store_url(self) -> str:
        if self.store.url:
            return self.store.url
        return f"sqlite:///{self.state_dir / 'daybreak.db'}"


def load_collector_config(path: Path) -> CollectorConfig:
    """Read and validate a collector.yaml; raises probes.configfile.ConfigError with file:line."""
    return load_file(CollectorConfig, path)
