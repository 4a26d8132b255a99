"""The write-ahead journal: every money movement is a row committed durably before it is sent.

Durability: WAL with ``synchronous=FULL`` (each commit fsyncs the WAL), every
write in a short ``BEGIN IMMEDIATE`` transaction, ``busy_timeout`` so the TUI
and ``sente-pos sync`` can share the file from two processes.

Concurrency: one connection per :class:`Journal`, guarded by a lock, opened
with ``check_same_thread=False``. Every call is one small local transaction
(a few milliseconds, dominated by the fsync), so asyncio code may call it
inline; on a slow SD card ``await asyncio.to_thread(journal.transition, ...)``
is equally safe.

Leases: entering ``sending`` sets ``next_attempt_at`` to now + :attr:`Journal.
sending_lease` unless the caller gives one, so the sync worker of another
process does not pick up (and re-send) a request the TUI is still waiting
for; after a crash the row becomes due when the lease runs out.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pos.clock import DeviceClock, Stamp, owner_alive, process_start
from pos.digits import is_digits
from pos.errors import InputError, PosError
from pos.journal import health
from pos.journal import search as search_index
from pos.journal.health import JournalDamaged
from pos.journal.models import (
    CachedCard,
    Event,
    Exposure,
    Operator,
    RefLine,
    Txn,
    ZReport,
    from_iso,
    iso,
)
from pos.journal.schema import FLAGGED_SQL, migrate
from pos.journal.states import (
    FLAGGED_STATES,
    INITIAL_STATES,
    SYNC_STATES,
    Kind,
    State,
    Tender,
    check_transition,
    holds_pin,
    is_final,
    is_flagged,
    needs_sync,
)
from pos.money import Money
from pos.refs import new_ref as _default_ref
from pos.vault import Vault, VaultError

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class UnknownTransaction(PosError):
    """No journal row has this ref."""


class DuplicateRef(PosError):
    """A journal row with this ref already exists (refs are unique)."""


class JournalUnwritable(PosError):
    """The journal cannot take a write now: the disk is full, another process holds
    it locked past the busy timeout, or the file system refuses (read-only, I/O)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # "full" | "locked" | "io"


def _unwritable(exc: sqlite3.OperationalError) -> JournalUnwritable:
    text = str(exc).lower()
    if "full" in text:
        return JournalUnwritable("The terminal's storage is full: the journal cannot be "
                                 "written. Free space before selling.", reason="full")
    if "locked" in text or "busy" in text:
        return JournalUnwritable("The journal is locked by another program: it cannot be "
                                 "written now.", reason="locked")
    return JournalUnwritable(f"The journal cannot be written ({exc}).", reason="io")


def _utcnow() -> datetime:
    return datetime.now(UTC)


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


def _dumps(value: object) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"), sort_keys=True)


def mask_card_no(card_no: str | None) -> str | None:
    """Keep a card number masked: an unmasked number keeps only its first and last four digits."""
    if card_no is None:
        return None
    text = card_no.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if "*" in text or len(digits) < 10:
        return text
    return digits[:4] + "*" * (len(digits) - 8) + digits[-4:]


# Columns a transition / update may change, and how each is encoded.
_STR_FIELDS = frozenset(
    {"provider_txn_id", "token", "receipt_no", "units", "customer_name", "last_error", "wallet",
     "lease_owner"}
)
_INT_FIELDS = frozenset({"receipt_number", "attempts", "sends"})
_UPDATABLE = _STR_FIELDS | _INT_FIELDS | frozenset(
    {"next_attempt_at", "charges", "charges_json", "total", "total_json", "details", "offline",
     "sent", "recon", "accepted"}
)

_TXN_COLUMNS = (
    "ref, kind, state, amount_minor, currency, tender, operator, terminal_id, card_id, card_no,"
    " wallet, meter, account, customer_name, reason, parent_ref, offline, attempts,"
    " next_attempt_at, created_at, updated_at, details_json, lease_owner, created_boot,"
    " created_mono, clock_synced, accepted"
)
#: The Z period a row made now belongs to (Z #N closes period N): a primary-key lookup.
_OPEN_PERIOD = "(SELECT COALESCE(MAX(number), 0) + 1 FROM z_reports)"
#: A failed or declined card-paid electricity sale: its refund is checked when due
#: (next_attempt_at, index txns_state_due) instead of on every sync pass.
_REFUND_CHECK_STATES = frozenset({State.failed, State.declined, State.declined_offline})
_REFUND_CHECK_WHERE = (
    "next_attempt_at IS NOT NULL AND tender = 'card' AND kind IN ('vend', 'postpaid')"
    " AND state IN ('failed', 'declined', 'declined_offline')"
)
#: WAL policy (see Journal._configure).
WAL_AUTOCHECKPOINT_PAGES = 4000
WAL_SIZE_LIMIT_BYTES = 32 * 1024 * 1024
#: States in which a row is held by the process that made it (its lease).
_LEASED = frozenset({State.created, State.sending})


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


#: The flagged rows, in creation order, from their partial index (schema V_HOUSEKEEPING).
_FLAGGED_FROM = f"txns INDEXED BY txns_flagged WHERE {FLAGGED_SQL}"


def _states_where(states: Iterable[State]) -> tuple[str, list[str]]:
    """``txns WHERE state IN (...)``; the flagged states through their partial index
    ``txns_flagged`` (its own literal term, so SQLite may use it) in creation order."""
    sv = sorted({str(State(s)) for s in states})
    if set(sv) == {str(s) for s in FLAGGED_STATES}:
        return _FLAGGED_FROM, []
    return f"txns WHERE state IN ({_placeholders(len(sv))})", sv


