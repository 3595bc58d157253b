"""The joblog probe over SSH: the same job runs and `joblog:<name>` result as the agent's run.

Unlike the other SSH forms, joblog is stateful (a position per file, open job runs) and cannot
know which bytes to read before it has seen the files, so a poll takes rounds of commands:

1. `list_commands()`: one `env LC_ALL=C find -L ROOT -maxdepth N -printf '%y %D %i %s %T@ %p\\0'`
   per glob root (the glob's leading literal folders; no -maxdepth under `**`). The globs are
   matched here, on the collector, the way glob.glob does on the agent (globmatch.py).
2. `read_commands(listing_outputs, state, read_outputs)`: the byte ranges still needed, as
   `env LC_ALL=C dd if=PATH bs=64K iflag=skip_bytes,count_bytes skip=START count=N status=none`.
   The poller runs them, adds their outputs to `read_outputs` and asks again, until the answer
   is empty (at most MAX_READ_ROUNDS rounds; `poll()` does exactly this loop). A steady poll
   needs one read round: the heads and the new bytes of each file. A rotation or truncation
   may take two or three more: which bytes are needed next depends on the fingerprints read.
3. `parse(listing_outputs, read_outputs, state, observed_at)`: the items and the new state.

How the rounds are chosen without a second copy of the tailer's logic: the tailer reads through
a FileAccess (tailer.py), and here it runs on a RemoteSnapshot (snapshot.py) of the outputs so
far. Where it asks for bytes no output holds, the snapshot records a miss, and the misses become
the next round's dd commands: a fingerprint check's head read becomes the file's first
HEAD_BYTES; any other read becomes a range from just before it (so the position's tail check
comes along) to the end of the file or of what the per-run byte budget leaves. So the SAME
TailRun decides rotation by rename and copytruncate, truncation, fingerprints, cut long lines
and partial last lines.

State: the document OffsetStore writes (`state_document`), JSON-able. The poller keeps it per
host and probe and stores the new one only after the items are stored, as the agent commits
its state after the spool has the items; a poll that fails in between reads the same lines
again rather than losing them.

Never trusting the outputs: a find that failed for a folder (GNU find exits 1 and lists the
rest), a listing cut without its last NUL, a dd that failed (the file rotated away between
rounds) or bytes still missing after the last round are notes in the result (WARN, or UNKNOWN
when nothing could be listed), and the files concerned keep their old positions, so their lines
are read by a later poll: never lost, never read twice.

Remote host needs: GNU findutils (`-printf`, `-L`) and GNU coreutils (`dd` with
`iflag=skip_bytes,count_bytes`, `env`); nothing runs through a pipe or a shell construct.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from probes.clock import ManualClock
from probes.joblog.globmatch import find_root, glob_matches
from probes.joblog.offsets import state_document, state_from_document
from probes.joblog.patterns import JobMatcher
from probes.joblog.probe import JoblogConfig, joblog_result, run_notes, tailer_settings
from probes.joblog.snapshot import FIND_PRINTF, ByteRange, Listing, RemoteSnapshot, parse_dd_output
from probes.joblog.tailer import HEAD_BYTES, TAIL_CHECK_BYTES, FilePosition, TailRun
from probes.result import Item, JobRun, Result, Status
from probes.sshform import CommandOutput

log = structlog.get_logger(__name__)

# Rounds of dd commands per poll at most; a rotation with a copy needs three.
MAX_READ_ROUNDS = 6
DD_BLOCK = "64K"
WITHHELD_REASON = "not all of its bytes could be read over SSH; read next time"


@dataclass(frozen=True, slots=True)
class BytesOutput:
    """A command's output as bytes: dd's are file contents, which no text decoding may alter.

    paramiko's exec_command gives bytes (`stdout.read()`); the poller hands them over as they
    are. A CommandOutput (text) is accepted too, taken as decoded with errors="surrogateescape".
    """

    command: str
    exit_status: int
    stdout: bytes
    stderr: str = ""


Output = BytesOutput | CommandOutput


def _stdout_bytes(output: Output) -> bytes:
    if isinstance(output.stdout, bytes):
        return output.stdout
    return output.stdout.encode("utf-8", errors="surrogateescape")


def dd_command(path: str, start: int, count: int | None) -> str:
    argv = ["env", "LC_ALL=C", "dd", f"if={path}", f"bs={DD_BLOCK}",
            "iflag=skip_bytes,count_bytes", f"skip={start}"]
    if count is not None:
        argv.append(f"count={count}")
    argv.append("status=none")
    return shlex.join(argv)


def parse_dd_command(command: str) -> tuple[str, int, int | None] | None:
    """(path, start, count) of a command dd_command built; None for anything else."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if argv[:3] != ["env", "LC_ALL=C", "dd"]:
        return None
    operands = dict(arg.split("=", 1) for arg in argv[3:] if "=" in arg)
    try:
        count = operands.get("count")
        return operands["if"], int(operands["skip"]), None if count is None else int(count)
    except (KeyError, ValueError):
        return None


