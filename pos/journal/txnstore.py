"""The ``txns`` table and its ``events`` trail: every money movement, journaled before it
is sent, moved through the one transition table (pos/journal/states.py), found again for
the sync worker, the reports and the screens.

Leases: entering ``sending`` sets ``next_attempt_at`` to now + :attr:`TxnStore.
sending_lease` unless the caller gives one, so the sync worker of another process does
not pick up (and re-send) a request the TUI is still waiting for; after a crash the row
becomes due when the lease runs out.
"""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from pos.clock import owner_alive, process_start
from pos.errors import InputError, PosError
from pos.journal import search as search_index
from pos.journal.codec import (
    DuplicateRef,
    UnknownTransaction,
    encode_updates,
    like_escape,
    mask_card_no,
    require_row,
    to_event,
    to_txn,
)
from pos.journal.columns import CREATE_NAMES
from pos.journal.db import Database, JournalUnwritable, dumps, placeholders, unwritable
from pos.journal.models import Event, Exposure, RefLine, Txn, from_iso, iso
from pos.journal.pins import PinStore
from pos.journal.room import Reserve
from pos.journal.schema import FLAGGED_SQL
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
from pos.journal.zreports import OPEN_PERIOD
from pos.money import Money
from pos.refs import new_ref as _default_ref

_CREATE_COLUMNS = ", ".join(CREATE_NAMES)
#: A failed or declined card-paid electricity sale: its refund is checked when due
#: (next_attempt_at, index txns_state_due) instead of on every sync pass.
_REFUND_CHECK_STATES = frozenset({State.failed, State.declined, State.declined_offline})
_REFUND_CHECK_WHERE = (
    "next_attempt_at IS NOT NULL AND tender = 'card' AND kind IN ('vend', 'postpaid')"
    " AND state IN ('failed', 'declined', 'declined_offline')"
)
#: States in which a row is held by the process that made it (its lease).
_LEASED = frozenset({State.created, State.sending})

#: The flagged rows, in creation order, from their partial index (schema V_HOUSEKEEPING).
_FLAGGED_FROM = f"txns INDEXED BY txns_flagged WHERE {FLAGGED_SQL}"


def _states_where(states: Iterable[State]) -> tuple[str, list[str]]:
    """``txns WHERE state IN (...)``; the flagged states through their partial index
    ``txns_flagged`` (its own literal term, so SQLite may use it) in creation order."""
    sv = sorted({str(State(s)) for s in states})
    if set(sv) == {str(s) for s in FLAGGED_STATES}:
        return _FLAGGED_FROM, []
    return f"txns WHERE state IN ({placeholders(len(sv))})", sv




