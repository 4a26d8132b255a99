"""Rebuild a replaced terminal's journal from the back office (``sente-pos hub restore``).

A replacement terminal enrolled with the same terminal id rebuilds its
journal from the hub (``sente-pos hub restore``): every row and event as the hub
holds it (queue included: the sync engine resumes it, querying by ref first as
after any crash), the Z history and the receipt counter. PINs of queued offline
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
    META_EVENTS,
    META_NAME,
    META_REG,
    META_SEQ,
    META_Z,
    HubClient,
    load_credential,
    refusal,
)
from pos.journal.schema import rebuild_totals

if TYPE_CHECKING:
    import httpx

_TXN_COLUMNS = ("ref", "kind", "state", "amount_minor", "currency", "tender", "operator",
                "terminal_id", "card_id", "card_no", "wallet", "meter", "account",
                "customer_name", "reason", "parent_ref", "offline", "provider_txn_id", "token",
                "receipt_no", "receipt_number", "units", "charges_json", "total_json",
                "attempts", "next_attempt_at", "last_error", "created_at", "updated_at",
                "settled_at", "details_json", "sends", "accepted", "clock_synced",
                "recon_json")


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
        if journal.list(limit=1) or journal.z_reports():
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
    finally:
        await client.aclose()
    _write_restore(path, summary, txns, events, zs)
    return {"terminal_id": cred.terminal_id, "txns": len(txns), "events": len(events),
            "z_reports": len(zs), "receipt_no": _receipt_counter(summary, txns),
            "unsynced": sum(1 for t in txns if t["state"] in ("queued", "sending", "unknown",
                                                              "pending"))}


def _receipt_counter(summary: dict[str, Any], txns: list[dict[str, Any]]) -> int:
    top = max((int(t.get("receipt_number") or 0) for t in txns), default=0)
    return max(top, int(summary.get("receipt_no") or 0))


def _write_restore(path: Path, summary: dict[str, Any], txns: list[dict[str, Any]],
                   events: list[dict[str, Any]], zs: list[dict[str, Any]]) -> None:
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
                             [_txn_values(t) for t in txns])
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
            rebuild_totals(conn)  # rows and Z reports came in directly: periods and totals
            merchant = summary.get("merchant") or {}
            meta = {
                "receipt_no": str(_receipt_counter(summary, txns)),
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