class Journal:
    """The terminal's journal (see the module docstring for durability and concurrency)."""

    #: Seconds a row in ``sending`` is left alone by :meth:`due_for_sync` while the
    #: process holding it lives (a dead holder's rows are due at once).
    sending_lease: float = 120.0
    #: A scheduled time further ahead than this is a clock stepped back: due now.
    horizon_seconds: float = 7200.0
    #: The terminal's number, carried by every ref it draws (see pos.refs).
    terminal_number: int = 0

    def __init__(self, conn: sqlite3.Connection, path: Path, vault: Vault | None,
                 clock: Clock, device: DeviceClock | None = None) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.path = path
        self.vault = vault
        self._clock = clock
        self.device = device or DeviceClock(wall=clock)
        self._scrub_pending = False
        self._has_search_index = False
        self._batch_owner: int | None = None
        # The integrity check's verdict (pos/journal/health.py): set once it is known.
        self._checked = threading.Event()
        self._checked.set()
        self._damage: JournalDamaged | None = None
        self._checker: threading.Thread | None = None
        self._check_conn: sqlite3.Connection | None = None
        self._id = ""
        self._stamped = False  # this terminal's own journal: keeps a verified stamp

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
        with self._lock:
            if self._scrub_pending:
                self._scrub()
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pragma(self, name: str) -> Any:
        """Read a PRAGMA value (for diagnostics and tests)."""
        if not name.replace("_", "").isalpha():
            raise ValueError(f"not a pragma name: {name!r}")
        with self._lock:
            return self._conn.execute(f"PRAGMA {name}").fetchone()[0]

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, committed durably on exit (never into a journal
        that failed its integrity check).

        A disk that is full, a lock held past the busy timeout or a refusing file
        system becomes :class:`JournalUnwritable` (nothing of the transaction stays).
        """
        if not self._checked.is_set() or self._damage is not None:
            self.verified()
        if self._batch_owner is not None and self._batch_owner == threading.get_ident():
            with self._lock:  # inside batch(): part of its one transaction
                yield self._conn
            return
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise _unwritable(exc) from exc
            try:
                yield self._conn
            except sqlite3.OperationalError as exc:
                self._rollback()
                raise _unwritable(exc) from exc
            except sqlite3.DatabaseError as exc:
                self._rollback()
                if health.is_corruption(exc):
                    raise self._corrupted(exc) from exc
                raise
            except BaseException:
                self._rollback()
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._rollback()
                raise _unwritable(exc) from exc
            except sqlite3.DatabaseError as exc:
                self._rollback()
                if health.is_corruption(exc):
                    raise self._corrupted(exc) from exc
                raise

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Many writes of this thread as ONE durable transaction (bulk loads: the
        benchmarks, a migration tool); any error rolls the whole batch back."""
        with self._write():
            self._batch_owner = threading.get_ident()
            try:
                yield
            finally:
                self._batch_owner = None

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.OperationalError):  # SQLite rolled back itself
                self._conn.execute("ROLLBACK")

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One short durable write transaction, for the modules that keep tables of their
        own in the journal (:mod:`pos.pinguard`): check and record in one step."""
        return self._write()

    def query(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()
              ) -> builtins.list[sqlite3.Row]:
        """A read of the tables a module keeps in the journal (:mod:`pos.shifts`,
        :mod:`pos.sales`, :mod:`pos.catalogue`, :mod:`pos.journal.archive`); ``params``
        positional, or a mapping for named ``:parameters``."""
        if isinstance(params, Mapping):
            with self._lock:
                try:
                    return self._conn.execute(sql, dict(params)).fetchall()
                except sqlite3.DatabaseError as exc:
                    if health.is_corruption(exc):
                        raise self._corrupted(exc) from exc
                    raise
        return self._query(sql, params)

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads from one consistent snapshot (a deferred read transaction)."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            except sqlite3.DatabaseError as exc:
                if health.is_corruption(exc):
                    raise self._corrupted(exc) from exc
                raise
            finally:
                self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.DatabaseError as exc:
                if health.is_corruption(exc):
                    raise self._corrupted(exc) from exc
                raise

    # ---------------------------------------------------------- transactions
    def create(
        self,
        kind: Kind | str,
        amount: Money,
        *,
        ref: str | None = None,
        tender: Tender | str = Tender.none,
        operator: str,
        terminal_id: str,
        card_id: int | None = None,
        card_no: str | None = None,
        wallet: str | None = None,
        meter: str | None = None,
        account: str | None = None,
        customer_name: str | None = None,
        reason: str | None = None,
        parent_ref: str | None = None,
        offline: bool = False,
        state: State | str = State.created,
        details: dict[str, Any] | None = None,
        once_per_parent: bool = False,
        guard: Callable[[JournalReader], None] | None = None,
        new_ref: Callable[[], str] | None = None,
    ) -> Txn:
        """Journal a new transaction durably and return it (with its ref).

        ``once_per_parent``: if ``parent_ref`` already has a child of this ``kind``,
        return that child instead (checked inside the same write transaction, so two
        processes cannot both create, e.g., the refund owed for one failed sale).

        ``guard`` runs inside the same ``BEGIN IMMEDIATE`` transaction, before the
        insert, with a reader of that transaction: a limit it checks (the offline
        limits) and the row it admits are one atomic step, whatever number of
        processes sell at once. It refuses by raising.

        ``new_ref`` draws a ref when ``ref`` is not given (default: :func:`pos.refs.new_ref`).
        A row made ``created`` is held by this process (its lease) until it leaves
        ``created`` / ``sending``; a row made ``queued`` is accepted (offline).
        """
        kind, tender, state = Kind(kind), Tender(tender), State(state)
        if state not in INITIAL_STATES:
            raise ValueError(f"a transaction starts as created or queued, not {state}")
        if not isinstance(amount, Money):
            raise TypeError("amount must be Money")
        if amount.minor < 0:
            raise InputError("A journaled amount cannot be negative")
        if not operator or not terminal_id:
            raise ValueError("operator and terminal_id are required")
        stamp = self.device.stamp()
        now = iso(self._now())
        due = now if needs_sync(state) else None
        details_json = _dumps(details or {})
        owner = process_start() if state in _LEASED else None
        draw = new_ref or self.draw_ref
        with self._write() as conn:
            if guard is not None:
                guard(JournalReader(conn))
            if parent_ref is not None and not conn.execute(
                "SELECT 1 FROM txns WHERE ref = ?", (parent_ref,)
            ).fetchone():
                raise UnknownTransaction(f"No transaction with ref {parent_ref} (parent)")
            if once_per_parent and parent_ref is not None:
                twin = conn.execute(
                    "SELECT ref FROM txns WHERE parent_ref = ? AND kind = ? ORDER BY rowid"
                    " LIMIT 1", (parent_ref, str(kind)),
                ).fetchone()
                if twin is not None:
                    return self._get(conn, twin["ref"])  # type: ignore[return-value]
            for _ in range(50):
                this_ref = ref if ref is not None else draw()
                values = (
                    this_ref, str(kind), str(state), amount.minor, amount.currency, str(tender),
                    operator, terminal_id, card_id, mask_card_no(card_no), wallet, meter,
                    account, customer_name, reason, parent_ref, int(bool(offline)), 0, due,
                    now, now, details_json, owner, stamp.boot, stamp.mono, int(stamp.synced),
                    int(state is State.queued),
                )
                try:
                    conn.execute(
                        f"INSERT INTO txns ({_TXN_COLUMNS}, z_period) VALUES"
                        f" ({_placeholders(len(values))}, {_OPEN_PERIOD})",
                        values,
                    )
                except sqlite3.IntegrityError:
                    if ref is not None:
                        raise DuplicateRef(f"A transaction with ref {ref} already exists") from None
                    continue  # a drawn ref clashed: draw again
                break
            else:  # pragma: no cover - 50 clashes of a 12-digit random ref
                raise PosError("Could not draw a unique transaction ref")
            self._event(conn, this_ref, now, None, state, "created", None, operator)
            return self._get(conn, this_ref)  # type: ignore[return-value]

    # ------------------------------------------------------------ room to write
    @property
    def reserve_path(self) -> Path:
        return self.path.with_name(self.path.name + ".reserve")

    def ensure_room(self, min_free_bytes: int, reserve_bytes: int) -> None:
        """Refuse to start a sale the journal could not record (JournalUnwritable "full").

        Beside the journal lies a reserve file of ``reserve_bytes``; when the disk
        fills, :meth:`transition` deletes it and retries, so the answer to a request
        already sent always has room. A sale starts only while the reserve is in place
        and ``min_free_bytes`` are free besides.
        """
        import shutil

        free = shutil.disk_usage(self.path.parent).free
        reserve = self.reserve_path
        if reserve_bytes > 0 and not reserve.exists() and free >= reserve_bytes + min_free_bytes:
            tmp = reserve.with_name(reserve.name + ".new")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.posix_fallocate(fd, 0, reserve_bytes)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, reserve)
            except OSError:
                tmp.unlink(missing_ok=True)
            free = shutil.disk_usage(self.path.parent).free
        if free < min_free_bytes or (reserve_bytes > 0 and not reserve.exists()):
            raise JournalUnwritable(
                f"The terminal's storage is nearly full ({free // 1_000_000} MB free): no "
                "new sale can start until space is freed (see sente-pos doctor).",
                reason="full")

    def release_reserve(self) -> bool:
        """Free the reserve file (the disk is full and an answer must be recorded)."""
        try:
            self.reserve_path.unlink()
        except FileNotFoundError:
            return False
        log.warning("journal: disk full, reserve released to record an answer")
        return True

    def transition(self, ref: str, new_state: State | str, *, note: str | None = None,
                   error: str | None = None, operator: str | None = None,
                   guard: Callable[[JournalReader], None] | None = None,
                   seal_pin: str | None = None,
                   also: Callable[[sqlite3.Connection], None] | None = None,
                   **fields: Any) -> Txn:
        """:meth:`_transition`, retried once when the disk is full (after releasing the
        reserve) or the journal stayed locked past the busy timeout: the answer to a
        request already sent is what most needs writing."""
        try:
            return self._transition(ref, new_state, note=note, error=error, operator=operator,
                                    guard=guard, seal_pin=seal_pin, also=also, **fields)
        except JournalUnwritable as exc:
            if exc.reason == "full" and not self.release_reserve():
                raise
            if exc.reason == "io":
                raise
            return self._transition(ref, new_state, note=note, error=error, operator=operator,
                                    guard=guard, seal_pin=seal_pin, also=also, **fields)

    def _transition(self, ref: str, new_state: State | str, *, note: str | None = None,
                    error: str | None = None, operator: str | None = None,
                    guard: Callable[[JournalReader], None] | None = None,
                    seal_pin: str | None = None,
                    also: Callable[[sqlite3.Connection], None] | None = None,
                    **fields: Any) -> Txn:
        """Move ``ref`` to ``new_state`` (checked against the table), update ``fields``,
        and append one event, all in one durable transaction.

        ``error`` is kept in the event and as ``last_error``; ``operator`` is who
        made the change (e.g. the supervisor resolving a flagged item). ``guard``
        runs first inside the same transaction (a limit checked and the change it
        admits are one step); ``seal_pin`` keeps the card PIN, sealed with the device
        key, in the same transaction (write-ahead for the PIN too); ``also`` writes
        a module's own rows in it (the cash move of a flagged item resolved in cash).
        """
        new = State(new_state)
        scrub = False
        stamp = self.device.stamp() if new is State.sending else None
        blob = self._seal(ref, seal_pin) if seal_pin is not None else None
        with self._write() as conn:
            if guard is not None:
                guard(JournalReader(conn))
            row = self._row(conn, ref)
            old = State(row["state"])
            check_transition(ref, old, new)
            nowdt = self._now()
            now = iso(nowdt)
            sets = self._encode(fields, row)
            sets["state"] = str(new)
            sets["updated_at"] = now
            if stamp is not None:
                # Entering sending IS a send (invariant 1: durable before it leaves): the
                # moment and the count feed reconciliation's settle window and its caps.
                sets.setdefault("sent_json", _dumps(stamp.to_json()))
                sets.setdefault("sends", int(row["sends"] or 0) + 1)
                sets.setdefault("lease_owner", process_start())
            elif new not in _LEASED and "lease_owner" not in sets:
                sets["lease_owner"] = None
            if old is State.sending and new is State.queued and "sends" not in sets:
                # Back to the queue only when the connection provably failed: that send
                # never left, so it does not count against the sends cap.
                sets["sends"] = max(0, int(row["sends"] or 0) - 1)
            if error is not None and "last_error" not in fields:
                sets["last_error"] = error
            if (is_final(new) or is_flagged(new)) and row["settled_at"] is None:
                sets["settled_at"] = now
            if "next_attempt_at" not in fields:
                if new is State.sending:
                    sets["next_attempt_at"] = iso(nowdt + timedelta(seconds=self.sending_lease))
                elif not needs_sync(new):
                    refund_check = (new in _REFUND_CHECK_STATES and row["tender"] == "card"
                                    and row["kind"] in ("vend", "postpaid")
                                    and row["parent_ref"] is not None)
                    sets["next_attempt_at"] = now if refund_check else None
                elif row["next_attempt_at"] is None or old is State.sending:
                    sets["next_attempt_at"] = now
            self._set(conn, ref, sets)
            self._event(conn, ref, now, old, new, note, error, operator)
            if also is not None:
                also(conn)
            if blob is not None and holds_pin(new):
                conn.execute(
                    "INSERT INTO pins(ref, blob, created_at) VALUES (?, ?, ?)"
                    " ON CONFLICT(ref) DO UPDATE SET blob = excluded.blob", (ref, blob, now))
            if not holds_pin(new):
                conn.execute("DELETE FROM pins WHERE ref = ?", (ref,))
                scrub = conn.execute("SELECT changes()").fetchone()[0] > 0
            txn = self._get(conn, ref)
        if scrub:
            self._scrub()
        assert txn is not None
        return txn

    def update(self, ref: str, *, note: str | None = None, error: str | None = None,
               operator: str | None = None, **fields: Any) -> Txn:
        """Change non-state fields; appends an event only when ``note`` or ``error`` is given."""
        if "state" in fields:
            raise ValueError("use transition() to change the state")
        with self._write() as conn:
            row = self._row(conn, ref)
            now = iso(self._now())
            sets = self._encode(fields, row)
            if error is not None and "last_error" not in fields:
                sets["last_error"] = error
            sets["updated_at"] = now
            self._set(conn, ref, sets)
            if note is not None or error is not None:
                state = State(row["state"])
                self._event(conn, ref, now, state, state, note, error, operator)
            txn = self._get(conn, ref)
        assert txn is not None
        return txn

    def newest_created_at(self) -> datetime | None:
        """When the newest row was made (an index lookup)."""
        rows = self._query("SELECT MAX(created_at) AS at FROM txns")
        return from_iso(rows[0]["at"]) if rows and rows[0]["at"] else None

    def draw_ref(self) -> str:
        return _default_ref(self.terminal_number)

    def get(self, ref: str) -> Txn | None:
        with self._lock:
            return self._get(self._conn, ref)

    def require(self, ref: str) -> Txn:
        txn = self.get(ref)
        if txn is None:
            raise UnknownTransaction(f"No transaction with ref {ref}")
        return txn

    def list(
        self,
        *,
        states: Iterable[State | str] | None = None,
        kinds: Iterable[Kind | str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        search: str | None = None,
        limit: int = 200,
        offset: int = 0,
        newest_first: bool = True,
    ) -> builtins.list[Txn]:
        """Transactions filtered by state, kind, creation time (``since`` <= t < ``until``)
        and a free-text ``search`` over ref, card, meter, account, name, reason, token."""
        where: list[str] = []
        params: list[Any] = []
        if states is not None:
            sv = [str(State(s)) for s in states]
            where.append(f"txns.state IN ({_placeholders(len(sv))})" if sv else "0")
            params += sv
        if kinds is not None:
            kv = [str(Kind(k)) for k in kinds]
            where.append(f"txns.kind IN ({_placeholders(len(kv))})" if kv else "0")
            params += kv
        if since is not None:
            where.append("txns.created_at >= ?")
            params.append(iso(since))
        if until is not None:
            where.append("txns.created_at < ?")
            params.append(iso(until))
        order = "DESC" if newest_first else "ASC"
        term = (search or "").strip()
        if term and len(term) >= search_index.MIN_TERM and self._search_ready():
            # Walk the index newest row first and stop at ``limit``: a common term
            # ("Cus", a meter's prefix) no longer gathers every match to sort them (a
            # keystroke of the live search, see the README). The page is then in
            # insertion order, shown sorted by creation time like every list.
            fts = search_index.TABLE_FTS
            rows = self._query(
                f"SELECT txns.*, txns.rowid AS _rowid FROM {fts} JOIN txns"
                f" ON txns.rowid = {fts}.rowid WHERE {fts} MATCH ?"
                + "".join(f" AND {w}" for w in where)
                + f" ORDER BY {fts}.rowid {order} LIMIT ? OFFSET ?",
                [search_index.match_expression(term), *params, int(limit), int(offset)])
            rows.sort(key=lambda r: (r["created_at"], r["_rowid"]), reverse=newest_first)
            return [_to_txn(r) for r in rows]
        if term:
            pattern = "%" + _like_escape(term) + "%"
            cols = ("ref", "card_no", "meter", "account", "customer_name", "reason", "token",
                    "provider_txn_id", "receipt_no", "CAST(receipt_number AS TEXT)")
            where.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in cols) + ")")
            params += [pattern] * len(cols)
        sql = (
            "SELECT * FROM txns"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY created_at {order}, rowid {order} LIMIT ? OFFSET ?"
        )
        params += [int(limit), int(offset)]
        return [_to_txn(r) for r in self._query(sql, params)]

    def _search_ready(self) -> bool:
        """The full-text index exists (built now, once, if it does not)."""
        if self._has_search_index:
            return True
        with self._lock:
            ready = search_index.has_index(self._conn)
        if not ready:
            self.ensure_search_index()
            ready = True
        self._has_search_index = ready
        return ready

    def ensure_search_index(self) -> bool:
        """Build the full-text index if missing (pos/journal/search.py); True if built."""
        self.verified()
        try:
            built = search_index.ensure_index(self.path)
        except sqlite3.OperationalError as exc:
            raise _unwritable(exc) from exc
        self._has_search_index = True
        return built

    def events(self, ref: str) -> builtins.list[Event]:
        rows = self._query("SELECT * FROM events WHERE ref = ? ORDER BY id", (ref,))
        return [
            Event(
                id=r["id"], ref=r["ref"], at=from_iso(r["at"]),  # type: ignore[arg-type]
                from_state=State(r["from_state"]) if r["from_state"] else None,
                to_state=State(r["to_state"]), note=r["note"], error=r["error"],
                operator=r["operator"],
            )
            for r in rows
        ]

    def hurry_queued(self, now: datetime) -> int:
        """Make every queued row due now (a person asked for a sync: the link may be
        back before a back-off ran out). Only ``queued`` rows: they were never sent, or
        their connection provably failed, so sending them again is safe at any time;
        rows whose answer is unknown keep their settle window. Returns how many."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE txns SET next_attempt_at = ? WHERE state = 'queued'"
                " AND next_attempt_at > ? AND lease_owner IS NULL", (iso(now), iso(now)))
            return int(cur.rowcount or 0)

    def due_for_sync(self, now: datetime, limit: int = 100) -> builtins.list[Txn]:
        """Rows with outstanding work whose next attempt is due, oldest first.

        A row held by a process (``sending``, a card-paid vend waiting on its debit)
        is due when its lease runs out, or at once when its holder is gone (killed,
        or the device rebooted): tokens bought before a crash are fetched by the
        next sync, not minutes later. A next attempt further ahead than
        :attr:`horizon_seconds` (longer than anything the terminal schedules) comes
        from a clock stepped back, and is due now.
        """
        sv = [str(s) for s in SYNC_STATES]
        horizon = now + timedelta(seconds=self.horizon_seconds)
        rows = self._query(
            f"SELECT * FROM txns WHERE state IN ({_placeholders(len(sv))})"
            " AND (next_attempt_at IS NULL OR next_attempt_at <= ? OR next_attempt_at > ?"
            " OR lease_owner IS NOT NULL)"
            " ORDER BY created_at, rowid LIMIT ?",
            [*sv, iso(now), iso(horizon), int(limit)],
        )
        out: builtins.list[Txn] = []
        for r in rows:
            txn = _to_txn(r)
            waiting = txn.next_attempt_at is not None and now < txn.next_attempt_at <= horizon
            if waiting and (not txn.lease_owner or owner_alive(txn.lease_owner)):
                continue  # its holder is still at it, or it is not due yet
            out.append(txn)
        return out

    def abandoned_created(self, older_than: datetime) -> builtins.list[Txn]:
        """Rows journaled but never marked sending whose maker is gone (or which are
        older than ``older_than``: a maker that hung)."""
        rows = self._query("SELECT * FROM txns WHERE state = 'created' ORDER BY rowid")
        out: builtins.list[Txn] = []
        for r in rows:
            txn = _to_txn(r)
            if not owner_alive(txn.lease_owner) or txn.created_at < older_than:
                out.append(txn)
        return out

    def flagged(self, limit: int | None = None) -> builtins.list[Txn]:
        """Items the merchant must see until a supervisor resolves them, oldest first
        (the first ``limit``)."""
        rows = self._query(
            f"SELECT * FROM {_FLAGGED_FROM} ORDER BY created_at, rowid"
            + (" LIMIT ?" if limit is not None else ""),
            [int(limit)] if limit is not None else [],
        )
        return [_to_txn(r) for r in rows]

    def ref_lines(self, states: Iterable[State], limit: int | None = None
                  ) -> builtins.list[RefLine]:
        """Ref, kind, state and amount of every row in ``states`` (the first ``limit``),
        oldest first, through the state index and without decoding rows (see
        :class:`RefLine`)."""
        where, sv = _states_where(states)
        rows = self._query(
            f"SELECT ref, kind, state, amount_minor, currency FROM {where}"
            " ORDER BY created_at, rowid" + (" LIMIT ?" if limit is not None else ""),
            [*sv, *([int(limit)] if limit is not None else [])])
        return [RefLine(r["ref"], r["kind"], r["state"], Money(r["amount_minor"], r["currency"]))
                for r in rows]

    def refs_in(self, states: Iterable[State]) -> builtins.list[str]:
        """The refs of every row in ``states``, oldest first (strings only: a report of a
        long-lived journal names thousands of flagged rows)."""
        where, sv = _states_where(states)
        return [r[0] for r in self._query(
            f"SELECT ref FROM {where} ORDER BY created_at, rowid", sv)]

    def flagged_count(self) -> int:
        """How many items are flagged (an index count: the status bar asks every second)."""
        rows = self._query(f"SELECT COUNT(*) AS n FROM {_FLAGGED_FROM}")
        return int(rows[0]["n"])

    # ------------------------------------------------------------ kept totals
    def open_period(self) -> int:
        """The Z period rows made now belong to (the next Z report's number)."""
        return int(self._query(f"SELECT {_OPEN_PERIOD} AS p")[0]["p"])

    def totals(self, period: int) -> builtins.list[dict[str, Any]]:
        """The kept totals of one Z period: one dict per (state, kind, tender, currency,
        operator) with ``count`` and ``amount_minor`` (rows with a zero count left out)."""
        rows = self._query(
            "SELECT state, kind, tender, currency, operator, count, amount_minor FROM totals"
            " WHERE z_period = ? AND count != 0 ORDER BY state, kind, tender, currency, operator",
            (int(period),))
        return [dict(r) for r in rows]

    def recomputed_totals(self, period: int) -> builtins.list[dict[str, Any]]:
        """The same figures as :meth:`totals`, recomputed from the rows (tests, doctor)."""
        rows = self._query(
            "SELECT state, kind, tender, currency, operator, COUNT(*) AS count,"
            " SUM(amount_minor) AS amount_minor FROM txns WHERE z_period = ?"
            " GROUP BY state, kind, tender, currency, operator"
            " ORDER BY state, kind, tender, currency, operator", (int(period),))
        return [dict(r) for r in rows]

    def z_close(self, number: int, build: Callable[[], dict[str, Any]]) -> ZReport:
        """Store Z report ``number`` with the payload ``build()`` computes, in ONE write
        transaction: no sale can slip into the period between its figures and its close."""
        now = iso(self._now())
        with self._write() as conn:
            if int(conn.execute(f"SELECT {_OPEN_PERIOD}").fetchone()[0]) != int(number):
                raise PosError(f"Z report {number} already exists and cannot be changed")
            payload = build()
            conn.execute(
                "INSERT INTO z_reports(number, payload_json, created_at) VALUES (?,?,?)",
                (int(number), _dumps(payload), now),
            )
        return ZReport(int(number), json.loads(_dumps(payload), parse_float=Decimal),
                       from_iso(now))  # type: ignore[arg-type]

    def last_z(self) -> ZReport | None:
        """The newest Z report (a primary-key lookup)."""
        rows = self._query("SELECT * FROM z_reports ORDER BY number DESC LIMIT 1")
        if not rows:
            return None
        r = rows[0]
        return ZReport(r["number"], json.loads(r["payload_json"], parse_float=Decimal),
                       from_iso(r["created_at"]))  # type: ignore[arg-type]

    # ------------------------------------------------------------ refund checks
    def refund_checks_due(self, now: datetime, limit: int = 100) -> builtins.list[Txn]:
        """Failed / declined card-paid vends and bills whose refund is due to be checked
        (index ``txns_state_due``: proportional to what is due)."""
        rows = self._query(
            f"SELECT * FROM txns WHERE {_REFUND_CHECK_WHERE} AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at LIMIT ?", (iso(now), int(limit)))
        return [_to_txn(r) for r in rows]

    def refund_checked(self, ref: str, next_check: datetime | None) -> None:
        """Done with a refund check (``None``) or check again at ``next_check``; touches
        nothing else of the row (not ``updated_at``: no change to upload)."""
        with self._write() as conn:
            conn.execute("UPDATE txns SET next_attempt_at = ? WHERE ref = ?",
                         (None if next_check is None else iso(next_check), ref))

    def children(self, parent_ref: str) -> builtins.list[Txn]:
        rows = self._query(
            "SELECT * FROM txns WHERE parent_ref = ? ORDER BY created_at, rowid", (parent_ref,)
        )
        return [_to_txn(r) for r in rows]

    # --------------------------------------------------------------- exposure
    def offline_exposure(self, card_id: int | None = None) -> Exposure:
        """Outstanding offline card debits (offline and still in a sync state).

        With ``card_id``: the same for that card, plus ``consecutive``: its offline
        debits (any state but cancelled / declined) created since the card was
        last seen online (all of them if it never was).
        """
        with self._snapshot() as conn:
            return JournalReader(conn).offline_exposure(card_id)

    def queued_vend_exposure(self) -> Exposure:
        """Outstanding cash electricity sales (vends and bills) accepted while offline:
        the cash is taken, the token or bill payment still owed."""
        with self._lock:
            return JournalReader(self._conn).queued_vend_exposure()

    def unsynced(self) -> Exposure:
        """Everything with outstanding provider work (queued, sending, unknown, pending),
        counted and summed in SQL: the status bar asks every second."""
        sv = [str(s) for s in SYNC_STATES]
        with self._lock:
            count, totals = _sum_rows(self._conn.execute(
                "SELECT currency, COUNT(*) AS n, SUM(amount_minor) AS total FROM txns"
                f" WHERE state IN ({_placeholders(len(sv))}) GROUP BY currency", sv,
            ))
        return Exposure(count=count, totals=totals)

    # ------------------------------------------------------------- receipts
    def next_receipt_no(self) -> int:
        """Our next receipt number: monotonically increasing, persisted, never reused."""
        with self._write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'receipt_no'").fetchone()
            number = (int(row["value"]) if row else 0) + 1
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('receipt_no', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(number),),
            )
        return number

    # ------------------------------------------------------------ card cache
    def card_cache_put(self, card_id: int, card_no: str | None, status: str, has_pin: bool,
                       wallets: Iterable[str], balance: Money | None,
                       seen_online_at: datetime) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO card_cache(card_id, card_no, status, has_pin, wallets_json,"
                " balance_minor, balance_currency, seen_online_at) VALUES (?,?,?,?,?,?,?,?)"
                " ON CONFLICT(card_id) DO UPDATE SET card_no = excluded.card_no,"
                " status = excluded.status, has_pin = excluded.has_pin,"
                " wallets_json = excluded.wallets_json, balance_minor = excluded.balance_minor,"
                " balance_currency = excluded.balance_currency,"
                " seen_online_at = excluded.seen_online_at",
                (card_id, mask_card_no(card_no), status, int(bool(has_pin)),
                 _dumps(list(wallets)), balance.minor if balance else None,
                 balance.currency if balance else None, iso(seen_online_at)),
            )

    def card_cache_get(self, card_id: int) -> CachedCard | None:
        rows = self._query("SELECT * FROM card_cache WHERE card_id = ?", (card_id,))
        if not rows:
            return None
        r = rows[0]
        balance = (
            Money(r["balance_minor"], r["balance_currency"])
            if r["balance_minor"] is not None else None
        )
        return CachedCard(
            card_id=r["card_id"], card_no=r["card_no"], status=r["status"],
            has_pin=bool(r["has_pin"]), wallets=tuple(json.loads(r["wallets_json"])),
            balance=balance, seen_online_at=from_iso(r["seen_online_at"]),  # type: ignore[arg-type]
        )

    # ------------------------------------------------------------- PIN vault
    def store_pin(self, ref: str, pin: str) -> None:
        """Keep the PIN of a queued offline debit, sealed with the device key (AAD = ref)."""
        blob = self._seal(ref, pin)
        with self._write() as conn:
            self._row(conn, ref)
            conn.execute(
                "INSERT INTO pins(ref, blob, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT(ref) DO UPDATE SET blob = excluded.blob",
                (ref, blob, iso(self._now())),
            )

    def _seal(self, ref: str, pin: str) -> bytes:
        if self.vault is None:
            raise VaultError("No device key: a PIN cannot be kept for an offline debit")
        if not (isinstance(pin, str) and is_digits(pin) and 4 <= len(pin) <= 12):
            raise InputError("A PIN is 4 to 12 digits")
        return self.vault.encrypt(pin.encode(), ref.encode())

    def load_pin(self, ref: str) -> str | None:
        rows = self._query("SELECT blob FROM pins WHERE ref = ?", (ref,))
        if not rows:
            return None
        if self.vault is None:
            raise VaultError("No device key: the kept PIN cannot be opened")
        return self.vault.decrypt(bytes(rows[0]["blob"]), ref.encode()).decode()

    def erase_pin(self, ref: str) -> None:
        """Delete the sealed PIN so it cannot be recovered from journal.db or its WAL.

        ``secure_delete`` zeroes the freed bytes in the page; the checkpoint then
        writes that page home and truncates the WAL, which held the old copies.
        (Transitions out of the sync states erase the PIN by themselves.)
        """
        with self._write() as conn:
            conn.execute("DELETE FROM pins WHERE ref = ?", (ref,))
            erased = conn.execute("SELECT changes()").fetchone()[0] > 0
        if erased or self._scrub_pending:
            self._scrub()

    def backup(self, dest: Path) -> None:
        """An online copy of the whole journal into ``dest`` (SQLite's backup API: one
        consistent snapshot). It reads through a connection of its own, so sales in this
        process (and others) keep writing meanwhile (WAL: a reader blocks no writer).
        See pos/backup.py."""
        self.verified()
        source = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            target = sqlite3.connect(dest)
            try:
                source.backup(target)
            finally:
                target.close()
        except sqlite3.DatabaseError as exc:
            if health.is_corruption(exc):
                raise self._corrupted(exc) from exc
            raise
        finally:
            source.close()

    def checkpoint(self) -> tuple[int, int, int]:
        """``PRAGMA wal_checkpoint(TRUNCATE)``: (busy, wal pages, checkpointed pages)."""
        with self._lock:
            row = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def pages(self) -> dict[str, int]:
        """Page size, pages, free pages and the auto_vacuum mode (0 none, 2 incremental)."""
        with self._lock:
            return {name: int(self._conn.execute(f"PRAGMA {name}").fetchone()[0])
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
            if not self._checked.is_set() or self._damage is not None:
                self.verified()
            with self._lock:
                try:
                    self._conn.executescript(
                        f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({int(n)}); COMMIT;")
                except sqlite3.OperationalError as exc:
                    self._rollback()
                    raise _unwritable(exc) from exc
            released += info["freelist_count"] - self.pages()["freelist_count"]

    def compact(self) -> None:
        """ONE full ``VACUUM`` that also turns on ``auto_vacuum = INCREMENTAL`` (a journal
        made before it): rewrites the whole file through the WAL, so it needs free space
        of about twice the journal and holds the journal for its duration. Never on the
        counter's path: ``sente-pos journal archive --compact`` only."""
        self.verified()
        with self._lock:
            try:
                self._conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                self._conn.execute("VACUUM")
            except sqlite3.OperationalError as exc:
                raise _unwritable(exc) from exc
        self.checkpoint()

    def _scrub(self) -> None:
        busy, _, _ = self.checkpoint()
        # If another process held a read snapshot, the WAL could not be truncated yet;
        # try again at the next erase or at close().
        self._scrub_pending = bool(busy)
        if busy:
            log.warning("journal checkpoint after a PIN erase was blocked by a reader")

    # -------------------------------------------------------------- operators
    def operator_put(self, name: str, role: str, pin_hash: str, *,
                     also: Callable[[sqlite3.Connection], None] | None = None) -> None:
        if role not in ("cashier", "supervisor"):
            raise ValueError("role is cashier or supervisor")
        if pin_hash.isdigit() and len(pin_hash) <= 12:
            raise ValueError("operator_put takes a PIN hash, never a PIN")
        now = iso(self._now())
        with self._write() as conn:
            conn.execute(
                "INSERT INTO operators(name, role, pin_hash, created_at, updated_at)"
                " VALUES (?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET role = excluded.role,"
                " pin_hash = excluded.pin_hash, updated_at = excluded.updated_at",
                (name, role, pin_hash, now, now),
            )
            if also is not None:
                also(conn)

    def operator_update(self, name: str, *, role: str | None = None,
                        pin_hash: str | None = None, disabled: bool | None = None,
                        also: Callable[[sqlite3.Connection], None] | None = None) -> None:
        """Change an existing operator's role, PIN hash or disabled state; ``also`` writes
        the rows that go with it (the security trail) in the same transaction."""
        if role is not None and role not in ("cashier", "supervisor"):
            raise ValueError("role is cashier or supervisor")
        if pin_hash is not None and pin_hash.isdigit() and len(pin_hash) <= 12:
            raise ValueError("operator_update takes a PIN hash, never a PIN")
        now = iso(self._now())
        sets, params = ["updated_at = ?"], [now]
        if role is not None:
            sets.append("role = ?")
            params.append(role)
        if pin_hash is not None:
            sets.append("pin_hash = ?")
            params.append(pin_hash)
        if disabled is not None:
            sets.append("disabled_at = ?")
            params.append(now if disabled else None)  # type: ignore[arg-type]
        with self._write() as conn:
            cur = conn.execute(f"UPDATE operators SET {', '.join(sets)} WHERE name = ?",
                               (*params, name))
            if cur.rowcount != 1:
                raise InputError(f"No operator called {name!r}")
            if also is not None:
                also(conn)

    def operator_get(self, name: str) -> Operator | None:
        rows = self._query("SELECT * FROM operators WHERE name = ?", (name,))
        return _to_operator(rows[0]) if rows else None

    def operators(self) -> builtins.list[Operator]:
        return [_to_operator(r) for r in self._query("SELECT * FROM operators ORDER BY name")]

    # ------------------------------------------------------------- Z reports
    def z_report_put(self, number: int, payload: dict[str, Any]) -> ZReport:
        """Store Z report ``number``; it can never be changed or deleted afterwards."""
        now = iso(self._now())
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO z_reports(number, payload_json, created_at) VALUES (?,?,?)",
                    (int(number), _dumps(payload), now),
                )
        except sqlite3.IntegrityError:
            raise PosError(f"Z report {number} already exists and cannot be changed") from None
        return ZReport(int(number), json.loads(_dumps(payload), parse_float=Decimal), from_iso(now))  # type: ignore[arg-type]

    def z_reports(self) -> builtins.list[ZReport]:
        return [
            ZReport(r["number"], json.loads(r["payload_json"], parse_float=Decimal),
                    from_iso(r["created_at"]))  # type: ignore[arg-type]
            for r in self._query("SELECT * FROM z_reports ORDER BY number")
        ]

    def meta_get(self, key: str, default: str | None = None) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def meta_set(self, key: str, value: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, str(value)),
            )

    def meta_delete(self, key: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM meta WHERE key = ?", (key,))

    # ---------------------------------------------------------------- helpers
    def _row(self, conn: sqlite3.Connection, ref: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute("SELECT * FROM txns WHERE ref = ?",
                                               (ref,)).fetchone()
        if row is None:
            raise UnknownTransaction(f"No transaction with ref {ref}")
        return row

    def _get(self, conn: sqlite3.Connection, ref: str) -> Txn | None:
        row = conn.execute("SELECT * FROM txns WHERE ref = ?", (ref,)).fetchone()
        return _to_txn(row) if row else None

    @staticmethod
    def _event(conn: sqlite3.Connection, ref: str, at: str, old: State | None, new: State,
               note: str | None, error: str | None, operator: str | None) -> None:
        conn.execute(
            "INSERT INTO events(ref, at, from_state, to_state, note, error, operator)"
            " VALUES (?,?,?,?,?,?,?)",
            (ref, at, str(old) if old else None, str(new), note, error, operator),
        )

    @staticmethod
    def _set(conn: sqlite3.Connection, ref: str, sets: dict[str, Any]) -> None:
        cols = ", ".join(f"{c} = ?" for c in sets)
        conn.execute(f"UPDATE txns SET {cols} WHERE ref = ?", [*sets.values(), ref])

    @staticmethod
    def _encode(fields: dict[str, Any], row: sqlite3.Row) -> dict[str, Any]:
        """Validate and encode updatable fields into column values."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise TypeError(f"not updatable journal fields: {', '.join(sorted(unknown))}")
        out: dict[str, Any] = {}
        for name, value in fields.items():
            if name in _STR_FIELDS:
                out[name] = None if value is None else str(value)
            elif name in _INT_FIELDS:
                if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                    raise TypeError(f"{name} must be an int")
                out[name] = value
            elif name == "next_attempt_at":
                out[name] = None if value is None else iso(value)
            elif name == "offline":
                out[name] = int(bool(value))
            elif name in ("charges", "charges_json"):
                out["charges_json"] = None if value is None else _dumps(
                    [_charge(c) for c in value]
                )
            elif name in ("total", "total_json"):
                if value is not None and not isinstance(value, Money):
                    raise TypeError("total must be Money")
                out["total_json"] = None if value is None else _dumps(
                    {"minor": value.minor, "currency": value.currency}
                )
            elif name == "details":  # shallow merge into what is there
                merged = json.loads(row["details_json"] or "{}")
                merged.update(value or {})
                out["details_json"] = _dumps(merged)
            elif name == "sent":
                if value is not None and not isinstance(value, Stamp):
                    raise TypeError("sent must be a Stamp")
                out["sent_json"] = None if value is None else _dumps(value.to_json())
            elif name == "recon":  # replaced whole: reconciliation owns it
                out["recon_json"] = None if value is None else _dumps(value)
            elif name == "accepted":
                out["accepted"] = int(bool(value))
        return out


class JournalReader:
    """Reads over one connection, usable inside a write transaction (see the ``guard``
    of :meth:`Journal.create`): what it reads is what the insert that follows sees."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def offline_exposure(self, card_id: int | None = None) -> Exposure:
        sv = [str(s) for s in SYNC_STATES]
        base = (
            "SELECT currency, COUNT(*) AS n, SUM(amount_minor) AS total FROM txns"
            f" WHERE kind = 'card_debit' AND offline = 1 AND state IN ({_placeholders(len(sv))})"
        )
        conn = self._conn
        count, totals = _sum_rows(conn.execute(base + " GROUP BY currency", sv))
        if card_id is None:
            return Exposure(count=count, totals=totals)
        card_count, card_totals = _sum_rows(
            conn.execute(base + " AND card_id = ? GROUP BY currency", [*sv, card_id])
        )
        cached = conn.execute(
            "SELECT seen_online_at FROM card_cache WHERE card_id = ?", (card_id,)
        ).fetchone()
        since = cached["seen_online_at"] if cached else ""
        consecutive = conn.execute(
            "SELECT COUNT(*) FROM txns WHERE kind = 'card_debit' AND offline = 1"
            " AND card_id = ? AND state NOT IN ('cancelled', 'declined') AND created_at > ?",
            (card_id, since),
        ).fetchone()[0]
        return Exposure(count=count, totals=totals, card_id=card_id, card_count=card_count,
                        card_totals=card_totals, consecutive=int(consecutive))

    def queued_vend_exposure(self) -> Exposure:
        sv = [str(s) for s in SYNC_STATES]
        count, totals = _sum_rows(self._conn.execute(
            "SELECT currency, COUNT(*) AS n, SUM(amount_minor) AS total FROM txns"
            " WHERE kind IN ('vend', 'postpaid') AND tender = 'cash' AND offline = 1"
            f" AND state IN ({_placeholders(len(sv))}) GROUP BY currency", sv,
        ))
        return Exposure(count=count, totals=totals)


# ---------------------------------------------------------------- row codecs
def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _charge(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {"name": str(value["name"]), "amount": str(value["amount"])}
    return {"name": str(value.name), "amount": str(value.amount)}


def _sum_rows(cursor: sqlite3.Cursor) -> tuple[int, dict[str, int]]:
    count = 0
    totals: dict[str, int] = {}
    for r in cursor:
        count += int(r["n"])
        totals[r["currency"]] = int(r["total"] or 0)
    return count, totals


def _to_txn(r: sqlite3.Row) -> Txn:
    total = json.loads(r["total_json"]) if r["total_json"] else None
    return Txn(
        ref=r["ref"],
        kind=Kind(r["kind"]),
        state=State(r["state"]),
        amount=Money(r["amount_minor"], r["currency"]),
        tender=Tender(r["tender"]),
        operator=r["operator"],
        terminal_id=r["terminal_id"],
        card_id=r["card_id"],
        card_no=r["card_no"],
        wallet=r["wallet"],
        meter=r["meter"],
        account=r["account"],
        customer_name=r["customer_name"],
        reason=r["reason"],
        parent_ref=r["parent_ref"],
        offline=bool(r["offline"]),
        provider_txn_id=r["provider_txn_id"],
        token=r["token"],
        receipt_no=r["receipt_no"],
        receipt_number=r["receipt_number"],
        units=r["units"],
        charges=json.loads(r["charges_json"]) if r["charges_json"] else [],
        total=Money(total["minor"], total["currency"]) if total else None,
        attempts=r["attempts"],
        next_attempt_at=from_iso(r["next_attempt_at"]),
        last_error=r["last_error"],
        created_at=from_iso(r["created_at"]),  # type: ignore[arg-type]
        updated_at=from_iso(r["updated_at"]),  # type: ignore[arg-type]
        settled_at=from_iso(r["settled_at"]),
        details=json.loads(r["details_json"] or "{}", parse_float=Decimal),
        lease_owner=r["lease_owner"],
        created_stamp=(Stamp(from_iso(r["created_at"]), float(r["created_mono"]),  # type: ignore[arg-type]
                             r["created_boot"], bool(r["clock_synced"]))
                       if r["created_boot"] is not None and r["created_mono"] is not None
                       else None),
        clock_synced=None if r["clock_synced"] is None else bool(r["clock_synced"]),
        sent=Stamp.from_json(json.loads(r["sent_json"])) if r["sent_json"] else None,
        sends=int(r["sends"] or 0),
        recon=json.loads(r["recon_json"], parse_float=Decimal) if r["recon_json"] else {},
        accepted=bool(r["accepted"]),
    )


def _to_operator(r: sqlite3.Row) -> Operator:
    return Operator(
        name=r["name"], role=r["role"], pin_hash=r["pin_hash"],
        created_at=from_iso(r["created_at"]),  # type: ignore[arg-type]
        updated_at=from_iso(r["updated_at"]),  # type: ignore[arg-type]
        disabled_at=from_iso(r["disabled_at"]) if r["disabled_at"] else None,
    )
