"""The write-ahead journal: state machine, durability settings, migrations, queries, export."""

from __future__ import annotations

import csv
import io
import itertools
import sqlite3
import subprocess
import sys
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pos.errors import InputError, PosError
from pos.journal import (
    FINAL_STATES,
    FLAGGED_STATES,
    SYNC_STATES,
    TRANSITIONS,
    DuplicateRef,
    IllegalTransition,
    Journal,
    Kind,
    State,
    Tender,
    UnknownTransaction,
    export_csv,
    is_final,
    is_flagged,
    needs_sync,
)
from pos.journal.schema import SCHEMA_VERSION
from pos.money import Money

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
UGX = "UGX"


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def journal(tmp_path: Path, clock: FakeClock):
    j = Journal.open(tmp_path / "journal.db", clock=clock)
    yield j
    j.close()


def ugx(n: int) -> Money:
    return Money(n, UGX)


def make(j: Journal, kind: Kind = Kind.card_debit, amount: int = 1000, **kw):
    kw.setdefault("operator", "alice")
    kw.setdefault("terminal_id", "POS-001")
    return j.create(kind, ugx(amount), **kw)


def path_to(target: State) -> list[State]:
    """States to walk through from ``created`` to reach ``target`` (BFS over the table)."""
    prev: dict[State, State | None] = {State.created: None}
    todo = deque([State.created])
    while todo:
        cur = todo.popleft()
        for nxt in sorted(TRANSITIONS[cur]):
            if nxt not in prev:
                prev[nxt] = cur
                todo.append(nxt)
    steps: list[State] = []
    s: State | None = target
    while s is not None and s is not State.created:
        steps.append(s)
        s = prev[s]
    return list(reversed(steps))


# ------------------------------------------------------------- state machine
def test_every_state_is_reachable_and_has_a_row_in_the_table() -> None:
    assert set(TRANSITIONS) == set(State)
    for state in State:
        if state is not State.created:
            assert path_to(state), state


def test_state_classes() -> None:
    assert {State.done, State.declined, State.cancelled, State.resolved} == FINAL_STATES
    assert {State.queued, State.sending, State.unknown, State.pending} == SYNC_STATES
    assert {State.declined_offline, State.expired, State.failed, State.review} == FLAGGED_STATES
    for s in State:
        assert is_final(s) == (s in FINAL_STATES)
        assert needs_sync(s) == (s in SYNC_STATES)
        assert is_flagged(s) == (s in FLAGGED_STATES)
        # final states have no way out; nothing else is a dead end
        assert (not TRANSITIONS[s]) == is_final(s)


@pytest.mark.parametrize("old", list(State))
def test_transition_table_enforced(journal: Journal, old: State) -> None:
    for new in State:
        txn = make(journal)
        for step in path_to(old):
            journal.transition(txn.ref, step)
        before = journal.events(txn.ref)
        if new in TRANSITIONS[old]:
            after = journal.transition(txn.ref, new, note=f"{old}->{new}")
            assert after.state is new
            events = journal.events(txn.ref)
            assert len(events) == len(before) + 1
            assert (events[-1].from_state, events[-1].to_state) == (old, new)
            assert events[-1].note == f"{old}->{new}"
        else:
            with pytest.raises(IllegalTransition):
                journal.transition(txn.ref, new)
            assert journal.require(txn.ref).state is old
            assert journal.events(txn.ref) == before


def test_documented_transitions_exactly() -> None:
    S = State
    expected = {
        S.created: {S.queued, S.sending, S.cancelled, S.declined},
        S.queued: {S.sending, S.expired, S.cancelled, S.review, S.failed},
        S.sending: {S.done, S.declined, S.declined_offline, S.pending, S.unknown, S.failed,
                    S.queued, S.review, S.cancelled},
        S.unknown: {S.sending, S.done, S.declined, S.declined_offline, S.pending, S.failed,
                    S.queued, S.review, S.cancelled},
        S.pending: {S.pending, S.done, S.failed, S.unknown, S.review},
        S.declined_offline: {S.resolved},
        S.expired: {S.resolved},
        S.failed: {S.resolved},
        S.review: {S.resolved, S.done, S.cancelled, S.queued, S.failed},
    }
    for s in State:
        assert set(TRANSITIONS[s]) == expected.get(s, set()), s


