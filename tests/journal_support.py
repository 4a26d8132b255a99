"""Helpers for tests that make an old journal out of a new one (to test a migration)."""

from __future__ import annotations

import sqlite3

#: What schema V_CONSTRAINTS (pos/journal/schema.py) adds, to take away again.
CONSTRAINT_TRIGGERS = ("txns_check_insert", "txns_check_update", "events_check_insert",
                       "txns_ref_fixed", "txns_parent_kept")


def undo_constraints(conn: sqlite3.Connection) -> None:
    """Drop V_CONSTRAINTS's triggers and table: the schema as it was before it."""
    for trigger in CONSTRAINT_TRIGGERS:
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("DROP TABLE constraint_offenders")
