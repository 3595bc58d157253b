"""Service probe: processes running, systemd units active, TCP ports, HTTP endpoints, TLS expiry.

One probe entry holds a list of checks, each a kind of its own (`kind: process`, ...), and gives
one result per check:

    process        process:<name>         count of matching processes within min/max
    systemd_unit   service:<unit>         the unit's ActiveState, SubState and Result
    tcp            tcp:<host>:<port>      a connection accepted within the timeout
    http           http:<url>             the expected status (and body pattern) in time
    tls            tls:<host>:<port>      days until the certificate expires

Gathering is apart from judging: ps output and psutil both become `ProcessRow`s, `systemctl show`
output is parsed the same way whether it ran here or over SSH, and `ss -ltn` answers the TCP check
over SSH. HTTP and TLS checks need a connection from the host itself, so they run locally only.
ssl and http.client are imported inside the checks that use them (memory: see agent/cli.py).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from probes.base import ProbeConfigBase, ProbeContext, ProbeOutput
from probes.parsers.ps import ProcessRow, PsFailed, parse_ps, process_row
from probes.parsers.ss import SsFailed, listens_for, parse_listening_tcp
from probes.parsers.systemctl import UP_STATES, parse_show, says_systemd_is_absent
from probes.parsers.x509 import parse_validity
from probes.result import Item, Result, Status, one_line
from probes.sshform import CommandOutput

if TYPE_CHECKING:
    from probes.clock import Clock

StatusName = Literal["OK", "WARN", "CRIT", "UNKNOWN"]

# `-ww`: never cut the command line at a terminal width, or a command_regex would miss.
PS_COMMAND = "ps -ww -eo pid,ppid,nlwp,args"
SS_COMMAND = "ss -ltn"
UNIT_PROPERTIES = (
    "Id", "LoadState", "ActiveState", "SubState", "Result", "NRestarts", "ExecMainStatus",
)  # fmt: skip
# The body an HTTP check reads for its pattern: enough for a status page, bounded for memory.
HTTP_BODY_MAX_BYTES = 1024 * 1024
UNIT_SUFFIXES = (
    ".service", ".socket", ".target", ".timer", ".mount", ".path", ".slice", ".scope", ".swap",
    ".device", ".automount",
)  # fmt: skip


class _CheckBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Replaces the part of the check key after the kind (`process:<label>`), e.g. to tell two
    # checks on one name apart or to keep a key stable when a URL changes.
    label: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$")


def _compiled(pattern: str | None) -> str | None:
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
    return pattern


class ProcessCheck(_CheckBase):
    kind: Literal["process"]
    # The executable's base name as ps shows it first on the command line (`sshd`, `nginx`).
    name: str | None = Field(default=None, min_length=1, max_length=255)
    # Searched anywhere in the whole command line (`java .*-jar /opt/app/billing.jar`).
    command_regex: str | None = Field(default=None, min_length=1)
    min_count: int = Field(default=1, ge=0)
    max_count: int | None = Field(default=None, ge=0)

    _check_regex = field_validator("command_regex")(_compiled)

    @model_validator(mode="after")
    def _something_to_match_and_sane_bounds(self) -> ProcessCheck:
        if self.name is None and self.command_regex is None:
            raise ValueError("a process check needs name or command_regex (or both)")
        if self.max_count is not None and self.max_count < self.min_count:
            raise ValueError(
                f"max_count ({self.max_count}) must be at least min_count ({self.min_count})"
            )
        return self

    @property
    def key(self) -> str:
        return f"process:{self.label or self.name or self.command_regex}"

    def matches(self, row: ProcessRow) -> bool:
        if row.kernel_thread:
            return False
        if self.name is not None and row.name != self.name:
            return False
        return self.command_regex is None or re.search(self.command_regex, row.args) is not None


class SystemdUnitCheck(_CheckBase):
    kind: Literal["systemd_unit"]
    # A unit name; without a type suffix it is a service, as systemctl reads it.
    unit: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9:_.@\\-]{0,250}$")
    # A oneshot job's unit is inactive between runs: set when_inactive: OK for those.
    when_inactive: StatusName = "CRIT"
    when_failed: StatusName = "CRIT"

    @field_validator("unit")
    @classmethod
    def _with_suffix(cls, unit: str) -> str:
        return unit if unit.endswith(UNIT_SUFFIXES) else f"{unit}.service"

    @property
    def key(self) -> str:
        return f"service:{self.label or self.unit}"


class TcpCheck(_CheckBase):
    kind: Literal["tcp"]
    host: str = Field(min_length=1, max_length=255, pattern=r"^[^\s/]+$")
    port: int = Field(ge=1, le=65535)
    timeout_s: float = Field(default=5.0, gt=0.0, le=120.0)

    @property
    def key(self) -> str:
        return f"tcp:{self.label or f'{self.host}:{self.port}'}"


class HttpCheck(_CheckBase):
    kind: Literal["http"]
    url: str = Field(max_length=2048)
    method: Literal["GET", "HEAD"] = "GET"
    expected_status: list[int] = Field(default_factory=lambda: [200], min_length=1)
    # Searched in the first MiB of the body, decoded as UTF-8 with replacement.
    body_regex: str | None = Field(default=None, min_length=1)
    timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)
    # WARN when the answer is right but took longer than this.
    warn_response_ms: float | None = Field(default=None, gt=0.0)
    # Off for an internal endpoint with a private CA; the tls check still watches its expiry.
    verify_tls: bool = True

    _check_regex = field_validator("body_regex")(_compiled)

    @field_validator("url")
    @classmethod
    def _http_or_https_with_a_host(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be http:// or https:// with a host name")
        return url

    @field_validator("expected_status")
    @classmethod
    def _real_statuses(cls, statuses: list[int]) -> list[int]:
        bad = [s for s in statuses if not 100 <= s <= 599]
        if bad:
            raise ValueError(f"HTTP statuses are 100-599, not {bad}")
        return statuses

    @property
    def key(self) -> str:
        return f"http:{self.label or self.url}"

    @property
    def needs_ssl(self) -> bool:
        return urlsplit(self.url).scheme == "https"


class TlsCheck(_CheckBase):
    kind: Literal["tls"]
    host: str = Field(min_length=1, max_length=255, pattern=r"^[^\s/]+$")
    port: int = Field(default=443, ge=1, le=65535)
    # The name sent in SNI; the host by default.
    server_name: str | None = Field(default=None, min_length=1, max_length=255)
    warn_days: float = Field(default=30.0, ge=0.0)
    crit_days: float = Field(default=7.0, ge=0.0)
    timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)

    @model_validator(mode="after")
    def _crit_is_not_above_warn(self) -> TlsCheck:
        if self.crit_days > self.warn_days:
            raise ValueError(
                f"crit_days ({self.crit_days}) must be at most warn_days ({self.warn_days})"
            )
        return self

    @property
    def key(self) -> str:
        return f"tls:{self.label or f'{self.host}:{self.port}'}"


ServiceCheck = Annotated[
    ProcessCheck | SystemdUnitCheck | TcpCheck | HttpCheck | TlsCheck,
    Field(discriminator="kind"),
]


class ServiceConfig(ProbeConfigBase):
    type: Literal["service"]
    checks: list[ServiceCheck] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _check_keys_are_unique(self) -> ServiceConfig:
        seen: dict[str, int] = {}
        for index, check in enumerate(self.checks):
            if check.key in seen:
                raise ValueError(
                    f"checks[{index}] has the same key {check.key!r} as checks[{seen[check.key]}]"
                    "; give one a label"
                )
            seen[check.key] = index
        return self

    @property
    def needs_ssl(self) -> bool:
        """Whether a check uses Python's ssl module (the agent then leaves it loadable)."""
        return any(
            isinstance(check, TlsCheck) or (isinstance(check, HttpCheck) and check.needs_ssl)
            for check in self.checks
        )


