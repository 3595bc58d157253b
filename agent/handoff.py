"""The local handoff of job runs from the job wrapper (`daybreak-agent run`) to the agent.

The wrapper usually runs as another user than the agent (the crontab's owner), so the two meet
in two places the operator can open to a group (AgentConfig.handoff):

    wrapper --- one JSON line per job run ---> <socket>   agent spools it, answers "ok <seq>"
    wrapper --- <inbox>/<time>-<pid>-<random>.json ---->  agent drains at start and every few s

The socket is the normal path: the wrapper knows its run is spooled when it reads "ok <seq>".
The inbox is for when the agent is down (no socket, or nobody listening): the wrapper writes the
run atomically (a hidden temp file renamed into place) and the agent spools it when it starts,
deleting the file only after the spool has it. Everything that arrives is untrusted input: each
line or file is size-capped and validated (JobRunMessage); garbage gets an error line (socket) or
moves to `<inbox>/rejected/` (inbox), and never stops the agent.

Delivery is at least once: a run whose "ok" is lost (the agent died between spooling and
answering) is written to the inbox as well and spooled twice, with the same run id.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import secrets
import socket
import stat
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import structlog
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from probes.clock import Clock
from probes.result import EXCERPT_MAX_BYTES, JobOutcome, JobRun, cap_text

if TYPE_CHECKING:
    # The wrapper imports this module too, and needs neither.
    from agent.scheduler import Encoder
    from agent.spool import Spool

log = structlog.get_logger("agent.handoff")

# A job run is small: its excerpt is capped at 16 KiB of UTF-8, which JSON escaping can grow
# at most six-fold (\u0001). Anything longer is not a job run from our wrapper.
MAX_MESSAGE_BYTES = 128 * 1024
# Beyond this many wrappers talking at once (a burst of cron jobs at 00:00 is a few dozen),
# new ones are told "busy" and use the inbox instead.
MAX_CONNECTIONS = 64
# A connection that sends nothing for this long is closed: a stuck wrapper holds no slot forever.
IDLE_TIMEOUT_S = 30.0
# Files spooled per drain pass, so a flooded inbox cannot hold the event loop for long.
MAX_FILES_PER_DRAIN = 500
# A temp file this old belongs to a wrapper that died mid-write; nobody will rename it.
STALE_TEMP_FILE_S = 3600.0
INBOX_SUFFIX = ".json"
REJECTED_FOLDER = "rejected"
# The reply to a message the agent will never accept: the wrapper must not retry it elsewhere.
INVALID_REPLY_PREFIX = "error invalid"

# Job names and run ids: one printable line.
_Text = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


class JobRunMessage(BaseModel):
    """A JobRun as it travels from the wrapper: one JSON object, validated like configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    probe: str = Field(default="wrapper", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    job: _Text
    run_id: _Text
    outcome: Literal["running", "succeeded", "failed"]
    observed_at: AwareDatetime
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    # int32 on the wire; a shell's exit code is 0..255, a signal death 128 + signal.
    exit_code: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)
    # Checked in characters here, then cut to EXCERPT_MAX_BYTES of UTF-8 by to_job_run().
    excerpt: str = Field(default="", max_length=EXCERPT_MAX_BYTES)
    source: str = Field(default="", max_length=512)

    @classmethod
    def from_job_run(cls, run: JobRun) -> JobRunMessage:
        return cls(
            probe=run.probe,
            job=run.job,
            run_id=run.run_id,
            outcome=run.outcome.value,
            observed_at=run.observed_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            exit_code=run.exit_code,
            excerpt=cap_text(run.excerpt, EXCERPT_MAX_BYTES),
            source=run.source[:512],
        )

    def to_job_run(self) -> JobRun:
        return JobRun(
            probe=self.probe,
            job=self.job,
            run_id=self.run_id,
            outcome=JobOutcome(self.outcome),
            observed_at=self.observed_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            exit_code=self.exit_code,
            excerpt=cap_text(self.excerpt, EXCERPT_MAX_BYTES),
            source=self.source,
        )

    def to_line(self) -> bytes:
        return self.model_dump_json().encode("utf-8") + b"\n"


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]


