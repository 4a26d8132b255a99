"""The operators table: who may sign in, with which role (PIN hashes only, never PINs)."""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Callable

from pos.errors import InputError
from pos.journal.codec import to_operator
from pos.journal.db import Database
from pos.journal.models import Operator, iso

_ROLES = ("cashier", "supervisor")


def _refuse_pin(pin_hash: str, what: str) -> None:
    if pin_hash.isdigit() and len(pin_hash) <= 12:
        raise ValueError(f"{what} takes a PIN hash, never a PIN")


class OperatorStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def operator_put(self, name: str, role: str, pin_hash: str, *,
                     also: Callable[[sqlite3.Connection], None] | None = None) -> None:
        """Add an operator or replace its role and PIN hash; ``also`` writes the rows
        that go with it (the security trail) in the same transaction."""
        if role not in _ROLES:
            raise ValueError("role is cashier or supervisor")
        _refuse_pin(pin_hash, "operator_put")
        now = iso(self._db.now())
        with self._db.write() as conn:
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
        if role is not None and role not in _ROLES:
            raise ValueError("role is cashier or supervisor")
        if pin_hash is not None:
            _refuse_pin(pin_hash, "operator_update")
        now = iso(self._db.now())
        sets: list[str] = ["updated_at = ?"]
        params: list[str | None] = [now]
        if role is not None:
            sets.append("role = ?")
            params.append(role)
        if pin_hash is not None:
            sets.append("pin_hash = ?")
            params.append(pin_hash)
        if disabled is not None:
            sets.append("disabled_at = ?")
            params.append(now if disabled else None)
        with self._db.write() as conn:
            cur = conn.execute(f"UPDATE operators SET {', '.join(sets)} WHERE name = ?",
                               (*params, name))
            if cur.rowcount != 1:
                raise InputError(f"No operator called {name!r}")
            if also is not None:
                also(conn)

    def operator_get(self, name: str) -> Operator | None:
        rows = self._db.query("SELECT * FROM operators WHERE name = ?", (name,))
        return to_operator(rows[0]) if rows else None

    def operators(self) -> builtins.list[Operator]:
        return [to_operator(r) for r in self._db.query("SELECT * FROM operators ORDER BY name")]