def _result(
    config: ServiceConfig,
    key: str,
    status: Status,
    summary: str,
    observed_at: datetime,
    metrics: Mapping[str, float] | None = None,
) -> Result:
    return Result(
        probe=config.name,
        check=key,
        status=status,
        summary=one_line(summary),
        observed_at=observed_at,
        metrics=dict(metrics or {}),
    )


# --- process ---------------------------------------------------------------------------------


def process_status(check: ProcessCheck, rows: Sequence[ProcessRow]) -> tuple[Status, str, int]:
    matching = [row for row in rows if check.matches(row)]
    count = len(matching)
    what = check.label or check.name or f"/{check.command_regex}/"
    bounds = f"{check.min_count}" + ("+" if check.max_count is None else f"-{check.max_count}")
    plural = "process" if count == 1 else "processes"
    pids = ", ".join(str(row.pid) for row in matching[:5]) + (", ..." if count > 5 else "")
    running = f"{count} {what} {plural} running" + (f" (pid {pids})" if pids else "")
    if count < check.min_count:
        return Status.CRIT, f"{running}, expected at least {check.min_count}", count
    if check.max_count is not None and count > check.max_count:
        return Status.CRIT, f"{running}, expected at most {check.max_count}", count
    return Status.OK, f"{running} (expected {bounds})", count


