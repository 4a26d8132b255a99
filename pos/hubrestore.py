"""Rebuild a replaced terminal's journal from the back office (``sente-pos hub restore``).

A replacement terminal enrolled with the same terminal id rebuilds its
journal from the hub (``sente-pos hub restore``): every row and event as the hub
holds it (queue included: the sync engine resumes it, querying by ref first as
after any crash), the Z history and the receipt counter, and the counter's tables:
basket sales with their lines and tender parts, shifts (an open shift stays open with
its float) and cash moves, each with the id it had. PINs of queued offline
debits were never uploaded: such a debit is sent without one and, refused, is
flagged for a supervisor.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pos.errors import InputError
from pos.hubsync import (
    META_COUNTER,
    META_EVENTS,
    META_NAME,
    META_REG,
    META_SEQ,
    META_Z,
    HubClient,
    load_credential,
    refusal,
)
from pos.journal.codec import parents_first
from pos.journal.columns import WIRE_NAMES
from pos.journal.schema import rebuild_totals

if TYPE_CHECKING:
    import httpx

#: What the wire form of a transaction carries (pos/journal/columns.py).
_TXN_COLUMNS = WIRE_NAMES


def _txn_values(row: dict[str, Any]) -> tuple[Any, ...]:
    amount, total = row["amount"], row.get("total")
    values = dict(row)
    values.update(
        amount_minor=int(amount["minor"]), currency=str(amount["currency"]),
        offline=int(bool(row.get("offline"))),
        charges_json=json.dumps(row["charges"], separators=(",", ":"), sort_keys=True)
        if row.get("charges") else None,
        total_json=json.dumps({"minor": int(total["minor"]), "currency": total["currency"]},
                              separators=(",", ":"), sort_keys=True) if total else None,
        details_json=json.dumps(row.get("details") or {}, separators=(",", ":"),
                                sort_keys=True),
        attempts=int(row.get("attempts") or 0),
        sends=int(row.get("sends") or 0),
        accepted=int(bool(row.get("accepted"))),
        clock_synced=None if row.get("clock_synced") is None else int(bool(row["clock_synced"])),
        recon_json=json.dumps(row["reconciliation"], separators=(",", ":"), sort_keys=True)
        if row.get("reconciliation") else None,
    )
    return tuple(values.get(c) for c in _TXN_COLUMNS)


async def _pages(client: HubClient, part: str) -> list[Any]:
    items: list[Any] = []
    after: str | None = None
    while True:
        params = {"limit": "2000", **({"after": after} if after else {})}
        status, data = await client.call("GET", f"api/v1/restore/{part}", params=params)
        if status != 200 or not isinstance(data, dict):
            raise refusal(status, data)
        items.extend(data.get("items") or [])
        after = data.get("next")
        if not after:
            return items


async def restore(home: Path, *, transport: httpx.AsyncBaseTransport | None = None
                  ) -> dict[str, Any]:
    """Rebuild an empty journal in ``home`` from the hub (see the module docstring)."""
    from pos.journal import Journal

    cred = load_credential(home)
    if cred is None:
        raise InputError("Enrol this terminal first: sente-pos hub enrol URL CODE")
    path = Path(home) / "journal.db"
    journal = Journal.open(path)
    try:
        if journal.list(limit=1) or journal.z_reports() or _counter_rows(journal):
            raise InputError("This terminal's journal is not empty: restore only rebuilds a "
                             "replaced terminal's journal, it never merges into one")
    finally:
        journal.close()
    client = HubClient(cred.url, cred.credential, cred.terminal_id, transport=transport)
    try:
        status, summary = await client.call("GET", "api/v1/restore/summary")
        if status != 200 or not isinstance(summary, dict):
            raise refusal(status, summary)
        txns = await _pages(client, "txns")
        events = await _pages(client, "events")
        zs = await _pages(client, "z_reports")
        counter = {part: await _pages(client, part) for part in COUNTER_PARTS}
    finally:
        await client.aclose()
    _write_restore(path, summary, txns, events, zs, counter)
    shift = next((s for s in counter["shifts"] if s.get("closed_at") is None), None)
    return {"terminal_id": cred.terminal_id, "txns": len(txns), "events": len(events),
            "z_reports": len(zs), **{part: len(rows) for part, rows in counter.items()},
            "open_shift": shift["id"] if shift else None,
            "receipt_no": _receipt_counter(summary, txns, counter["sales"]),
            "unsynced": sum(1 for t in txns if t["state"] in ("queued", "sending", "unknown",
                                                              "pending"))}


COUNTER_PARTS = ("shifts", "sales", "cash_moves")


def _counter_rows(journal: Any) -> bool:
    return bool(journal.query("SELECT 1 FROM shifts UNION ALL SELECT 1 FROM sales"
                              " UNION ALL SELECT 1 FROM cash_moves LIMIT 1"))


def _receipt_counter(summary: dict[str, Any], txns: list[dict[str, Any]],
                     sales: list[dict[str, Any]] | None = None) -> int:
    top = max((int(t.get("receipt_number") or 0) for t in [*txns, *(sales or [])]),
              default=0)
    return max(top, int(summary.get("receipt_no") or 0))


def _write_counter(conn: sqlite3.Connection, counter: dict[str, list[dict[str, Any]]]) -> int:
    """Shifts, then sales with their lines and tender parts, then cash moves: the order
    of their foreign keys. Ids are the terminal's own, so the hub's keys stay valid.
    Returns the upload outbox's last id (what the inserts queued, which the hub has)."""
    conn.executemany(
        "INSERT INTO shifts(id, operator, currency, float_minor, opened_at, closed_at,"
        " closed_by, counted_minor, expected_minor, report_json) VALUES (?,?,?,?,?,?,?,?,?,?)",
        [(s["id"], s["operator"], s["currency"], s["float_minor"], s["opened_at"],
          s.get("closed_at"), s.get("closed_by"), s.get("counted_minor"),
          s.get("expected_minor"),
          json.dumps(s["report"], default=str) if s.get("report") is not None else None)
         for s in sorted(counter["shifts"], key=lambda s: int(s["id"]))])
    sales = counter["sales"]
    conn.executemany(
        "INSERT INTO sales(id, shift_id, state, operator, currency, subtotal_minor,"
        " discount_minor, total_minor, discount_by, reason, receipt_number, created_at,"
        " completed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [(x["id"], x.get("shift_id"), x["state"], x["operator"], x["currency"],
          x["subtotal_minor"], x["discount_minor"], x["total_minor"], x.get("discount_by"),
          x["reason"], x.get("receipt_number"), x["created_at"], x.get("completed_at"))
         for x in sales])
    conn.executemany(
        "INSERT INTO sale_lines(sale_id, line_no, product_id, name, qty, unit_minor,"
        " discount_minor) VALUES (?,?,?,?,?,?,?)",
        [(x["id"], ln["line_no"], ln.get("product_id"), ln["name"], ln["qty"],
          ln["unit_minor"], ln["discount_minor"]) for x in sales for ln in x.get("lines", [])])
    parts = sorted(((int(p["id"]), x["id"], p) for x in sales for p in x.get("tenders", [])),
                   key=lambda item: item[0])
    conn.executemany(
        "INSERT INTO sale_tenders(id, sale_id, shift_id, tender, state, amount_minor,"
        " tendered_minor, change_minor, txn_ref, operator, at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [(pid, sale_id, p.get("shift_id"), p["tender"], p["state"], p["amount_minor"],
          p["tendered_minor"], p["change_minor"], p.get("txn_ref"), p["operator"], p["at"])
         for pid, sale_id, p in parts])
    conn.executemany(
        "INSERT INTO cash_moves(id, shift_id, kind, amount_minor, currency, reason, operator,"
        " ref, at) VALUES (?,?,?,?,?,?,?,?,?)",
        [(m["id"], m["shift_id"], m["kind"], m["amount_minor"], m["currency"], m["reason"],
          m["operator"], m.get("ref"), m["at"])
         for m in sorted(counter["cash_moves"], key=lambda m: int(m["id"]))])
    top = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM hub_changes").fetchone()[0])
    conn.execute("DELETE FROM hub_changes")  # the hub has all of these
    return top


