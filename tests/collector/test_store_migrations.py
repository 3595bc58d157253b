"""The store: migrations produce exactly schema.py, SQLite runs in WAL mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from collector.store.engine import migrations_config, open_store
from collector.store.schema import metadata


def _default_differs(
    _context: Any, _inspected_column: Any, _metadata_column: Any, inspected_default: str | None,
    _metadata_default: Any, rendered_metadata_default: str | None,
) -> bool:
    # SQLite reflects a default as written in the DDL ("('')", "'0'"); compare the values.
    def bare(value: str | None) -> str | None:
        return None if value is None else value.strip("()").strip("'\"")
    return bare(inspected_default) != bare(rendered_metadata_default)


def test_the_migrated_database_matches_the_schema_module(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'daybreak.db'}")
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True, "compare_server_default": _default_differs,
        })
        differences = compare_metadata(context, metadata)
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert differences == []
    assert tables == set(metadata.tables) | {"alembic_version"}


def test_opening_a_migrated_store_again_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'daybreak.db'}"
    open_store(url).dispose()
    engine = open_store(url)
    with engine.connect() as conn:
        versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    engine.dispose()
    # The newest migration, whichever it is: each issue adds one.
    head = ScriptDirectory.from_config(migrations_config()).get_current_head()
    assert versions == [head]


def test_sqlite_runs_in_wal_mode_with_foreign_keys_on(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'state' / 'daybreak.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) > 0
    engine.dispose()


def test_the_open_incident_index_is_partial(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'daybreak.db'}")
    with engine.connect() as conn:
        ddl = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'uq_incidents_open_dedup_key'").scalar()
    engine.dispose()
    assert "WHERE state != 'resolved'" in str(ddl)