def process_results(
    config: ServiceConfig, rows: Sequence[ProcessRow] | str, observed_at: datetime
) -> list[Result]:
    """One result per process check; rows, or the reason they could not be read."""
    results = []
    for check in config.checks:
        if not isinstance(check, ProcessCheck):
            continue
        if isinstance(rows, str):
            results.append(_result(config, check.key, Status.UNKNOWN, rows, observed_at))
            continue
        status, summary, count = process_status(check, rows)
        results.append(_result(config, check.key, status, summary, observed_at, {"count": count}))
    return results


def local_process_rows(own_pid: int) -> list[ProcessRow]:
    """Every process on this host as ps would show it, minus the agent itself."""
    import psutil  # the agent reads its own usage from /proc; only this check needs psutil

    rows = []
    for process in psutil.process_iter(["pid", "name", "cmdline"]):
        info = process.info
        if info["pid"] == own_pid:
            continue
        cmdline = info.get("cmdline") or []
        # Like ps: a process without a command line (kernel thread, zombie) shows as [name].
        args = " ".join(cmdline) if cmdline else f"[{info.get('name') or '?'}]"
        rows.append(process_row(int(info["pid"]), args))
    return rows


def rows_from_ps(output: CommandOutput) -> list[ProcessRow] | str:
    """Rows from ps run over SSH, or "ps failed: ..." when there is no process table."""
    if output.exit_status != 0:
        reason = (output.stderr or output.stdout).strip().splitlines()
        return f"ps failed: {reason[0] if reason else f'exit status {output.exit_status}'}"
    try:
        rows = parse_ps(output.stdout)
    except PsFailed as exc:
        return f"ps failed: {exc}"
    # ps lists itself; a command_regex such as `ps` must not count the probe's own command.
    return [row for row in rows if row.args != output.command]


# --- systemd_unit ------------------------------------------------------------------------------


def _status_named(name: StatusName) -> Status:
    return Status[name]


def unit_status(check: SystemdUnitCheck, properties: Mapping[str, str]) -> tuple[Status, str]:
    unit = check.unit
    active = properties.get("ActiveState", "")
    sub = properties.get("SubState", "")
    result = properties.get("Result", "")
    state = f"{active} ({sub})" if sub else active
    if properties.get("LoadState") == "not-found":
        return Status.CRIT, f"{unit} is not installed (LoadState not-found)"
    if not active:
        return Status.UNKNOWN, f"systemctl show gave no ActiveState for {unit}"
    if active in UP_STATES:
        return Status.OK, f"{unit} is {state}"
    if active == "failed":
        why = f", result {result}" if result and result != "success" else ""
        return _status_named(check.when_failed), f"{unit} is {state}{why}"
    if active == "inactive":
        last = f", last result {result}" if result else ""
        return _status_named(check.when_inactive), f"{unit} is {state}{last}"
    # activating, deactivating, maintenance: on the way somewhere, not serving yet.
    return Status.WARN, f"{unit} is {state}"


def _unit_metrics(properties: Mapping[str, str]) -> dict[str, float]:
    metrics = {"active": 1.0 if properties.get("ActiveState") in UP_STATES else 0.0}
    for prop, metric in (("NRestarts", "restarts"), ("ExecMainStatus", "exec_main_status")):
        value = properties.get(prop, "")
        if value.lstrip("-").isdigit():
            metrics[metric] = float(value)
    return metrics


