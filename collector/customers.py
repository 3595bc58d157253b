"""Customer files: `config/customers/<customer>.yaml`, one per customer, and the set of them.

    customer: acme                 # must equal the file name's stem
    name: ACME Logistics
    timezone: Europe/Berlin        # IANA; schedules and display use it, storage stays UTC
    access: service_desk           # or tier2_only: only tier 2 may touch these systems
    runbook_base_url: https://wiki.example/acme/
    expectations:
      - kind: threshold
        ...

Issue 5 adds service hours, holidays, severities, contacts, hosts, maintenance windows and
sinks as further keys of `CustomerFile`; everything here stays as it is.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Self
from urllib.parse import urljoin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collector.expectations.catalog import Expectation
from probes.configfile import ConfigError, ConfigProblem, parse_yaml, read_text, validate

CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class Access(enum.Enum):
    SERVICE_DESK = "service_desk"
    TIER2_ONLY = "tier2_only"

    @property
    def assignment_group(self) -> str:
        return "tier2" if self is Access.TIER2_ONLY else "service_desk"


class CustomerFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer: str = Field(pattern=CUSTOMER_ID_PATTERN)
    name: str = Field(min_length=1, max_length=256)
    # UTC only as a fallback; a real customer file names its zone (deadlines depend on it).
    timezone: str = "UTC"
    access: Access = Access.SERVICE_DESK
    runbook_base_url: str | None = None
    expectations: tuple[Expectation, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _timezone_exists(cls, timezone: str) -> str:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {timezone!r} (e.g. Europe/Berlin, "
                             f"America/New_York, UTC)") from exc
        return timezone

    @field_validator("runbook_base_url")
    @classmethod
    def _runbook_base_is_http(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("https://", "http://")):
            raise ValueError("must start with https:// or http://")
        return url

    @model_validator(mode="after")
    def _expectation_names_are_unique(self) -> Self:
        seen: set[str] = set()
        for expectation in self.expectations:
            if expectation.name in seen:
                # The name is part of every incident's dedup key: two would share incidents.
                raise ValueError(f"two expectations are named {expectation.name!r}")
            seen.add(expectation.name)
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def assignment_group(self) -> str:
        return self.access.assignment_group

    def runbook_url(self, runbook: str) -> str:
        """An expectation's runbook: absolute as written, or relative to runbook_base_url."""
        if not runbook or self.runbook_base_url is None or "://" in runbook:
            return runbook
        return urljoin(self.runbook_base_url, runbook)


class CustomerSet:
    """The customers loaded from one directory; replaced whole on reload, never edited."""

    def __init__(self, customers: Mapping[str, CustomerFile],
                 sources: Mapping[str, Path] | None = None) -> None:
        self._customers = dict(customers)
        self._sources = dict(sources or {})

    def get(self, customer: str) -> CustomerFile | None:
        return self._customers.get(customer)

    def source_of(self, customer: str) -> Path | None:
        return self._sources.get(customer)

    def timezone_of(self, customer: str) -> str | None:
        found = self._customers.get(customer)
        return found.timezone if found is not None else None

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._customers)

    def __contains__(self, customer: object) -> bool:
        return customer in self._customers

    def __iter__(self) -> Iterator[CustomerFile]:
        return iter(self._customers.values())

    def __len__(self) -> int:
        return len(self._customers)


def _line_of_key(node: yaml.Node | None, key: str) -> int | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == key:
                return int(value_node.start_mark.line) + 1
    return None


def load_customer_text(text: str, path: Path) -> CustomerFile:
    data, node = parse_yaml(text, str(path))
    customer = validate(CustomerFile, data, node, str(path))
    if customer.customer != path.stem:
        raise ConfigError([ConfigProblem(
            str(path), _line_of_key(node, "customer"), "customer",
            f"{customer.customer!r} must equal the file name {path.stem!r} "
            f"(rename the file to {customer.customer}.yaml or fix the id)",
        )])
    return customer


def load_customer_file(path: Path) -> CustomerFile:
    return load_customer_text(read_text(path), path)


def load_customers(directory: Path) -> CustomerSet:
    """Every `*.yaml` in directory. All files are checked; every problem of every file is
    reported in one ConfigError, so an operator fixes them in one pass."""
    if not directory.is_dir():
        raise ConfigError([ConfigProblem(str(directory), None, "",
                                         "customers directory does not exist")])
    customers: dict[str, CustomerFile] = {}
    sources: dict[str, Path] = {}
    problems: list[ConfigProblem] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            customer = load_customer_file(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        customers[customer.customer] = customer
        sources[customer.customer] = path
    if problems:
        raise ConfigError(problems)
    return CustomerSet(customers, sources)
