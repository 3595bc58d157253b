"""The durable, bounded spool between the probes and the stream.

Every item a probe produces is written here with a sequence number before anything is sent; an
item leaves only when the collector acks its seq (or when the spool is full, see the drop order).
So a crash, a restart or a collector outage loses nothing that fits in the bounds, and whatever
does not fit is counted and reported in heartbeats: a gap is never silent.

Drop order when full: the oldest metric results first (a newer reading of the same disk says
more than an old one), job runs are kept; only when nothing but job runs is left does the oldest
job run go.

The spool is used from the event loop thread only (sqlite3 connections stay in their thread).
Its statements are short: a WAL commit with synchronous=NORMAL writes to the OS page cache
without fsync, well under a millisecond.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import structlog

log = structlog.get_logger("agent.spool")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY,
    is_job_run INTEGER NOT NULL,
    payload BLOB NOT NULL
);
-- The drop order walks each kind oldest first.
CREATE INDEX IF NOT EXISTS items_by_kind ON items (is_job_run, seq);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class SpoolEntry(NamedTuple):
    is_job_run: bool
    payload: bytes


class Spool:
    def __init__(self, path: Path, max_items: int, max_bytes: int) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("spool bounds must be positive")
        self._path = path
        self._max_items = max_items
        self._max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we open transactions ourselves, so one append is one commit.
        self._db = sqlite3.connect(path, isolation_level=None)
        # WAL with synchronous=NORMAL survives a crash of this process with every committed
        # transaction intact (the WAL is in the OS page cache, which outlives the process). Only
        # a power loss or kernel crash can take back the last commits; FULL would fsync every
        # append, which the probes' rate does not justify on a customer's disk.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # The agent reads the head and writes the tail; sqlite's default 2 MiB page cache would
        # be a noticeable share of the agent's 55 MiB memory budget for no gain.
        self._db.execute("PRAGMA cache_size=-256")
        self._db.executescript(_SCHEMA)
        self._depth = 0
        self._bytes = 0
        self._next_seq = 1
        self._last_acked_seq = 0
        self._dropped = 0
        self._load_figures()

    def _load_figures(self) -> None:
        # Kept in memory (read at open) so the bounds check costs no query per append.
        count, total_bytes, max_seq = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), COALESCE(MAX(seq), 0) FROM items"
        ).fetchone()
        self._depth = int(count)
        self._bytes = int(total_bytes)
        self._next_seq = max(self._counter("next_seq", 1), int(max_seq) + 1)
        self._last_acked_seq = self._counter("last_acked_seq", 0)
        self._dropped = self._counter("dropped", 0)

    # -- counters ------------------------------------------------------------------------

    def _counter(self, name: str, default: int) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else default

    def _set_counter(self, name: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    @property
    def depth(self) -> int:
        """Items waiting for an ack."""
        return self._depth

    @property
    def size_bytes(self) -> int:
        """Total payload bytes waiting for an ack."""
        return self._bytes

    @property
    def dropped(self) -> int:
        """Items dropped because the spool was full, since the spool was created."""
        return self._dropped

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def last_acked_seq(self) -> int:
        return self._last_acked_seq

    # -- writing -------------------------------------------------------------------------

    def append(self, entries: Sequence[SpoolEntry]) -> list[int]:
        """Store entries with strictly increasing seqs, all in one transaction; returns the seqs."""
        if not entries:
            return []
        first = self._next_seq
        seqs = list(range(first, first + len(entries)))
        rows = [(seq, int(e.is_job_run), e.payload) for seq, e in zip(seqs, entries, strict=True)]
        added_bytes = sum(len(e.payload) for e in entries)
        try:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO items (seq, is_job_run, payload) VALUES (?, ?, ?)", rows
                )
                self._set_counter("next_seq", first + len(entries))
                self._depth += len(entries)
                self._bytes += added_bytes
                self._next_seq = first + len(entries)
                self._drop_while_over_bounds()
        except sqlite3.Error:
            # Rolled back (a full disk, say): the in-memory figures must match the file again.
            self._load_figures()
            raise
        return seqs

    def _over_bounds(self) -> bool:
        return self._depth > self._max_items or self._bytes > self._max_bytes

    def _drop_while_over_bounds(self) -> None:
        for is_job_run in (False, True):
            if not self._over_bounds():
                return
            self._drop_oldest_of_kind(is_job_run)

    def _drop_oldest_of_kind(self, is_job_run: bool) -> None:
        """Drop the oldest items of one kind until the spool is within its bounds (or that
        kind is gone). Runs inside append's transaction."""
        cursor = self._db.execute(
            "SELECT seq, LENGTH(payload) FROM items WHERE is_job_run = ? ORDER BY seq",
            (int(is_job_run),),
        )
        dropped_count = 0
        dropped_bytes = 0
        last_seq: int | None = None
        for seq, size in cursor:
            if (
                self._depth - dropped_count <= self._max_items
                and self._bytes - dropped_bytes <= self._max_bytes
            ):
                break
            dropped_count += 1
            dropped_bytes += size
            last_seq = seq
        cursor.close()
        if last_seq is None:
            return
        # The dropped ones are exactly this kind's rows up to last_seq: they were read in seq order.
        self._db.execute(
            "DELETE FROM items WHERE is_job_run = ? AND seq <= ?", (int(is_job_run), last_seq)
        )
        self._depth -= dropped_count
        self._bytes -= dropped_bytes
        self._dropped += dropped_count
        self._set_counter("dropped", self._dropped)
        log.warning(
            "spool.dropped",
            kind="job_run" if is_job_run else "result",
            count=dropped_count,
            bytes=dropped_bytes,
            up_to_seq=last_seq,
            dropped_total=self._dropped,
            max_items=self._max_items,
            max_bytes=self._max_bytes,
        )

    # -- reading and acking ----------------------------------------------------------------

    def read_after(self, seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to limit items with a seq above seq, in seq order."""
        rows = self._db.execute(
            "SELECT seq, payload FROM items WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        ).fetchall()
        return [(int(s), bytes(p)) for s, p in rows]

    def ack(self, acked_seq: int) -> int:
        """The collector has committed everything up to acked_seq: delete it. Returns how many
        items were deleted."""
        if acked_seq <= self._last_acked_seq and self._depth == 0:
            return 0
        with self._transaction():
            count, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM items WHERE seq <= ?",
                (acked_seq,),
            ).fetchone()
            if count:
                self._db.execute("DELETE FROM items WHERE seq <= ?", (acked_seq,))
            if acked_seq > self._last_acked_seq:
                self._last_acked_seq = acked_seq
                self._set_counter("last_acked_seq", acked_seq)
        self._depth -= count
        self._bytes -= size
        return int(count)

    def advance_seq_to(self, acked_seq: int) -> None:
        """The collector has committed up to acked_seq, which this spool never assigned (its
        state was reset or lost). Continue numbering above it: the items still waiting are
        renumbered above acked_seq, since the collector would take their old seqs for repeats
        and drop them."""
        if acked_seq < self._next_seq:
            return
        with self._transaction():
            first_waiting = self._db.execute("SELECT MIN(seq) FROM items").fetchone()[0]
            if first_waiting is None:
                new_next_seq = acked_seq + 1
            else:
                shift = acked_seq + 1 - int(first_waiting)
                # Two steps through negative numbers: a single `seq = seq + shift` could meet a
                # row not yet moved and break the primary key halfway.
                self._db.execute("UPDATE items SET seq = -(seq + ?)", (shift,))
                self._db.execute("UPDATE items SET seq = -seq")
                new_next_seq = self._next_seq + shift
            self._set_counter("next_seq", new_next_seq)
            self._set_counter("last_acked_seq", acked_seq)
        log.warning(
            "spool.renumbered",
            collector_acked_seq=acked_seq,
            old_next_seq=self._next_seq,
            new_next_seq=new_next_seq,
            waiting=self._depth,
        )
        self._next_seq = new_next_seq
        self._last_acked_seq = acked_seq

    # -- plumbing --------------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        # A checkpoint folds the WAL back into the database file, so the folder holds one file
        # at rest; failure here loses nothing (the WAL is replayed at the next open).
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.warning("spool.checkpoint_failed", error=str(exc))
        self._db.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
