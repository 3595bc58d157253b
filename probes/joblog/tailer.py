"""Tails every file a set of globs matches: each complete line once, across rotation and restarts.

A file is known by device + inode, checked against two fingerprints before its saved offset is
trusted:
- the head: a hash of its first bytes (up to HEAD_BYTES), so a reused inode, or a file that was
  truncated and written again, is seen as new;
- the bytes just before the offset, so a file rewritten past the old offset with the same head
  (two runs of a script that starts with the same banner) is seen as new too.
Two files with identical heads stay two files: their inodes differ.

Each run (`TailRun.blocks()`) reads, in this order, so that lines come out oldest first:
1. known files that left the glob (renamed by a rotation, found again by inode in their folder)
   and the copy that a copytruncate rotation left (found by its head and the old offset),
2. known files that are still where they were,
3. new files and files that were truncated or replaced, from their start.

Memory is bounded: a run reads into one buffer, reused from read to read and file to file, that
holds a partial line (at most `max_line_bytes`) plus one read. A line longer than
`max_line_bytes` is cut (its head kept and marked) and the rest skipped up to its newline, across
reads and runs. One file is open at a time.

`spans()` hands out views of that buffer (`LineSpan`), valid until the iteration resumes: no
fresh buffer per read, so a backlog costs no page faults and stays in the CPU cache while it is
counted and scanned. `blocks()` gives the same lines as bytes of their own (`LineBlock`).

Every file operation goes through a `FileAccess` (glob, stat, a folder's entries, open for
reading): `LocalFileAccess` (the os module) by default; the SSH form passes a snapshot of a
remote host's listing and bytes (probes/joblog/snapshot.py), so the same decisions are made
on both sides.
"""

from __future__ import annotations

import glob
import hashlib
import os
import stat
from collections.abc import Generator, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

# How much of a file's head identifies it: enough to cover a banner plus the first records.
HEAD_BYTES = 1024
# How many bytes before the saved offset must still be there for the offset to be trusted.
TAIL_CHECK_BYTES = 64
# Bytes per read for `blocks()`, whose every block is copied out. Over-long lines are found
# anywhere in a read, so reads need not be shorter than max_line_bytes.
MAX_CHUNK_BYTES = 64 * 1024
# Bytes per read for `spans()`: large enough that the per-block cost in Python is small, small
# enough that a read, its line count and its scan run within the CPU's L2 cache.
SPAN_READ_BYTES = 256 * 1024
# Rotated archives that a log reader must not read again (they are old lines, compressed).
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4", ".Z")
CUT_MARKER = b" [daybreak: line cut]"


def file_key(device: int, inode: int) -> str:
    return f"{device}:{inode}"


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class FilePosition:
    """Where reading of one file stands; persisted between runs."""

    path: str
    device: int
    inode: int
    offset: int = 0
    head_len: int = 0
    head_digest: str = field(default_factory=lambda: _digest(b""))
    tail_digest: str = field(default_factory=lambda: _digest(b""))
    # True when the offset is inside an over-long line whose head was already emitted.
    skipping_long_line: bool = False
    # True when the file no longer matches the glob (renamed by rotation): it is read until it
    # stops growing, then forgotten.
    rotated_away: bool = False
    # The file's size when last read to its end: a rotated file that kept it has stopped growing.
    size_seen: int = 0

    @property
    def key(self) -> str:
        return file_key(self.device, self.inode)


@dataclass(frozen=True, slots=True)
class LineBlock:
    """Complete lines of one file, each ending in b"\\n"; `offset` is the file offset of data[0]."""

    path: str
    key: str
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class LineSpan:
    """Complete lines, each ending in b"\\n": `buffer[start:end]`, at file offset `offset`.

    The buffer is the tailer's, overwritten by its next read: a span is valid only until the
    iteration that gave it resumes. Copy out (`block()`) whatever must outlive it.
    """

    path: str
    key: str
    offset: int
    buffer: bytes | bytearray
    start: int
    end: int

    def block(self) -> LineBlock:
        if self.start == 0 and self.end == len(self.buffer) and isinstance(self.buffer, bytes):
            return LineBlock(self.path, self.key, self.offset, self.buffer)
        data = bytes(memoryview(self.buffer)[self.start : self.end])
        return LineBlock(self.path, self.key, self.offset, data)


