"""Small keyed state kept in the journal: the ``meta`` table (receipt counter, cursors,
the archive manifest), the card cache, and what the constraints migration found."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pos.journal.codec import mask_card_no, to_cached_card
from pos.journal.db import Database, dumps
from pos.journal.models import CachedCard, iso
from pos.money import Money


class MetaStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def meta_get(self, key: str, default: str | None = None) -> str | None:
        rows = self._db.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def meta_set(self, key: str, value: str) -> None:
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, str(value)),
            )

    def meta_delete(self, key: str) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM meta WHERE key = ?", (key,))

    def next_receipt_no(self) -> int:
        """Our next receipt number: monotonically increasing, persisted, never reused."""
        with self._db.write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'receipt_no'").fetchone()
            number = (int(row["value"]) if row else 0) + 1
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('receipt_no', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(number),),
            )
        return number

    def constraint_offenders(self) -> builtins.list[dict[str, Any]]:
        """Rows that broke a rule of the schema before it enforced them (schema
        V_CONSTRAINTS): table, key (a ref, an event id), the rules, when found."""
        return [dict(r) for r in self._db.query(
            "SELECT tbl, key, rules, found_at FROM constraint_offenders ORDER BY id")]


class CardCache:
    """What this terminal last learned about each card while online."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def card_cache_put(self, card_id: int, card_no: str | None, status: str, has_pin: bool,
                       wallets: Iterable[str], balance: Money | None,
                       seen_online_at: datetime) -> None:
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO card_cache(card_id, card_no, status, has_pin, wallets_json,"
                " balance_minor, balance_currency, seen_online_at) VALUES (?,?,?,?,?,?,?,?)"
                " ON CONFLICT(card_id) DO UPDATE SET card_no = excluded.card_no,"
                " status = excluded.status, has_pin = excluded.has_pin,"
                " wallets_json = excluded.wallets_json, balance_minor = excluded.balance_minor,"
                " balance_currency = excluded.balance_currency,"
                " seen_online_at = excluded.seen_online_at",
                (card_id, mask_card_no(card_no), status, int(bool(has_pin)),
                 dumps(list(wallets)), balance.minor if balance else None,
                 balance.currency if balance else None, iso(seen_online_at)),
            )

    def card_cache_get(self, card_id: int) -> CachedCard | None:
        rows = self._db.query("SELECT * FROM card_cache WHERE card_id = ?", (card_id,))
        return to_cached_card(rows[0]) if rows else None