class JoblogSshForm:
    """See the module docstring. Holds only the configuration: the state is the poller's."""

    def __init__(self, config: JoblogConfig) -> None:
        self.name = config.name
        self._config = config
        self._settings = tailer_settings(config)
        # Command line -> (root, the globs it lists); a root listed for several globs once, as
        # deep as the deepest needs.
        depths: dict[str, int | None] = {}
        globs: dict[str, list[str]] = {}
        for pattern in config.paths:
            root, depth = find_root(pattern)
            if root in depths:
                old = depths[root]
                depths[root] = None if old is None or depth is None else max(old, depth)
            else:
                depths[root] = depth
            globs.setdefault(root, []).append(pattern)
        self._listings: dict[str, tuple[str, list[str]]] = {}
        for root, depth in depths.items():
            argv = ["env", "LC_ALL=C", "find", "-L", root]
            if depth is not None:
                argv += ["-maxdepth", str(depth)]
            argv += ["-printf", FIND_PRINTF]
            self._listings[shlex.join(argv)] = (root, globs[root])

    # ----------------------------------------------------------------- round 1

    def list_commands(self) -> Sequence[str]:
        return list(self._listings)

    def _listing(self, outputs: Mapping[str, Output]) -> Listing:
        listing = Listing()
        for command, (root, patterns) in self._listings.items():
            output = outputs.get(command)
            if output is None:
                listing.unsure_folders.add(root)
                listing.notes.append(f"find {root}: no output (not run)")
                continue
            listing.add_find_output(
                root, _stdout_bytes(output), output.exit_status, output.stderr, patterns
            )
        return listing

    # ----------------------------------------------------------------- rounds 2..n

    @staticmethod
    def _ranges(read_outputs: Mapping[str, Output]) -> list[ByteRange]:
        ranges: list[ByteRange] = []
        for command, output in read_outputs.items():
            parsed = parse_dd_command(command)
            if parsed is None:
                log.warning("joblog.ssh_unknown_output", command=command[:200])
                continue
            path, start, count = parsed
            ranges.append(parse_dd_output(
                path, start, count, _stdout_bytes(output), output.exit_status, output.stderr
            ))
        return ranges

    def read_commands(
        self,
        listing_outputs: Mapping[str, Output],
        state: Mapping[str, Any] | None,
        read_outputs: Mapping[str, Output] | None = None,
    ) -> Sequence[str]:
        """The dd commands still needed; empty when the outputs so far are enough."""
        done = read_outputs or {}
        listing = self._listing(listing_outputs)
        snapshot = RemoteSnapshot(listing, self._ranges(done))
        positions, _ = _decode(state)
        run = TailRun(self._settings, positions, snapshot)
        for _ in run.blocks():
            pass
        return [c for c in self._plan(snapshot, run, positions) if c not in done]

    def _plan(
        self, snapshot: RemoteSnapshot, run: TailRun, positions: Mapping[str, FilePosition]
    ) -> list[str]:
        budget = self._settings.max_bytes_per_run
        left = None if budget is None else budget - run.bytes_read
        matched = {p for p in snapshot.listing.files
                   if any(glob_matches(g, p) for g in self._settings.globs)}
        wanted: dict[str, set[tuple[int, int | None]]] = {}
        for miss in snapshot.misses:
            listed = snapshot.listing.files.get(miss.path)
            size = listed.stat.size if listed is not None else 0
            known = listed is not None and listed.stat.key in positions
            head_check = miss.fingerprint and miss.offset == 0
            if head_check and (known or miss.path not in matched):
                # A fingerprint check of a known file or of a possible copy: its head, and for a
                # known file the bytes before its offset, which the check reads next. (A new
                # file the globs match is read whole anyway: fetched whole, below.)
                wanted.setdefault(miss.path, set()).add((0, HEAD_BYTES))
                position = positions.get(listed.stat.key) if listed is not None else None
                if position is not None and position.offset > 0:
                    tail_start = max(0, position.offset - TAIL_CHECK_BYTES)
                    wanted[miss.path].add((tail_start, position.offset - tail_start))
                continue
            # From just before: the position's tail check reads the bytes before the offset.
            start = max(0, miss.offset - TAIL_CHECK_BYTES)
            if start <= HEAD_BYTES:
                start = 0  # one dd rather than a head read and a range that nearly touch
            count: int | None = None
            if left is not None:
                # What the budget leaves, shared out in reading order; never less than the
                # read itself (a check's bytes are needed even when the budget is spent).
                count = miss.offset - start + max(left, miss.size)
                left -= max(0, size - miss.offset)
            wanted.setdefault(miss.path, set()).add((start, count))
        return [
            dd_command(path, start, count)
            for path, ranges in wanted.items()
            for start, count in _merged(ranges)
        ]

    # ----------------------------------------------------------------- the result

    def parse(
        self,
        listing_outputs: Mapping[str, Output],
        read_outputs: Mapping[str, Output],
        state: Mapping[str, Any] | None,
        observed_at: datetime,
    ) -> tuple[list[Item], dict[str, Any]]:
        """Items as JoblogProbe.run() gives them, and the state to store once they are stored."""
        positions, jobs = _decode(state)
        listing = self._listing(listing_outputs)
        if listing.usable_roots == 0:
            reason = listing.notes[0] if listing.notes else "no listing"
            result = Result(
                probe=self.name, check=f"joblog:{self.name}", status=Status.UNKNOWN,
                summary=f"cannot list the log files: {reason}", observed_at=observed_at,
                detail="\n".join(listing.notes)[:4096],
            )
            return [result], state_document(positions, jobs)
        snapshot = RemoteSnapshot(listing, self._ranges(read_outputs))
        matcher = JobMatcher(
            self.name, [job.rules() for job in self._config.jobs], ManualClock(observed_at),
            errors=self._config.encoding_errors,
            excerpt_max_bytes=self._config.excerpt_max_bytes,
        )
        while True:
            matcher.restore(jobs)
            run = TailRun(self._settings, positions, snapshot)
            lines_read = 0
            for block in run.blocks():
                lines_read += block.data.count(b"\n")
                matcher.feed(block)
            if not snapshot.misses:
                break
            # Bytes that no round fetched: such a file is not read this time (its position
            # stays), and the run is done again without it so no decision rests on a guess.
            for miss in snapshot.misses:
                snapshot.withheld[miss.path] = WITHHELD_REASON
            snapshot.misses.clear()
        new_positions = dict(run.positions)
        for key, pos in positions.items():
            if key not in new_positions and _under_any(pos.path, listing.unsure_folders):
                new_positions[key] = pos  # not seen because not listed: kept, not forgotten
        matcher.forget_files(set(new_positions))
        runs: list[JobRun] = matcher.take_items()
        notes = [*listing.notes, *run_notes(run)]
        result = joblog_result(
            self.name, runs, lines_read, run.bytes_read, len(new_positions), notes, observed_at
        )
        return [*runs, result], state_document(new_positions, matcher.snapshot())


