"""Terminals and their journals on the hub: enrolment, idempotent upload, restore.

Idempotence: an event is keyed on (terminal, event id), a Z report on (terminal,
number): a repeat is ignored. A transaction row is keyed on (terminal, ref) and
replaced only by an upload at least as new (the terminal numbers its uploads; an
old upload arriving late never overwrites a newer row). Each rule is one
conditional statement, so two hub processes handling the same upload at once
store it once.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, func, select, update

from pos.errors import InputError, PosError
from pos.hub import schema as t
from pos.hub.accounts import ENROL_LIMIT, ENROL_WINDOW, Accounts, digest
from pos.hub.clock import Clock, iso, utcnow
from pos.hub.db import Database
from pos.hub.wire import SaleIn, ShiftIn, TxnIn, UploadIn
from pos.journal.store import mask_card_no

#: Sales that count in the takings and that are forwarded to Particeep once settled.
SALE_KINDS = frozenset({"card_debit", "vend", "postpaid"})


class NotVerified(PosError):
    """The merchant's business verification is not complete: no terminal enrols yet."""


class BadCredential(PosError):
    """A terminal credential the hub does not know (revoked by a re-enrolment, or forged)."""


@dataclass(frozen=True, slots=True)
class TerminalAuth:
    id: int
    name: str
    merchant_id: int
    shop_id: int


def merchant_header(row: Any) -> dict[str, Any]:
    """What a terminal prints at the top of its receipts: the verified name and number."""
    verified = row.kyb_status == "verified"
    return {
        "name": (row.kyb_business_name or row.name) if verified else row.name,
        "registration_no": (row.kyb_registration_no or row.registration_no) if verified else None,
        "verified": verified,
    }


