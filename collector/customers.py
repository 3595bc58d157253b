"""Customer files: `config/customers/<customer>.yaml`, one per customer, and the set of them.

    customer: acme                 # must equal the file name's stem
    name: ACME Logistics
    timezone: Europe/Berlin        # IANA; schedules and display use it, storage stays UTC
    access: service_desk           # or tier2_only: only tier 2 may touch these systems
    runbook_base_url: https://wiki.example/acme/
    expectations:
      - kind: threshold
        ...

Issue 5 adds the contract: service hours and holidays, severity levels with respond and resolve
times, contacts, escalation, maintenance windows, what a recovery does and when a recurrence
reopens. docs/customers.md is the reference of every key, with examples.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Self
from urllib.parse import urljoin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from cronsim import CronSim, CronSimError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
    model_validator,
)

from collector.durations import Duration
from collector.expectations.base import Severity, check_glob
from collector.expectations.catalog import Expectation
from collector.sinks.config import SinkList
from probes.configfile import ConfigError, ConfigProblem, parse_yaml, read_text, validate

CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class Access(enum.Enum):
    SERVICE_DESK = "service_desk"
    TIER2_ONLY = "tier2_only"

    @property
    def assignment_group(self) -> str:
        return "tier2" if self is Access.TIER2_ONLY else "service_desk"


# A range of service hours within one day: "07:00-17:00"; "24:00" ends at midnight.
_RANGE_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
MINUTES_PER_DAY = 24 * 60
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LEVEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"
GROUP_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"




@dataclass(frozen=True, slots=True, order=True)
class ServiceRange:
    """Service within one day, in minutes after local midnight: [start, end), end <= 1440."""

    start: int
    end: int

    def __str__(self) -> str:
        return (f"{self.start // 60:02d}:{self.start % 60:02d}-"
                f"{self.end // 60:02d}:{self.end % 60:02d}")


def _parse_range(value: object) -> ServiceRange:
    if isinstance(value, ServiceRange):
        return value
    found = _RANGE_RE.match(value.strip()) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"{value!r} is not a range of hours: write e.g. \"07:00-17:00\"")
    start_h, start_m, end_h, end_m = (int(part) for part in found.groups())
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if start_h > 23 or start_m > 59 or end_m > 59 or end > MINUTES_PER_DAY:
        raise ValueError(f"{value!r}: hours run from 00:00 to 24:00")
    if end <= start:
        # A night shift is two ranges, on two days: "22:00-24:00" and the next "00:00-06:00".
        raise ValueError(f"{value!r} ends before it starts; split a range over midnight in two "
                         "(\"22:00-24:00\" and \"00:00-06:00\" on the next day)")
    return ServiceRange(start, end)


DayRanges = tuple[Annotated[ServiceRange, PlainValidator(_parse_range)], ...]


class ServiceHours(BaseModel):
    """When the desk serves this customer, per weekday in the customer's zone; a day not named
    is closed. `service_hours: 24x7` is every day 00:00-24:00."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mon: DayRanges = ()
    tue: DayRanges = ()
    wed: DayRanges = ()
    thu: DayRanges = ()
    fri: DayRanges = ()
    sat: DayRanges = ()
    sun: DayRanges = ()

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: object) -> object:
        if data == "24x7":
            return {day: ["00:00-24:00"] for day in WEEKDAYS}
        if isinstance(data, str):
            # ValueError, not TypeError: pydantic reports only the former as a config error.
            raise ValueError(f"{data!r}: write 24x7 or one entry per weekday "  # noqa: TRY004
                             "(mon: \"07:00-17:00\")")
        return data

    @field_validator(*WEEKDAYS, mode="before")
    @classmethod
    def _one_range_is_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator(*WEEKDAYS)
    @classmethod
    def _ranges_do_not_overlap(cls, ranges: DayRanges) -> DayRanges:
        ordered = tuple(sorted(ranges))
        for before, after in itertools.pairwise(ordered):
            if after.start < before.end:
                raise ValueError(f"{before} and {after} overlap")
        return ordered

    @model_validator(mode="after")
    def _some_day_is_open(self) -> Self:
        if not any(self.ranges_on(day) for day in range(7)):
            raise ValueError("no service hours on any day; omit the key for 24x7")
        return self

    def ranges_on(self, weekday: int) -> DayRanges:
        """The ranges of a weekday, 0 = Monday as in date.weekday()."""
        ranges: DayRanges = getattr(self, WEEKDAYS[weekday])
        return ranges

    @property
    def is_24x7(self) -> bool:
        whole_day = (ServiceRange(0, MINUTES_PER_DAY),)
        return all(self.ranges_on(day) == whole_day for day in range(7))


