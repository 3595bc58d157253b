"""A remote host's log files as `find` listed them and `dd` read them, served as a FileAccess.

The joblog tailer (probes/joblog/tailer.py) makes every decision (which file is which, rotation,
truncation, where to read) through a FileAccess. Over SSH the files cannot be opened, only
listed and read in ranges by commands; this snapshot answers the tailer from those outputs:
- `stat`, `glob` and `folder_entries` from find's listing (symlinks followed, as os.stat does);
- `open(...).read()` and `.readinto()` from the byte ranges dd returned. A read of bytes that
  were not fetched raises `BytesNotFetched` (an OSError, so the tailer keeps that file's old
  position) and is recorded in `misses`, with whether it was a fingerprint check's `read` or a
  `readinto` of lines: the SSH form turns the misses into the next round's dd commands.

A file ends (EOF) where a dd read came back short with some bytes; a read that came back empty
only says the end is at its start or before (its listed size if that is smaller). Bytes short
of that end that no range holds are a miss, fetched next round. Without a short read, a file
ends at the larger of its listed size and the end of the bytes fetched: a file that grew after
the listing is read as far as dd saw it, as the agent reads to the end at the moment it reads.

Outputs are never trusted: a cut listing, unreadable records and a failed dd become `notes`
and `unsure_folders` (folders whose files may be missing from the listing: the SSH form keeps
the positions of files there instead of forgetting them).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from probes.joblog.globmatch import could_hold_matches, glob_matches
from probes.joblog.tailer import ByteSource, FileStat, FolderEntry

# find's -printf: type (symlinks followed: "l" is a broken link), device, inode, size, mtime,
# path; NUL-terminated, so any byte but NUL may be in a name.
FIND_PRINTF = "%y %D %i %s %T@ %p\\0"
# `env LC_ALL=C find ...` writes its complaints as  find: 'PATH': REASON
_FIND_ERROR = re.compile(r"^find: '(?P<path>.*)': (?P<reason>[^:]+)$")
_DD_ERROR = re.compile(r": (?P<reason>[^:]+)$")
MAX_NOTE_CHARS = 200


class BytesNotFetched(OSError):
    """The tailer asked for bytes no dd output holds (yet)."""


@dataclass(frozen=True, slots=True)
class ListedFile:
    path: str
    kind: str  # find's %y: f regular, d folder, l broken symlink, p fifo...
    stat: FileStat


@dataclass(frozen=True, slots=True)
class ByteRange:
    """dd's answer for bytes [start, start + count) of a file (count None: to its end)."""

    path: str
    start: int
    count: int | None
    data: bytes
    ok: bool
    error: str = ""

    @property
    def reached_end(self) -> bool:
        return self.ok and (self.count is None or len(self.data) < self.count)


def _short(text: str) -> str:
    return text if len(text) <= MAX_NOTE_CHARS else text[: MAX_NOTE_CHARS - 3] + "..."


def _mtime_ns(text: str) -> int:
    return int(Decimal(text) * 1_000_000_000)


