"""Issue 14: the schema enforces what Python enforces (schema V_CONSTRAINTS), on a new
journal and on one migrated from the previous version; the migration keeps every row,
reports the rows that broke a rule before, and is one transaction (a real process
killed in the middle of it leaves the journal as it was)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pos.journal import Journal, Kind, State, Tender, schema
from pos.journal.columns import NAMES
from pos.money import Money
from tests.journal_support import undo_constraints

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
#: The version before V_CONSTRAINTS.
PREVIOUS = schema.MIGRATIONS.index(schema._V_CONSTRAINTS)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def _trade(j: Journal) -> tuple[str, str]:
    """A card payment and the vend it paid for (its child), both settled."""
    d = j.create(Kind.card_debit, Money(3000, "UGX"), tender=Tender.card, card_id=7,
                 operator="ann", terminal_id="T1")
    j.transition(d.ref, State.sending)
    j.transition(d.ref, State.done)
    v = j.create(Kind.vend, d.amount, tender=Tender.card, meter="01451174955",
                 parent_ref=d.ref, operator="ann", terminal_id="T1")
    j.transition(v.ref, State.sending)
    j.transition(v.ref, State.done, token="12345678901234567890")
    return d.ref, v.ref


def _downgrade(path: Path) -> None:
    """Make the journal at ``path`` a journal of the previous schema version."""
    conn = sqlite3.connect(path, isolation_level=None)
    undo_constraints(conn)
    conn.execute(f"PRAGMA user_version = {PREVIOUS}")
    conn.close()


@pytest.fixture(params=["new", "migrated"])
def journal_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A journal with a payment and its vend: made now, or made at the previous version
    and migrated by opening it."""
    path = tmp_path / "journal.db"
    with Journal.open(path, clock=Clock()) as j:
        _trade(j)
    if request.param == "migrated":
        _downgrade(path)
        with Journal.open(path, clock=Clock()) as j:
            assert j.pragma("user_version") == schema.SCHEMA_VERSION
            assert j.constraint_offenders() == []
    return path


def _raw(path: Path) -> sqlite3.Connection:
    """A plain connection (``foreign_keys`` left off, as the sqlite3 shell has it)."""
    return sqlite3.connect(path, isolation_level=None)


_GOOD = {"ref": "000000000099", "kind": "vend", "state": "queued", "amount_minor": 100,
         "currency": "UGX", "tender": "cash", "operator": "ann", "terminal_id": "T1",
         "created_at": T0.isoformat(), "updated_at": T0.isoformat()}


