"""The job wrapper: `daybreak-agent run --job NAME -- command args...`.

Put in front of an existing crontab line, it turns a job without a log into job runs:

    0 2 * * *  daybreak-agent run --job nightly-export -- /opt/etl/export.sh --full

It runs the command as the line did (same stdin; stdout and stderr still go where cron sends
them, copied through as they come), keeps only the last lines of output in memory, and hands the
agent a RUNNING job run at start and a SUCCEEDED or FAILED one at the end (exit code, start, end,
and the output's tail as the excerpt of a failure). It exits with the command's own exit code
(128 + N when a signal N killed it, as a shell says).

It never changes what the job does: a wrapper option it cannot read, a broken agent config, an
agent that is down and an inbox it cannot write are each one warning line on stderr, and the
command runs and its exit code is returned all the same.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import IO

from probes.clock import Clock
from probes.result import EXCERPT_MAX_BYTES, JobOutcome, JobRun

DEFAULT_CONFIG = Path("/etc/daybreak/agent.yaml")
DEFAULT_TAIL_LINES = 40
PROBE_NAME = "wrapper"
# A line of output kept for the tail is cut here: a job printing one 2 GB line costs 4 KiB.
MAX_TAIL_LINE_BYTES = 4096
READ_CHUNK_BYTES = 64 * 1024
# After the command exits, its output is copied until the pipes close; a daemon it started in
# the background may hold them open for ever, so the wrapper stops waiting after this.
OUTPUT_DRAIN_GRACE_S = 5.0
# Shell conventions (POSIX 2.8.2): not found 127, found but not executable 126.
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126
SIGNAL_EXIT_BASE = 128
# Forwarded to the command: someone stopping the wrapper means to stop the job. SIGINT and
# SIGQUIT from a terminal already reach the command (same process group); the wrapper ignores
# them, as a shell waiting for a foreground job does, and reports how the command ended.
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
IGNORED_SIGNALS = (signal.SIGINT, signal.SIGQUIT)

Deliver = Callable[[JobRun], None]


class OutputTail:
    """The last lines of a command's output, bounded in lines and in bytes per line.

    Fed by one thread per stream; lines of stdout and stderr interleave whole, in the order
    they completed. A partial last line is kept per stream and counts when the output ends.
    """

    def __init__(self, max_lines: int, max_line_bytes: int = MAX_TAIL_LINE_BYTES) -> None:
        self._max_lines = max(1, max_lines)
        self._lines: deque[bytes] = deque(maxlen=self._max_lines)
        self._max_line_bytes = max_line_bytes
        self._partial: dict[int, bytearray] = {}
        self._cut: dict[int, bool] = {}
        self._lock = threading.Lock()

    def feed(self, stream: int, chunk: bytes) -> None:
        # split() runs in C: a chunk of 64 KiB of short lines costs one call, not a loop per line.
        *complete, rest = chunk.split(b"\n")
        with self._lock:
            self._partial.setdefault(stream, bytearray())
            if len(complete) > self._max_lines:
                # Only this chunk's newest lines can survive; the older ones and the line in
                # progress would be pushed out by them anyway.
                self._partial[stream].clear()
                self._cut.pop(stream, None)
                complete = complete[-self._max_lines :]
            for piece in complete:
                self._extend_line(stream, piece)
                self._finish_line(stream)
            self._extend_line(stream, rest)

    def _extend_line(self, stream: int, piece: bytes) -> None:
        pending = self._partial[stream]
        room = self._max_line_bytes - len(pending)
        if room > 0:
            pending += piece[:room]
        if len(piece) > room:
            self._cut[stream] = True

    def _finish_line(self, stream: int) -> None:
        pending = self._partial[stream]
        line = bytes(pending)
        if self._cut.pop(stream, False):
            line += b" [... line cut]"
        self._lines.append(line)
        pending.clear()

    def text(self, max_bytes: int = EXCERPT_MAX_BYTES) -> str:
        """The tail as text (invalid UTF-8 replaced), at most max_bytes, whole lines kept last."""
        with self._lock:
            for stream, pending in self._partial.items():
                if pending or self._cut.get(stream):
                    self._finish_line(stream)
            lines = [line.decode("utf-8", errors="replace") for line in self._lines]
        return _last_lines_within(lines, max_bytes)


def _last_lines_within(lines: Sequence[str], max_bytes: int) -> str:
    marker = "[... earlier output cut]"
    kept: list[str] = []
    size = len(marker) + 1
    for line in reversed(lines):
        size += len(line.encode("utf-8")) + 1
        if size > max_bytes:
            if not kept:  # one line longer than the whole budget: keep its end
                kept.append(line.encode("utf-8")[-(max_bytes // 2) :].decode("utf-8", "ignore"))
            kept.append(marker)
            break
        kept.append(line)
    return "\n".join(reversed(kept))


def _copy_output(source: IO[bytes], stream: int, target_fd: int, tail: OutputTail) -> None:
    """Copy a pipe to our own stdout or stderr as it comes, feeding the tail. If our side is
    gone (cron's mailer closed its pipe), keep reading so the command is never blocked."""
    target_ok = True
    fd = source.fileno()
    while chunk := os.read(fd, READ_CHUNK_BYTES):
        tail.feed(stream, chunk)
        if target_ok:
            try:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(target_fd, view) :]
            except OSError:
                target_ok = False
    source.close()