# ------------------------------------------------------ durability, schema
def test_durability_pragmas(journal: Journal, tmp_path: Path) -> None:
    assert journal.pragma("journal_mode") == "wal"
    assert journal.pragma("synchronous") == 2  # FULL
    assert journal.pragma("secure_delete") == 1
    assert journal.pragma("busy_timeout") > 0
    assert journal.pragma("user_version") == SCHEMA_VERSION
    # WAL mode is persistent in the file: a plain connection sees it too
    make(journal)
    raw = sqlite3.connect(tmp_path / "journal.db")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_journal_file_is_private(journal: Journal, tmp_path: Path) -> None:
    assert (tmp_path / "journal.db").stat().st_mode & 0o077 == 0


def test_an_empty_journal_file_is_refused_not_recreated(tmp_path: Path,
                                                         clock: FakeClock) -> None:
    # A zero-length journal.db is SD-card damage (a new journal is built under another
    # name and linked into place whole, so a crash cannot leave one): never re-created.
    from pos.journal import JournalDamaged

    path = tmp_path / "sub" / "journal.db"
    path.parent.mkdir()
    path.write_bytes(b"")
    with pytest.raises(JournalDamaged, match="is empty"):
        Journal.open(path, clock=clock)
    assert path.read_bytes() == b""
    fresh = tmp_path / "fresh" / "journal.db"
    with Journal.open(fresh, clock=clock) as j:
        assert j.pragma("user_version") == SCHEMA_VERSION
        ref = make(j, reason="first").ref
    with Journal.open(fresh, clock=clock) as j:
        assert j.require(ref).reason == "first"
        assert [e.to_state for e in j.events(ref)] == [State.created]


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(PosError, match="newer"):
        Journal.open(path)


def test_append_only_tables_refuse_raw_changes(journal: Journal, tmp_path: Path) -> None:
    ref = make(journal).ref
    journal.z_report_put(1, {"sales": 1})
    raw = sqlite3.connect(tmp_path / "journal.db")
    for sql in ("UPDATE events SET note = 'x'", "DELETE FROM events",
                "DELETE FROM txns", "UPDATE z_reports SET payload_json = '{}'",
                "DELETE FROM z_reports"):
        with pytest.raises(sqlite3.DatabaseError):
            raw.execute(sql)
    raw.close()
    assert journal.require(ref)
    assert not hasattr(journal, "delete")


# ------------------------------------------------------------------ create
def test_create_defaults_and_event(journal: Journal) -> None:
    txn = make(journal, card_id=108, card_no="1613*****65219", wallet="Current Account",
               reason="groceries", details={"qr": "x"})
    assert len(txn.ref) == 12 and txn.ref.isdigit()
    assert txn.state is State.created
    assert txn.amount == ugx(1000)
    assert txn.tender is Tender.none
    assert txn.created_at == T0 and txn.updated_at == T0
    assert txn.next_attempt_at is None and txn.settled_at is None
    assert txn.details == {"qr": "x"}
    ev = journal.events(txn.ref)
    assert len(ev) == 1
    assert ev[0].from_state is None and ev[0].to_state is State.created
    assert ev[0].note == "created" and ev[0].operator == "alice"


def test_create_queued_offline_is_due_at_once(journal: Journal) -> None:
    txn = make(journal, state=State.queued, offline=True)
    assert txn.offline and txn.next_attempt_at == T0
    assert [t.ref for t in journal.due_for_sync(T0)] == [txn.ref]


def test_create_rejects_bad_input(journal: Journal) -> None:
    with pytest.raises(ValueError):
        make(journal, state=State.done)
    with pytest.raises(InputError):
        make(journal, amount=-5)
    with pytest.raises(UnknownTransaction):
        make(journal, parent_ref="999999999999")
    with pytest.raises(ValueError):
        make(journal, operator="")


def test_card_number_is_stored_masked(journal: Journal) -> None:
    assert make(journal, card_no="1613*****65219").card_no == "1613*****65219"
    assert make(journal, card_no="1613000012365219").card_no == "1613********5219"