@dataclass(slots=True)
class Listing:
    """find's listings of the globs' roots, merged (the first record of a path wins)."""

    files: dict[str, ListedFile] = field(default_factory=dict)
    folders: set[str] = field(default_factory=set)
    unsure_folders: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    # How many roots gave a usable listing (possibly empty); 0 of several: nothing is known.
    usable_roots: int = 0

    def add_find_output(
        self, root: str, stdout: bytes, exit_status: int, stderr: str, patterns: Sequence[str]
    ) -> None:
        """One `find -L ROOT ... -printf FIND_PRINTF` output; `patterns` are the globs it serves."""
        records = stdout.split(b"\0")
        cut = records.pop()  # after the last NUL: empty unless the output was cut
        complete = True
        if cut:
            complete = False
            self.notes.append(f"find {root}: listing cut short (last record without its end)")
        unreadable = 0
        for record in records:
            listed = self._record(record, root)
            if listed is None:
                unreadable += 1
                continue
            if listed.kind == "d":
                self.folders.add(listed.path)
            self.files.setdefault(listed.path, listed)
        if unreadable:
            complete = False
            self.notes.append(f"find {root}: {unreadable} unreadable records skipped")
        root_missing, unexplained = self._errors(root, exit_status, stderr, patterns)
        if unexplained is not None:
            complete = False
            self.notes.append(_short(f"find {root}: {unexplained}"))
        if not complete:
            self.unsure_folders.add(root)
        if records or root_missing or complete:
            self.usable_roots += 1

    def _errors(
        self, root: str, exit_status: int, stderr: str, patterns: Sequence[str]
    ) -> tuple[bool, str | None]:
        """(the root does not exist, a failure that leaves the whole listing in doubt)."""
        if exit_status == 0:
            return False, None
        root_missing = False
        explained = False
        for line in stderr.splitlines():
            found = _FIND_ERROR.match(line.strip())
            if found is None:
                continue
            path, reason = found.group("path"), found.group("reason")
            explained = True
            if path == root and reason == "No such file or directory":
                # Like glob on a folder that does not exist: nothing matches, nothing to say.
                root_missing = True
                continue
            self.unsure_folders.add(path)
            if any(could_hold_matches(p, path) for p in patterns):
                self.notes.append(_short(f"{path}: {reason} (its files were not listed)"))
        if explained:
            return root_missing, None
        last = (stderr.strip().splitlines() or [f"exit status {exit_status}"])[-1]
        return False, f"find failed: {last}"

    @staticmethod
    def _record(record: bytes, root: str) -> ListedFile | None:
        fields = record.split(b" ", 5)
        if len(fields) != 6 or not fields[5]:
            return None
        kind_raw, device, inode, size, mtime, path_raw = fields
        try:
            kind = kind_raw.decode("ascii")
            stat = FileStat(
                device=int(device),
                inode=int(inode),
                size=int(size),
                mtime_ns=_mtime_ns(mtime.decode("ascii")),
                is_regular=kind == "f",
            )
        except (ValueError, InvalidOperation, UnicodeDecodeError):
            return None
        # Names as Python's os functions give them for bytes that are not UTF-8.
        path = os.fsdecode(path_raw)
        if root == "." and path.startswith("./"):
            path = path[2:]  # glob("x.log") gives "x.log", find . gives "./x.log"
        return ListedFile(path, kind, stat)


def parse_dd_output(
    path: str, start: int, count: int | None, stdout: bytes, exit_status: int, stderr: str
) -> ByteRange:
    if exit_status != 0:
        lines = stderr.strip().splitlines()
        reason_match = _DD_ERROR.search(lines[-1]) if lines else None
        reason = reason_match.group("reason") if reason_match else f"dd exit status {exit_status}"
        return ByteRange(path, start, count, b"", ok=False, error=reason.strip())
    if count is not None and len(stdout) > count:
        # More than asked is not what dd does: believe none of it.
        return ByteRange(path, start, count, b"", ok=False, error="dd gave more bytes than asked")
    return ByteRange(path, start, count, stdout, ok=True)


class _FetchedBytes:
    """The known bytes of one file: merged, non-overlapping segments, and where it ends."""

    def __init__(self, listed_size: int) -> None:
        self._segments: dict[int, bytes] = {}
        self._listed_size = listed_size
        # A dd read that came back short with some bytes: the file ends right after them.
        self._known_end: int | None = None
        # One that came back empty: the file ends at its start or before (dd skips past the end
        # silently). Not the end of the bytes held: those may stop earlier (a head read, then
        # the old position's tail check past them, on a file written again shorter).
        self._end_at_most: int | None = None
        self.error: str | None = None

    def add(self, fetched: ByteRange) -> None:
        if not fetched.ok:
            self.error = fetched.error or "dd failed"
            return
        if fetched.reached_end and fetched.data:
            end = fetched.start + len(fetched.data)
            self._known_end = max(end, self._known_end or 0)
        elif fetched.reached_end:
            at_most = self._end_at_most
            self._end_at_most = fetched.start if at_most is None else min(at_most, fetched.start)
        if fetched.data:
            self._merge(fetched.start, fetched.data)

    def _merge(self, start: int, data: bytes) -> None:
        end = start + len(data)
        for seg_start, seg in sorted(self._segments.items()):
            seg_end = seg_start + len(seg)
            if seg_end < start or seg_start > end:
                continue
            # Overlapping or touching: one segment, the newer bytes winning where both have some.
            del self._segments[seg_start]
            merged_start = min(seg_start, start)
            buffer = bytearray(max(seg_end, end) - merged_start)
            buffer[seg_start - merged_start : seg_end - merged_start] = seg
            buffer[start - merged_start : end - merged_start] = data
            start, data, end = merged_start, bytes(buffer), merged_start + len(buffer)
        self._segments[start] = data

    @property
    def end_of_file(self) -> int:
        data_end = max((s + len(d) for s, d in self._segments.items()), default=0)
        # Bytes dd gave were there: no end is before them (the file changed between rounds).
        if self._known_end is not None:
            return max(self._known_end, data_end)
        if self._end_at_most is not None:
            return max(min(self._listed_size, self._end_at_most), data_end)
        return max(self._listed_size, data_end)

    def get(self, offset: int, size: int) -> bytes | None:
        end = min(offset + size, self.end_of_file)
        if offset >= end:
            return b""
        for seg_start, seg in self._segments.items():
            if seg_start <= offset and seg_start + len(seg) >= end:
                return seg[offset - seg_start : end - seg_start]
        return None