class HubStore:
    def __init__(self, db: Database, accounts: Accounts, clock: Clock = utcnow, *,
                 kyb_required: bool = True, particeep: bool = False) -> None:
        self.db = db
        self.accounts = accounts
        self.clock = clock
        self.kyb_required = kyb_required
        self.particeep = particeep
        # Built once: executemany of one statement compiles once (a multi-VALUES
        # statement would be compiled again for every upload size).
        ins = db.insert(t.txns)
        keep = [c.name for c in t.txns.columns if c.name not in ("terminal_id", "ref")]
        self._insert_events = db.insert(t.events).on_conflict_do_nothing()
        self._upsert_txns = ins.on_conflict_do_update(
            index_elements=[t.txns.c.terminal_id, t.txns.c.ref],
            set_={c: ins.excluded[c] for c in keep},
            where=t.txns.c.seq <= ins.excluded.seq)
        sale = db.insert(t.sales)
        self._upsert_sales = sale.on_conflict_do_update(
            index_elements=[t.sales.c.terminal_id, t.sales.c.sale_id],
            set_={c.name: sale.excluded[c.name] for c in t.sales.columns
                  if c.name not in ("terminal_id", "sale_id")},
            where=t.sales.c.seq <= sale.excluded.seq)
        shift = db.insert(t.shifts)
        # A closed shift is final on the terminal: on the hub too.
        self._upsert_shifts = shift.on_conflict_do_update(
            index_elements=[t.shifts.c.terminal_id, t.shifts.c.shift_id],
            set_={c.name: shift.excluded[c.name] for c in t.shifts.columns
                  if c.name not in ("terminal_id", "shift_id")},
            where=(t.shifts.c.seq <= shift.excluded.seq) & t.shifts.c.closed_at.is_(None))
        self._insert_tenders = db.insert(t.sale_tenders).on_conflict_do_nothing()
        self._insert_moves = db.insert(t.cash_moves).on_conflict_do_nothing()

    # ------------------------------------------------------------- enrolment
    def enrol(self, code: str, client: str) -> dict[str, Any]:
        """Trade a one-time code for a per-terminal credential (only its hash is kept).

        A code for a terminal id that exists replaces that terminal's credential: the
        replaced device can no longer upload, the new one restores its journal."""
        self.accounts.limit(f"enrol:ip:{client}", ENROL_LIMIT, ENROL_WINDOW)
        peek = self.accounts.peek_code(code)
        if peek is not None:  # checked before the code is spent: it stays usable
            merchant = self.accounts.merchant(peek.merchant_id)
            if self.kyb_required and merchant["kyb_status"] != "verified":
                raise NotVerified(
                    f"{merchant['name']}'s business verification is {merchant['kyb_status']}: "
                    "terminals enrol once Patascore has verified the registration")
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = iso(self.clock())
        with self.db.write() as conn:
            row = self.accounts.claim_code(conn, code)
            existing = conn.execute(select(t.terminals.c.id).where(
                t.terminals.c.merchant_id == row.merchant_id,
                t.terminals.c.name == row.terminal_name)).first()
            if existing is None:
                tid = conn.execute(t.terminals.insert().values(
                    merchant_id=row.merchant_id, shop_id=row.shop_id, name=row.terminal_name,
                    key_id=key_id, secret_hash=digest(secret), enrolled_at=now,
                )).inserted_primary_key[0]  # type: ignore[index]
                replaced = False
            else:
                tid = existing.id
                conn.execute(update(t.terminals).where(t.terminals.c.id == tid).values(
                    key_id=key_id, secret_hash=digest(secret), enrolled_at=now,
                    shop_id=row.shop_id))
                replaced = True
            merchant_row = conn.execute(
                select(t.merchants).where(t.merchants.c.id == row.merchant_id)).one()
        return {"terminal_id": row.terminal_name, "hub_terminal": int(tid),
                "credential": f"{key_id}.{secret}", "replaced": replaced,
                "merchant": merchant_header(merchant_row)}

    def authenticate(self, credential: str | None) -> TerminalAuth:
        import hmac

        key_id, _, secret = (credential or "").partition(".")
        if not key_id or not secret or len(credential or "") > 200:
            raise BadCredential("No terminal credential")
        with self.db.read() as conn:
            row = conn.execute(select(t.terminals).where(t.terminals.c.key_id == key_id)).first()
        if row is None or not hmac.compare_digest(row.secret_hash, digest(secret)):
            raise BadCredential("Unknown terminal credential: enrol this terminal again")
        return TerminalAuth(row.id, row.name, row.merchant_id, row.shop_id)

    # ---------------------------------------------------------------- upload
    def ingest(self, term: TerminalAuth, up: UploadIn, *, max_items: int) -> dict[str, Any]:
        if up.size() > max_items:
            raise InputError(f"An upload holds at most {max_items} rows, not {up.size()}")
        now = iso(self.clock())
        txn_rows = [_txn_row(term.id, x, up.seq) for x in up.txns]
        with self.db.write() as conn:
            new_events = self._events(conn, term.id, up, now)
            if txn_rows:
                conn.execute(self._upsert_txns, txn_rows)
            new_z = 0
            if up.z_reports:
                have = set(conn.execute(select(t.z_reports.c.number).where(
                    t.z_reports.c.terminal_id == term.id,
                    t.z_reports.c.number.in_([z.number for z in up.z_reports]))).scalars())
                fresh = [z for z in up.z_reports if z.number not in have]
                if fresh:
                    conn.execute(self.db.insert(t.z_reports).on_conflict_do_nothing(), [
                        {"terminal_id": term.id, "number": z.number, "created_at": z.created_at,
                         "payload_json": json.dumps(z.payload, separators=(",", ":"))}
                        for z in fresh])
                new_z = len(fresh)
            self._counter(conn, term.id, up)
            self._status(conn, term.id, up, now)
            if self.particeep:
                self._queue_particeep(conn, term.id, up, now)
            merchant = conn.execute(
                select(t.merchants).where(t.merchants.c.id == term.merchant_id)).one()
        return {
            "seq": up.seq,
            "events": {"received": len(up.events), "new": new_events},
            "txns": len(txn_rows),
            "z_reports": {"received": len(up.z_reports), "new": new_z},
            "sales": len(up.sales), "shifts": len(up.shifts), "cash_moves": len(up.cash_moves),
            "cursor": max((e.id for e in up.events), default=None),
            "merchant": merchant_header(merchant),
        }

    def _events(self, conn: Connection, tid: int, up: UploadIn, now: str) -> int:
        """Insert the events not stored yet; how many were new. The look-up first counts
        them (rowcount is not reliable for ON CONFLICT on psycopg); ON CONFLICT DO
        NOTHING settles a race with another hub storing the same batch."""
        if not up.events:
            return 0
        ids = [e.id for e in up.events]
        have = set(conn.execute(select(t.events.c.event_id).where(
            t.events.c.terminal_id == tid, t.events.c.event_id.in_(ids))).scalars())
        fresh = {e.id: e for e in up.events if e.id not in have}  # a batch may repeat one
        if fresh:
            conn.execute(self._insert_events, [
                {"terminal_id": tid, "event_id": e.id, "ref": e.ref, "at": e.at,
                 "from_state": str(e.from_state) if e.from_state else None,
                 "to_state": str(e.to_state), "note": e.note, "error": e.error,
                 "operator": e.operator, "received_at": now}
                for e in fresh.values()])
        return len(fresh)

    def _counter(self, conn: Connection, tid: int, up: UploadIn) -> None:
        """The counter's tables: sales (with their lines in ``data_json``) and shifts
        replaced by an upload at least as new; tender parts and cash moves, which never
        change on the terminal, stored once."""
        if up.shifts:
            conn.execute(self._upsert_shifts, [_shift_row(tid, x, up.seq) for x in up.shifts])
        if up.sales:
            conn.execute(self._upsert_sales, [_sale_row(tid, x, up.seq) for x in up.sales])
            tenders = {p.id: {
                "terminal_id": tid, "tender_id": p.id, "sale_id": x.id, "shift_id": p.shift_id,
                "tender": p.tender, "state": p.state, "amount_minor": p.amount_minor,
                "tendered_minor": p.tendered_minor, "change_minor": p.change_minor,
                "currency": x.currency, "txn_ref": p.txn_ref, "operator": p.operator,
                "at": p.at} for x in up.sales for p in x.tenders}
            if tenders:
                conn.execute(self._insert_tenders, list(tenders.values()))
        if up.cash_moves:
            conn.execute(self._insert_moves, list({m.id: {
                "terminal_id": tid, "move_id": m.id, "shift_id": m.shift_id, "kind": m.kind,
                "amount_minor": m.amount_minor, "currency": m.currency, "reason": m.reason,
                "operator": m.operator, "ref": m.ref, "at": m.at} for m in up.cash_moves
            }.values()))

    def _status(self, conn: Connection, tid: int, up: UploadIn, now: str) -> None:
        """One UPDATE: the status fields only from an upload at least as new as the last
        one (a late old upload changes nothing but "last seen"); the receipt counter
        only ever grows."""
        st = up.status
        floats = {k: v.model_dump() for k, v in st.floats.items() if v is not None}
        tbl = t.terminals
        newer = tbl.c.last_seq <= up.seq

        def if_newer(column: Any, value: Any) -> Any:
            return case((newer, value), else_=column)

        conn.execute(update(tbl).where(tbl.c.id == tid).values(
            last_seen_at=now,
            last_seq=if_newer(tbl.c.last_seq, up.seq),
            link=if_newer(tbl.c.link, st.link),
            online=if_newer(tbl.c.online, st.online),
            unsynced_count=if_newer(tbl.c.unsynced_count, st.unsynced_count),
            unsynced_json=if_newer(tbl.c.unsynced_json,
                                   json.dumps(st.unsynced_totals, sort_keys=True)),
            flagged_count=if_newer(tbl.c.flagged_count, st.flagged_count),
            float_json=if_newer(tbl.c.float_json, json.dumps(floats, sort_keys=True))
            if floats else tbl.c.float_json,
            receipt_no=case((tbl.c.receipt_no < st.receipt_no, st.receipt_no),
                            else_=tbl.c.receipt_no),
        ))

    def _queue_particeep(self, conn: Connection, tid: int, up: UploadIn, now: str) -> None:
        """Each settled sale once: a transaction, or a basket sale as one (its card
        parts are card debits that are not forwarded apart, or it would count twice)."""
        settled = [x.ref for x in up.txns if x.state == "done" and x.kind in SALE_KINDS
                   and not _pays_a_basket(x)]
        settled += [s.id for s in up.sales if s.state == "done"]
        if settled:
            conn.execute(self.db.insert(t.particeep_outbox).on_conflict_do_nothing(), [
                {"terminal_id": tid, "ref": ref, "status": "pending", "next_at": now,
                 "created_at": now, "attempts": 0} for ref in settled])

    # --------------------------------------------------------------- restore
    def restore_page(self, term: TerminalAuth, part: str, after: str | None,
                     limit: int) -> dict[str, Any]:
        """One page of a terminal's journal as the hub holds it, oldest first."""
        limit = max(1, min(limit, 5000))
        with self.db.read() as conn:
            if part == "txns":
                q = select(t.txns.c.ref, t.txns.c.data_json).where(t.txns.c.terminal_id == term.id)
                if after:
                    q = q.where(t.txns.c.ref > after)
                rows = conn.execute(q.order_by(t.txns.c.ref).limit(limit)).all()
                items: list[Any] = [json.loads(r.data_json) for r in rows]
                nxt = rows[-1].ref if len(rows) == limit else None
            elif part == "events":
                q = select(t.events).where(t.events.c.terminal_id == term.id)
                if after:
                    q = q.where(t.events.c.event_id > int(after))
                rows = conn.execute(q.order_by(t.events.c.event_id).limit(limit)).all()
                items = [{"id": r.event_id, "ref": r.ref, "at": r.at, "from": r.from_state,
                          "to": r.to_state, "note": r.note, "error": r.error,
                          "operator": r.operator} for r in rows]
                nxt = str(rows[-1].event_id) if len(rows) == limit else None
            elif part == "z_reports":
                rows = conn.execute(select(t.z_reports).where(t.z_reports.c.terminal_id == term.id)
                                    .order_by(t.z_reports.c.number)).all()
                items = [{"number": r.number, "created_at": r.created_at,
                          "payload": json.loads(r.payload_json)} for r in rows]
                nxt = None
            elif part in _COUNTER_PARTS:
                tbl, key = _COUNTER_PARTS[part]
                q = select(tbl).where(tbl.c.terminal_id == term.id)
                if after:
                    q = q.where(key > (after if part == "sales" else int(after)))
                rows = conn.execute(q.order_by(key).limit(limit)).all()
                items = [_counter_item(part, r) for r in rows]
                nxt = str(getattr(rows[-1], key.name)) if len(rows) == limit else None
            elif part == "summary":
                trow = conn.execute(select(t.terminals).where(t.terminals.c.id == term.id)).one()
                max_event = conn.execute(select(func.max(t.events.c.event_id)).where(
                    t.events.c.terminal_id == term.id)).scalar()
                counts = {
                    "txns": conn.execute(select(func.count()).select_from(t.txns).where(
                        t.txns.c.terminal_id == term.id)).scalar_one(),
                    "events": conn.execute(select(func.count()).select_from(t.events).where(
                        t.events.c.terminal_id == term.id)).scalar_one(),
                    **{name: conn.execute(select(func.count()).select_from(tbl).where(
                        tbl.c.terminal_id == term.id)).scalar_one()
                       for name, (tbl, _) in _COUNTER_PARTS.items()},
                }
                merchant = conn.execute(
                    select(t.merchants).where(t.merchants.c.id == term.merchant_id)).one()
                return {"terminal_id": term.name, "receipt_no": trow.receipt_no,
                        "last_seq": trow.last_seq, "max_event_id": max_event or 0,
                        "counts": counts, "merchant": merchant_header(merchant)}
            else:
                raise InputError("part is txns, events, z_reports, sales, shifts, cash_moves"
                                 " or summary")
        return {"items": items, "next": nxt}