def systemctl_show_command(units: Sequence[str]) -> str:
    return f"systemctl show -p {','.join(UNIT_PROPERTIES)} -- {' '.join(units)}"


def unit_results(
    config: ServiceConfig, output: CommandOutput | str, observed_at: datetime
) -> list[Result]:
    """Results of the unit checks from one `systemctl show` of all their units (blocks come in
    the order the units were named), or from the reason systemctl could not be asked."""
    checks = [c for c in config.checks if isinstance(c, SystemdUnitCheck)]
    if not checks:
        return []
    problem: str | None = output if isinstance(output, str) else None
    blocks: list[dict[str, str]] = []
    if isinstance(output, CommandOutput):
        said = f"{output.stderr}\n{output.stdout}"
        if says_systemd_is_absent(said):
            problem = "systemd is not running here"
        elif output.exit_status != 0:
            first = said.strip().splitlines()
            problem = f"systemctl failed: {first[0] if first else output.exit_status}"
        else:
            blocks = parse_show(output.stdout)
            if len(blocks) != len(checks):
                problem = f"systemctl show gave {len(blocks)} units for {len(checks)} asked"
    if problem is not None:
        return [_result(config, c.key, Status.UNKNOWN, problem, observed_at) for c in checks]
    results = []
    for check, properties in zip(checks, blocks, strict=True):
        status, summary = unit_status(check, properties)
        metrics = _unit_metrics(properties)
        results.append(_result(config, check.key, status, summary, observed_at, metrics))
    return results


def local_systemctl_show(
    units: Sequence[str], systemd_run_dir: Path, timeout_s: float
) -> CommandOutput | str:
    # sd_booted(): systemd is PID 1 exactly when this folder exists. Without it systemctl can
    # only fail, so say plainly why rather than pass on its D-Bus error.
    if not systemd_run_dir.is_dir():
        return "systemd is not running here"
    command = systemctl_show_command(units)
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv, unit names validated by pattern
            ["systemctl", "show", "-p", ",".join(UNIT_PROPERTIES), "--", *units],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        return "systemctl is not installed here"
    except subprocess.TimeoutExpired:
        return f"systemctl show did not answer within {timeout_s:g} s"
    return CommandOutput(command, completed.returncode, completed.stdout, completed.stderr)


# --- tcp ---------------------------------------------------------------------------------------


def tcp_connect_result(
    config: ServiceConfig, check: TcpCheck, clock: Clock, observed_at: datetime
) -> Result:
    import socket

    started = clock.monotonic()
    where = f"{check.host}:{check.port}"
    try:
        with socket.create_connection((check.host, check.port), timeout=check.timeout_s):
            elapsed_ms = (clock.monotonic() - started) * 1000
    except socket.gaierror as exc:
        return _result(
            config, check.key, Status.UNKNOWN, f"cannot resolve {check.host}: {exc.strerror}",
            observed_at,
        )  # fmt: skip
    except TimeoutError:
        return _result(
            config, check.key, Status.CRIT,
            f"{where} did not accept a connection within {check.timeout_s:g} s", observed_at,
        )  # fmt: skip
    except OSError as exc:
        return _result(
            config, check.key, Status.CRIT,
            f"{where} refused the connection: {exc.strerror or exc}", observed_at,
        )  # fmt: skip
    return _result(
        config, check.key, Status.OK, f"{where} accepts connections ({elapsed_ms:.0f} ms)",
        observed_at, {"connect_ms": round(elapsed_ms, 1)},
    )  # fmt: skip


def tcp_results_from_ss(
    config: ServiceConfig, output: CommandOutput, observed_at: datetime
) -> list[Result]:
    checks = [c for c in config.checks if isinstance(c, TcpCheck)]
    if not checks:
        return []
    problem: str | None = None
    if output.exit_status != 0:
        said = (output.stderr or output.stdout).strip().splitlines()
        problem = said[0] if said else f"exit status {output.exit_status}"
    else:
        try:
            sockets = parse_listening_tcp(output.stdout)
        except SsFailed as exc:
            problem = str(exc)
    if problem is not None:
        reason = f"ss failed: {problem}"
        return [_result(config, c.key, Status.UNKNOWN, reason, observed_at) for c in checks]
    results = []
    for check in checks:
        where = f"{check.host}:{check.port}"
        if listens_for(sockets, check.host, check.port):
            status, summary = Status.OK, f"something listens on {where}"
        else:
            status, summary = Status.CRIT, f"nothing listens on {where}"
        results.append(_result(config, check.key, status, summary, observed_at))
    return results