class TxnStore:
    """Transactions and their events, over the journal's one connection."""

    #: Seconds a row in ``sending`` is left alone by :meth:`due_for_sync` while the
    #: process holding it lives (a dead holder's rows are due at once).
    sending_lease: float = 120.0
    #: A scheduled time further ahead than this is a clock stepped back: due now.
    horizon_seconds: float = 7200.0
    #: The terminal's number, carried by every ref it draws (see pos.refs).
    terminal_number: int = 0

    def __init__(self, db: Database, pins: PinStore, reserve: Reserve) -> None:
        self._db = db
        self._pins = pins
        self._reserve = reserve
        self._has_search_index = False

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
        stamp = self._db.device.stamp()
        now = iso(self._db.now())
        due = now if needs_sync(state) else None
        details_json = dumps(details or {})
        owner = process_start() if state in _LEASED else None
        draw = new_ref or self.draw_ref
        with self._db.write() as conn:
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
                        f"INSERT INTO txns ({_CREATE_COLUMNS}, z_period) VALUES"
                        f" ({placeholders(len(values))}, {OPEN_PERIOD})",
                        values,
                    )
                except sqlite3.IntegrityError as exc:
                    if "UNIQUE" not in str(exc):  # a schema rule (V_CONSTRAINTS) refused it
                        raise
                    if ref is not None:
                        raise DuplicateRef(f"A transaction with ref {ref} already exists") from None
                    continue  # a drawn ref clashed: draw again
                break
            else:  # pragma: no cover - 50 clashes of a 12-digit random ref
                raise PosError("Could not draw a unique transaction ref")
            self._event(conn, this_ref, now, None, state, "created", None, operator)
            return self._get(conn, this_ref)  # type: ignore[return-value]

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
            if exc.reason == "full" and not self._reserve.release_reserve():
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
        stamp = self._db.device.stamp() if new is State.sending else None
        blob = self._pins.seal(ref, seal_pin) if seal_pin is not None else None
        with self._db.write() as conn:
            if guard is not None:
                guard(JournalReader(conn))
            row = require_row(conn, ref)
            old = State(row["state"])
            check_transition(ref, old, new)
            nowdt = self._db.now()
            now = iso(nowdt)
            sets = encode_updates(fields, row)
            sets["state"] = str(new)
            sets["updated_at"] = now
            if stamp is not None:
                # Entering sending IS a send (invariant 1: durable before it leaves): the
                # moment and the count feed reconciliation's settle window and its caps.
                sets.setdefault("sent_json", dumps(stamp.to_json()))
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
                self._pins.keep(conn, ref, blob, now)
            if not holds_pin(new):
                scrub = self._pins.drop(conn, ref)
            txn = self._get(conn, ref)
        if scrub:
            self._pins.scrub()
        assert txn is not None
        return txn

    def update(self, ref: str, *, note: str | None = None, error: str | None = None,
               operator: str | None = None, **fields: Any) -> Txn:
        """Change non-state fields; appends an event only when ``note`` or ``error`` is given."""
        if "state" in fields:
            raise ValueError("use transition() to change the state")
        with self._db.write() as conn:
            row = require_row(conn, ref)
            now = iso(self._db.now())
            sets = encode_updates(fields, row)
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
        rows = self._db.query("SELECT MAX(created_at) AS at FROM txns")
        return from_iso(rows[0]["at"]) if rows and rows[0]["at"] else None

    def draw_ref(self) -> str:
        return _default_ref(self.terminal_number)

    def get(self, ref: str) -> Txn | None:
        with self._db.lock:
            return self._get(self._db.conn, ref)

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
            where.append(f"txns.state IN ({placeholders(len(sv))})" if sv else "0")
            params += sv
        if kinds is not None:
            kv = [str(Kind(k)) for k in kinds]
            where.append(f"txns.kind IN ({placeholders(len(kv))})" if kv else "0")
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
            rows = self._db.query(
                f"SELECT txns.*, txns.rowid AS _rowid FROM {fts} JOIN txns"
                f" ON txns.rowid = {fts}.rowid WHERE {fts} MATCH ?"
                + "".join(f" AND {w}" for w in where)
                + f" ORDER BY {fts}.rowid {order} LIMIT ? OFFSET ?",
                [search_index.match_expression(term), *params, int(limit), int(offset)])
            rows.sort(key=lambda r: (r["created_at"], r["_rowid"]), reverse=newest_first)
            return [to_txn(r) for r in rows]
        if term:
            pattern = "%" + like_escape(term) + "%"
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
        return [to_txn(r) for r in self._db.query(sql, params)]

    def _search_ready(self) -> bool:
        """The full-text index exists (built now, once, if it does not)."""
        if self._has_search_index:
            return True
        with self._db.lock:
            ready = search_index.has_index(self._db.conn)
        if not ready:
            self.ensure_search_index()
            ready = True
        self._has_search_index = ready
        return ready

    def ensure_search_index(self) -> bool:
        """Build the full-text index if missing (pos/journal/search.py); True if built."""
        self._db.gate()
        try:
            built = search_index.ensure_index(self._db.path)
        except sqlite3.OperationalError as exc:
            raise unwritable(exc) from exc
        self._has_search_index = True
        return built

    def events(self, ref: str) -> builtins.list[Event]:
        return [to_event(r) for r in
                self._db.query("SELECT * FROM events WHERE ref = ? ORDER BY id", (ref,))]

    def hurry_queued(self, now: datetime) -> int:
        """Make every queued row due now (a person asked for a sync: the link may be
        back before a back-off ran out). Only ``queued`` rows: they were never sent, or
        their connection provably failed, so sending them again is safe at any time;
        rows whose answer is unknown keep their settle window. Returns how many."""
        with self._db.write() as conn:
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
        rows = self._db.query(
            f"SELECT * FROM txns WHERE state IN ({placeholders(len(sv))})"
            " AND (next_attempt_at IS NULL OR next_attempt_at <= ? OR next_attempt_at > ?"
            " OR lease_owner IS NOT NULL)"
            " ORDER BY created_at, rowid LIMIT ?",
            [*sv, iso(now), iso(horizon), int(limit)],
        )
        out: builtins.list[Txn] = []
        for r in rows:
            txn = to_txn(r)
            waiting = txn.next_attempt_at is not None and now < txn.next_attempt_at <= horizon
            if waiting and (not txn.lease_owner or owner_alive(txn.lease_owner)):
                continue  # its holder is still at it, or it is not due yet
            out.append(txn)
        return out

    def abandoned_created(self, older_than: datetime) -> builtins.list[Txn]:
        """Rows journaled but never marked sending whose maker is gone (or which are
        older than ``older_than``: a maker that hung)."""
        rows = self._db.query("SELECT * FROM txns WHERE state = 'created' ORDER BY rowid")
        out: builtins.list[Txn] = []
        for r in rows:
            txn = to_txn(r)
            if not owner_alive(txn.lease_owner) or txn.created_at < older_than:
                out.append(txn)
        return out

    def flagged(self, limit: int | None = None, offset: int = 0) -> builtins.list[Txn]:
        """Items the merchant must see until a supervisor resolves them, oldest first
        (``limit`` of them from the ``offset``-th)."""
        rows = self._db.query(
            f"SELECT * FROM {_FLAGGED_FROM} ORDER BY created_at, rowid"
            + (" LIMIT ? OFFSET ?" if limit is not None else ""),
            [int(limit), int(offset)] if limit is not None else [],
        )
        return [to_txn(r) for r in rows]

    def ref_lines(self, states: Iterable[State], limit: int | None = None
                  ) -> builtins.list[RefLine]:
        """Ref, kind, state and amount of every row in ``states`` (the first ``limit``),
        oldest first, through the state index and without decoding rows (see
        :class:`RefLine`)."""
        where, sv = _states_where(states)
        rows = self._db.query(
            f"SELECT ref, kind, state, amount_minor, currency FROM {where}"
            " ORDER BY created_at, rowid" + (" LIMIT ?" if limit is not None else ""),
            [*sv, *([int(limit)] if limit is not None else [])])
        return [RefLine(r["ref"], r["kind"], r["state"], Money(r["amount_minor"], r["currency"]))
                for r in rows]

    def refs_in(self, states: Iterable[State]) -> builtins.list[str]:
        """The refs of every row in ``states``, oldest first (strings only: a report of a
        long-lived journal names thousands of flagged rows)."""
        where, sv = _states_where(states)
        return [r[0] for r in self._db.query(
            f"SELECT ref FROM {where} ORDER BY created_at, rowid", sv)]

    def flagged_count(self) -> int:
        """How many items are flagged: the count kept by the schema's triggers (the status
        bar asks every second; pos/journal/schema.py, V_FLAGGED_COUNT)."""
        rows = self._db.query("SELECT n FROM kept_counts WHERE name = 'flagged'")
        return int(rows[0]["n"]) if rows else 0

    def counted_flagged(self) -> int:
        """The flagged rows counted through their index (what the kept count must equal)."""
        rows = self._db.query(f"SELECT COUNT(*) AS n FROM {_FLAGGED_FROM}")
        return int(rows[0]["n"])

    # ------------------------------------------------------------ refund checks
    def refund_checks_due(self, now: datetime, limit: int = 100) -> builtins.list[Txn]:
        """Failed / declined card-paid vends and bills whose refund is due to be checked
        (index ``txns_state_due``: proportional to what is due)."""
        rows = self._db.query(
            f"SELECT * FROM txns WHERE {_REFUND_CHECK_WHERE} AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at LIMIT ?", (iso(now), int(limit)))
        return [to_txn(r) for r in rows]

    def refund_checked(self, ref: str, next_check: datetime | None) -> None:
        """Done with a refund check (``None``) or check again at ``next_check``; touches
        nothing else of the row (not ``updated_at``: no change to upload)."""
        with self._db.write() as conn:
            conn.execute("UPDATE txns SET next_attempt_at = ? WHERE ref = ?",
                         (None if next_check is None else iso(next_check), ref))

    def children(self, parent_ref: str) -> builtins.list[Txn]:
        rows = self._db.query(
            "SELECT * FROM txns WHERE parent_ref = ? ORDER BY created_at, rowid", (parent_ref,)
        )
        return [to_txn(r) for r in rows]

    # --------------------------------------------------------------- exposure
    def offline_exposure(self, card_id: int | None = None) -> Exposure:
        """Outstanding offline card debits (offline and still in a sync state).

        With ``card_id``: the same for that card, plus ``consecutive``: its offline
        debits (any state but cancelled / declined) created since the card was
        last seen online (all of them if it never was).
        """
        with self._db.snapshot() as conn:
            return JournalReader(conn).offline_exposure(card_id)

    def queued_vend_exposure(self) -> Exposure:
        """Outstanding cash electricity sales (vends and bills) accepted while offline:
        the cash is taken, the token or bill payment still owed."""
        with self._db.lock:
            return JournalReader(self._db.conn).queued_vend_exposure()

    def unsynced(self) -> Exposure:
        """Everything with outstanding provider work (queued, sending, unknown, pending),
        counted and summed in SQL: the status bar asks every second."""
        sv = [str(s) for s in SYNC_STATES]
        with self._db.lock:
            count, totals = _sum_rows(self._db.conn.execute(
                "SELECT currency, COUNT(*) AS n, SUM(amount_minor) AS total FROM txns"
                f" WHERE state IN ({placeholders(len(sv))}) GROUP BY currency", sv,
            ))
        return Exposure(count=count, totals=totals)

    # ---------------------------------------------------------------- helpers
    def _get(self, conn: sqlite3.Connection, ref: str) -> Txn | None:
        row = conn.execute("SELECT * FROM txns WHERE ref = ?", (ref,)).fetchone()
        return to_txn(row) if row else None

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


class JournalReader:
    """Reads over one connection, usable inside a write transaction (see the ``guard``
    of :meth:`Journal.create`): what it reads is what the insert that follows sees."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def offline_exposure(self, card_id: int | None = None) -> Exposure:
        sv = [str(s) for s in SYNC_STATES]
        base = (
            "SELECT currency, COUNT(*) AS n, SUM(amount_minor) AS total FROM txns"
            f" WHERE kind = 'card_debit' AND offline = 1 AND state IN ({placeholders(len(sv))})"
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
            f" AND state IN ({placeholders(len(sv))}) GROUP BY currency", sv,
        ))
        return Exposure(count=count, totals=totals)




def _sum_rows(cursor: sqlite3.Cursor) -> tuple[int, dict[str, int]]:
    count = 0
    totals: dict[str, int] = {}
    for r in cursor:
        count += int(r["n"])
        totals[r["currency"]] = int(r["total"] or 0)
    return count, totals


