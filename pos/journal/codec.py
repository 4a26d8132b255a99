"""Rows to values and back: a ``txns`` row to :class:`Txn`, update keywords to column
values (the encodings named in pos/journal/columns.py), the other tables' rows."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from pos.clock import Stamp
from pos.errors import PosError
from pos.journal.columns import PLAIN_NAMES, UPDATES
from pos.journal.db import dumps
from pos.journal.models import CachedCard, Event, Operator, Txn, ZReport, from_iso, iso
from pos.journal.states import Kind, State, Tender
from pos.money import Money


class UnknownTransaction(PosError):
    """No journal row has this ref."""


class DuplicateRef(PosError):
    """A journal row with this ref already exists (refs are unique)."""


def require_row(conn: sqlite3.Connection, ref: str) -> sqlite3.Row:
    """The ``txns`` row of ``ref`` (read on ``conn``, e.g. inside a write)."""
    row: sqlite3.Row | None = conn.execute("SELECT * FROM txns WHERE ref = ?",
                                           (ref,)).fetchone()
    if row is None:
        raise UnknownTransaction(f"No transaction with ref {ref}")
    return row


def parents_first(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``rows`` (each with ``ref`` and ``parent_ref``) ordered so that a parent comes
    before its children: the order a restore inserts them in (a row's parent must be
    in the journal first, schema V_CONSTRAINTS). A row whose parent is not among
    ``rows`` keeps its place (its parent is in the journal already, or it is refused)."""
    pending = list(rows)
    present = {r["ref"] for r in pending}
    placed: set[str] = set()
    out: list[Mapping[str, Any]] = []
    while pending:
        later = []
        for r in pending:
            parent = r.get("parent_ref")
            if parent is None or parent in placed or parent not in present:
                out.append(r)
                placed.add(r["ref"])
            else:
                later.append(r)
        if len(later) == len(pending):  # a cycle: cannot be inserted, let the journal say
            out += later
            break
        pending = later
    return out


def mask_card_no(card_no: str | None) -> str | None:
    """Keep a card number masked: an unmasked number keeps only its first and last four digits."""
    if card_no is None:
        return None
    text = card_no.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if "*" in text or len(digits) < 10:
        return text
    return digits[:4] + "*" * (len(digits) - 8) + digits[-4:]


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _charge(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {"name": str(value["name"]), "amount": str(value["amount"])}
    return {"name": str(value.name), "amount": str(value.amount)}


def encode_updates(fields: dict[str, Any], row: sqlite3.Row) -> dict[str, Any]:
    """Validate update keywords and encode them into column values (``row``: the row
    as it is, for ``details``, which is merged into what is there)."""
    unknown = set(fields) - set(UPDATES)
    if unknown:
        raise TypeError(f"not updatable journal fields: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for name, value in fields.items():
        column, how = UPDATES[name]
        if how == "str":
            out[column] = None if value is None else str(value)
        elif how == "int":
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise TypeError(f"{name} must be an int")
            out[column] = value
        elif how == "iso":
            out[column] = None if value is None else iso(value)
        elif how == "bool":
            out[column] = int(bool(value))
        elif how == "charges":
            out[column] = None if value is None else dumps([_charge(c) for c in value])
        elif how == "total":
            if value is not None and not isinstance(value, Money):
                raise TypeError("total must be Money")
            out[column] = None if value is None else dumps(
                {"minor": value.minor, "currency": value.currency})
        elif how == "details":  # shallow merge into what is there
            merged = json.loads(row[column] or "{}")
            merged.update(value or {})
            out[column] = dumps(merged)
        elif how == "stamp":
            if value is not None and not isinstance(value, Stamp):
                raise TypeError(f"{name} must be a Stamp")
            out[column] = None if value is None else dumps(value.to_json())
        else:  # "json": replaced whole (reconciliation owns it)
            out[column] = None if value is None else dumps(value)
    return out


def to_txn(r: sqlite3.Row) -> Txn:
    total = json.loads(r["total_json"]) if r["total_json"] else None
    return Txn(
        **{name: r[name] for name in PLAIN_NAMES},
        kind=Kind(r["kind"]),
        state=State(r["state"]),
        amount=Money(r["amount_minor"], r["currency"]),
        tender=Tender(r["tender"]),
        offline=bool(r["offline"]),
        charges=json.loads(r["charges_json"]) if r["charges_json"] else [],
        total=Money(total["minor"], total["currency"]) if total else None,
        next_attempt_at=from_iso(r["next_attempt_at"]),
        created_at=from_iso(r["created_at"]),  # type: ignore[arg-type]
        updated_at=from_iso(r["updated_at"]),  # type: ignore[arg-type]
        settled_at=from_iso(r["settled_at"]),
        details=json.loads(r["details_json"] or "{}", parse_float=Decimal),
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


def to_event(r: sqlite3.Row) -> Event:
    return Event(
        id=r["id"], ref=r["ref"], at=from_iso(r["at"]),  # type: ignore[arg-type]
        from_state=State(r["from_state"]) if r["from_state"] else None,
        to_state=State(r["to_state"]), note=r["note"], error=r["error"],
        operator=r["operator"],
    )


def to_operator(r: sqlite3.Row) -> Operator:
    return Operator(
        name=r["name"], role=r["role"], pin_hash=r["pin_hash"],
        created_at=from_iso(r["created_at"]),  # type: ignore[arg-type]
        updated_at=from_iso(r["updated_at"]),  # type: ignore[arg-type]
        disabled_at=from_iso(r["disabled_at"]) if r["disabled_at"] else None,
    )


def to_z_report(r: sqlite3.Row) -> ZReport:
    return ZReport(r["number"], json.loads(r["payload_json"], parse_float=Decimal),
                   from_iso(r["created_at"]))  # type: ignore[arg-type]


def to_cached_card(r: sqlite3.Row) -> CachedCard:
    balance = (Money(r["balance_minor"], r["balance_currency"])
               if r["balance_minor"] is not None else None)
    return CachedCard(
        card_id=r["card_id"], card_no=r["card_no"], status=r["status"],
        has_pin=bool(r["has_pin"]), wallets=tuple(json.loads(r["wallets_json"])),
        balance=balance, seen_online_at=from_iso(r["seen_online_at"]),  # type: ignore[arg-type]
    )