def _txn_row(tid: int, x: TxnIn, seq: int) -> dict[str, Any]:
    card = mask_card_no(x.card_no)
    if card is not None and card != x.card_no:
        x.card_no = card  # the hub never keeps a full card number
    digits = "".join(ch for ch in card or "" if ch.isdigit())
    return {
        "terminal_id": tid, "ref": x.ref, "kind": str(x.kind), "state": str(x.state),
        "amount_minor": x.amount.minor, "currency": x.amount.currency, "tender": str(x.tender),
        "operator": x.operator, "card_no": card, "card_last4": digits[-4:] or None,
        "meter": x.meter, "account": x.account, "customer_name": x.customer_name,
        "receipt_number": x.receipt_number, "flagged": x.state in _FLAGGED,
        "created_at": x.created_at, "updated_at": x.updated_at, "settled_at": x.settled_at,
        "seq": seq, "data_json": x.row_json(),
    }


#: The restore's pages of the counter's tables: the table and its keyset column.
_COUNTER_PARTS = {"sales": (t.sales, t.sales.c.sale_id),
                  "shifts": (t.shifts, t.shifts.c.shift_id),
                  "cash_moves": (t.cash_moves, t.cash_moves.c.move_id)}


def _counter_item(part: str, r: Any) -> dict[str, Any]:
    """A row of the counter's tables as the terminal sent it (the journal's columns)."""
    if part == "sales":
        return dict(json.loads(r.data_json))
    if part == "shifts":
        return {"id": r.shift_id, "operator": r.operator, "currency": r.currency,
                "float_minor": r.float_minor, "opened_at": r.opened_at,
                "closed_at": r.closed_at, "closed_by": r.closed_by,
                "counted_minor": r.counted_minor, "expected_minor": r.expected_minor,
                "report": json.loads(r.report_json) if r.report_json else None}
    return {"id": r.move_id, "shift_id": r.shift_id, "kind": r.kind,
            "amount_minor": r.amount_minor, "currency": r.currency, "reason": r.reason,
            "operator": r.operator, "ref": r.ref, "at": r.at}


