"""The FTS build's connection runs sqlite-utils' scripts statement by statement (one
transaction); sqlite-utils at the declared floor (3.36) ends a script without ';'."""

from __future__ import annotations

from pathlib import Path

from pos.journal import search


def test_a_script_whose_last_statement_has_no_semicolon_runs_whole(tmp_path: Path) -> None:
    conn = search._ScriptsInOneTransaction(tmp_path / "s.db", isolation_level=None)
    try:
        conn.executescript("CREATE TABLE a (x);\nCREATE TABLE b (\n  y\n)\n")
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master ORDER BY name")]
    finally:
        conn.close()
    assert names == ["a", "b"]
