"""Z reports and the kept totals: the figures of each Z period (schema V_GROWTH)."""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pos.errors import PosError
from pos.journal.codec import to_z_report
from pos.journal.db import Database, dumps
from pos.journal.models import ZReport, from_iso, iso

#: The Z period a row made now belongs to (Z #N closes period N): a primary-key lookup.
OPEN_PERIOD = "(SELECT COALESCE(MAX(number), 0) + 1 FROM z_reports)"


class ZStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def open_period(self) -> int:
        """The Z period rows made now belong to (the next Z report's number)."""
        return int(self._db.query(f"SELECT {OPEN_PERIOD} AS p")[0]["p"])

    def totals(self, period: int) -> builtins.list[dict[str, Any]]:
        """The kept totals of one Z period: one dict per (state, kind, tender, currency,
        operator) with ``count`` and ``amount_minor`` (rows with a zero count left out)."""
        rows = self._db.query(
            "SELECT state, kind, tender, currency, operator, count, amount_minor FROM totals"
            " WHERE z_period = ? AND count != 0 ORDER BY state, kind, tender, currency, operator",
            (int(period),))
        return [dict(r) for r in rows]

    def recomputed_totals(self, period: int) -> builtins.list[dict[str, Any]]:
        """The same figures as :meth:`totals`, recomputed from the rows (tests, doctor)."""
        rows = self._db.query(
            "SELECT state, kind, tender, currency, operator, COUNT(*) AS count,"
            " SUM(amount_minor) AS amount_minor FROM txns WHERE z_period = ?"
            " GROUP BY state, kind, tender, currency, operator"
            " ORDER BY state, kind, tender, currency, operator", (int(period),))
        return [dict(r) for r in rows]

    def _insert(self, conn: sqlite3.Connection, number: int, payload: dict[str, Any]) -> ZReport:
        now = iso(self._db.now())
        text = dumps(payload)
        conn.execute("INSERT INTO z_reports(number, payload_json, created_at) VALUES (?,?,?)",
                     (int(number), text, now))
        return ZReport(int(number), json.loads(text, parse_float=Decimal),
                       from_iso(now))  # type: ignore[arg-type]

    def z_close(self, number: int, build: Callable[[], dict[str, Any]]) -> ZReport:
        """Store Z report ``number`` with the payload ``build()`` computes, in ONE write
        transaction: no sale can slip into the period between its figures and its close."""
        with self._db.write() as conn:
            if int(conn.execute(f"SELECT {OPEN_PERIOD}").fetchone()[0]) != int(number):
                raise PosError(f"Z report {number} already exists and cannot be changed")
            return self._insert(conn, number, build())

    def z_report_put(self, number: int, payload: dict[str, Any]) -> ZReport:
        """Store Z report ``number``; it can never be changed or deleted afterwards."""
        try:
            with self._db.write() as conn:
                return self._insert(conn, number, payload)
        except sqlite3.IntegrityError:
            raise PosError(f"Z report {number} already exists and cannot be changed") from None

    def z_reports(self) -> builtins.list[ZReport]:
        return [to_z_report(r) for r in self._db.query("SELECT * FROM z_reports ORDER BY number")]

    def last_z(self) -> ZReport | None:
        """The newest Z report (a primary-key lookup)."""
        rows = self._db.query("SELECT * FROM z_reports ORDER BY number DESC LIMIT 1")
        return to_z_report(rows[0]) if rows else None
