"""A journal that carries a year of trade (issue 15): the search index, counts from
indexes, refund checks that are scheduled, archiving."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pos.journal import Journal, Kind, State, Tender
from pos.journal.search import TABLE_FTS
from pos.money import Money


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal(tmp_path: Path, clock: Clock) -> Journal:
    j = Journal.open(tmp_path / "journal.db", clock=clock)
    yield j  # type: ignore[misc]
    j.close()


def _sale(journal: Journal, **kw: object) -> str:
    return journal.create(Kind.vend, Money(1000, "UGX"), tender=Tender.cash, operator="amina",
                          terminal_id="T1", **kw).ref  # type: ignore[arg-type]


def test_search_uses_the_full_text_index_and_follows_updates(journal: Journal) -> None:
    a = _sale(journal, meter="01451174955", customer_name="Jane Akello")
    b = _sale(journal, meter="04040404040", card_no="1613*****65219")
    plan = " ".join(str(r[3]) for r in journal.query(
        f"EXPLAIN QUERY PLAN SELECT rowid FROM {TABLE_FTS} WHERE {TABLE_FTS} MATCH 'abc'"))
    assert "VIRTUAL TABLE INDEX" in plan
    assert [t.ref for t in journal.list(search="akello")] == [a]
    assert [t.ref for t in journal.list(search="5219")] == [b]  # the card's last four
    assert [t.ref for t in journal.list(search="1174")] == [a]  # the middle of a meter
    journal.transition(a, State.sending)
    journal.transition(a, State.done, token="89910000111122223333")
    assert [t.ref for t in journal.list(search="11112222")] == [a]
    assert journal.list(search="zz") == []  # short terms: LIKE, same answers
    assert [t.ref for t in journal.list(search="Ja")] == [a]
    rows = journal.query(f"SELECT COUNT(*) FROM {TABLE_FTS}")
    assert rows[0][0] == 2
    journal.query(f"INSERT INTO {TABLE_FTS}({TABLE_FTS}) VALUES ('integrity-check')")


def test_an_old_journal_gets_its_index_on_first_search(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "journal.db"
    with Journal.open(path, clock=clock) as j:
        ref = _sale(j, meter="01451174955")
    conn = sqlite3.connect(path)
    conn.executescript(f"DROP TABLE {TABLE_FTS}; DROP TRIGGER txns_ai; DROP TRIGGER txns_ad;"
                       " DROP TRIGGER txns_au;")
    conn.close()
    with Journal.open(path, clock=clock) as j:
        later = _sale(j, meter="01451174000")
        assert [t.ref for t in j.list(search="0145117")] == [later, ref]
        newest = _sale(j, meter="01451174111")  # the triggers keep it in step
        assert [t.ref for t in j.list(search="74111")] == [newest]


def test_flagged_count_is_counted_not_loaded(journal: Journal) -> None:
    for _ in range(3):
        ref = _sale(journal, state=State.queued, offline=True)
        journal.transition(ref, State.expired)
    assert journal.flagged_count() == 3 == len(journal.flagged())


def test_the_kept_flagged_count_follows_inserts_states_deletes_and_migration(
        tmp_path: Path, clock: Clock) -> None:
    """The status bar's count is kept by triggers (read, not counted, every second): it
    equals the flagged rows counted after each way a row enters or leaves the set."""
    from pos.journal import schema

    path = tmp_path / "journal.db"
    j = Journal.open(path, clock=clock)
    try:
        refs = []
        for _ in range(4):
            ref = _sale(j, state=State.queued, offline=True)
            j.transition(ref, State.expired)  # into the set by a state change
            refs.append(ref)
        odd = _sale(j, state=State.queued)
        j.transition(odd, State.review)
        assert j.flagged_count() == 5 == j.counted_flagged()
        j.transition(refs[0], State.resolved, note="cash collected")  # out of the set
        j.transition(odd, State.failed)  # flagged to flagged: still one
        assert j.flagged_count() == 4 == j.counted_flagged()
        with j.transaction() as conn:  # an archived row leaves the journal
            conn.execute("UPDATE txns SET archived_at = 'x' WHERE ref = ?", (refs[2],))
            conn.execute("DELETE FROM events WHERE ref = ?", (refs[2],))
            conn.execute("DELETE FROM txns WHERE ref = ?", (refs[2],))
        assert j.flagged_count() == 3 == j.counted_flagged()
        with j.transaction() as conn:  # a journal from before the kept count
            for trigger in ("insert", "state", "delete"):
                conn.execute(f"DROP TRIGGER txns_flagged_count_{trigger}")
            conn.execute("DROP TABLE kept_counts")
    finally:
        j.close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {schema.MIGRATIONS.index(schema._V_FLAGGED_COUNT)}")
    raw.commit()
    raw.close()
    j = Journal.open(path, clock=clock)
    try:
        assert j.pragma("user_version") == schema.SCHEMA_VERSION
        assert j.flagged_count() == 3 == j.counted_flagged()  # counted once, at migration
    finally:
        j.close()


def test_refund_checks_are_scheduled_and_cleared(journal: Journal, clock: Clock) -> None:
    """A failed card-paid vend is due for one refund check; once checked it no longer
    costs a pass anything, however many such sales the journal holds."""
    debit = journal.create(Kind.card_debit, Money(5000, "UGX"), tender=Tender.card,
                           operator="amina", terminal_id="T1", card_id=7)
    journal.transition(debit.ref, State.sending)
    journal.transition(debit.ref, State.done)
    vend = journal.create(Kind.vend, Money(5000, "UGX"), tender=Tender.card, operator="amina",
                          terminal_id="T1", parent_ref=debit.ref, meter="01451174955")
    journal.transition(vend.ref, State.sending)
    journal.transition(vend.ref, State.failed)
    cash = _sale(journal)
    journal.transition(cash, State.sending)
    journal.transition(cash, State.failed)  # cash: no refund to check
    assert [t.ref for t in journal.refund_checks_due(clock.now)] == [vend.ref]
    journal.refund_checked(vend.ref, clock.now + timedelta(seconds=60))
    assert journal.refund_checks_due(clock.now) == []
    clock.now += timedelta(seconds=61)
    assert [t.ref for t in journal.refund_checks_due(clock.now)] == [vend.ref]
    journal.refund_checked(vend.ref, None)
    clock.now += timedelta(days=30)
    assert journal.refund_checks_due(clock.now) == []
    plan = " ".join(str(r[3]) for r in journal.query(
        "EXPLAIN QUERY PLAN SELECT * FROM txns WHERE next_attempt_at IS NOT NULL AND"
        " tender = 'card' AND kind IN ('vend', 'postpaid') AND state IN ('failed',"
        " 'declined', 'declined_offline') AND next_attempt_at <= '2027'"))
    assert "USING INDEX txns_state_due (state=? AND next_attempt_at" in plan


def test_flagged_rows_come_from_their_partial_index_in_order(journal: Journal) -> None:
    """Issue 15 at 1,000,000 rows: a report's first flagged lines and the flagged page
    read the partial index txns_flagged (no sort of every flagged row)."""
    from pos.journal.schema import FLAGGED_SQL
    from pos.journal.states import FLAGGED_STATES

    expected = "state IN (" + ", ".join(
        f"'{s}'" for s in sorted(str(x) for x in FLAGGED_STATES)) + ")"
    assert expected == FLAGGED_SQL
    refs = []
    for _ in range(5):
        ref = _sale(journal, state=State.queued, offline=True)
        journal.transition(ref, State.expired)
        refs.append(ref)
    _sale(journal)
    from pos.journal.txnstore import _FLAGGED_FROM

    for sql in (f"SELECT ref FROM {_FLAGGED_FROM} ORDER BY created_at, rowid LIMIT 3",
                f"SELECT COUNT(*) FROM {_FLAGGED_FROM}"):
        plan = " ".join(str(r[3]) for r in journal.query("EXPLAIN QUERY PLAN " + sql))
        assert "txns_flagged" in plan and "TEMP B-TREE" not in plan, plan
    assert [t.ref for t in journal.ref_lines(FLAGGED_STATES, limit=3)] == refs[:3]
    assert journal.refs_in(FLAGGED_STATES) == refs
    assert [t.ref for t in journal.flagged(limit=2)] == refs[:2]
    assert journal.flagged_count() == 5