def _cut_line(path: str, key: str, offset: int, head: bytes) -> LineSpan:
    data = head + CUT_MARKER + b"\n"
    return LineSpan(path, key, offset, data, 0, len(data))


@dataclass(frozen=True, slots=True)
class TailerSettings:
    globs: tuple[str, ...]
    max_line_bytes: int = 64 * 1024
    max_files: int = 1000
    skip_suffixes: tuple[str, ...] = COMPRESSED_SUFFIXES
    # Bytes read per run at most; the rest waits for the next run. None: no limit.
    max_bytes_per_run: int | None = None


@dataclass(frozen=True, slots=True)
class FileStat:
    """What the tailer needs of a stat(2) (symlinks followed)."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    is_regular: bool

    @property
    def key(self) -> str:
        return file_key(self.device, self.inode)


@dataclass(frozen=True, slots=True)
class FolderEntry:
    path: str
    name: str
    # The entry's own inode (a symlink's, not its target's), as os.DirEntry.inode() gives.
    inode: int


class ByteSource(Protocol):
    """An open file, read at offsets.

    The tailer reads lines with `readinto` and only the fingerprint checks' few bytes (a head,
    the bytes before an offset) with `read`: a source that fetches bytes on demand (the SSH
    snapshot) learns from the method which kind of read it could not serve.
    """

    def seek(self, offset: int, /) -> int: ...

    def read(self, size: int, /) -> bytes: ...

    def readinto(self, buffer: memoryview, /) -> int: ...

    def close(self) -> None: ...


class FileAccess(Protocol):
    """The file operations the tailer makes; each raises OSError when the file system does."""

    def glob(self, pattern: str) -> list[str]:
        """Paths matching a glob.glob(recursive=True) pattern; never raises."""
        ...

    def stat(self, path: str) -> FileStat: ...

    def folder_entries(self, folder: str) -> list[FolderEntry]: ...

    def open(self, path: str) -> ByteSource: ...


class LocalFileAccess:
    """The local file system, through the os module."""

    def glob(self, pattern: str) -> list[str]:
        return glob.glob(pattern, recursive=True)

    def stat(self, path: str) -> FileStat:
        st = os.stat(path)
        return FileStat(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, stat.S_ISREG(st.st_mode))

    def folder_entries(self, folder: str) -> list[FolderEntry]:
        with os.scandir(folder) as entries:
            return [FolderEntry(e.path, e.name, e.inode()) for e in entries]

    def open(self, path: str) -> ByteSource:
        return open(path, "rb")  # the caller closes it


@dataclass(frozen=True, slots=True)
class _Seen:
    path: str
    st: FileStat


class TailRun:
    """One pass over the files: iterate `blocks()`, then read `positions` and the counters.

    The positions are what a caller persists once the lines' results are safe; the run itself
    never writes anything.
    """

    def __init__(
        self,
        settings: TailerSettings,
        positions: Mapping[str, FilePosition],
        access: FileAccess | None = None,
    ) -> None:
        self._settings = settings
        self._files: FileAccess = access if access is not None else LocalFileAccess()
        self._old = dict(positions)
        self.positions: dict[str, FilePosition] = {}
        self.problems: list[str] = []
        self.bytes_read = 0
        self.files_read = 0
        self.budget_exhausted = False
        # The read buffer, made at the first read and reused for every read of the run.
        self._buffer: bytearray | None = None

    # ----------------------------------------------------------------- discovery

    def _scan(self) -> dict[str, _Seen]:
        seen: dict[str, _Seen] = {}
        for pattern in self._settings.globs:
            for path in sorted(self._files.glob(pattern)):
                if path.endswith(self._settings.skip_suffixes):
                    continue
                try:
                    st = self._files.stat(path)
                except OSError as exc:
                    self.problems.append(f"{path}: {exc.strerror}")
                    continue
                if not st.is_regular:
                    continue
                seen.setdefault(st.key, _Seen(path, st))
        if len(seen) > self._settings.max_files:
            # Read the most recently written files; the others keep their positions.
            newest = sorted(seen.items(), key=lambda kv: kv[1].st.mtime_ns, reverse=True)
            self.problems.append(
                f"{len(seen)} files match, reading the {self._settings.max_files} newest "
                "(raise max_files)"
            )
            for key, _ in newest[self._settings.max_files :]:
                if key in self._old:
                    self.positions[key] = self._old[key]
            seen = dict(newest[: self._settings.max_files])
        return seen

    def _find_by_inode(self, pos: FilePosition) -> _Seen | None:
        folder = os.path.dirname(pos.path) or "."
        try:
            for entry in self._files.folder_entries(folder):
                if entry.inode == pos.inode:
                    st = self._files.stat(entry.path)
                    if st.device == pos.device and st.is_regular:
                        return _Seen(entry.path, st)
        except OSError:
            return None
        return None

    def _copy_candidates(self, pos: FilePosition, exclude: set[str]) -> Iterator[_Seen]:
        """Files beside `pos.path` whose name extends it (app.log.1, app.log-20240501)."""
        folder = os.path.dirname(pos.path) or "."
        base = os.path.basename(pos.path)
        try:
            names = sorted(
                e.path for e in self._files.folder_entries(folder) if e.name.startswith(base)
            )
        except OSError:
            return
        for path in names:
            if path == pos.path or path.endswith(self._settings.skip_suffixes):
                continue
            try:
                st = self._files.stat(path)
            except OSError:
                continue
            if st.key not in exclude and st.is_regular and st.size >= pos.offset:
                yield _Seen(path, st)

    # ----------------------------------------------------------------- checks

    @staticmethod
    def _still_same(f: ByteSource, size: int, pos: FilePosition) -> bool:
        """Whether the bytes this position vouches for are still in the file, unchanged."""
        # Shrinking below what was seen means truncation, even when no whole line was read yet.
        if size < max(pos.offset, pos.head_len, pos.size_seen):
            return False
        f.seek(0)
        if _digest(f.read(pos.head_len)) != pos.head_digest:
            return False
        tail_len = min(TAIL_CHECK_BYTES, pos.offset)
        f.seek(pos.offset - tail_len)
        return _digest(f.read(tail_len)) == pos.tail_digest

    # ----------------------------------------------------------------- the run

    def blocks(self) -> Iterator[LineBlock]:
        """The lines read, as bytes of their own."""
        for span in self._spans(MAX_CHUNK_BYTES):
            yield span.block()

    def spans(self) -> Iterator[LineSpan]:
        """The lines read, as views of the run's buffer: each valid until the next is asked."""
        return self._spans(SPAN_READ_BYTES)

    def _spans(self, read_bytes: int) -> Iterator[LineSpan]:
        seen = self._scan()
        old_first: list[tuple[_Seen, FilePosition, bool]] = []  # (file, start, keep tracking)
        continuing: list[tuple[_Seen, FilePosition]] = []
        from_start: list[tuple[_Seen, bool]] = []  # (file, rotated away)
        rewritten: list[FilePosition] = []

        for key, pos in sorted(self._old.items(), key=lambda kv: kv[1].path):
            if key in self.positions:  # kept aside by the max_files cap
                continue
            found = seen.pop(key, None)
            if found is not None:
                continuing.append((found, replace(pos, path=found.path, rotated_away=False)))
                continue
            away = self._find_by_inode(pos)
            if away is None:
                log.info("joblog.file_gone", path=pos.path, offset=pos.offset)
                continue
            if not self._check(away, pos):
                # Truncated (and written again) before it was rotated away: new lines, from 0.
                rewritten.append(pos)
                from_start.append((away, True))
                continue
            if pos.rotated_away and away.st.size == pos.size_seen:
                # Rotated and no longer written: flush a last line without newline, then forget.
                old_first.append((away, replace(pos, path=away.path), False))
                continue
            old_first.append((away, replace(pos, path=away.path, rotated_away=True), True))

        # A known file that is shorter, or whose bytes changed, was truncated or replaced.
        still: list[tuple[_Seen, FilePosition]] = []
        for found, pos in continuing:
            if self._check(found, pos):
                still.append((found, pos))
            else:
                log.info("joblog.file_rewritten", path=found.path, old_offset=pos.offset)
                rewritten.append(pos)
                from_start.append((found, False))
        claimed = {p.key for _, p in still} | {p.key for _, p, _ in old_first}
        for pos in rewritten:
            copy = self._find_copy(pos, seen, claimed)
            if copy is not None:
                claimed.add(copy.st.key)
                in_glob = seen.pop(copy.st.key, None) is not None
                start = replace(pos, path=copy.path, device=copy.st.device,
                                inode=copy.st.inode, rotated_away=not in_glob)
                old_first.append((copy, start, True))
        from_start.extend((found, False) for found in seen.values())
        # Oldest write first: a copy made before the live file was written again comes first.
        from_start.sort(key=lambda item: (item[0].st.mtime_ns, item[0].path))

        for found, pos, keep in old_first:
            yield from self._read(found, pos, read_bytes, flush_partial=not keep, keep=keep)
        for found, pos in still:
            yield from self._read(found, pos, read_bytes, flush_partial=False, keep=True)
        for found, is_away in from_start:
            fresh = FilePosition(
                found.path, found.st.device, found.st.inode, rotated_away=is_away
            )
            yield from self._read(found, fresh, read_bytes, flush_partial=False, keep=True)

    def _check(self, found: _Seen, pos: FilePosition) -> bool:
        try:
            with closing(self._files.open(found.path)) as f:
                return self._still_same(f, found.st.size, pos)
        except OSError:
            return True  # unreadable now: _read reports it and keeps the position

    def _find_copy(
        self, pos: FilePosition, seen: Mapping[str, _Seen], claimed: set[str]
    ) -> _Seen | None:
        if pos.size_seen == 0:
            return None
        candidates: Iterable[_Seen] = [*seen.values(), *self._copy_candidates(pos, claimed)]
        for cand in candidates:
            if cand.st.key in claimed or cand.st.size < pos.offset:
                continue
            try:
                with closing(self._files.open(cand.path)) as f:
                    same = self._still_same(f, cand.st.size, pos)
            except OSError:
                continue
            if same:
                log.info("joblog.copy_found", path=cand.path, of=pos.path)
                return cand
        return None

    def _budget_left(self) -> int | None:
        limit = self._settings.max_bytes_per_run
        return None if limit is None else max(0, limit - self.bytes_read)

    def _read(
        self, found: _Seen, pos: FilePosition, read_bytes: int, *, flush_partial: bool, keep: bool
    ) -> Iterator[LineSpan]:
        if self._budget_left() == 0:
            self.budget_exhausted = True
            if pos.key in self._old:
                self.positions[pos.key] = self._old[pos.key]
            return
        try:
            f = self._files.open(found.path)  # closed in finally: the generator spans yields
        except OSError as exc:
            self.problems.append(f"{found.path}: {exc.strerror}")
            if pos.key in self._old:
                self.positions[pos.key] = self._old[pos.key]
            return
        try:
            self.files_read += 1
            end = yield from self._read_lines(f, pos, read_bytes, flush_partial=flush_partial)
            if keep:
                self.positions[pos.key] = self._fingerprint(f, end)
        except OSError as exc:
            self.problems.append(f"{found.path}: {exc.strerror}")
            if pos.key in self._old:
                self.positions[pos.key] = self._old[pos.key]
        finally:
            f.close()

    @staticmethod
    def _fingerprint(f: ByteSource, pos: FilePosition) -> FilePosition:
        # The head covers a pending partial line too: appends never change bytes already written.
        head_len = min(HEAD_BYTES, pos.size_seen)
        f.seek(0)
        head = f.read(head_len)
        tail_len = min(TAIL_CHECK_BYTES, pos.offset)
        f.seek(pos.offset - tail_len)
        tail = f.read(tail_len)
        return replace(
            pos, head_len=len(head), head_digest=_digest(head), tail_digest=_digest(tail)
        )

    def _read_buffer(self, read_bytes: int) -> bytearray:
        # A partial line is at most max_line_bytes (longer, it is cut): a read always fits after.
        size = self._settings.max_line_bytes + read_bytes
        if self._buffer is None or len(self._buffer) < size:
            self._buffer = bytearray(size)
        return self._buffer

    def _read_lines(
        self, f: ByteSource, pos: FilePosition, read_bytes: int, *, flush_partial: bool
    ) -> Generator[LineSpan, None, FilePosition]:
        limit = self._settings.max_line_bytes
        buffer = self._read_buffer(read_bytes)
        offset = pos.offset  # file offset of buffer[0]
        skipping = pos.skipping_long_line
        held = 0  # buffer[:held]: a partial line, its newline not read yet
        f.seek(offset)
        while True:
            budget = self._budget_left()
            if budget == 0:
                self.budget_exhausted = True
                break
            wanted = read_bytes if budget is None else min(read_bytes, budget)
            with memoryview(buffer) as room:
                got = f.readinto(room[held : held + wanted])
            if got == 0:
                break
            self.bytes_read += got
            filled = held + got
            start = 0
            if skipping:  # held is 0: the rest of a cut line is never kept
                newline = buffer.find(b"\n", 0, filled)
                if newline < 0:
                    offset += filled
                    continue
                start = newline + 1
                skipping = False
            lines_end = buffer.rfind(b"\n", start, filled) + 1
            if lines_end > start:
                yield from self._whole_lines(pos, buffer, offset, start, lines_end)
            else:
                lines_end = start
            partial = filled - lines_end
            if partial > limit:
                yield _cut_line(pos.path, pos.key, offset + lines_end,
                                bytes(buffer[lines_end : lines_end + limit]))
                offset += filled
                held = 0
                skipping = True
                continue
            if lines_end:
                buffer[:partial] = buffer[lines_end:filled]
            offset += lines_end
            held = partial
        if flush_partial and held and not self.budget_exhausted:
            # The file is finished (rotated away and idle): its unterminated last line is whole.
            yield LineSpan(pos.path, pos.key, offset, bytes(buffer[:held]) + b"\n", 0, held + 1)
            offset += held
            held = 0
        return replace(
            pos, offset=offset, skipping_long_line=skipping, size_seen=offset + held
        )

    def _whole_lines(
        self, pos: FilePosition, buffer: bytearray, offset: int, start: int, end: int
    ) -> Iterator[LineSpan]:
        """buffer[start:end], whole lines, with each one longer than max_line_bytes cut.

        A line is over-long when the max_line_bytes + 1 bytes from its start hold no newline;
        the last newline of that window starts the next check, so a block of short lines costs
        a handful of rfind calls, not one per line.
        """
        limit = self._settings.max_line_bytes
        kept = start  # buffer[kept:line]: lines checked and not yet handed out
        line = start
        while end - line > limit + 1:
            window_end = line + limit + 1
            newline = buffer.rfind(b"\n", line, window_end)
            if newline >= 0:
                line = newline + 1
                continue
            if line > kept:
                yield LineSpan(pos.path, pos.key, offset + kept, buffer, kept, line)
            yield _cut_line(pos.path, pos.key, offset + line, bytes(buffer[line : line + limit]))
            line = buffer.find(b"\n", window_end, end) + 1  # end - 1 is a newline
            kept = line
        if end > kept:
            yield LineSpan(pos.path, pos.key, offset + kept, buffer, kept, end)


class Tailer:
    """Builds a TailRun per probe run from the last committed positions."""

    def __init__(self, settings: TailerSettings, access: FileAccess | None = None) -> None:
        self.settings = settings
        self._access = access

    def start_run(self, positions: Mapping[str, FilePosition]) -> TailRun:
        return TailRun(self.settings, positions, self._access)