def _write_restore(path: Path, summary: dict[str, Any], txns: list[dict[str, Any]],
                   events: list[dict[str, Any]], zs: list[dict[str, Any]],
                   counter: dict[str, list[dict[str, Any]]] | None = None) -> None:
    """One transaction: either the whole journal is back, or nothing changed."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT COUNT(*) FROM txns").fetchone()[0]:
                raise InputError("This terminal's journal is not empty")
            cols = ", ".join(_TXN_COLUMNS)
            marks = ",".join("?" * len(_TXN_COLUMNS))
            conn.executemany(f"INSERT INTO txns ({cols}) VALUES ({marks})",
                             [_txn_values(dict(t)) for t in parents_first(txns)])
            known = {t["ref"] for t in txns}
            conn.executemany(
                "INSERT INTO events(id, ref, at, from_state, to_state, note, error, operator)"
                " VALUES (?,?,?,?,?,?,?,?)",
                [(e["id"], e["ref"], e["at"], e["from"], e["to"], e["note"], e["error"],
                  e["operator"]) for e in events if e["ref"] in known])
            conn.executemany(
                "INSERT INTO z_reports(number, payload_json, created_at) VALUES (?,?,?)",
                [(z["number"], json.dumps(z["payload"], separators=(",", ":"), sort_keys=True),
                  z["created_at"]) for z in zs])
            counter = counter or {part: [] for part in COUNTER_PARTS}
            counter_top = _write_counter(conn, counter)
            rebuild_totals(conn)  # rows and Z reports came in directly: periods and totals
            merchant = summary.get("merchant") or {}
            meta = {
                "receipt_no": str(_receipt_counter(summary, txns, counter["sales"])),
                META_COUNTER: str(counter_top),
                META_EVENTS: str(max((int(e["id"]) for e in events),
                                     default=int(summary.get("max_event_id") or 0))),
                META_Z: str(max((int(z["number"]) for z in zs), default=0)),
                META_SEQ: str(int(summary.get("last_seq") or 0)),
            }
            if merchant.get("verified"):
                meta[META_NAME] = str(merchant.get("name") or "")
                meta[META_REG] = str(merchant.get("registration_no") or "")
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET"
                " value = excluded.value", [(k, v) for k, v in meta.items() if v])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