# -- the wrapper's side --------------------------------------------------------------------------


class HandoffError(Exception):
    """The run reached neither the agent nor its inbox; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Delivery:
    via: Literal["socket", "inbox"]
    seq: int | None = None
    inbox_file: Path | None = None
    # Why the socket was not used, when the run went to the inbox.
    socket_problem: str = ""


def hand_off(run: JobRun, socket_path: Path, inbox: Path, timeout_s: float = 5.0) -> Delivery:
    """Give run to the agent: over its socket, or into its inbox when nobody answers there.

    Raises HandoffError when the agent refused the run as invalid or neither way worked.
    """
    try:
        line = JobRunMessage.from_job_run(run).to_line()
    except ValidationError as exc:
        raise HandoffError(f"invalid job run: {_first_error(exc)}") from exc
    try:
        seq = send_over_socket(line, socket_path, timeout_s)
    except _Refused as exc:
        raise HandoffError(f"the agent refused the job run: {exc}") from exc
    except (OSError, _Unavailable) as exc:
        socket_problem = _describe(exc)
    else:
        return Delivery(via="socket", seq=seq)
    try:
        path = write_to_inbox(line, inbox, run.observed_at)
    except OSError as exc:
        raise HandoffError(
            f"agent socket {socket_path}: {socket_problem}; inbox {inbox}: {_describe(exc)}"
        ) from exc
    return Delivery(via="inbox", inbox_file=path, socket_problem=socket_problem)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


class _Refused(Exception):
    """The agent read the run and will never accept it."""


class _Unavailable(Exception):
    """The agent could not take the run now (busy, spool failing): try the inbox."""


def send_over_socket(line: bytes, socket_path: Path, timeout_s: float) -> int:
    """Send one message line; returns the seq the agent spooled it under."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s)
        conn.connect(str(socket_path))
        conn.sendall(line)
        conn.shutdown(socket.SHUT_WR)
        reply = b""
        while not reply.endswith(b"\n") and len(reply) < 4096:
            chunk = conn.recv(4096)
            if not chunk:
                break
            reply += chunk
    text = reply.decode("utf-8", errors="replace").strip()
    if text.startswith("ok "):
        try:
            return int(text[3:])
        except ValueError:
            raise _Unavailable(f"unexpected reply {text[:100]!r}") from None
    if text.startswith(INVALID_REPLY_PREFIX):
        raise _Refused(text[len("error ") :])
    raise _Unavailable(text[:200] or "the agent closed the connection without an answer")


def inbox_file_name(observed_at: datetime) -> str:
    # Time first, so the agent spools in order; pid and randomness, so names never collide and
    # cannot be guessed by other users of a shared inbox.
    millis = int(observed_at.timestamp() * 1000)
    return f"{millis:015d}-{os.getpid()}-{secrets.token_hex(8)}{INBOX_SUFFIX}"


def write_to_inbox(line: bytes, inbox: Path, observed_at: datetime) -> Path:
    """Write atomically: the agent sees the whole file under its final name, or nothing."""
    final = inbox / inbox_file_name(observed_at)
    temp = inbox / f".{final.name}.tmp"
    # O_EXCL and O_NOFOLLOW: in a shared folder, never write through someone else's file or link.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        # The agent is usually another user: readable whatever the job's umask. The name is
        # secret and the folder not listable by others (mode 1733 or a group's 3770).
        os.fchmod(fd, 0o644)
        view = memoryview(line)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    os.close(fd)
    try:
        os.rename(temp, final)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return final


# -- the agent's side ----------------------------------------------------------------------------