def _same_file(fd_a: int, fd_b: int) -> bool:
    """Do both descriptors lead to one file or pipe (`>log 2>&1`)? Then the command gets one pipe
    for both, which keeps the order of its stdout and stderr lines exactly as without us."""
    try:
        a, b = os.fstat(fd_a), os.fstat(fd_b)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def exit_code_of(returncode: int) -> int:
    """Popen says -N for a death by signal N; a shell says 128 + N."""
    return SIGNAL_EXIT_BASE - returncode if returncode < 0 else returncode


def start_failure(program: str, error: OSError) -> tuple[int, str]:
    """The exit code and message a shell gives for a command it cannot start."""
    if isinstance(error, FileNotFoundError):
        # bash: no slash means a PATH search that found nothing.
        reason = "No such file or directory" if "/" in program else "command not found"
        return EXIT_NOT_FOUND, f"{program}: {reason}"
    if isinstance(error, IsADirectoryError):
        return EXIT_NOT_EXECUTABLE, f"{program}: Is a directory"
    return EXIT_NOT_EXECUTABLE, f"{program}: {error.strerror or error}"


@contextlib.contextmanager
def _signals_forwarded_to(child: subprocess.Popen[bytes]) -> Iterator[None]:
    def forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {s: signal.getsignal(s) for s in (*FORWARDED_SIGNALS, *IGNORED_SIGNALS)}
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    for signum in IGNORED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@dataclass(frozen=True, slots=True)
class JobRequest:
    job: str
    command: Sequence[str]
    tail_lines: int = DEFAULT_TAIL_LINES


class _Warner:
    """One warning line on stderr for the first handoff that fails, none after: the job's own
    output must stay the job's."""

    def __init__(self, job: str, stderr_fd: int) -> None:
        self._job = job
        self._stderr_fd = stderr_fd
        self.warned = False

    def __call__(self, problem: str) -> None:
        if self.warned:
            return
        self.warned = True
        first_line = (problem.strip().splitlines() or ["unknown problem"])[0]
        line = f"daybreak-agent: warning: job {self._job}: run not recorded: {first_line}\n"
        with contextlib.suppress(OSError):
            os.write(self._stderr_fd, line.encode("utf-8", errors="replace"))


def _deliver_quietly(deliver: Deliver, run: JobRun, warn: _Warner) -> None:
    try:
        deliver(run)
    except Exception as exc:  # noqa: BLE001 - whatever breaks here, the job's result stands
        warn(str(exc) or type(exc).__name__)


def run_job(
    request: JobRequest,
    clock: Clock,
    deliver: Deliver,
    *,
    stdout_fd: int = 1,
    stderr_fd: int = 2,
) -> int:
    """Run the command, hand its runs to deliver, return its exit code (shell conventions)."""
    started_at = clock.now()
    run_id = f"{started_at:%Y%m%dT%H%M%S.%f}Z-{os.getpid()}"
    warn = _Warner(request.job, stderr_fd)
    program = request.command[0]

    running = JobRun(
        probe=PROBE_NAME,
        job=request.job,
        run_id=run_id,
        outcome=JobOutcome.RUNNING,
        observed_at=started_at,
        started_at=started_at,
        source=f"daybreak-agent run: {program} (uid {os.getuid()})",
    )

    merged = _same_file(stdout_fd, stderr_fd)
    try:
        # close_fds=False: the command inherits what the crontab line gave it (a lock's fd);
        # our own pipes are close-on-exec anyway.
        child = subprocess.Popen(  # noqa: S603 - running the operator's command is the point
            list(request.command),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merged else subprocess.PIPE,
            close_fds=False,
        )
    except OSError as exc:
        exit_code, message = start_failure(program, exc)
        with contextlib.suppress(OSError):
            os.write(stderr_fd, f"daybreak-agent: {message}\n".encode(errors="replace"))
        now = clock.now()
        not_started = replace(
            running,
            outcome=JobOutcome.FAILED,
            observed_at=now,
            finished_at=now,
            exit_code=exit_code,
            excerpt=message,
        )
        _deliver_quietly(deliver, not_started, warn)
        return exit_code

    tail = OutputTail(request.tail_lines)
    copiers = []
    pipes: list[tuple[IO[bytes], int]] = [
        (pipe, target_fd)
        for pipe, target_fd in ((child.stdout, stdout_fd), (child.stderr, stderr_fd))
        if pipe is not None
    ]
    for stream, (pipe, target_fd) in enumerate(pipes):
        copier = threading.Thread(
            target=_copy_output,
            args=(pipe, stream, target_fd, tail),
            daemon=True,
            name=f"copy-{stream}",
        )
        copier.start()
        copiers.append(copier)

    with _signals_forwarded_to(child):
        # A job that never ends is visible from its start; one that already ended needs no
        # RUNNING record before its result.
        if child.poll() is None:
            _deliver_quietly(deliver, running, warn)
        returncode = child.wait()
    for copier in copiers:
        copier.join(timeout=OUTPUT_DRAIN_GRACE_S)
    finished_at = clock.now()
    exit_code = exit_code_of(returncode)
    failed = exit_code != 0
    final = replace(
        running,
        outcome=JobOutcome.FAILED if failed else JobOutcome.SUCCEEDED,
        observed_at=finished_at,
        finished_at=finished_at,
        exit_code=exit_code,
        excerpt=tail.text() if failed else "",
    )
    _deliver_quietly(deliver, final, warn)
    return exit_code