def test_ref_is_unique(journal: Journal) -> None:
    make(journal, ref="000000000042")
    with pytest.raises(DuplicateRef):
        make(journal, ref="000000000042")
    assert len(journal.list()) == 1


def test_drawn_ref_clash_draws_again(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    make(journal, ref="111111111111")
    draws = iter(["111111111111", "111111111111", "222222222222"])
    monkeypatch.setattr(journal.txns, "draw_ref", lambda: next(draws))
    assert make(journal).ref == "222222222222"


def test_many_refs_are_distinct(journal: Journal) -> None:
    refs = {make(journal).ref for _ in range(200)}
    assert len(refs) == 200


# -------------------------------------------------------------- transition
def test_transition_updates_fields_in_the_same_step(journal: Journal, clock: FakeClock) -> None:
    txn = make(journal, kind=Kind.vend, meter="04040404040")
    clock.advance(seconds=5)
    journal.transition(txn.ref, State.sending)
    clock.advance(seconds=5)
    done = journal.transition(
        txn.ref, State.done, token="66430474307561657038", receipt_no="R-77",
        units="12.5", charges=[{"name": "VAT", "amount": "180"}], total=ugx(1180),
        customer_name="JANE DOE", provider_txn_id=4711, details={"code": "elec000"},
    )
    assert done.token_groups == "6643 0474 3075 6165 7038"
    assert done.charges == [{"name": "VAT", "amount": "180"}]
    assert done.total == ugx(1180)
    assert done.provider_txn_id == "4711"
    assert done.settled_at == T0 + timedelta(seconds=10)
    assert done.updated_at == done.settled_at
    assert done.next_attempt_at is None
    data = done.to_json()
    assert data["amount"] == {"minor": 1000, "currency": "UGX", "display": "UGX 1,000"}
    assert data["token_groups"] == "6643 0474 3075 6165 7038"
    assert data["state"] == "done" and data["final"] is True


def test_link_down_turns_a_sale_offline(journal: Journal) -> None:
    ref = make(journal, kind=Kind.vend, tender=Tender.cash).ref
    journal.transition(ref, State.sending)
    txn = journal.transition(ref, State.queued, offline=True, note="link down")
    assert txn.offline and txn.state is State.queued
    assert journal.queued_vend_exposure().count == 1


def test_transition_error_is_kept(journal: Journal) -> None:
    ref = make(journal).ref
    journal.transition(ref, State.sending)
    txn = journal.transition(ref, State.unknown, error="read timeout")
    assert txn.last_error == "read timeout"
    assert journal.events(ref)[-1].error == "read timeout"


def test_sending_holds_a_lease(journal: Journal, clock: FakeClock) -> None:
    ref = make(journal).ref
    journal.transition(ref, State.sending)
    assert journal.due_for_sync(T0) == []
    lease_end = T0 + timedelta(seconds=journal.sending_lease)
    assert [t.ref for t in journal.due_for_sync(lease_end)] == [ref]
    clock.advance(seconds=3)
    txn = journal.transition(ref, State.unknown)
    assert txn.next_attempt_at == clock.now  # due at once for resolution by query


def test_update_changes_fields_not_state(journal: Journal, clock: FakeClock) -> None:
    ref = make(journal, state=State.queued, offline=True, details={"a": 1}).ref
    later = T0 + timedelta(minutes=2)
    txn = journal.update(ref, attempts=1, next_attempt_at=later, last_error="link down",
                         details={"b": 2})
    assert (txn.attempts, txn.next_attempt_at, txn.last_error) == (1, later, "link down")
    assert txn.details == {"a": 1, "b": 2}
    assert len(journal.events(ref)) == 1  # no note: no event
    journal.update(ref, note="retry scheduled")
    assert journal.events(ref)[-1].note == "retry scheduled"
    assert journal.events(ref)[-1].from_state is State.queued
    with pytest.raises(ValueError):
        journal.update(ref, state=State.done)
    with pytest.raises(TypeError):
        journal.update(ref, amount=ugx(5))
    with pytest.raises(TypeError):
        journal.update(ref, attempts="1")
    with pytest.raises(UnknownTransaction):
        journal.update("000000000000", attempts=1)


def test_naive_datetimes_are_refused(journal: Journal) -> None:
    ref = make(journal).ref
    with pytest.raises(ValueError, match="timezone"):
        journal.update(ref, next_attempt_at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone"):
        journal.due_for_sync(datetime(2025, 1, 1))


def test_resolution_keeps_who_and_why(journal: Journal) -> None:
    ref = make(journal, state=State.queued, offline=True).ref
    journal.transition(ref, State.sending)
    journal.transition(ref, State.declined_offline, error="Insufficient balance")
    assert [t.ref for t in journal.flagged()] == [ref]
    journal.transition(ref, State.resolved, note="customer paid cash", operator="sam")
    assert journal.flagged() == []
    ev = journal.events(ref)[-1]
    assert (ev.to_state, ev.note, ev.operator) == (State.resolved, "customer paid cash", "sam")


# ----------------------------------------------------------------- queries
def test_due_for_sync_is_oldest_first_and_respects_next_attempt(
    journal: Journal, clock: FakeClock
) -> None:
    refs = []
    for i in range(5):
        refs.append(make(journal, state=State.queued, offline=True, reason=f"r{i}").ref)
        clock.advance(seconds=1)
    make(journal)  # created: not the sync worker's business
    done = make(journal, state=State.queued, offline=True).ref
    journal.transition(done, State.sending)
    journal.transition(done, State.done)
    # the oldest is backed off into the future; a pending one is due
    journal.update(refs[0], next_attempt_at=T0 + timedelta(hours=1))
    journal.transition(refs[3], State.sending)
    journal.transition(refs[3], State.pending)
    now = clock.now
    due = [t.ref for t in journal.due_for_sync(now)]
    assert due == [refs[1], refs[2], refs[3], refs[4]]
    assert [t.ref for t in journal.due_for_sync(now, limit=2)] == [refs[1], refs[2]]
    assert [t.ref for t in journal.due_for_sync(T0 + timedelta(hours=2))] == [refs[0], *due]


def test_list_filters_and_search(journal: Journal, clock: FakeClock) -> None:
    a = make(journal, kind=Kind.vend, meter="04040404040", customer_name="JANE DOE").ref
    clock.advance(minutes=1)
    b = make(journal, kind=Kind.card_debit, card_no="1613*****65219", reason="50%_off").ref
    clock.advance(minutes=1)
    c = make(journal, kind=Kind.postpaid, account="123456").ref
    journal.transition(c, State.cancelled)
    assert [t.ref for t in journal.list()] == [c, b, a]
    assert [t.ref for t in journal.list(newest_first=False)] == [a, b, c]
    assert [t.ref for t in journal.list(kinds=[Kind.vend, "postpaid"])] == [c, a]
    assert [t.ref for t in journal.list(states=[State.cancelled])] == [c]
    assert journal.list(states=[]) == []
    assert [t.ref for t in journal.list(since=T0 + timedelta(minutes=1))] == [c, b]
    assert [t.ref for t in journal.list(until=T0 + timedelta(minutes=1))] == [a]
    assert [t.ref for t in journal.list(search="jane")] == [a]
    assert [t.ref for t in journal.list(search="65219")] == [b]
    assert [t.ref for t in journal.list(search="50%_")] == [b]
    assert journal.list(search="%%") == []  # wildcards are literal
    assert [t.ref for t in journal.list(search=c[3:9])] == [c]
    assert [t.ref for t in journal.list(limit=1, offset=1)] == [b]


def test_children_link_debit_vend_and_refund(journal: Journal, clock: FakeClock) -> None:
    debit = make(journal, tender=Tender.card).ref
    clock.advance(seconds=1)
    vend = make(journal, kind=Kind.vend, tender=Tender.card, parent_ref=debit).ref
    clock.advance(seconds=1)
    refund = make(journal, kind=Kind.card_refund, parent_ref=debit).ref
    assert [t.ref for t in journal.children(debit)] == [vend, refund]
    assert journal.children(vend) == []


def test_offline_exposure_math(journal: Journal, clock: FakeClock) -> None:
    def offline_debit(card: int, amount: int, final: State | None = None) -> str:
        ref = make(journal, amount=amount, card_id=card, state=State.queued, offline=True).ref
        if final is not None:
            journal.transition(ref, State.sending)
            journal.transition(ref, final)
        clock.advance(seconds=1)
        return ref

    offline_debit(7, 1000)
    offline_debit(7, 2000)
    offline_debit(8, 500)
    offline_debit(7, 4000, final=State.done)  # settled: no longer outstanding
    offline_debit(7, 8000, final=State.declined_offline)  # refused: not outstanding
    unknown = offline_debit(8, 300)
    journal.transition(unknown, State.sending)
    journal.transition(unknown, State.unknown)
    make(journal, amount=9999, card_id=7)  # online debit: not offline exposure
    make(journal, kind=Kind.vend, amount=7777, state=State.queued, offline=True,
         tender=Tender.cash)
    make(journal, kind=Kind.vend, amount=5555, state=State.queued, tender=Tender.cash)

    total = journal.offline_exposure()
    assert total.count == 4 and total.total(UGX) == ugx(3800)
    assert total.card_id is None

    seven = journal.offline_exposure(7)
    assert seven.count == 4 and seven.card_count == 2
    assert seven.card_total(UGX) == ugx(3000)
    assert seven.consecutive == 4  # never seen online: every offline debit counts

    # seen online after the first two offline debits on card 7
    journal.card_cache_put(7, "1613*****65219", "active", True, ["Current Account"], ugx(5000),
                           T0 + timedelta(seconds=1, milliseconds=500))
    assert journal.offline_exposure(7).consecutive == 2

    vends = journal.queued_vend_exposure()
    assert vends.count == 1 and vends.total(UGX) == ugx(7777)


def test_receipt_numbers_monotonic_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal.open(path) as j:
        first = [j.next_receipt_no() for _ in range(3)]
    with Journal.open(path) as j:
        second = [j.next_receipt_no() for _ in range(2)]
    assert first + second == [1, 2, 3, 4, 5]


def test_card_cache_roundtrip(journal: Journal) -> None:
    assert journal.card_cache_get(108) is None
    journal.card_cache_put(108, "1613*****65219", "active", True,
                           ["Current Account", "Credit Account"], ugx(25_000), T0)
    journal.card_cache_put(108, "1613*****65219", "locked", False, ["Current Account"], None,
                           T0 + timedelta(hours=1))
    card = journal.card_cache_get(108)
    assert card is not None
    assert (card.status, card.has_pin, card.wallets, card.balance) == (
        "locked", False, ("Current Account",), None)
    assert card.last_online_at == T0 + timedelta(hours=1)


def test_operators_z_reports_meta(journal: Journal) -> None:
    journal.operator_put("alice", "cashier", "scrypt$abc$def")
    journal.operator_put("sam", "supervisor", "scrypt$123$456")
    journal.operator_put("alice", "supervisor", "scrypt$new$hash")
    assert [(o.name, o.role) for o in journal.operators()] == [
        ("alice", "supervisor"), ("sam", "supervisor")]
    op = journal.operator_get("alice")
    assert op is not None and op.pin_hash == "scrypt$new$hash"
    assert journal.operator_get("nobody") is None
    with pytest.raises(ValueError):
        journal.operator_put("bob", "cashier", "1234")  # a PIN, not a hash
    with pytest.raises(ValueError):
        journal.operator_put("bob", "owner", "scrypt$x$y")

    journal.z_report_put(1, {"total": {"minor": 5000, "currency": "UGX"}, "count": 3})
    with pytest.raises(PosError, match="already exists"):
        journal.z_report_put(1, {"total": 0})
    assert [(z.number, z.payload["count"]) for z in journal.z_reports()] == [(1, 3)]

    assert journal.meta_get("last_sync") is None
    journal.meta_set("last_sync", "x")
    journal.meta_set("last_sync", "y")
    assert journal.meta_get("last_sync") == "y"


# -------------------------------------------------------------- concurrency
_WRITER = """
import sys
from pathlib import Path
from pos.journal import Journal, Kind, State
from pos.money import Money
j = Journal.open(Path(sys.argv[1]))
for i in range(40):
    t = j.create(Kind.vend, Money(100, "UGX"), operator=sys.argv[2], terminal_id="T",
                 state=State.queued, offline=True)
    j.transition(t.ref, State.sending)
    j.transition(t.ref, State.done, receipt_number=j.next_receipt_no())
j.close()
"""


def test_two_processes_share_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    Journal.open(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), name])
             for name in ("tui", "sync")]
    for p in procs:
        assert p.wait(timeout=120) == 0
    with Journal.open(path) as j:
        rows = j.list(limit=1000)
        assert len(rows) == 80
        assert all(t.state is State.done for t in rows)
        numbers = sorted(t.receipt_number for t in rows if t.receipt_number is not None)
        assert numbers == list(range(1, 81))
        assert {t.operator for t in rows} == {"tui", "sync"}
        assert all(len(j.events(t.ref)) == 3 for t in rows[:5])


