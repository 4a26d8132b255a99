"""The sealed PINs of queued offline debits (table ``pins``), and their erasure.

A PIN is kept only sealed with the device key (AAD = the row's ref), written in the
same transaction as the state that needs it, and erased so it cannot be recovered from
journal.db or its WAL: ``secure_delete`` zeroes the freed bytes in the page, then a
checkpoint writes that page home and truncates the WAL, which held the old copies.
"""

from __future__ import annotations

import logging
import sqlite3

from pos.digits import is_digits
from pos.errors import InputError
from pos.journal.codec import require_row
from pos.journal.db import Database
from pos.journal.models import iso
from pos.vault import Vault, VaultError

log = logging.getLogger(__name__)


class PinStore:
    def __init__(self, db: Database, vault: Vault | None) -> None:
        self._db = db
        self.vault = vault
        self.scrub_pending = False

    def seal(self, ref: str, pin: str) -> bytes:
        if self.vault is None:
            raise VaultError("No device key: a PIN cannot be kept for an offline debit")
        if not (isinstance(pin, str) and is_digits(pin) and 4 <= len(pin) <= 12):
            raise InputError("A PIN is 4 to 12 digits")
        return self.vault.encrypt(pin.encode(), ref.encode())

    @staticmethod
    def keep(conn: sqlite3.Connection, ref: str, blob: bytes, at: str) -> None:
        """Write a sealed PIN inside the caller's transaction."""
        conn.execute("INSERT INTO pins(ref, blob, created_at) VALUES (?, ?, ?)"
                     " ON CONFLICT(ref) DO UPDATE SET blob = excluded.blob", (ref, blob, at))

    @staticmethod
    def drop(conn: sqlite3.Connection, ref: str) -> bool:
        """Delete ``ref``'s PIN inside the caller's transaction; True if there was one
        (then :meth:`scrub` after the commit)."""
        conn.execute("DELETE FROM pins WHERE ref = ?", (ref,))
        return bool(conn.execute("SELECT changes()").fetchone()[0] > 0)

    def store_pin(self, ref: str, pin: str) -> None:
        """Keep the PIN of a queued offline debit, sealed with the device key (AAD = ref)."""
        blob = self.seal(ref, pin)
        with self._db.write() as conn:
            require_row(conn, ref)
            self.keep(conn, ref, blob, iso(self._db.now()))

    def load_pin(self, ref: str) -> str | None:
        rows = self._db.query("SELECT blob FROM pins WHERE ref = ?", (ref,))
        if not rows:
            return None
        if self.vault is None:
            raise VaultError("No device key: the kept PIN cannot be opened")
        return self.vault.decrypt(bytes(rows[0]["blob"]), ref.encode()).decode()

    def erase_pin(self, ref: str) -> None:
        """Delete the sealed PIN so it cannot be recovered from journal.db or its WAL
        (transitions out of the sync states erase the PIN by themselves)."""
        with self._db.write() as conn:
            erased = self.drop(conn, ref)
        if erased or self.scrub_pending:
            self.scrub()

    def scrub(self) -> None:
        busy, _, _ = self._db.checkpoint()
        # If another process held a read snapshot, the WAL could not be truncated yet;
        # try again at the next erase or at close().
        self.scrub_pending = bool(busy)
        if busy:
            log.warning("journal checkpoint after a PIN erase was blocked by a reader")