class AgentDelivery:
    """Hands runs to the agent named by an agent.yaml, read when the first run is handed off
    (after the command has started, so a slow import never delays the job)."""

    def __init__(self, config_path: Path) -> None:
        self._config_path = config_path
        self._paths: tuple[Path, Path] | None = None

    def _handoff_paths(self) -> tuple[Path, Path]:
        if self._paths is None:
            from agent.config import load_agent_config

            # No token check: the wrapper's user may not read the agent's token, nor needs it.
            config = load_agent_config(self._config_path)
            self._paths = (config.handoff_socket_path, config.handoff_inbox_path)
        return self._paths

    def __call__(self, run: JobRun) -> None:
        from agent.handoff import hand_off

        socket_path, inbox = self._handoff_paths()
        hand_off(run, socket_path, inbox)


class _OptionError(Exception):
    pass


class _RunParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _OptionError(message)


def _options_parser() -> argparse.ArgumentParser:
    parser = _RunParser(
        prog="daybreak-agent run",
        usage="daybreak-agent run --job NAME [--config FILE] [--tail-lines N] -- COMMAND [ARG...]",
        description="Run COMMAND as is, and record its run (start, end, exit code, the tail of "
        "its output) as a job run of the local agent.",
    )
    parser.add_argument("--job", help="the job's name, as the customer's expectations name it")
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"the agent's configuration (default {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--tail-lines",
        type=int,
        default=DEFAULT_TAIL_LINES,
        help=f"output lines kept for a failure's excerpt (default {DEFAULT_TAIL_LINES}, 1 to 1000)",
    )
    return parser


def main(argv: Sequence[str], clock: Clock) -> int:
    """The `run` subcommand. Option problems never stop a command that is there to run."""
    args = list(argv)
    if "--" in args:
        split = args.index("--")
        options, command = args[:split], args[split + 1 :]
    else:
        # `run --job x cmd args`: the command starts at the first word that is not an option.
        options, command = args, []
        for index, word in enumerate(args):
            previous = args[index - 1] if index else ""
            if not word.startswith("-") and previous not in ("--job", "--config", "--tail-lines"):
                options, command = args[:index], args[index:]
                break
    parser = _options_parser()
    if options in (["-h"], ["--help"]):
        parser.print_help()
        return 0
    problems: list[str] = []
    try:
        parsed = parser.parse_args(options)
        job, config_path, tail_lines = parsed.job, parsed.config, parsed.tail_lines
    except _OptionError as exc:
        problems.append(f"bad option: {exc}")
        job, config_path, tail_lines = None, DEFAULT_CONFIG, DEFAULT_TAIL_LINES
    if not command:
        sys.stderr.write(f"usage: {parser.usage}\ndaybreak-agent run: no command to run\n")
        return 2
    if not job:
        job = os.path.basename(command[0]) or command[0]
        problems.append(f"--job is missing; recorded as {job!r}")
    if not 1 <= tail_lines <= 1000:
        problems.append(
            f"--tail-lines {tail_lines} is not within 1 to 1000; using {DEFAULT_TAIL_LINES}"
        )
        tail_lines = DEFAULT_TAIL_LINES
    for problem in problems:
        sys.stderr.write(f"daybreak-agent: warning: {problem}\n")
    sys.stderr.flush()
    sys.stdout.flush()
    request = JobRequest(job=job, command=command, tail_lines=tail_lines)
    return run_job(request, clock, AgentDelivery(config_path))
