"""Bulk writes through the SQLite driver itself, for the statements run per ingested result.

SQLAlchemy processes every parameter of every row of an executemany in Python; at tens of
thousands of results a second that was the largest cost of the writer (bench/ingest.py,
bench/incidents.py). On SQLite the hot statements are compiled once and run with the driver's
executemany on plain tuples, times put in their stored text by the column type's own bind
processor, so both paths store identical values (tests/collector/test_ingest.py checks it).
Other databases take the SQLAlchemy path with the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from collector.store.schema import UTC_TIME

_SQLITE = sqlite.dialect()
_SQLITE_TIME = UTC_TIME.dialect_impl(_SQLITE).bind_processor(_SQLITE)


def _identity(value: Any) -> Any:
    return value


def time_to_db(conn: sa.Connection) -> Callable[[Any], Any]:
    """What a datetime must become in a row given to `DriverInsert.execute` on conn."""
    if conn.dialect.name == "sqlite" and _SQLITE_TIME is not None:
        return _SQLITE_TIME
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
        self._sqlite_sql = compiled.string
        self.portable = portable

    def execute(self, conn: sa.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows are tuples in `columns` order, times through `time_to_db(conn)`."""
        if not rows:
            return
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(self._sqlite_sql, list(rows))
        else:
            conn.execute(self.portable,
                         [dict(zip(self.columns, row, strict=True)) for row in rows])
