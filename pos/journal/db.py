"""The journal's ONE connection, shared by every store (pos/journal/store.py's module
docstring has the durability and concurrency story).

:class:`Database` owns what each store would otherwise repeat: the lock, the short
``BEGIN IMMEDIATE`` write transaction and the batch, consistent read snapshots, turning
a full disk / a lock / a refusing file system into :class:`JournalUnwritable`, the gate
that keeps writes out of a journal that failed its integrity check, and the file-level
upkeep (checkpoint, backup, free pages).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pos.clock import DeviceClock
from pos.errors import PosError
from pos.journal import health
from pos.journal.models import iso
from pos.money import Money

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class JournalUnwritable(PosError):
    """The journal cannot take a write now: the disk is full, another process holds
    it locked past the busy timeout, or the file system refuses (read-only, I/O)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # "full" | "locked" | "io"


def unwritable(exc: sqlite3.OperationalError) -> JournalUnwritable:
    text = str(exc).lower()
    if "full" in text:
        return JournalUnwritable("The terminal's storage is full: the journal cannot be "
                                 "written. Free space before selling.", reason="full")
    if "locked" in text or "busy" in text:
        return JournalUnwritable("The journal is locked by another program: it cannot be "
                                 "written now.", reason="locked")
    return JournalUnwritable(f"The journal cannot be written ({exc}).", reason="io")


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Money):
        return value.to_json()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in the journal")


def dumps(value: object) -> str:
    """JSON as the journal stores it (compact, sorted keys; Decimal and Money kept exact)."""
    return json.dumps(value, default=_json_default, separators=(",", ":"), sort_keys=True)


def placeholders(n: int) -> str:
    return ",".join("?" * n)


