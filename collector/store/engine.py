"""Open the store from a URL and bring its schema to the newest migration.

SQLite is the default: embedded, one file, WAL so readers (the HTTP API) never wait for the
writer. Everything SQLite-specific lives here; the rest of the collector speaks SQLAlchemy Core
and runs on PostgreSQL unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url

import collector.store.migrations as migrations_package

# A writer holds the lock for one grouped commit (milliseconds); a reader that finds it taken
# waits this long before giving up, rather than failing at once.
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Connection execution option for connections that write: `conn.execution_options(**WRITER)`.
# On SQLite their transactions begin IMMEDIATE; other databases ignore it.
IMMEDIATE_WRITE_OPTION = "daybreak_immediate_write"
WRITER: dict[str, bool] = {IMMEDIATE_WRITE_OPTION: True}


def migrations_config(engine: sa.Engine | None = None) -> Config:
    """An Alembic Config built in code: no alembic.ini is needed on disk at run time."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations_package.__file__).parent))
    if engine is not None:
        # env.py takes the URL from here when no connection is handed over.
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def _configure_sqlite(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The sqlite3 module's own transaction handling issues BEGIN lazily and breaks
        # SAVEPOINT; take it over (the SQLAlchemy pysqlite recipe) and begin below instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL syncs at checkpoints, not at every commit: a collector crash
            # loses nothing committed, a power cut may lose the last commits but never
            # corrupts the file. FULL would cost an fsync per grouped commit.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        if connection.get_execution_options().get(IMMEDIATE_WRITE_OPTION):
            # Takes the write lock up front. A deferred transaction that reads and then writes
            # fails at once with SQLITE_BUSY when another writer committed meanwhile, which the
            # busy timeout cannot help.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            # Readers stay deferred: in WAL mode they read a snapshot and never wait for the
            # writer, however long its transaction.
            connection.exec_driver_sql("BEGIN")


def create_store_engine(url: str) -> sa.Engine:
    """An Engine for the URL, with SQLite's pragmas applied to every new connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    _configure_sqlite(engine)
    return engine


def upgrade_to_head(engine: sa.Engine) -> None:
    """Run every migration not yet applied (Alembic `upgrade head`), in one transaction."""
    config = migrations_config(engine)
    # As a writer: two collectors starting at once on one store migrate one after the other.
    with engine.connect().execution_options(**WRITER) as connection, connection.begin():
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_store(url: str) -> sa.Engine:
    """The store the collector runs on: connected, and migrated to the newest schema."""
    engine = create_store_engine(url)
    upgrade_to_head(engine)
    return engine