def _insert(conn: sqlite3.Connection, **changes: object) -> None:
    row = {**_GOOD, **changes}
    conn.execute(f"INSERT INTO txns ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                 list(row.values()))


BAD_INSERTS: dict[str, dict[str, object]] = {
    "amount_minor": {"amount_minor": -1},
    "amount_minor not whole": {"amount_minor": 12.5},
    "amount_minor text": {"amount_minor": "a lot"},
    "kind": {"kind": "cash_back"},
    "state": {"state": "lost"},
    "tender": {"tender": "cheque"},
    "offline": {"offline": 2},
    "attempts": {"attempts": -1},
    "parent_ref missing": {"parent_ref": "000000000404"},
    "parent_ref itself": {"parent_ref": "000000000099"},
}
_RULE = {"amount_minor text": "amount_minor", "amount_minor not whole": "amount_minor",
         "offline": "offline and accepted",
         "attempts": "attempts and sends", "parent_ref missing": "parent_ref",
         "parent_ref itself": "parent_ref"}


def test_a_good_row_goes_in_through_raw_sql(journal_path: Path) -> None:
    """The rules refuse what breaks them, not everything: a sound row (with a parent
    that exists) is taken, on any connection."""
    conn = _raw(journal_path)
    parent = conn.execute("SELECT ref FROM txns WHERE kind = 'card_debit'").fetchone()[0]
    _insert(conn)
    _insert(conn, ref="000000000098", parent_ref=parent, tender="card")
    assert conn.execute("SELECT COUNT(*) FROM txns").fetchone()[0] == 4
    conn.close()


@pytest.mark.parametrize("case", sorted(BAD_INSERTS))
def test_each_rule_refuses_a_bad_row_through_raw_sql(journal_path: Path, case: str) -> None:
    conn = _raw(journal_path)
    with pytest.raises(sqlite3.IntegrityError, match=_RULE.get(case, case)):
        _insert(conn, **BAD_INSERTS[case])
    assert conn.execute("SELECT COUNT(*) FROM txns").fetchone()[0] == 2
    conn.close()


BAD_UPDATES: dict[str, tuple[str, str]] = {
    "amount_minor": ("amount_minor = -5", "amount_minor"),
    "state": ("state = 'lost'", "state"),
    "kind": ("kind = 'cash_back'", "kind"),
    "tender": ("tender = 'cheque'", "tender"),
    "accepted": ("accepted = 7", "offline and accepted"),
    "sends": ("sends = -1", "attempts and sends"),
    "parent_ref": ("parent_ref = '000000000404'", "parent_ref"),
    "ref": ("ref = '000000000404'", "a ref never changes"),
}


@pytest.mark.parametrize("case", sorted(BAD_UPDATES))
def test_each_rule_refuses_a_bad_update_through_raw_sql(journal_path: Path, case: str) -> None:
    conn = _raw(journal_path)
    sets, rule = BAD_UPDATES[case]
    before = conn.execute("SELECT * FROM txns ORDER BY ref").fetchall()
    with pytest.raises(sqlite3.IntegrityError, match=rule):
        conn.execute(f"UPDATE txns SET {sets} WHERE kind = 'card_debit'")
    assert conn.execute("SELECT * FROM txns ORDER BY ref").fetchall() == before
    conn.close()


@pytest.mark.parametrize(("values", "rule"), [
    (("vend-x", "done", None), "ref is a journal row"),
    ((None, "lost", None), "to_state"),
    ((None, "done", "lost"), "from_state"),
])
def test_events_refuse_an_unknown_row_or_state(journal_path: Path,
                                               values: tuple[str | None, str, str | None],
                                               rule: str) -> None:
    conn = _raw(journal_path)
    ref = values[0] or conn.execute("SELECT ref FROM txns LIMIT 1").fetchone()[0]
    with pytest.raises(sqlite3.IntegrityError, match=rule):
        conn.execute("INSERT INTO events(ref, at, from_state, to_state) VALUES (?, ?, ?, ?)",
                     (ref, T0.isoformat(), values[2], values[1]))
    conn.close()


def test_a_parent_leaves_only_with_its_children(journal_path: Path) -> None:
    """Archiving marks a whole family before it deletes it; a parent marked alone (its
    child still in the journal) cannot be deleted."""
    conn = _raw(journal_path)
    parent, child = (r[0] for r in conn.execute(
        "SELECT ref FROM txns ORDER BY kind = 'vend'").fetchall())
    conn.execute("UPDATE txns SET archived_at = ? WHERE ref = ?", (T0.isoformat(), parent))
    with pytest.raises(sqlite3.IntegrityError, match="only with its children"):
        conn.execute("DELETE FROM txns WHERE ref = ?", (parent,))
    conn.execute("UPDATE txns SET archived_at = ? WHERE ref = ?", (T0.isoformat(), child))
    conn.execute("DELETE FROM events")
    conn.execute("DELETE FROM txns WHERE ref IN (?, ?)", (parent, child))  # the family
    assert conn.execute("SELECT COUNT(*) FROM txns").fetchone()[0] == 0
    conn.close()


def test_the_journals_own_transaction_refuses_a_broken_row(tmp_path: Path) -> None:
    """Through the journal's connection too, and nothing of the transaction stays."""
    with Journal.open(tmp_path / "journal.db") as j:
        with pytest.raises(sqlite3.IntegrityError, match="parent_ref"), \
                j.transaction() as conn:
            _insert(conn, parent_ref="000000000404")
        assert j.list() == []


def test_the_enumerations_are_the_state_machines() -> None:
    """The migration's literal lists are the Python enums: a new state or kind needs a
    migration that replaces the triggers, and this test says so."""
    def literal(sql: str) -> set[str]:
        return {part.strip().strip("'") for part in sql.split(",")}

    assert literal(schema._KINDS_SQL) == {str(k) for k in Kind}
    assert literal(schema._STATES_SQL) == {str(s) for s in State}
    assert literal(schema._TENDERS_SQL) == {str(t) for t in Tender}


def test_the_column_list_is_the_table(journal_path: Path) -> None:
    """pos/journal/columns.py is the table the migrations build, column for column."""
    conn = _raw(journal_path)
    assert tuple(r[1] for r in conn.execute("PRAGMA table_info(txns)")) == NAMES
    conn.close()


def _old_journal_with_offenders(path: Path) -> tuple[list[tuple[object, ...]], dict[str, str]]:
    """A journal at the previous version holding rows that break the new rules (written
    by raw SQL, as a bug or a hand edit might have), and every row it holds."""
    with Journal.open(path, clock=Clock()) as j:
        for _ in range(20):
            _trade(j)
    _downgrade(path)
    conn = _raw(path)
    _insert(conn, ref="000000000001", amount_minor=-300)
    _insert(conn, ref="000000000002", parent_ref="000000000404", state="lost")
    conn.execute("INSERT INTO events(ref, at, to_state) VALUES (?, ?, ?)",
                 ("000000000003", T0.isoformat(), "done"))
    rows = conn.execute("SELECT * FROM txns ORDER BY ref").fetchall()
    conn.close()
    return rows, {"000000000001": "amount_minor is a whole number >= 0",
                  "000000000002": "state is a journal state; "
                                  "parent_ref is the ref of another journal row"}


def test_migrating_an_old_journal_keeps_every_row_and_reports_offenders(
        tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    rows, broken = _old_journal_with_offenders(path)
    with Journal.open(path, clock=Clock()) as j:
        assert j.pragma("user_version") == schema.SCHEMA_VERSION
        found = j.constraint_offenders()
        # The settled offender can still be worked on: a rule binds only what changes.
        j.transition("000000000001", State.sending)
    conn = _raw(path)
    after = conn.execute("SELECT * FROM txns ORDER BY ref").fetchall()
    conn.close()
    assert len(after) == len(rows) == 42
    assert [r for r in after if r[0] != "000000000001"] == \
        [r for r in rows if r[0] != "000000000001"]
    assert {(o["tbl"], o["key"]): o["rules"] for o in found} == {
        ("txns", "000000000001"): broken["000000000001"],
        ("txns", "000000000002"): broken["000000000002"],
        ("events", found[-1]["key"]): "ref is a journal row",
    }


_KILLED = """
import os, signal, sqlite3, sys
sys.path.insert(0, {root!r})
real = sqlite3.connect


def connect(*args, **kwargs):
    conn = real(*args, **kwargs)

    def trace(sql):
        if sql.startswith("CREATE TRIGGER txns_check_update"):  # mid-migration
            os.kill(os.getpid(), signal.SIGKILL)
    conn.set_trace_callback(trace)
    return conn


sqlite3.connect = connect
from pathlib import Path
from pos.journal import Journal
Journal.open(Path({path!r}))
print("migrated", flush=True)
"""


def test_a_process_killed_mid_migration_leaves_the_old_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    rows, _ = _old_journal_with_offenders(path)
    proc = subprocess.run([sys.executable, "-c", _KILLED.format(root=str(ROOT), path=str(path))],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -9 and "migrated" not in proc.stdout
    conn = _raw(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == PREVIOUS
    assert conn.execute("SELECT * FROM txns ORDER BY ref").fetchall() == rows
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "constraint_offenders" not in tables and "txns_check_insert" not in tables
    conn.close()
    with Journal.open(path) as j:  # the next open migrates, once
        assert j.pragma("user_version") == schema.SCHEMA_VERSION
        assert len(j.constraint_offenders()) == 3