class Database:
    """One SQLite connection (autocommit, ``check_same_thread=False``) behind a lock.

    ``gate`` runs before every write: it raises when the journal must not be written
    (the integrity check found damage; it waits while that check is still running).
    ``corrupted`` turns a damaged page SQLite met into the error raised (and marks the
    journal damaged: the journal's lifecycle owns that verdict).
    ``clock`` is the wall clock every store stamps rows with; ``device`` the device's
    clocks (boot-relative stamps, pos/clock.py).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Clock,
                 device: DeviceClock, gate: Callable[[], None],
                 corrupted: Callable[[sqlite3.DatabaseError], Exception]) -> None:
        self.conn = conn
        self.lock = threading.RLock()
        self.path = path
        self.clock = clock
        self.device = device
        self.gate = gate
        self.corrupted = corrupted
        self._batch_owner: int | None = None

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)

    # ---------------------------------------------------------------- writes
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, committed durably on exit (never into a journal
        that failed its integrity check).

        A disk that is full, a lock held past the busy timeout or a refusing file
        system becomes :class:`JournalUnwritable` (nothing of the transaction stays).
        """
        self.gate()
        if self._batch_owner is not None and self._batch_owner == threading.get_ident():
            with self.lock:  # inside batch(): part of its one transaction
                yield self.conn
            return
        with self.lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise unwritable(exc) from exc
            with self._rolled_back_on_sqlite_errors():
                try:
                    yield self.conn
                except sqlite3.DatabaseError:
                    raise  # rolled back and mapped by the block around
                except BaseException:
                    self.rollback()
                    raise
                self.conn.execute("COMMIT")

    @contextmanager
    def _rolled_back_on_sqlite_errors(self) -> Iterator[None]:
        """In a transaction and its COMMIT: an SQLite error rolls it back and becomes
        :class:`JournalUnwritable` (full disk, lock, refusing file system) or the
        journal's damage (a corrupt page)."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            self.rollback()
            raise unwritable(exc) from exc
        except sqlite3.DatabaseError as exc:
            self.rollback()
            self._raise_if_damaged(exc)
            raise

    def _raise_if_damaged(self, exc: sqlite3.DatabaseError) -> None:
        """A damaged page becomes the journal's damage (any other error is re-raised)."""
        if health.is_corruption(exc):
            raise self.corrupted(exc) from exc

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Many writes of this thread as ONE durable transaction (bulk loads: the
        benchmarks, a migration tool); any error rolls the whole batch back."""
        with self.write():
            self._batch_owner = threading.get_ident()
            try:
                yield
            finally:
                self._batch_owner = None

    def rollback(self) -> None:
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.OperationalError):  # SQLite rolled back itself
                self.conn.execute("ROLLBACK")

    # ----------------------------------------------------------------- reads
    def query(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()
              ) -> builtins.list[sqlite3.Row]:
        """Rows of one statement; ``params`` positional, or a mapping for ``:names``."""
        with self.lock:
            try:
                if isinstance(params, Mapping):
                    return self.conn.execute(sql, dict(params)).fetchall()
                return self.conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.DatabaseError as exc:
                self._raise_if_damaged(exc)
                raise

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads from one consistent snapshot (a deferred read transaction)."""
        with self.lock:
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            except sqlite3.DatabaseError as exc:
                self._raise_if_damaged(exc)
                raise
            finally:
                self.conn.execute("COMMIT")

    def pragma(self, name: str) -> Any:
        """Read a PRAGMA value (for diagnostics and tests)."""
        if not name.replace("_", "").isalpha():
            raise ValueError(f"not a pragma name: {name!r}")
        with self.lock:
            return self.conn.execute(f"PRAGMA {name}").fetchone()[0]

    # ---------------------------------------------------------------- upkeep
    def backup(self, dest: Path) -> None:
        """An online copy of the whole journal into ``dest`` (SQLite's backup API: one
        consistent snapshot). It reads through a connection of its own, so sales in this
        process (and others) keep writing meanwhile (WAL: a reader blocks no writer).
        Never of a journal that failed its integrity check. See pos/backup.py."""
        self.gate()
        source = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            target = sqlite3.connect(dest)
            try:
                source.backup(target)
            finally:
                target.close()
        except sqlite3.DatabaseError as exc:
            self._raise_if_damaged(exc)
            raise
        finally:
            source.close()

    def checkpoint(self) -> tuple[int, int, int]:
        """``PRAGMA wal_checkpoint(TRUNCATE)``: (busy, wal pages, checkpointed pages)."""
        with self.lock:
            row = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def pages(self) -> dict[str, int]:
        """Page size, pages, free pages and the auto_vacuum mode (0 none, 2 incremental)."""
        with self.lock:
            return {name: int(self.conn.execute(f"PRAGMA {name}").fetchone()[0])
                    for name in ("page_size", "page_count", "freelist_count", "auto_vacuum")}

    def release_free_pages(self, keep: int, step: int = 1000) -> int:
        """Give free pages beyond ``keep`` back to the file system, ``step`` pages per
        short write transaction (a sale waits at most one step). Only a journal made
        with ``auto_vacuum = INCREMENTAL`` (new ones; :meth:`compact` converts an old
        one); otherwise SQLite reuses the free pages for new rows. Returns pages freed."""
        released = 0
        while True:
            info = self.pages()
            if info["auto_vacuum"] != 2 or info["freelist_count"] <= keep:
                return released
            n = min(step, info["freelist_count"] - keep)
            self.gate()
            with self.lock:
                try:
                    self.conn.executescript(
                        f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({int(n)}); COMMIT;")
                except sqlite3.OperationalError as exc:
                    self.rollback()
                    raise unwritable(exc) from exc
            released += info["freelist_count"] - self.pages()["freelist_count"]

    def compact(self) -> None:
        """ONE full ``VACUUM`` that also turns on ``auto_vacuum = INCREMENTAL`` (a journal
        made before it): rewrites the whole file through the WAL, so it needs free space
        of about twice the journal and holds the journal for its duration. Never on the
        counter's path: ``sente-pos journal archive --compact`` only."""
        self.gate()
        with self.lock:
            try:
                self.conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                self.conn.execute("VACUUM")
            except sqlite3.OperationalError as exc:
                raise unwritable(exc) from exc
        self.checkpoint()
