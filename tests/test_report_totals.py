"""Report arithmetic (issue 13) and the kept totals (issue 15).

The arithmetic tests drive the Terminal against the sandbox over real HTTP; the
totals test plays a randomised day straight into the journal and checks the kept
aggregates against a full recomputation from the rows."""

from __future__ import annotations

import random
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pos import reports
from pos.errors import InputError
from pos.journal import Journal, Kind, State, Tender
from pos.journal.schema import _V_GROWTH, MIGRATIONS
from pos.journal.states import TRANSITIONS
from pos.money import Money
from pos.sandbox import data
from pos.sandbox.server import SandboxServer
from pos.terminal import Terminal
from tests.journal_support import undo_constraints
from tests.test_terminal_flows import settings_for


@pytest.fixture
def sb() -> Iterator[SandboxServer]:
    with SandboxServer(port=0) as server:
        yield server


@pytest.fixture
async def term(sb: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> AsyncIterator[Terminal]:
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    t = await Terminal.open(settings_for(sb), operator="alice")
    yield t
    await t.aclose()


def ugx(n: int) -> Money:
    return Money(n, "UGX")


# ------------------------------------------------------------ issue 13 arithmetic
async def _paid_then_voided(term: Terminal) -> tuple[str, str]:
    card = data.CARD_ACTIVE
    lookup = await term.lookup_card(card.payload)
    paid = await term.pay_by_card(lookup, ugx(2000), "Current Account", card.pin, "bananas")
    assert paid.status == "approved", paid.message
    boss = term.add_operator("boss", "supervisor", "4455")
    voided = await term.void(paid.ref, boss, "wrong item")
    assert voided.status == "approved", voided.message
    return paid.ref, voided.ref


async def test_a_refund_is_taken_off_the_tender_line_not_added(term: Terminal) -> None:
    await _paid_then_voided(term)
    x = term.x_report().payload
    assert x["by_tender"]["card"]["totals"] == {"UGX": 0}  # 2,000 in, 2,000 back
    assert x["by_kind"]["card_refund"]["totals"] == {"UGX": 2000}


async def test_a_refund_is_booked_to_the_cashier_not_the_supervisor(term: Terminal) -> None:
    _, refund_ref = await _paid_then_voided(term)
    refund = term.journal.require(refund_ref)
    assert refund.operator == "alice" and refund.details["supervisor"] == "boss"
    x = term.x_report().payload
    assert "boss" not in x["by_operator"]
    assert x["by_operator"]["alice"]["totals"] == {"UGX": 0}


async def test_a_card_paid_token_is_counted_once(term: Terminal) -> None:
    card = data.CARD_ACTIVE
    lookup = await term.lookup_card(card.payload)
    res = await term.sell_token(data.METER_OK, Money(10000, "KES"), "Bilbo", tender="card",
                                card=lookup, wallet="Current Account", pin=card.pin)
    assert res.status == "approved", res.message
    debit = term.journal.require(res.txn.parent_ref or "")
    x = term.x_report().payload
    assert x["by_tender"]["card"] == {"count": 1,
                                      "totals": {debit.amount.currency: debit.amount.minor}}
    assert x["by_operator"]["alice"]["count"] == 1
    assert x["by_kind"]["vend"]["count"] == 1  # what was sold is still shown


async def test_z_twice_in_a_row_refuses_an_empty_z(term: Terminal) -> None:
    await term.sell_token(data.METER_OK, Money(10000, "KES"), "Bilbo")
    assert term.close_day().number == 1
    with pytest.raises(InputError, match="empty"):
        term.close_day()
    assert [z.number for z in term.journal.z_reports()] == [1]
    z2 = term.close_day(allow_empty=True)
    assert z2.number == 2 and z2.payload["transactions"] == 0


# ------------------------------------------------------------ kept totals
class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=7)
        return self.now


def _independent(journal: Journal, period: int) -> dict[str, Any]:
    """The report's figures straight from the rows, by a different road (Python over
    every row) than the kept totals (SQL triggers)."""
    rows = [r for r in journal.list(limit=10**6, newest_first=False) if _period(journal, r.ref)
            == period]
    agg: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    for t in rows:
        a = agg[(str(t.state), str(t.kind), str(t.tender), t.amount.currency, t.operator)]
        a[0] += 1
        a[1] += t.amount.minor
    return reports.figures([
        {"state": k[0], "kind": k[1], "tender": k[2], "currency": k[3], "operator": k[4],
         "count": v[0], "amount_minor": v[1]} for k, v in agg.items()])


def _period(journal: Journal, ref: str) -> int:
    return int(journal.query("SELECT z_period FROM txns WHERE ref = ?", (ref,))[0][0])


