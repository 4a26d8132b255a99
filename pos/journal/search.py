"""Full-text search over the journal (issue 15): an FTS5 index kept in sync by triggers.

Built with sqlite-utils' ``enable_fts`` (imported here, lazily: never on the start-up
path) as an external-content FTS5 table ``txns_fts`` over the columns a cashier
searches by: ref, masked card, meter, account, customer name, reason, token, provider
id and receipt numbers. The ``trigram`` tokenizer gives the same answers as the
substring search it replaces (the last four digits of a card, the middle of a meter
number), case-insensitively, from the index instead of a scan of every row. Terms
shorter than three characters cannot use a trigram index; the journal falls back to
``LIKE`` for those.

The whole build runs in ONE ``BEGIN IMMEDIATE`` transaction (sqlite-utils'
``executescript`` calls are split into statements on a connection that does not
commit between them), so a sale written meanwhile by another process waits instead
of being missed by both the build and the triggers.

sqlite-utils' update trigger re-indexes a row on every update; ours fires only when a
searched column is in the ``UPDATE`` (a state change does not touch the index).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pos.journal.schema import _statements

TABLE_FTS = "txns_fts"
COLUMNS = ("ref", "card_no", "meter", "account", "customer_name", "reason", "token",
           "provider_txn_id", "receipt_no", "receipt_number")
#: A trigram index answers terms of at least this many characters.
MIN_TERM = 3


class _ScriptsInOneTransaction(sqlite3.Connection):
    """``executescript`` as separate statements: no implicit COMMIT in the middle."""

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        script = sql_script.rstrip()
        if script and not script.endswith(";"):
            script += ";"  # sqlite-utils 3.36 ends its FTS script without one
        cursor = self.cursor()
        for stmt in _statements(script):
            cursor.execute(stmt)
        return cursor


def has_index(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (TABLE_FTS,)).fetchone() is not None


def ensure_index(path: Path, busy_timeout_ms: int = 10_000) -> bool:
    """Build the index and its triggers if the journal at ``path`` has none; True if
    it was built now. Cost: one pass over the rows (see the README's figures)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000,
                           factory=_ScriptsInOneTransaction)
    try:
        if has_index(conn):
            return False
        import sqlite_utils

        conn.execute("BEGIN IMMEDIATE")
        try:
            if has_index(conn):  # another process built it meanwhile
                conn.execute("ROLLBACK")
                return False
            db = sqlite_utils.Database(conn)
            db.table("txns").enable_fts(list(COLUMNS), fts_version="FTS5",
                                        create_triggers=True, tokenize="trigram")
            cols = ", ".join(COLUMNS)
            old = ", ".join(f"old.{c}" for c in COLUMNS)
            new = ", ".join(f"new.{c}" for c in COLUMNS)
            conn.execute("DROP TRIGGER txns_au")
            conn.execute(
                f"CREATE TRIGGER txns_au AFTER UPDATE OF {cols} ON txns BEGIN"
                f" INSERT INTO {TABLE_FTS} ({TABLE_FTS}, rowid, {cols})"
                f" VALUES ('delete', old.rowid, {old});"
                f" INSERT INTO {TABLE_FTS} (rowid, {cols}) VALUES (new.rowid, {new}); END")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return True
    finally:
        conn.close()


def match_expression(term: str) -> str:
    """``term`` as one FTS5 phrase (quotes doubled): matched as a substring."""
    return '"' + term.replace('"', '""') + '"'