class HandoffListener:
    """Takes job runs from the socket and the inbox into the spool, on the agent's event loop
    (the spool is used from that thread only)."""

    def __init__(
        self,
        socket_path: Path,
        inbox: Path,
        spool: Spool,
        encode: Encoder,
        items_waiting: asyncio.Event,
        clock: Clock,
        *,
        group: str | None = None,
        drain_interval_s: float = 5.0,
    ) -> None:
        self._socket_path = socket_path
        self._inbox = inbox
        self._spool = spool
        self._encode = encode
        self._items_waiting = items_waiting
        self._clock = clock
        self._group = group
        self._drain_interval_s = drain_interval_s
        self._server: asyncio.AbstractServer | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._connections = 0
        # Files spooled whose deletion failed: never spooled twice by this process.
        self._spooled_not_deleted: set[str] = set()

    async def start(self) -> None:
        """Drain what arrived while the agent was down, then listen. Neither failing stops the
        agent: without a socket the wrapper uses the inbox, without an inbox it warns."""
        gid = self._group_id()
        self._prepare_inbox(gid)
        self.drain_inbox()
        await self._listen(gid)
        self._drain_task = asyncio.create_task(self._drain_loop(), name="handoff-inbox")

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError):
                self._socket_path.unlink()
        if self._drain_task is not None:
            self._drain_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain_task

    def _group_id(self) -> int | None:
        if self._group is None:
            return None
        try:
            return grp.getgrnam(self._group).gr_gid
        except KeyError:
            log.error(  # noqa: TRY400 - the error says it all
                "handoff.unknown_group", group=self._group
            )
            return None

    def _prepare_inbox(self, gid: int | None) -> None:
        try:
            self._inbox.mkdir(parents=True, exist_ok=True)
            if gid is not None:
                os.chown(self._inbox, -1, gid)
                # setgid: files inherit the group; sticky: a user deletes only their own files.
                self._inbox.chmod(0o3770)
            else:
                # Like /tmp, but not listable: others can drop files, not see who else did.
                self._inbox.chmod(0o1733)
        except OSError as exc:
            log.error(  # noqa: TRY400 - the error says it all
                "handoff.inbox_unusable", inbox=str(self._inbox), error=str(exc)
            )

    async def _listen(self, gid: int | None) -> None:
        path = str(self._socket_path)
        try:
            self._socket_path.parent.mkdir(parents=True, exist_ok=True)
            # Replaces a socket left by an agent that died (asyncio unlinks a stale one).
            self._server = await asyncio.start_unix_server(
                self._serve_connection, path=path, limit=MAX_MESSAGE_BYTES
            )
            if gid is not None:
                os.chown(path, -1, gid)
            # Connecting to a unix socket needs write permission on it.
            os.chmod(path, 0o660)
        except OSError as exc:
            # A path over 107 bytes, a missing permission: the inbox still works.
            log.error(  # noqa: TRY400 - the error says it all
                "handoff.socket_unusable", socket=path, error=str(exc)
            )
            return
        log.info("handoff.listening", socket=path, inbox=str(self._inbox))

    # -- the socket ------------------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer_uid = _peer_uid(writer)
        self._connections += 1
        try:
            if self._connections > MAX_CONNECTIONS:
                writer.write(b"error busy\n")
                await writer.drain()
                return
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), timeout=IDLE_TIMEOUT_S)
                except TimeoutError:
                    return
                except ValueError:
                    # Longer than the stream's limit: refuse, and do not try to find where the
                    # next message would start.
                    log.warning("handoff.refused", peer_uid=peer_uid, reason="message too long")
                    writer.write(f"{INVALID_REPLY_PREFIX}: message too long\n".encode())
                    await writer.drain()
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                writer.write(self._accept_line(line, peer_uid))
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            self._connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def _accept_line(self, line: bytes, peer_uid: int | None) -> bytes:
        try:
            message = JobRunMessage.model_validate_json(line)
        except ValidationError as exc:
            reason = _first_error(exc)
            log.warning("handoff.refused", peer_uid=peer_uid, reason=reason)
            return f"{INVALID_REPLY_PREFIX}: {reason}\n".encode()
        try:
            [seq] = self._spool_runs([message])
        except Exception as exc:
            # A full disk: the wrapper falls back to the inbox, which may be elsewhere.
            log.exception("handoff.spool_failed", peer_uid=peer_uid)
            return f"error spool: {type(exc).__name__}\n".encode()
        log.info(
            "handoff.received",
            via="socket",
            peer_uid=peer_uid,
            job=message.job,
            run_id=message.run_id,
            outcome=message.outcome,
            seq=seq,
        )
        return f"ok {seq}\n".encode()

    def _spool_runs(self, messages: Sequence[JobRunMessage]) -> list[int]:
        seqs = self._spool.append([self._encode(m.to_job_run()) for m in messages])
        self._items_waiting.set()
        return seqs

    # -- the inbox -------------------------------------------------------------------------------

    async def _drain_loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._drain_interval_s)
            if self._stopping.is_set():
                return
            try:
                self.drain_inbox()
            except Exception:
                log.exception("handoff.drain_failed", inbox=str(self._inbox))

    def drain_inbox(self) -> int:
        """Spool every complete file in the inbox, oldest first; returns how many were spooled."""
        try:
            names = sorted(os.listdir(self._inbox))
        except OSError as exc:
            log.warning("handoff.inbox_unreadable", inbox=str(self._inbox), error=str(exc))
            return 0
        accepted: list[tuple[str, JobRunMessage]] = []
        for name in names:
            if name.startswith("."):
                self._remove_if_stale_temp(name)
                continue
            if not name.endswith(INBOX_SUFFIX) or name in self._spooled_not_deleted:
                continue
            message = self._read_inbox_file(name)
            if message is not None:
                accepted.append((name, message))
            if len(accepted) >= MAX_FILES_PER_DRAIN:
                break
        if not accepted:
            return 0
        try:
            seqs = self._spool_runs([message for _, message in accepted])
        except Exception:
            # The files stay: the next pass tries again.
            log.exception("handoff.spool_failed", inbox=str(self._inbox), files=len(accepted))
            return 0
        for (name, message), seq in zip(accepted, seqs, strict=True):
            log.info(
                "handoff.received",
                via="inbox",
                file=name,
                job=message.job,
                run_id=message.run_id,
                outcome=message.outcome,
                seq=seq,
            )
            try:
                (self._inbox / name).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                self._spooled_not_deleted.add(name)
                log.error(  # noqa: TRY400 - the error says it all
                    "handoff.inbox_file_not_deleted", file=name, error=str(exc)
                )
        return len(accepted)

    def _read_inbox_file(self, name: str) -> JobRunMessage | None:
        path = self._inbox / name
        try:
            data = _read_small_regular_file(path, MAX_MESSAGE_BYTES)
        except FileNotFoundError:
            return None
        except (OSError, _NotAJobRunFile) as exc:
            self._reject(name, _describe(exc))
            return None
        try:
            return JobRunMessage.model_validate_json(data)
        except ValidationError as exc:
            self._reject(name, _first_error(exc))
            return None

    def _reject(self, name: str, reason: str) -> None:
        rejected = self._inbox / REJECTED_FOLDER
        try:
            rejected.mkdir(mode=0o700, exist_ok=True)
            os.rename(self._inbox / name, rejected / name)
        except OSError as exc:
            log.error(  # noqa: TRY400 - the error says it all
                "handoff.inbox_reject_failed", file=name, reason=reason, error=str(exc)
            )
            self._spooled_not_deleted.add(name)
            return
        log.warning("handoff.inbox_rejected", file=name, reason=reason, moved_to=str(rejected))

    def _remove_if_stale_temp(self, name: str) -> None:
        path = self._inbox / name
        try:
            age_s = self._clock.now().timestamp() - path.lstat().st_mtime
            if name.endswith(".tmp") and age_s > STALE_TEMP_FILE_S:
                path.unlink()
                log.info("handoff.stale_temp_removed", file=name)
        except OSError:
            return


class _NotAJobRunFile(Exception):
    pass


def _read_small_regular_file(path: Path, max_bytes: int) -> bytes:
    # O_NOFOLLOW: a link planted in a shared inbox must not make the agent read /etc/shadow;
    # O_NONBLOCK: nor a FIFO make it wait forever.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _NotAJobRunFile("not a regular file")
        if info.st_size > max_bytes:
            raise _NotAJobRunFile(f"larger than {max_bytes} bytes")
        return os.read(fd, max_bytes + 1)
    finally:
        os.close(fd)


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    """The connecting user, for the log (Linux SO_PEERCRED: pid, uid, gid)."""
    sock = writer.get_extra_info("socket")
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return None
    try:
        _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, 12))
    except OSError:
        return None
    return int(uid)
