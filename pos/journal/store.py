"""The write-ahead journal: every money movement is a row committed durably before it is sent.

Durability: WAL with ``synchronous=FULL`` (each commit fsyncs the WAL), every
write in a short ``BEGIN IMMEDIATE`` transaction, ``busy_timeout`` so the TUI
and ``sente-pos sync`` can share the file from two processes.

Concurrency: one connection per :class:`Journal`, guarded by a lock, opened
with ``check_same_thread=False``. Every call is one small local transaction
(a few milliseconds, dominated by the fsync), so asyncio code may call it
inline; on a slow SD card ``await asyncio.to_thread(journal.transition, ...)``
is equally safe.

Layout: :class:`Journal` is the facade the rest of the code holds; the work is done
by one store per group of tables, all over ONE :class:`~pos.journal.db.Database`
(the connection, its lock, transactions, busy and full-disk handling, the gate of
the integrity check): :mod:`~pos.journal.txnstore` (txns, events; leases and the
sync queue), :mod:`~pos.journal.zreports` (Z reports, kept totals),
:mod:`~pos.journal.operators`, :mod:`~pos.journal.meta` (meta, card cache),
:mod:`~pos.journal.pins` (sealed PINs), :mod:`~pos.journal.room` (the reserve).
The modules that keep tables of their own (shifts, sales, the security trail, the
hub outbox) use :meth:`Journal.transaction` and :meth:`Journal.query`.
"""


from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from pos.clock import DeviceClock
from pos.errors import PosError
from pos.journal import health
from pos.journal import search as search_index
from pos.journal.codec import DuplicateRef, UnknownTransaction, mask_card_no
from pos.journal.db import Clock, Database, JournalUnwritable
from pos.journal.health import JournalDamaged
from pos.journal.meta import CardCache, MetaStore
from pos.journal.operators import OperatorStore
from pos.journal.pins import PinStore
from pos.journal.room import Reserve
from pos.journal.schema import migrate
from pos.journal.txnstore import JournalReader, TxnStore
from pos.journal.zreports import ZStore
from pos.vault import Vault

__all__ = ["DuplicateRef", "Journal", "JournalReader", "JournalUnwritable",
           "UnknownTransaction", "mask_card_no"]

log = logging.getLogger(__name__)

#: WAL policy (see Journal._configure).
WAL_AUTOCHECKPOINT_PAGES = 4000
WAL_SIZE_LIMIT_BYTES = 32 * 1024 * 1024