async def test_usable_from_asyncio(journal: Journal) -> None:
    import asyncio

    refs = await asyncio.gather(*(asyncio.to_thread(lambda: make(journal).ref)
                                  for _ in range(10)))
    assert len(set(refs)) == 10
    assert len(journal.list()) == 10


# ------------------------------------------------------------------- export
def test_csv_export(journal: Journal, clock: FakeClock, tmp_path: Path) -> None:
    a = make(journal, kind=Kind.vend, amount=20_000, meter="04040404040",
             customer_name="=HYPERLINK(\"x\")", tender=Tender.cash)
    journal.transition(a.ref, State.sending)
    journal.transition(a.ref, State.done, token="66430474307561657038", receipt_number=1)
    clock.advance(minutes=1)
    b = make(journal, amount=1500, card_no="1613*****65219", reason='a "quoted", reason')
    buf = io.StringIO()
    assert export_csv(journal, buf) == 2
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert [r["ref"] for r in rows] == [a.ref, b.ref]
    assert rows[0]["amount"] == "20000" and rows[0]["currency"] == "UGX"
    assert rows[0]["state"] == "done" and rows[0]["token"] == "66430474307561657038"
    assert rows[0]["customer_name"].startswith("'=")  # formula defused
    assert rows[1]["reason"] == 'a "quoted", reason'
    assert rows[1]["settled_at"] == ""
    out = tmp_path / "export.csv"
    assert export_csv(journal, out, states=[State.done]) == 1
    assert out.read_text().count("\n") == 2