def _random_day(journal: Journal, rnd: random.Random, n: int) -> None:
    ops = ["amina", "ben", "boss"]
    refs: list[str] = []
    for _ in range(n):
        if refs and rnd.random() < 0.6:
            ref = rnd.choice(refs)
            state = journal.require(ref).state
            nxt = sorted(TRANSITIONS[state])
            if nxt:
                journal.transition(ref, rnd.choice(nxt), operator=rnd.choice(ops),
                                   note="random")
            continue
        kind = rnd.choice(list(Kind))
        tender = rnd.choice(list(Tender))
        parent = rnd.choice(refs) if refs and kind in (Kind.card_refund, Kind.vend) else None
        txn = journal.create(kind, Money(rnd.randrange(0, 50_000), rnd.choice(["UGX", "KES"])),
                             tender=tender, operator=rnd.choice(ops), terminal_id="T1",
                             parent_ref=parent,
                             state=rnd.choice([State.created, State.queued]))
        refs.append(txn.ref)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kept_totals_equal_a_full_recomputation(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    journal = Journal.open(tmp_path / "journal.db", clock=Clock())
    try:
        _random_day(journal, rnd, 400)
        z = reports.close_day(journal, terminal_id="T1", now=journal.now(),
                              operator="amina", override_by="boss", keep_backups=1)
        assert z.number == 1
        _random_day(journal, rnd, 400)  # later changes of period-1 rows stay in period 1
        # the kept flagged count (the status bar's) is the flagged rows counted
        assert journal.flagged_count() == journal.counted_flagged()
        assert journal.counted_flagged() > 0
        for period in (1, 2):
            assert journal.totals(period) == [r for r in journal.recomputed_totals(period)]
            assert reports.figures(journal.totals(period)) == _independent(journal, period)
        # the stored Z is what its period's totals said at the close
        x = reports.x_report(journal, terminal_id="T1", now=journal.now()).payload
        assert x["transactions"] == sum(r["count"] for r in journal.recomputed_totals(2))
        assert x["by_kind"] == _independent(journal, 2)["by_kind"]
    finally:
        journal.close()


def test_refunds_by_a_reversed_random_order_keep_the_totals(tmp_path: Path) -> None:
    """Every state change moves one row between keys: the sum of counts is the rows."""
    journal = Journal.open(tmp_path / "journal.db", clock=Clock())
    try:
        _random_day(journal, random.Random(9), 300)
        total = sum(r["count"] for r in journal.totals(1))
        assert total == len(journal.list(limit=10**6))
    finally:
        journal.close()


def test_migration_backfills_periods_and_totals(tmp_path: Path) -> None:
    """A journal from before the kept totals: each row is put in the Z period its
    creation time falls in, and the totals are built from the rows."""
    path = tmp_path / "journal.db"
    clock = Clock()
    with Journal.open(path, clock=clock) as journal:
        _random_day(journal, random.Random(4), 120)
        mid = clock()
        _random_day(journal, random.Random(5), 120)
    conn = sqlite3.connect(path, isolation_level=None)
    undo_constraints(conn)  # V_CONSTRAINTS, made after this version
    # Make it an old journal: drop what later migrations and V_GROWTH added, put the
    # version back to before V_GROWTH, add a Z.
    for table in ("hub_changes", "sale_tenders", "sale_lines", "sales", "cash_moves",
                  "shifts", "products"):  # V_COUNTER's and V_HUB_COUNTER's (after V_GROWTH)
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute("ALTER TABLE operators DROP COLUMN disabled_at")  # V_OPERATOR_STATE's
    conn.execute("DROP INDEX txns_flagged")  # V_HOUSEKEEPING's
    conn.execute("DROP TRIGGER txns_totals_insert")
    conn.execute("DROP TRIGGER txns_totals_state")
    conn.execute("DROP TABLE totals")
    conn.execute("DROP INDEX txns_settled")
    conn.execute("DROP TRIGGER txns_no_delete")
    conn.execute("DROP TRIGGER events_no_delete")
    conn.execute("ALTER TABLE txns DROP COLUMN z_period")
    conn.execute("ALTER TABLE txns DROP COLUMN archived_at")
    conn.execute("CREATE TRIGGER txns_no_delete BEFORE DELETE ON txns BEGIN"
                 " SELECT RAISE(ABORT, 'journal rows are never deleted'); END")
    conn.execute("CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN"
                 " SELECT RAISE(ABORT, 'events are append-only'); END")
    conn.execute(f"PRAGMA user_version = {MIGRATIONS.index(_V_GROWTH)}")
    conn.execute("INSERT INTO z_reports(number, payload_json, created_at) VALUES (1, ?, ?)",
                 ('{"until": "' + mid.astimezone().isoformat() + '"}', mid.isoformat()))
    conn.close()
    with Journal.open(path, clock=clock) as journal:
        rows = journal.list(limit=10**6, newest_first=False)
        for t in rows:
            assert _period(journal, t.ref) == (1 if t.created_at < mid else 2)
        for period in (1, 2):
            assert journal.totals(period) == journal.recomputed_totals(period)
        assert journal.totals(1) and journal.totals(2)
        assert journal.open_period() == 2


def test_a_long_flagged_list_is_named_in_full_and_shown_in_part(tmp_path: Path) -> None:
    """Issue 15: the X report decoded every flagged row (thousands on a journal that
    grew for years); it now names them all in the JSON and shows the first lines."""
    j = Journal.open(tmp_path / "journal.db")
    try:
        refs = []
        with j.batch():
            for _ in range(reports.LIST_MAX + 7):
                t = j.create(Kind.vend, Money(1000, "UGX"), tender=Tender.cash,
                             operator="ann", terminal_id="T1", state=State.queued,
                             offline=True)
                j.transition(t.ref, State.expired)
                refs.append(t.ref)
        rep = reports.x_report(j, terminal_id="T1", now=datetime.now(UTC))
        assert rep.payload["flagged"] == refs
        lines = dict(rep.lines)
        assert lines["FLAGGED"] == str(len(refs))
        assert lines["... and 7 more"] == ""
        assert f"{refs[0]} expired" in lines and f"{refs[-1]} expired" not in lines
        # The screen's report (all_refs=False) reads the kept count, not every ref: the
        # same lines, and a payload naming the lines shown.
        shown = reports.x_report(j, terminal_id="T1", now=datetime.now(UTC), all_refs=False)
        assert shown.lines == rep.lines
        assert shown.payload["flagged"] == refs[:reports.LIST_MAX]
        assert shown.payload["flagged_count"] == rep.payload["flagged_count"] == len(refs)
    finally:
        j.close()