# --- http --------------------------------------------------------------------------------------


def http_result(
    config: ServiceConfig, check: HttpCheck, clock: Clock, observed_at: datetime
) -> Result:
    import http.client

    parts = urlsplit(check.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        import ssl

        context = ssl.create_default_context()
        if not check.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=check.timeout_s, context=context
        )
    else:
        connection = http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=check.timeout_s
        )
    started = clock.monotonic()
    try:
        # Redirects are not followed: a 301 is reported as the status it is.
        connection.request(check.method, target, headers={"User-Agent": "daybreak-agent"})
        response = connection.getresponse()
        body = response.read(HTTP_BODY_MAX_BYTES) if check.body_regex else b""
        elapsed_ms = (clock.monotonic() - started) * 1000
    except TimeoutError:
        return _result(
            config, check.key, Status.CRIT,
            f"{check.method} {check.url} gave no answer within {check.timeout_s:g} s", observed_at,
        )  # fmt: skip
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return _result(
            config, check.key, Status.CRIT, f"{check.method} {check.url} failed: {reason}",
            observed_at,
        )  # fmt: skip
    finally:
        connection.close()
    metrics = {"status_code": float(response.status), "response_ms": round(elapsed_ms, 1)}
    answered = f"{check.method} {check.url} answered {response.status} in {elapsed_ms:.0f} ms"
    if response.status not in check.expected_status:
        expected = ", ".join(str(s) for s in check.expected_status)
        summary = f"{answered}, expected {expected}"
        return _result(config, check.key, Status.CRIT, summary, observed_at, metrics)
    if check.body_regex and not re.search(check.body_regex, body.decode("utf-8", "replace")):
        summary = f"{answered}, but the body does not match /{check.body_regex}/"
        return _result(config, check.key, Status.CRIT, summary, observed_at, metrics)
    if check.warn_response_ms is not None and elapsed_ms > check.warn_response_ms:
        summary = f"{answered}, slower than {check.warn_response_ms:g} ms"
        return _result(config, check.key, Status.WARN, summary, observed_at, metrics)
    return _result(config, check.key, Status.OK, answered, observed_at, metrics)


# --- tls ---------------------------------------------------------------------------------------


def expiry_status(
    check: TlsCheck, not_after: datetime, not_before: datetime, now: datetime
) -> tuple[Status, str, float]:
    days_left = (not_after - now).total_seconds() / 86400
    where = f"{check.host}:{check.port}"
    date = not_after.date().isoformat()
    if now < not_before:
        valid_from = not_before.date().isoformat()
        return Status.CRIT, f"certificate of {where} is not valid before {valid_from}", days_left
    if days_left < 0:
        return (
            Status.CRIT,
            f"certificate of {where} expired {-days_left:.0f} days ago ({date})",
            (days_left),
        )
    summary = f"certificate of {where} expires in {days_left:.0f} days ({date})"
    if days_left <= check.crit_days:
        return Status.CRIT, summary, days_left
    if days_left <= check.warn_days:
        return Status.WARN, summary, days_left
    return Status.OK, summary, days_left