def test_csv_export_pages_through_everything(journal: Journal) -> None:
    for _ in itertools.repeat(None, 1203):
        make(journal)
    buf = io.StringIO()
    assert export_csv(journal, buf) == 1203
    assert len(buf.getvalue().splitlines()) == 1204


def test_a_file_that_is_not_a_journal_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.write_bytes(b"this is not an SQLite database at all" * 100)
    with pytest.raises(PosError, match="is not a SQLite database"):
        Journal.open(path)


_CRASHER = """
import sys
from pathlib import Path
from pos.journal import Journal, Kind, State
from pos.money import Money
j = Journal.open(Path(sys.argv[1]))
while True:
    t = j.create(Kind.card_debit, Money(100, "UGX"), operator="a", terminal_id="T")
    print("created", t.ref, flush=True)
    j.transition(t.ref, State.sending)
    print("sending", t.ref, flush=True)
    j.transition(t.ref, State.done, provider_txn_id="p" + t.ref)
    print("done", t.ref, flush=True)
"""


def test_sigkill_mid_stream_loses_nothing_committed(tmp_path: Path) -> None:
    import signal

    path = tmp_path / "journal.db"
    Journal.open(path).close()
    proc = subprocess.Popen([sys.executable, "-c", _CRASHER, str(path)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    last: dict[str, str] = {}
    for line in proc.stdout:
        state, ref = line.split()
        last[ref] = state
        if len(last) >= 60:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with Journal.open(path) as j:
        assert j.pragma("integrity_check") == "ok"
        rows = {t.ref: t for t in j.list(limit=10_000)}
        # Every acknowledged write survived. The writer runs on while we read its
        # output, so a row may be further along than the last line we read, never behind.
        order = ["created", "sending", "done"]
        for ref, state in last.items():
            assert ref in rows
            assert order.index(rows[ref].state.value) >= order.index(state), (ref, state)
        for t in rows.values():  # the row and its audit trail moved together
            events = j.events(t.ref)
            assert events[-1].to_state is t.state
            assert (t.provider_txn_id is not None) == (t.state is State.done)


def test_create_once_per_parent_returns_the_existing_child(tmp_path: Path) -> None:
    from pos.journal import Journal, Kind, State
    from pos.money import Money

    j = Journal.open(tmp_path / "j.db")
    try:
        debit = j.create(Kind.card_debit, Money(500, "UGX"), operator="a", terminal_id="T")
        first = j.create(Kind.card_refund, Money(500, "UGX"), operator="a", terminal_id="T",
                         parent_ref=debit.ref, state=State.queued, once_per_parent=True)
        again = j.create(Kind.card_refund, Money(500, "UGX"), operator="b", terminal_id="T",
                         parent_ref=debit.ref, state=State.queued, once_per_parent=True)
        assert again.ref == first.ref
        assert [t.ref for t in j.children(debit.ref)] == [first.ref]
    finally:
        j.close()


def test_unsynced_counts_and_sums_per_currency(tmp_path: Path) -> None:
    from pos.journal import Journal, Kind, State
    from pos.money import Money

    j = Journal.open(tmp_path / "j.db")
    try:
        for amount in (Money(500, "UGX"), Money(700, "UGX"), Money(10000, "KES")):
            j.create(Kind.vend, amount, operator="a", terminal_id="T", state=State.queued)
        done = j.create(Kind.vend, Money(900, "UGX"), operator="a", terminal_id="T")
        j.transition(done.ref, State.sending)
        j.transition(done.ref, State.done)
        u = j.unsynced()
        assert u.count == 3 and u.totals == {"UGX": 1200, "KES": 10000}
    finally:
        j.close()


def test_a_clock_stepped_back_does_not_postpone_the_queue(tmp_path: Path) -> None:
    """Issue 10: sales queued while the clock was days ahead get next attempts days ahead;
    once NTP steps the clock back they are due now, not in days."""
    from pos.clock import DeviceClock

    ahead = datetime(2026, 6, 10, tzinfo=UTC)
    j = Journal.open(tmp_path / "j.db", device=DeviceClock(wall=lambda: ahead))
    j.horizon_seconds = 7200
    txn = j.create(Kind.vend, Money(100, "KES"), operator="a", terminal_id="T",
                   state=State.queued)
    j.update(txn.ref, next_attempt_at=ahead + timedelta(seconds=300))  # a normal backoff
    now = ahead - timedelta(days=5)  # NTP corrects the clock
    assert [t.ref for t in j.due_for_sync(now)] == [txn.ref]
    j.update(txn.ref, next_attempt_at=now + timedelta(seconds=300))  # a real backoff
    assert j.due_for_sync(now) == []
    j.close()


def test_a_dead_holders_sending_row_is_due_at_once(tmp_path: Path) -> None:
    """Issue 10: the lease names its holder; a holder that is gone frees the row now."""
    from pos.clock import boot_id, process_start

    j = Journal.open(tmp_path / "j.db")
    j.sending_lease = 300
    alive = j.create(Kind.vend, Money(100, "KES"), operator="a", terminal_id="T")
    j.transition(alive.ref, State.sending)  # held by this (living) process
    dead = j.create(Kind.vend, Money(100, "KES"), operator="a", terminal_id="T")
    j.transition(dead.ref, State.sending, lease_owner=f"{boot_id()}:999999:1")
    rebooted = j.create(Kind.vend, Money(100, "KES"), operator="a", terminal_id="T")
    j.transition(rebooted.ref, State.sending, lease_owner="another-boot:1:1")
    due = {t.ref for t in j.due_for_sync(datetime.now(UTC))}
    assert due == {dead.ref, rebooted.ref}
    assert j.require(alive.ref).lease_owner == process_start()
    j.close()
