"""The hub's database: one SQLAlchemy engine (SQLite by default, PostgreSQL for a fleet),
migrated with alembic at start-up.

SQLite: WAL, ``synchronous=FULL`` (the hub is the terminals' backup), foreign keys on,
and writes begin ``IMMEDIATE`` so two writers queue instead of failing on a lock
upgrade; reads begin deferred and do not block writers. PostgreSQL: a pool per process,
connections checked before use; several hub processes may share the database, so every
decision two of them could race on is one conditional statement (see :mod:`pos.hub.store`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite

from pos.errors import PosError

MIGRATIONS = Path(__file__).with_name("migrations")
#: Key of the PostgreSQL advisory lock held while migrating (any constant will do).
_MIGRATE_LOCK = 0x5E17E_0B


class Database:
    """One engine and the two kinds of transaction the hub uses."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            path = self.url.database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                self.url, connect_args={"timeout": 30, "check_same_thread": False})
            _sqlite_pragmas(self.engine)
        elif self.url.get_backend_name() == "postgresql":
            if self.url.get_driver_name() in ("", "psycopg2"):
                self.url = self.url.set(drivername="postgresql+psycopg")
            self.engine = create_engine(self.url, pool_size=pool_size, max_overflow=pool_size,
                                        pool_pre_ping=True, pool_recycle=1800)
        else:
            raise PosError(f"The hub stores in SQLite or PostgreSQL, not {self.url.drivername}")

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction that writes; committed on exit, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """One consistent read (a deferred transaction on SQLite: writers are not blocked)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(hub_read=True)
            with conn.begin():
                yield conn

    def insert(self, table: Any) -> Any:
        """An INSERT with ``on_conflict_do_nothing`` / ``on_conflict_do_update`` for this engine."""
        return sqlite.insert(table) if self.is_sqlite else postgresql.insert(table)

    def migrate(self) -> str:
        """Bring the schema to the newest revision; returns it. Safe with several hub
        processes starting at once: they take turns (a file lock beside a SQLite
        database, an advisory lock on PostgreSQL) and the later ones find nothing to do."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self._migration_lock(), self.engine.begin() as conn:
            if not self.is_sqlite:
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATE_LOCK})")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return self.revision() or ""

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        path = self.url.database if self.is_sqlite else None
        if not path or path == ":memory:":
            yield
            return
        fd = os.open(path + ".migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON",
                       "busy_timeout = 30000"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read = conn.get_execution_options().get("hub_read", False)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


def open_database(url: str, *, migrate: bool = True) -> Database:
    db = Database(url)
    if migrate:
        db.migrate()
    return db