def tls_result(config: ServiceConfig, check: TlsCheck, observed_at: datetime) -> Result:
    import socket
    import ssl

    # Verification is off on purpose: an expired or self-signed certificate must still be read,
    # or the check could only say "handshake failed" exactly when its answer matters most.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    where = f"{check.host}:{check.port}"
    try:
        with (
            socket.create_connection((check.host, check.port), timeout=check.timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=check.server_name or check.host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except TimeoutError:
        summary = f"{where} did not complete a TLS handshake within {check.timeout_s:g} s"
        return _result(config, check.key, Status.CRIT, summary, observed_at)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return _result(
            config, check.key, Status.CRIT, f"TLS to {where} failed: {reason}", observed_at
        )
    if not der:
        return _result(
            config, check.key, Status.UNKNOWN, f"{where} sent no certificate", observed_at
        )
    try:
        validity = parse_validity(der)
    except ValueError as exc:
        summary = f"cannot read the certificate of {where}: {exc}"
        return _result(config, check.key, Status.UNKNOWN, summary, observed_at)
    status, summary, days_left = expiry_status(
        check, validity.not_after, validity.not_before, observed_at
    )
    return _result(
        config, check.key, status, summary, observed_at, {"days_left": round(days_left, 2)}
    )


def _local_only_result(
    config: ServiceConfig, check: HttpCheck | TlsCheck, observed_at: datetime
) -> Result:
    return _result(
        config, check.key, Status.UNKNOWN,
        f"{check.kind} checks run from the agent on the host; the SSH form does not make them",
        observed_at,
    )  # fmt: skip


# --- probe and SSH form ------------------------------------------------------------------------


def _in_config_order(config: ServiceConfig, results: Sequence[Result]) -> list[Result]:
    order = {check.key: index for index, check in enumerate(config.checks)}
    return sorted(results, key=lambda result: order[result.check])


class ServiceProbe:
    def __init__(
        self,
        config: ServiceConfig,
        ctx: ProbeContext,
        systemd_run_dir: Path = Path("/run/systemd/system"),
    ) -> None:
        self.name = config.name
        self._config = config
        self._ctx = ctx
        # A parameter so tests can say "systemd runs here" or not.
        self._systemd_run_dir = systemd_run_dir

    def run(self) -> ProbeOutput:
        import os

        config = self._config
        observed_at = self._ctx.clock.now()
        results: list[Result] = []
        if any(isinstance(c, ProcessCheck) for c in config.checks):
            rows: list[ProcessRow] | str
            try:
                rows = local_process_rows(own_pid=os.getpid())
            except OSError as exc:
                rows = f"cannot list processes: {exc}"
            results.extend(process_results(config, rows, observed_at))
        units = [c.unit for c in config.checks if isinstance(c, SystemdUnitCheck)]
        if units:
            shown = local_systemctl_show(units, self._systemd_run_dir, config.effective_timeout_s)
            results.extend(unit_results(config, shown, observed_at))
        for check in config.checks:
            if isinstance(check, TcpCheck):
                results.append(tcp_connect_result(config, check, self._ctx.clock, observed_at))
            elif isinstance(check, HttpCheck):
                results.append(http_result(config, check, self._ctx.clock, observed_at))
            elif isinstance(check, TlsCheck):
                results.append(tls_result(config, check, observed_at))
        return ProbeOutput(items=_in_config_order(config, results))


class ServiceSshForm:
    """ps for process checks, one systemctl show for all units, ss for TCP ports."""

    def __init__(self, config: ServiceConfig) -> None:
        self._config = config

    def _units(self) -> list[str]:
        return [c.unit for c in self._config.checks if isinstance(c, SystemdUnitCheck)]

    def commands(self) -> Sequence[str]:
        checks = self._config.checks
        commands = []
        if any(isinstance(c, ProcessCheck) for c in checks):
            commands.append(PS_COMMAND)
        if units := self._units():
            commands.append(systemctl_show_command(units))
        if any(isinstance(c, TcpCheck) for c in checks):
            commands.append(SS_COMMAND)
        return commands

    def parse(self, outputs: Mapping[str, CommandOutput], observed_at: datetime) -> list[Item]:
        config = self._config
        missing = "the command's output is missing"
        results: list[Result] = []
        if PS_COMMAND in self.commands():
            ps_output = outputs.get(PS_COMMAND)
            rows = rows_from_ps(ps_output) if ps_output else f"ps failed: {missing}"
            results.extend(process_results(config, rows, observed_at))
        if units := self._units():
            show_command = systemctl_show_command(units)
            results.extend(unit_results(config, outputs.get(show_command, missing), observed_at))
        if SS_COMMAND in self.commands():
            ss_output = outputs.get(SS_COMMAND) or CommandOutput(SS_COMMAND, 127, "", missing)
            results.extend(tcp_results_from_ss(config, ss_output, observed_at))
        for check in config.checks:
            if isinstance(check, HttpCheck | TlsCheck):
                results.append(_local_only_result(config, check, observed_at))
        return list(_in_config_order(config, results))