@dataclass(frozen=True, slots=True)
class Miss:
    path: str
    offset: int
    size: int
    # A fingerprint check's read (the tailer's `read`: a head, the bytes before an offset), not
    # a read of lines (`readinto`).
    fingerprint: bool


class _SnapshotReader:
    def __init__(self, snapshot: RemoteSnapshot, path: str, fetched: _FetchedBytes) -> None:
        self._snapshot = snapshot
        self._path = path
        self._fetched = fetched
        self._offset = 0

    def seek(self, offset: int, /) -> int:
        self._offset = offset
        return offset

    def read(self, size: int, /) -> bytes:
        return self._take(size, fingerprint=True)

    def readinto(self, buffer: memoryview, /) -> int:
        data = self._take(len(buffer), fingerprint=False)
        buffer[: len(data)] = data
        return len(data)

    def _take(self, size: int, *, fingerprint: bool) -> bytes:
        data = self._fetched.get(self._offset, size)
        if data is None:
            self._snapshot.misses.append(Miss(self._path, self._offset, size, fingerprint))
            raise BytesNotFetched(errno.EAGAIN, "not read over SSH", self._path)
        self._offset += len(data)
        return data

    def close(self) -> None:
        return None


class RemoteSnapshot:
    """FileAccess over a Listing and dd's byte ranges; see the module docstring."""

    def __init__(self, listing: Listing, ranges: Iterable[ByteRange] = ()) -> None:
        self.listing = listing
        self.misses: list[Miss] = []
        # Paths the final pass treats as unreadable: their bytes could not all be fetched.
        self.withheld: dict[str, str] = {}
        self._bytes: dict[str, _FetchedBytes] = {}
        for fetched in ranges:
            self._fetched(fetched.path).add(fetched)
        self._entries_by_folder: dict[str, list[FolderEntry]] = {}
        for listed in listing.files.values():
            folder = os.path.dirname(listed.path) or "."
            name = os.path.basename(listed.path)
            if name:
                self._entries_by_folder.setdefault(folder, []).append(
                    FolderEntry(listed.path, name, listed.stat.inode)
                )

    def _fetched(self, path: str) -> _FetchedBytes:
        fetched = self._bytes.get(path)
        if fetched is None:
            listed = self.listing.files.get(path)
            fetched = _FetchedBytes(listed.stat.size if listed is not None else 0)
            self._bytes[path] = fetched
        return fetched

    # ----------------------------------------------------------------- FileAccess

    def glob(self, pattern: str) -> list[str]:
        return [path for path in self.listing.files if glob_matches(pattern, path)]

    def stat(self, path: str) -> FileStat:
        listed = self.listing.files.get(path)
        if listed is None or listed.kind == "l":
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return listed.stat

    def folder_entries(self, folder: str) -> list[FolderEntry]:
        folder = folder.rstrip("/") or "/"
        if folder not in self.listing.folders:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", folder)
        return list(self._entries_by_folder.get(folder, []))

    def open(self, path: str) -> ByteSource:
        if path in self.withheld:
            raise BytesNotFetched(errno.EAGAIN, self.withheld[path], path)
        fetched = self._fetched(path)
        if fetched.error is not None:
            raise OSError(errno.EIO, fetched.error, path)
        return _SnapshotReader(self, path, fetched)