def _pays_a_basket(x: TxnIn) -> bool:
    """A card debit that is the card part of a basket sale (its details name the sale)."""
    details = (x.model_extra or {}).get("details")
    return x.kind == "card_debit" and isinstance(details, dict) and bool(details.get("sale_id"))


def _sale_row(tid: int, x: SaleIn, seq: int) -> dict[str, Any]:
    return {"terminal_id": tid, "sale_id": x.id, "shift_id": x.shift_id, "state": x.state,
            "operator": x.operator, "currency": x.currency,
            "subtotal_minor": x.subtotal_minor, "discount_minor": x.discount_minor,
            "total_minor": x.total_minor, "receipt_number": x.receipt_number,
            "created_at": x.created_at, "completed_at": x.completed_at, "seq": seq,
            "data_json": x.row_json()}


def _shift_row(tid: int, x: ShiftIn, seq: int) -> dict[str, Any]:
    return {"terminal_id": tid, "shift_id": x.id, "operator": x.operator,
            "currency": x.currency, "float_minor": x.float_minor, "opened_at": x.opened_at,
            "closed_at": x.closed_at, "closed_by": x.closed_by,
            "counted_minor": x.counted_minor, "expected_minor": x.expected_minor,
            "report_json": json.dumps(x.report, separators=(",", ":"), sort_keys=True)
            if x.report is not None else None, "seq": seq}


_FLAGGED = frozenset({"declined_offline", "expired", "failed"})