class Counts(enum.Enum):
    SERVICE_HOURS = "service_hours"  # only the customer's service hours count
    CALENDAR = "calendar"  # every hour counts: nights, weekends, holidays


class SeverityLevel(BaseModel):
    """One of the customer's levels (P1, P2, ...): how urgent, and how fast the desk must act."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # 1 is the most urgent: it orders the queue and picks the default mapping.
    priority: int = Field(ge=1, le=9)
    respond_within: Duration
    resolve_within: Duration
    counts: Counts = Counts.SERVICE_HOURS

    @model_validator(mode="after")
    def _resolving_takes_at_least_the_response(self) -> Self:
        if self.resolve_within < self.respond_within:
            raise ValueError("resolve_within is shorter than respond_within")
        return self


# Without `severities:` in the file: a critical incident must be answered within 30 minutes of
# service time and fixed within a service day; a warning within 4 hours, fixed in 3 days.
DEFAULT_SEVERITIES: Mapping[str, SeverityLevel] = MappingProxyType({
    "P2": SeverityLevel(priority=2, respond_within=timedelta(minutes=30),
                        resolve_within=timedelta(hours=8)),
    "P3": SeverityLevel(priority=3, respond_within=timedelta(hours=4),
                        resolve_within=timedelta(days=3)),
})


class SeverityMap(BaseModel):
    """Which of the customer's levels an incident of each severity gets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    critical: str | None = None
    warning: str | None = None


class Contact(BaseModel):
    """Whom the desk calls. No secrets here: the file is read by many and kept in git."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=256)
    role: str = Field(default="", max_length=256)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                              max_length=320)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9 ()/.-]{2,31}$")


class Recovery(enum.Enum):
    AUTO_RESOLVE = "auto_resolve"  # a recovery resolves the incident
    MARK_RECOVERED = "mark_recovered"  # it stays open, marked recovered; the desk resolves it


def _glob(pattern: str) -> str:
    return check_glob(pattern)


Globs = tuple[Annotated[str, AfterValidator(_glob)], ...]


class MaintenanceWindow(BaseModel):
    """A time when problems of some hosts are expected: opening incidents is suppressed (and
    recorded). Either one-off (`start`, `end`) or recurring (`cron`, `duration`); all times in
    the customer's zone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(min_length=1, max_length=512)
    hosts: Globs = Field(default=("*",), min_length=1)
    # Expectation names; every expectation when omitted.
    expectations: Globs = Field(default=("*",), min_length=1)
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None
    duration: Duration | None = None

    @field_validator("start", "end")
    @classmethod
    def _local_time(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            raise ValueError("write the customer's local time without an offset "
                             "(\"2025-03-08 20:00\"); it is read in the customer's timezone")
        return value

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, expr: str | None) -> str | None:
        if expr is None:
            return None
        try:
            CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
        except CronSimError as exc:
            raise ValueError(f"{exc} in {expr!r}") from exc
        return expr

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        one_off = self.start is not None or self.end is not None
        recurring = self.cron is not None or self.duration is not None
        if one_off and recurring:
            raise ValueError("a window is one-off (start, end) or recurring (cron, duration), "
                             "not both")
        if recurring:
            if self.cron is None or self.duration is None:
                raise ValueError("a recurring window needs both cron and duration")
            if self.duration <= timedelta(0):
                raise ValueError("duration must be longer than 0")
            return self
        if self.start is None or self.end is None:
            raise ValueError("a window needs start and end (one-off) or cron and duration "
                             "(recurring)")
        if self.end <= self.start:
            raise ValueError("end is not after start")
        return self

    @property
    def is_recurring(self) -> bool:
        return self.cron is not None

    def covers(self, host: str, expectation: str) -> bool:
        return (any(fnmatchcase(host, glob) for glob in self.hosts)
                and any(fnmatchcase(expectation, glob) for glob in self.expectations))


class CustomerFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer: str = Field(pattern=CUSTOMER_ID_PATTERN)
    name: str = Field(min_length=1, max_length=256)
    # UTC only as a fallback; a real customer file names its zone (deadlines depend on it).
    timezone: str = "UTC"
    access: Access = Access.SERVICE_DESK
    runbook_base_url: str | None = None
    # Without service hours the contract counts every hour (24x7).
    service_hours: ServiceHours = Field(
        default_factory=lambda: ServiceHours.model_validate("24x7"))
    # Days without service, in the customer's zone (public holidays, company closures).
    holidays: tuple[date, ...] = ()
    severities: dict[Annotated[str, Field(pattern=LEVEL_NAME_PATTERN)], SeverityLevel] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITIES), min_length=1)
    severity_map: SeverityMap = SeverityMap()
    contacts: tuple[Contact, ...] = ()
    # Whom an unacknowledged incident goes to next, in order (e.g. service_desk, tier2,
    # duty_manager); empty: it is notified again to its own group only.
    escalation: tuple[Annotated[str, Field(pattern=GROUP_NAME_PATTERN)], ...] = ()
    maintenance: tuple[MaintenanceWindow, ...] = ()
    recovery: Recovery = Recovery.AUTO_RESOLVE
    # A problem coming back this soon after its incident was resolved reopens that incident;
    # None: it always opens a new one.
    reopen_within: Duration | None = None
    expectations: tuple[Expectation, ...] = ()
    # Where this customer's incidents are sent besides the store and API (docs/sinks.md).
    sinks: SinkList = ()

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

    @field_validator("severity_map")
    @classmethod
    def _mapped_levels_exist(cls, severity_map: SeverityMap,
                             info: ValidationInfo) -> SeverityMap:
        levels = info.data.get("severities")
        if levels is None:
            return severity_map  # severities itself is wrong; that error is reported
        for severity in ("critical", "warning"):
            name = getattr(severity_map, severity)
            if name is not None and name not in levels:
                raise ValueError(f"{severity}: {name!r} is not one of the severities "
                                 f"{', '.join(sorted(levels))}")
        return severity_map

    @field_validator("reopen_within")
    @classmethod
    def _reopen_within_is_positive(cls, within: timedelta | None) -> timedelta | None:
        if within is not None and within <= timedelta(0):
            raise ValueError("must be longer than 0 (omit the key to never reopen)")
        return within

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

    def level_for(self, severity: Severity) -> tuple[str, SeverityLevel]:
        """The customer's level (its name and terms) for an incident of this severity.

        `severity_map` decides; where it is silent, a level named like the severity
        (`critical`, `warning`) is taken, else critical gets the most urgent level and warning
        the least urgent one."""
        name = getattr(self.severity_map, severity.value)
        if name is None and severity.value in self.severities:
            name = severity.value
        if name is None:
            by_urgency = sorted(self.severities, key=lambda n: (self.severities[n].priority, n))
            name = by_urgency[0] if severity is Severity.CRITICAL else by_urgency[-1]
        return name, self.severities[name]

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