_P = ParamSpec("_P")
_R = TypeVar("_R")
_S = TypeVar("_S")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _via(store: Callable[[Journal], _S], method: Callable[Concatenate[_S, _P], _R]
         ) -> Callable[Concatenate[Journal, _P], _R]:
    """A :class:`Journal` method that IS ``method`` of one of its stores (same signature,
    same docstring, checked by mypy): the facade delegates, it never re-implements."""
    def call(self: Journal, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return method(store(self), *args, **kwargs)
    call.__name__ = method.__name__
    call.__qualname__ = f"Journal.{method.__name__}"
    call.__doc__ = method.__doc__
    return call


def _txns(j: Journal) -> TxnStore:
    return j.txns


def _zs(j: Journal) -> ZStore:
    return j.zs


def _ops(j: Journal) -> OperatorStore:
    return j.ops


def _meta(j: Journal) -> MetaStore:
    return j.meta


def _cards(j: Journal) -> CardCache:
    return j.cards


def _pins(j: Journal) -> PinStore:
    return j.pins


def _room(j: Journal) -> Reserve:
    return j.room


def _db(j: Journal) -> Database:
    return j.db


class Journal:
    """The terminal's journal: the stores over its one connection (:attr:`db`), and the
    lifecycle (open, integrity check, close). The rest of the code calls the journal's
    methods; each is the method of the store that owns the table (see ``_via``)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, vault: Vault | None,
                 clock: Clock, device: DeviceClock | None = None) -> None:
        self.path = path
        # The integrity check's verdict (pos/journal/health.py): set once it is known.
        self._checked = threading.Event()
        self._checked.set()
        self._damage: JournalDamaged | None = None
        self._checker: threading.Thread | None = None
        self._check_conn: sqlite3.Connection | None = None
        self._id = ""
        self._stamped = False  # this terminal's own journal: keeps a verified stamp
        self.db = Database(conn, path, clock, device or DeviceClock(wall=clock),
                           self._write_gate, self._corrupted)
        self.pins = PinStore(self.db, vault)
        self.room = Reserve(path)
        self.txns = TxnStore(self.db, self.pins, self.room)
        self.zs = ZStore(self.db)
        self.ops = OperatorStore(self.db)
        self.meta = MetaStore(self.db)
        self.cards = CardCache(self.db)

    def _write_gate(self) -> None:
        """Before every write: wait for the integrity check; refuse a damaged journal."""
        if not self._checked.is_set() or self._damage is not None:
            self.verified()

    # ------------------------------------------------------------ settings
    @property
    def vault(self) -> Vault | None:
        return self.pins.vault

    @property
    def device(self) -> DeviceClock:
        return self.db.device

    @device.setter
    def device(self, value: DeviceClock) -> None:
        self.db.device = value

    @property
    def sending_lease(self) -> float:
        return self.txns.sending_lease

    @sending_lease.setter
    def sending_lease(self, value: float) -> None:
        self.txns.sending_lease = value

    @property
    def horizon_seconds(self) -> float:
        return self.txns.horizon_seconds

    @horizon_seconds.setter
    def horizon_seconds(self, value: float) -> None:
        self.txns.horizon_seconds = value

    @property
    def terminal_number(self) -> int:
        return self.txns.terminal_number

    @terminal_number.setter
    def terminal_number(self, value: int) -> None:
        self.txns.terminal_number = value

    @property
    def _conn(self) -> sqlite3.Connection:
        return self.db.conn

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, path: Path, *, vault: Vault | None = None, clock: Clock | None = None,
             busy_timeout_ms: int = 10_000,
             check_inline_max_bytes: int | None = None,
             marker: bool = True, device: DeviceClock | None = None) -> Journal:
        """Open the journal at ``path``, migrating it if needed; create it only in a
        data directory that never had one. A missing (after trading), empty or damaged
        journal raises :class:`~pos.journal.health.JournalDamaged` (see that module).
        ``device``: the device's clocks (default: the real ones, ``clock`` as wall)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        created = health.prepare(path, lambda tmp: cls._initialise(tmp, busy_timeout_ms))
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=busy_timeout_ms / 1000)
        try:
            cls._configure(conn, busy_timeout_ms)
            migrate(conn)
            journal_id = cls._journal_id(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if health.is_corruption(exc):
                raise health.JournalDamaged(path, f"cannot be read ({exc})") from exc
            raise PosError(f"The journal {path} cannot be opened: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        wall = clock or (device.wall if device else _utcnow)
        journal = cls(conn, path, vault, wall, device)
        journal._id = journal_id
        journal._stamped = marker
        if created:
            journal._stamp(health.boot_clock())
        elif not (marker and health.stamp_age(path, journal_id) is not None):
            journal._start_check(health.INLINE_CHECK_MAX_BYTES if check_inline_max_bytes is None
                                 else check_inline_max_bytes)
        if marker:  # off for a journal that is not the terminal's own (a restore's copy)
            health.write_marker(path, journal_id)
        return journal

    @staticmethod
    def _configure(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise PosError(f"journal.db could not be put in WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA secure_delete = ON")
        # SD-card writes (README "Housekeeping"): a checkpoint every 4,000 pages (16 MiB
        # at 4 KiB) instead of SQLite's 1,000 writes the hot pages (totals, indexes)
        # back once for ~4x as many sales; the WAL file is cut back to 32 MiB after a
        # checkpoint, so a long reader never leaves it large.
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")

    @classmethod
    def _initialise(cls, tmp: Path, busy_timeout_ms: int) -> None:
        """A complete new journal at ``tmp`` (then linked into place by health.prepare)."""
        conn = sqlite3.connect(tmp, isolation_level=None, timeout=busy_timeout_ms / 1000)
        try:
            # Before the first table: pages freed by archiving can be given back to the
            # file system a few at a time (release_free_pages), never by a full VACUUM.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            cls._configure(conn, busy_timeout_ms)
            migrate(conn)
            conn.execute("INSERT INTO meta(key, value) VALUES ('journal_id', ?)",
                         (health.new_journal_id(),))
        finally:
            conn.close()
        search_index.ensure_index(tmp, busy_timeout_ms)  # empty: instant

    @staticmethod
    def _journal_id(conn: sqlite3.Connection) -> str:
        """This journal's id (kept in its marker and in every backup); a journal from
        before ids gets one now."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'journal_id'").fetchone()
        if row is not None:
            return str(row[0])
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('journal_id', ?)",
                     (health.new_journal_id(),))
        return str(conn.execute("SELECT value FROM meta WHERE key = 'journal_id'")
                   .fetchone()[0])

    def _start_check(self, inline_max_bytes: int) -> None:
        """``quick_check`` now for a journal up to ``inline_max_bytes``, else in a thread
        whose verdict the first write waits for (the cost is in health's docstring)."""
        began = health.boot_clock()
        if self.path.stat().st_size <= inline_max_bytes:
            try:
                health.quick_check(self._conn, self.path)
            except BaseException:
                self._conn.close()
                raise
            self._stamp(began)
            return
        self._checked.clear()
        self._start_checker(began)

    def _start_checker(self, began: float) -> None:
        self._check_conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                           check_same_thread=False, timeout=10)
        self._checker = threading.Thread(target=self._check_in_background, args=(began,),
                                         daemon=True, name="journal-check")
        self._checker.start()

    def _check_in_background(self, began: float) -> None:
        conn = self._check_conn
        assert conn is not None
        try:
            health.quick_check(conn, self.path)
        except health.JournalDamaged as exc:
            if "interrupted" not in exc.what:
                self._damage = exc
                health.forget_stamp(self.path)
                log.error("journal integrity check failed: %s", exc.what)
        else:
            if self._damage is None:
                self._stamp(began)
        finally:
            conn.close()
            self._checked.set()

    def _stamp(self, began: float) -> None:
        """The verified stamp of a passed check (health's docstring); a failure to write
        it only means the next open checks again."""
        if not self._stamped:
            return
        try:
            health.write_stamp(self.path, self._id, began)
        except OSError as exc:
            log.warning("could not write the verified stamp: %s", exc)

    def recheck_if_stale(self, max_age: float | None = None) -> bool:
        """For a long-running process: check the whole file again in a background
        thread when the last passed check is older than ``max_age`` (default
        :data:`~pos.journal.health.STAMP_MAX_AGE_SECONDS`) or its stamp is gone. Sales
        go on meanwhile; damage found stops them (:attr:`damage`). Whether one began."""
        limit = health.STAMP_MAX_AGE_SECONDS if max_age is None else max_age
        if not self._stamped or self._damage is not None:
            return False
        if self._checker is not None and self._checker.is_alive():
            return False
        age = health.stamp_age(self.path, self._id)
        if age is not None and age < limit:
            return False
        self._start_checker(health.boot_clock())
        return True

    def _corrupted(self, exc: sqlite3.DatabaseError) -> JournalDamaged:
        """SQLite found a bad page while reading or writing: selling stops as if the
        integrity check had failed, and the next open checks the whole file."""
        damage = health.JournalDamaged(self.path, f"has a damaged page ({exc})")
        if self._damage is None:
            self._damage = damage
            log.error("journal page damaged: %s", exc)
        health.forget_stamp(self.path)
        return self._damage

    @property
    def damage(self) -> health.JournalDamaged | None:
        """What the integrity check found (None: healthy, or not known yet)."""
        return self._damage if self._checked.is_set() else None

    def verified(self) -> None:
        """Wait for the integrity check; raise ``JournalDamaged`` if it failed."""
        self._checked.wait()
        if self._damage is not None:
            raise self._damage

    def close(self) -> None:
        if self._checker is not None and self._checker.is_alive():
            assert self._check_conn is not None
            self._check_conn.interrupt()
            self._checker.join()
        with self.db.lock:
            if self.pins.scrub_pending:
                self.pins.scrub()
            self.db.conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


    def now(self) -> datetime:
        """The journal's wall clock, in UTC (what it stamps rows with)."""
        return self.db.now()

    # ------------------------------------------------------- the connection
    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One short durable write transaction, for the modules that keep tables of their
        own in the journal (:mod:`pos.pinguard`, :mod:`pos.shifts`, :mod:`pos.sales`,
        the archive): check and record in one step."""
        return self.db.write()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Many writes of this thread as ONE durable transaction (bulk loads: the
        benchmarks, a migration tool); any error rolls the whole batch back."""
        with self.db.batch():
            yield

    #: A read of the tables a module keeps in the journal (:mod:`pos.shifts`,
    #: :mod:`pos.sales`, :mod:`pos.catalogue`, :mod:`pos.journal.archive`).
    query = _via(_db, Database.query)
    pragma = _via(_db, Database.pragma)
    backup = _via(_db, Database.backup)
    checkpoint = _via(_db, Database.checkpoint)
    pages = _via(_db, Database.pages)
    release_free_pages = _via(_db, Database.release_free_pages)
    compact = _via(_db, Database.compact)

    # --------------------------------------------------- transactions, events
    create = _via(_txns, TxnStore.create)
    transition = _via(_txns, TxnStore.transition)
    update = _via(_txns, TxnStore.update)
    get = _via(_txns, TxnStore.get)
    require = _via(_txns, TxnStore.require)
    list = _via(_txns, TxnStore.list)
    events = _via(_txns, TxnStore.events)
    children = _via(_txns, TxnStore.children)
    draw_ref = _via(_txns, TxnStore.draw_ref)
    newest_created_at = _via(_txns, TxnStore.newest_created_at)
    ensure_search_index = _via(_txns, TxnStore.ensure_search_index)
    hurry_queued = _via(_txns, TxnStore.hurry_queued)
    due_for_sync = _via(_txns, TxnStore.due_for_sync)
    abandoned_created = _via(_txns, TxnStore.abandoned_created)
    flagged = _via(_txns, TxnStore.flagged)
    flagged_count = _via(_txns, TxnStore.flagged_count)
    counted_flagged = _via(_txns, TxnStore.counted_flagged)
    ref_lines = _via(_txns, TxnStore.ref_lines)
    refs_in = _via(_txns, TxnStore.refs_in)
    refund_checks_due = _via(_txns, TxnStore.refund_checks_due)
    refund_checked = _via(_txns, TxnStore.refund_checked)
    offline_exposure = _via(_txns, TxnStore.offline_exposure)
    queued_vend_exposure = _via(_txns, TxnStore.queued_vend_exposure)
    unsynced = _via(_txns, TxnStore.unsynced)

    # ------------------------------------------------------- Z reports, totals
    open_period = _via(_zs, ZStore.open_period)
    totals = _via(_zs, ZStore.totals)
    recomputed_totals = _via(_zs, ZStore.recomputed_totals)
    z_close = _via(_zs, ZStore.z_close)
    z_report_put = _via(_zs, ZStore.z_report_put)
    z_reports = _via(_zs, ZStore.z_reports)
    last_z = _via(_zs, ZStore.last_z)

    # ---------------------------------------------------------------- the rest
    operator_put = _via(_ops, OperatorStore.operator_put)
    operator_update = _via(_ops, OperatorStore.operator_update)
    operator_get = _via(_ops, OperatorStore.operator_get)
    operators = _via(_ops, OperatorStore.operators)
    meta_get = _via(_meta, MetaStore.meta_get)
    meta_set = _via(_meta, MetaStore.meta_set)
    meta_delete = _via(_meta, MetaStore.meta_delete)
    next_receipt_no = _via(_meta, MetaStore.next_receipt_no)
    constraint_offenders = _via(_meta, MetaStore.constraint_offenders)
    card_cache_put = _via(_cards, CardCache.card_cache_put)
    card_cache_get = _via(_cards, CardCache.card_cache_get)
    store_pin = _via(_pins, PinStore.store_pin)
    load_pin = _via(_pins, PinStore.load_pin)
    erase_pin = _via(_pins, PinStore.erase_pin)
    ensure_room = _via(_room, Reserve.ensure_room)
    release_reserve = _via(_room, Reserve.release_reserve)

    @property
    def reserve_path(self) -> Path:
        return self.room.reserve_path
