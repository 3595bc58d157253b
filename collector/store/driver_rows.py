"""Bulk writes through the SQLite driver itself, for the statements run per ingested result.

SQLAlchemy processes every parameter of every row of an executemany in Python; at tens of
thousands of results a second that was the largest cost of the writer (bench/ingest.py,
bench/incidents.py). On SQLite the hot statements are compiled once and run by the driver on
plain tuples, times put in their stored text by the column type's own bind processor, so both
paths store identical values (tests/collector/test_ingest.py checks it). Other databases take
the SQLAlchemy path with the same rows.

Rows go to SQLite as multi-row `VALUES (...), (...)` statements of up to CHUNK_ROWS rows, not
as an executemany: the sqlite3 module gives up the GIL around every statement step, so an
executemany of 500 rows waits for the GIL 500 times, each up to the switch interval while the
event loop runs. Against a busy thread that took an executemany from 49,000 to 1,500 rows/s;
chunks of 128 rows keep 35,000 (and are faster alone too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from collector.store.schema import UTC_TIME

_SQLITE = sqlite.dialect()
# Rows per statement: 128 rows of 12 columns stay far below SQLite's 32,766 parameters.
CHUNK_ROWS = 128
_SQLITE_TIME = UTC_TIME.dialect_impl(_SQLITE).bind_processor(_SQLITE)


def _identity(value: Any) -> Any:
    return value


_SQLITE_TIME_TEXT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


def _sqlite_time_text(value: Any) -> Any:
    """The text SQLAlchemy's SQLite DateTime stores, `YYYY-MM-DD HH:MM:SS.ffffff` (the wall
    time; an offset is not kept), from a tuple rather than the dialect's dict of fields: 0.9 µs
    against 2.5 µs for the dialect's processor or for isoformat on an aware time, the largest
    Python cost of the writer per result (bench/ingest.py)."""
    if type(value) is datetime:
        return _SQLITE_TIME_TEXT % (value.year, value.month, value.day, value.hour,
                                    value.minute, value.second, value.microsecond)
    return _SQLITE_TIME(value) if _SQLITE_TIME is not None else value


def time_to_db(conn: sa.Connection) -> Callable[[Any], Any]:
    """What a datetime must become in a row given to `DriverInsert.execute` on conn."""
    if conn.dialect.name == "sqlite":
        return _sqlite_time_text
    return _identity


class DriverInsert:
    """An insert (or upsert) for rows of `columns`: compiled once for SQLite and run by the
    driver there; `portable` (the same statement for other dialects) everywhere else."""

    def __init__(self, sqlite_statement: sa.Insert, portable: sa.Insert,
                 columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        compiled = sqlite_statement.compile(dialect=_SQLITE, column_keys=list(self.columns))
        if tuple(compiled.positiontup or ()) != self.columns:
            raise ValueError(f"parameters compile as {compiled.positiontup}, not {self.columns}")
        one_row = "(" + ", ".join("?" for _ in self.columns) + ")"
        head, found, tail = compiled.string.partition(f"VALUES {one_row}")
        if not found or one_row in tail:
            raise ValueError(f"no single VALUES group in {compiled.string!r}")
        # Statements for 1, 2, 4 ... CHUNK_ROWS rows: any count is a sum of these, so the
        # driver's statement cache holds a handful of texts whatever the batch sizes.
        self._sqlite_sql = {
            size: f"{head}VALUES {', '.join([one_row] * size)}{tail}"
            for size in _powers_of_two_up_to(CHUNK_ROWS)
        }
        self.portable = portable

    def execute(self, conn: sa.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows are tuples in `columns` order, times through `time_to_db(conn)`."""
        if not rows:
            return
        if conn.dialect.name != "sqlite":
            conn.execute(self.portable,
                         [dict(zip(self.columns, row, strict=True)) for row in rows])
            return
        start = 0
        while start < len(rows):
            size = min(CHUNK_ROWS, _largest_power_of_two_at_most(len(rows) - start))
            chunk = rows[start:start + size]
            conn.exec_driver_sql(self._sqlite_sql[size], tuple(chain.from_iterable(chunk)))
            start += size


def _powers_of_two_up_to(limit: int) -> list[int]:
    return [1 << bit for bit in range(limit.bit_length()) if 1 << bit <= limit]


def _largest_power_of_two_at_most(count: int) -> int:
    return 1 << (count.bit_length() - 1)
