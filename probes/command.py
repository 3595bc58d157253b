"""The command probe: runs a program that follows the monitoring-plugins convention.

    - name: root-disk
      type: command
      argv: [/usr/lib/nagios/plugins/check_disk, -w, "20%", -c, "10%", -p, /]

Exit 0 is OK, 1 WARN, 2 CRIT, 3 UNKNOWN, anything else (and a kill by a signal) UNKNOWN. The
first line of stdout is the summary; the performance data becomes the result's metrics, named
after the labels, sizes in bytes and times in seconds (probes/perfdata.py). One result, check
`command:<probe name>`.

The program runs without a shell, in its own process group, so a timeout kills it together with
whatever it started. Output beyond the cap is read and thrown away, so a chatty program never
blocks on a full pipe and never fills the agent's memory.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from probes.base import ProbeConfigBase, ProbeContext, ProbeOutput
from probes.configfile import relative_to_config
from probes.perfdata import PluginOutput, parse_plugin_output
from probes.result import DETAIL_MAX_BYTES, Item, Result, Status, cap_text, one_line
from probes.sshform import CommandOutput

# The wire takes at most 64 metrics per result (docs/wire-contract.md); more would end the
# agent's stream, so the rest are dropped with a note.
MAX_METRICS = 64
# monitoring-plugins' own default timeout (utils_base: DEFAULT_SOCKET_TIMEOUT).
DEFAULT_COMMAND_TIMEOUT_S = 10.0
STDERR_MAX_BYTES = 4096
# Plugins translate their messages and print numbers in the locale (de_DE writes `load1=0,28`,
# which is no number in perfdata): the C locale keeps the output parseable. `env` overrides it.
BASE_ENVIRONMENT: Mapping[str, str] = {"LC_ALL": "C"}


class CommandConfig(ProbeConfigBase):
    type: Literal["command"]
    # The program and its arguments, never through a shell: `["check_tcp", "-H", "db01"]`. A bare
    # name is looked up in PATH; a relative path is relative to the configuration file.
    argv: list[str] = Field(min_length=1)
    # Killed (with its whole process group) after this long, reported UNKNOWN. Must be below the
    # probe's timeout_s so the agent hears why. None: 10 s, or 80 % of timeout_s if smaller.
    command_timeout_s: float | None = Field(default=None, gt=0.0, le=3600.0)
    # Bytes of stdout kept; the rest is read and discarded.
    max_output_bytes: int = Field(default=64 * 1024, ge=256, le=16 * 1024 * 1024)
    # Added to the agent's environment (after LC_ALL=C, which they may override).
    env: dict[str, str] = Field(default_factory=dict)
    # Working directory; None: the agent's. Relative to the configuration file.
    workdir: str | None = None

    @field_validator("argv")
    @classmethod
    def _program_is_named(cls, argv: list[str], info: ValidationInfo) -> list[str]:
        program = argv[0]
        if not program.strip():
            raise ValueError("argv[0] must name a program")
        if "\0" in "".join(argv):
            raise ValueError("argv must not contain NUL characters")
        if "/" in program:
            program = str(relative_to_config(Path(program), info))
        return [program, *argv[1:]]

    @field_validator("env")
    @classmethod
    def _names_are_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name, value in env.items():
            if not name or "=" in name or "\0" in name or "\0" in value:
                raise ValueError(f"bad environment variable name {name!r}")
        return env

    @field_validator("workdir")
    @classmethod
    def _anchor_workdir(cls, workdir: str | None, info: ValidationInfo) -> str | None:
        return None if workdir is None else str(relative_to_config(Path(workdir), info))

    @model_validator(mode="after")
    def _killed_before_abandoned(self) -> CommandConfig:
        limit = self.effective_timeout_s
        if self.command_timeout_s is not None and self.command_timeout_s >= limit:
            raise ValueError(
                f"command_timeout_s ({self.command_timeout_s:g}) must be below the probe's "
                f"timeout ({self.effective_timeout_s:g} s): the command is killed before the "
                f"agent gives up on the run"
            )
        return self

    @property
    def effective_command_timeout_s(self) -> float:
        if self.command_timeout_s is not None:
            return self.command_timeout_s
        return min(DEFAULT_COMMAND_TIMEOUT_S, self.effective_timeout_s * 0.8)

    def environment_additions(self) -> dict[str, str]:
        return {**BASE_ENVIRONMENT, **self.env}


def check_key(probe_name: str) -> str:
    return f"command:{probe_name}"


def status_for_exit(exit_code: int) -> Status:
    """0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN; anything else is no verdict, so UNKNOWN."""
    if 0 <= exit_code <= 3:
        return Status(exit_code)
    return Status.UNKNOWN


@dataclass(frozen=True, slots=True)
class CommandRun:
    """What running the program gave: its exit code and its (capped) output."""

    exit_code: int | None
    stdout: str
    stderr: str = ""
    stdout_cut: bool = False
    timed_out_after_s: float | None = None
    # Why the program could not be started at all (not found, not executable).
    start_error: str | None = None


def _exit_explained(exit_code: int) -> str:
    if exit_code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"killed by signal {-exit_code}"
    return f"exit code {exit_code}, not a monitoring-plugins status"


def _metrics(plugin: PluginOutput) -> tuple[dict[str, float], list[str]]:
    metrics: dict[str, float] = {}
    notes: list[str] = []
    dropped = 0
    for item in plugin.perfdata:
        if item.label in metrics:
            notes.append(f"perfdata {item.label!r}: label repeated, first value kept")
            continue
        if len(metrics) >= MAX_METRICS:
            dropped += 1
            continue
        metrics[item.label] = item.base_value
    if dropped:
        notes.append(f"{dropped} perfdata values dropped: at most {MAX_METRICS} metrics a result")
    return metrics, notes


def command_result(
    config: CommandConfig, run: CommandRun, observed_at: datetime
) -> tuple[Result, list[str]]:
    """The pure half, shared with the SSH form: a run's outcome in, a Result and notes out."""
    program = config.argv[0]
    check = check_key(config.name)
    if run.start_error is not None:
        summary = f"cannot run {program}: {run.start_error}"
        return Result(config.name, check, Status.UNKNOWN, one_line(summary), observed_at), []
    plugin = parse_plugin_output(run.stdout)
    metrics, notes = _metrics(plugin)
    notes = [*plugin.notes, *notes]
    summary = plugin.summary
    if not summary:
        first_stderr = run.stderr.strip().splitlines()[:1]
        summary = first_stderr[0] if first_stderr else f"{program} printed nothing"
    if run.timed_out_after_s is not None:
        status = Status.UNKNOWN
        summary = f"{program} timed out after {run.timed_out_after_s:g}s" + (
            f" (last said: {summary})" if plugin.summary else ""
        )
    elif run.exit_code is None or not 0 <= run.exit_code <= 3:
        status = Status.UNKNOWN
        code = run.exit_code if run.exit_code is not None else -1
        summary = f"{summary} ({_exit_explained(code)})"
    else:
        status = status_for_exit(run.exit_code)
    detail_parts = [plugin.long_text] if plugin.long_text else []
    if run.stdout_cut:
        detail_parts.append(f"[output cut at {config.max_output_bytes} bytes]")
    if run.stderr.strip():
        detail_parts.append("stderr:\n" + run.stderr.strip())
    detail_parts.extend(notes)
    result = Result(
        probe=config.name,
        check=check,
        status=status,
        summary=one_line(summary),
        observed_at=observed_at,
        metrics=metrics,
        detail=cap_text("\n".join(detail_parts), DETAIL_MAX_BYTES),
    )
    return result, notes


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def run_command(
    argv: Sequence[str],
    *,
    timeout_s: float,
    max_output_bytes: int,
    env_additions: Mapping[str, str],
    workdir: str | None,
) -> CommandRun:
    """Run argv without a shell in its own process group; kill the group on timeout.

    Both pipes are drained until the program exits (and the pipes close, or briefly after the
    program exits if something it left behind still holds them), keeping at most the caps.
    """
    # Imported here: the agent's memory budget keeps rarely used modules out of its start.
    import contextlib
    import selectors
    import signal
    import subprocess
    import time

    environment = {**os.environ, **env_additions}
    try:
        process = subprocess.Popen(  # noqa: S603 - argv from the host's own configuration, no shell
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            cwd=workdir,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        return CommandRun(exit_code=None, stdout="", start_error=exc.strerror or str(exc))
    if process.stdout is None or process.stderr is None:  # pragma: no cover - PIPE was given
        raise RuntimeError("subprocess gave no pipes")
    out_fd, err_fd = process.stdout.fileno(), process.stderr.fileno()
    caps = {out_fd: max_output_bytes, err_fd: STDERR_MAX_BYTES}
    kept: dict[int, bytearray] = {fd: bytearray() for fd in caps}
    cut: dict[int, bool] = dict.fromkeys(caps, False)
    # The child runs in real time whatever clock stamps the result, so real monotonic time
    # bounds it (a ManualClock would never time it out).
    deadline = time.monotonic() + timeout_s
    # After the program exits, what it left running may hold the pipes open: drain briefly.
    exited_grace_s = 0.2
    exited_at: float | None = None
    timed_out = False
    with selectors.DefaultSelector() as selector:
        for stream in (process.stdout, process.stderr):
            os.set_blocking(stream.fileno(), False)
            selector.register(stream, selectors.EVENT_READ)
        try:
            while selector.get_map():
                now = time.monotonic()
                if now >= deadline:
                    timed_out = True
                    break
                if exited_at is None and process.poll() is not None:
                    exited_at = now
                if exited_at is not None and now - exited_at >= exited_grace_s:
                    break
                for key, _ in selector.select(timeout=min(0.05, deadline - now)):
                    fd = key.fd
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    room = caps[fd] - len(kept[fd])
                    if room > 0:
                        kept[fd] += chunk[:room]
                    if len(chunk) > room:
                        cut[fd] = True
        finally:
            if timed_out:
                # The whole group: a plugin's own children (a hung ssh, a sleep) die with it.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            process.stdout.close()
            process.stderr.close()
    exit_code = process.wait()
    return CommandRun(
        exit_code=None if timed_out else exit_code,
        stdout=_decode(bytes(kept[out_fd])),
        stderr=_decode(bytes(kept[err_fd])),
        stdout_cut=cut[out_fd],
        timed_out_after_s=timeout_s if timed_out else None,
    )


class CommandProbe:
    def __init__(self, config: CommandConfig, ctx: ProbeContext) -> None:
        self.name = config.name
        self._config = config
        self._ctx = ctx

    def run(self) -> ProbeOutput:
        config = self._config
        run = run_command(
            config.argv,
            timeout_s=config.effective_command_timeout_s,
            max_output_bytes=config.max_output_bytes,
            env_additions=config.environment_additions(),
            workdir=config.workdir,
        )
        result, notes = command_result(config, run, self._ctx.clock.now())
        return ProbeOutput(items=[result], notes=notes)


class CommandSshForm:
    """The same program on a remote host: argv quoted with shlex.join, the environment through
    `env` (and `env -C` for the working directory), no shell features."""

    def __init__(self, config: CommandConfig) -> None:
        self._config = config

    def command_line(self) -> str:
        config = self._config
        prefix = ["env"]
        if config.workdir is not None:
            prefix += ["-C", config.workdir]
        prefix += [f"{name}={value}" for name, value in config.environment_additions().items()]
        return shlex.join([*prefix, *config.argv])

    def commands(self) -> Sequence[str]:
        return [self.command_line()]

    def parse(self, outputs: Mapping[str, CommandOutput], observed_at: datetime) -> list[Item]:
        output = outputs.get(self.command_line())
        if output is None:
            run = CommandRun(exit_code=None, stdout="", start_error="no output from the host")
        else:
            stdout_bytes = output.stdout.encode("utf-8", errors="replace")
            cut = len(stdout_bytes) > self._config.max_output_bytes
            run = CommandRun(
                exit_code=output.exit_status,
                stdout=_decode(stdout_bytes[: self._config.max_output_bytes]),
                stderr=cap_text(output.stderr, STDERR_MAX_BYTES),
                stdout_cut=cut,
                # env's own failures: 126 cannot run, 127 not found (coreutils env(1)).
                start_error=_env_failure(output),
            )
        result, _ = command_result(self._config, run, observed_at)
        return [result]


def _env_failure(output: CommandOutput) -> str | None:
    if output.exit_status in (126, 127) and not output.stdout.strip() and output.stderr.strip():
        return output.stderr.strip().splitlines()[-1]
    return None