def _merged(ranges: set[tuple[int, int | None]]) -> list[tuple[int, int | None]]:
    """Overlapping or touching ranges as one (a count of None reaches the end of the file)."""
    merged: list[tuple[int, int | None]] = []
    for start, count in sorted(ranges, key=lambda r: (r[0], -1 if r[1] is None else -r[1])):
        if merged:
            last_start, last_count = merged[-1]
            if last_count is None:
                continue
            if start <= last_start + last_count:
                end = None if count is None else max(last_start + last_count, start + count)
                merged[-1] = (last_start, None if end is None else end - last_start)
                continue
        merged.append((start, count))
    return merged


def _decode(state: Mapping[str, Any] | None) -> tuple[dict[str, FilePosition], dict[str, Any]]:
    decoded = state_from_document(dict(state)) if state else None
    return decoded if decoded is not None else ({}, {})


def _under_any(path: str, folders: set[str]) -> bool:
    return any(path.startswith(f.rstrip("/") + "/") for f in folders)


def poll(
    form: JoblogSshForm,
    run_command: Callable[[str], Output],
    state: Mapping[str, Any] | None,
    observed_at: datetime,
    *,
    max_rounds: int = MAX_READ_ROUNDS,
) -> tuple[list[Item], dict[str, Any]]:
    """One poll: list, read in rounds, parse. `run_command` runs one shell-free command line."""
    listing = {command: run_command(command) for command in form.list_commands()}
    reads: dict[str, Output] = {}
    for _ in range(max_rounds):
        needed = form.read_commands(listing, state, reads)
        if not needed:
            break
        for command in needed:
            reads[command] = run_command(command)
    return form.parse(listing, reads, state, observed_at)
