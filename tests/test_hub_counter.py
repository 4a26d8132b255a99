"""The counter's own tables reach the back office (issue 12): basket sales with their
lines and tender parts, shifts and cash moves are uploaded (once, resumably), restored
to a replaced terminal, and counted on the dashboard exactly as the terminal's own X
report and shift report count them. A real counter terminal against the sandbox, a real
hub over HTTP on 127.0.0.1, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from pos import hubrestore, hubsync, shifts
from pos.basket import Basket
from pos.catalogue import Item
from pos.hub import schema as t
from pos.hub.accounts import Scope
from pos.hub.wire import UploadIn
from pos.journal import Journal
from pos.money import Money
from pos.sandbox import data
from tests import test_hub_dashboard
from tests.hub_support import signed_in_client
from tests.journal_support import undo_constraints

pytestmark = [pytest.mark.timeout(180), pytest.mark.counter(supervisor=True)]
browser = test_hub_dashboard.browser  # the distribution's headless Chromium (a fixture)

SUGAR = Item("Sugar 1kg", Money(4_500, "UGX"), 18)
MILK = Item("Milk 500ml", Money(1_500, "UGX"), 19)
COUNTER_TABLES = ("shifts", "sales", "sale_lines", "sale_tenders", "cash_moves")


def ugx(n: int) -> Money:
    return Money(n, "UGX")


def basket(*items: Item) -> Basket:
    b = Basket("UGX")
    for item in items:
        b.add(item)
    return b


async def counter_day(term: Any) -> dict[str, Any]:
    """A morning at the counter: float, cash in and out, a cash basket, a split basket
    (card part then cash), a voided cash basket, a card payment and a cash token."""
    boss = term.check_supervisor("8642")
    await term.open_shift(ugx(20_000))
    await term.cash_move("in", ugx(5_000), "coins from the bank")
    await term.cash_move("out", ugx(2_000), "receipt paper")
    cash = term.begin_sale(basket(SUGAR))
    await term.sale_pay_cash(cash.id, ugx(5_000))  # 500 change
    split = term.begin_sale(basket(SUGAR, MILK))
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    res, _ = await term.sale_pay_card(split.id, lookup, ugx(2_000), data.CURRENT, "1234")
    assert res.status == "approved"
    done = await term.sale_pay_cash(split.id, ugx(5_000))  # 4,000 due, 1,000 change
    assert done.state == "done"
    voided = term.begin_sale(basket(MILK))
    await term.sale_pay_cash(voided.id, ugx(1_500))
    await term.void_sale(voided.id, boss, "wrong item")
    card = await term.pay_by_card(lookup, ugx(3_000), data.CURRENT, "1234", "Airtime")
    assert card.status == "approved"
    token = await term.sell_token(data.METER_OK, Money(15_000, "KES"), "Bilbo")
    assert token.status == "approved"
    await term.sync_now()
    return {"cash": cash.id, "split": split.id, "voided": voided.id, "card_part": res.ref}


def code_for(hub: Any, terminal: str) -> str:
    shop = hub.accounts.shop_id(hub.merchant_id, None)
    return str(hub.accounts.create_code(hub.merchant_id, shop, terminal, "test"))


async def upload(home: Path, journal: Journal) -> hubsync.UploadReport:
    cred = hubsync.load_credential(home)
    assert cred is not None
    up = hubsync.Uploader(journal, cred)
    try:
        return await up.run(None, max_batches=100)
    finally:
        await up.aclose()


def table(journal: Journal, name: str) -> list[dict[str, Any]]:
    key = "sale_id, line_no" if name == "sale_lines" else "id"
    return [dict(r) for r in journal.query(f"SELECT * FROM {name} ORDER BY {key}")]


def hub_count(hub: Any, tbl: Any) -> int:
    with hub.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(tbl)).scalar_one())


def midday_zone() -> ZoneInfo:
    """A zone where it is about noon now: the day's figures never straddle midnight."""
    hour = dt.datetime.now(dt.UTC).hour
    offset = max(-12, min(14, 12 - hour))  # Etc/GMT-3 is UTC+3
    return ZoneInfo("Etc/GMT" + (f"{-offset:+d}" if offset else ""))


async def test_each_counter_table_reaches_the_hub_once(term: Any, hub: Any,
                                                       hub_server: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    refs = await counter_day(term)
    home, journal = term.settings.home, term.journal
    await hubsync.enrol(home, hub_server.url, code_for(hub, term.settings.terminal_id))
    # The first answer is lost: the outbox cursor does not move, its rows stay queued.
    with monkeypatch.context() as m:
        m.setattr(hubsync.Uploader, "_acknowledge_counter", lambda self, top: None)
        first = await upload(home, journal)
    assert (first.sales, first.shifts, first.cash_moves) == (3, 1, 3)
    assert journal.query("SELECT count(*) AS n FROM hub_changes")[0]["n"] > 0
    again = await upload(home, journal)  # sent again: stored once
    assert (again.sales, again.shifts, again.cash_moves) == (3, 1, 3)
    assert journal.query("SELECT count(*) AS n FROM hub_changes")[0]["n"] == 0
    assert journal.meta_get(hubsync.META_COUNTER)
    assert [hub_count(hub, x) for x in (t.sales, t.sale_tenders, t.shifts, t.cash_moves)] == \
        [3, 4, 1, 3]
    nothing = await upload(home, journal)
    assert (nothing.sales, nothing.shifts, nothing.cash_moves) == (0, 0, 0)

    with hub.db.read() as conn:
        sales = {r.sale_id: r for r in conn.execute(select(t.sales))}
        tenders = conn.execute(select(t.sale_tenders).order_by(t.sale_tenders.c.tender_id)).all()
        moves = conn.execute(select(t.cash_moves).order_by(t.cash_moves.c.move_id)).all()
        [shift] = conn.execute(select(t.shifts)).all()
        debit = conn.execute(select(t.txns.c.kind, t.txns.c.state).where(
            t.txns.c.ref == refs["card_part"])).one()
    assert {k: (v.state, v.total_minor) for k, v in sales.items()} == {
        refs["cash"]: ("done", 4_500), refs["split"]: ("done", 6_000),
        refs["voided"]: ("voided", 1_500)}
    lines = json.loads(sales[refs["split"]].data_json)["lines"]
    assert [(ln["name"], ln["qty"]) for ln in lines] == [("Sugar 1kg", 1), ("Milk 500ml", 1)]
    assert [(p.tender_id, p.tender, p.amount_minor, p.change_minor, p.txn_ref)
            for p in tenders] == [(r["id"], r["tender"], r["amount_minor"], r["change_minor"],
                                   r["txn_ref"]) for r in table(journal, "sale_tenders")]
    assert tuple(debit) == ("card_debit", "done")  # the debit its card part names
    assert [(mv.kind, mv.amount_minor, mv.ref) for mv in moves] == [
        ("in", 5_000, None), ("out", 2_000, None), ("refund", 1_500, refs["voided"])]
    assert (shift.float_minor, shift.closed_at, shift.operator) == (20_000, None, "ann")

    # Later changes reach the hub: a receipt number drawn, the blind cash-up.
    from pos.usecases import sale as sale_uc

    number = sale_uc.receipt_no(journal, sale_uc.load(journal, refs["cash"]))
    closed = term.close_shift([ugx(31_000), Money(15_000, "KES")])
    assert closed.variance() == ugx(-500)
    later = await upload(home, journal)
    assert (later.sales, later.shifts) == (1, 1)
    with hub.db.read() as conn:
        row = conn.execute(select(t.shifts)).one()
        receipt = conn.execute(select(t.sales.c.receipt_number).where(
            t.sales.c.sale_id == refs["cash"])).scalar_one()
    assert receipt == number
    assert (row.counted_minor, row.expected_minor, row.closed_by) == (31_000, 31_500, "ann")
    assert json.loads(row.report_json)["variance"]["minor"] == -500
    # An older upload (a lower sequence number) carrying the open shift never reopens it.
    auth = hub.store.authenticate(hubsync.load_credential(home).credential)  # type: ignore[union-attr]
    stale = {"id": row.shift_id, "operator": "ann", "currency": "UGX", "float_minor": 20_000,
             "opened_at": row.opened_at}
    hub.store.ingest(auth, UploadIn.model_validate({"seq": 1, "shifts": [stale]}),
                     max_items=10)
    with hub.db.read() as conn:
        assert conn.execute(select(t.shifts.c.closed_at)).scalar_one() == row.closed_at


async def test_a_replaced_terminal_gets_its_counter_back(term: Any, hub: Any, hub_server: Any,
                                                         tmp_path: Path) -> None:
    await counter_day(term)
    old_home, journal = term.settings.home, term.journal
    await hubsync.enrol(old_home, hub_server.url, code_for(hub, term.settings.terminal_id))
    await upload(old_home, journal)
    before = {name: table(journal, name) for name in COUNTER_TABLES}
    report = shifts.report(journal, shifts.require_open(journal))

    new_home = tmp_path / "replacement"
    new_home.mkdir()
    await hubsync.enrol(new_home, hub_server.url, code_for(hub, term.settings.terminal_id))
    out = await hubrestore.restore(new_home)
    assert (out["sales"], out["shifts"], out["cash_moves"]) == (3, 1, 3)
    assert out["open_shift"] == before["shifts"][0]["id"]
    restored = Journal.open(new_home / "journal.db")
    try:
        assert {name: table(restored, name) for name in COUNTER_TABLES} == before
        shift = shifts.require_open(restored)  # still open, with its float
        assert shift.float == ugx(20_000) and shift.operator == "ann"
        again = shifts.report(restored, shift)
        assert again.figures == report.figures and again.expected() == ugx(31_500)
        assert restored.query("SELECT count(*) AS n FROM hub_changes")[0]["n"] == 0
        # The replacement carries on: the next cash move is new to the hub, and the
        # shift closes there with the history it had.
        shifts.move_cash(restored, "in", ugx(1_000), "change from the shop next door", "ann",
                         dt.datetime.now(dt.UTC))
        rep = await upload(new_home, restored)
        assert (rep.cash_moves, rep.sales, rep.shifts) == (1, 0, 0)
        assert hub_count(hub, t.cash_moves) == 4
        closed = shifts.close(restored, [ugx(32_500), Money(15_000, "KES")], "ann",
                              dt.datetime.now(dt.UTC))
        assert closed.variance() == ugx(0)
    finally:
        restored.close()


async def test_dashboard_figures_equal_the_terminals_x_report(term: Any, hub: Any,
                                                              hub_server: Any) -> None:
    hub.dashboard.tz = midday_zone()
    await counter_day(term)
    home, journal = term.settings.home, term.journal
    await hubsync.enrol(home, hub_server.url, code_for(hub, term.settings.terminal_id))
    await upload(home, journal)
    x = term.x_report().payload
    scope = Scope(hub.merchant_id, None)
    sales = hub.dashboard.sales(scope)
    assert sales.figures["by_tender"] == x["by_tender"]
    assert sales.figures["by_kind"] == x["by_kind"]
    assert x["by_tender"]["cash"]["totals"] == {"UGX": 8_500, "KES": 15_000}
    assert x["by_tender"]["card"]["totals"] == {"UGX": 5_000}
    # Two baskets, a card payment and a token (the voided basket is no sale; the split
    # basket's card part is that basket's money, not a sale of its own).
    assert sales.total.count == 4
    assert dict(sales.total.totals) == {"UGX": 13_500, "KES": 15_000}
    assert sum(b.count for b in sales.by_hour) == 4
    name = term.settings.terminal_id
    assert sales.by_terminal[name].count == 4
    # The drawer: the open shift's expected cash, as the terminal's shift report has it.
    mine = shifts.report(journal, shifts.require_open(journal))
    drawer = hub.dashboard.drawers(scope)[name]
    for cur in ("UGX", "KES"):
        assert drawer.expected(cur) == mine.expected(cur)
    assert drawer.expected() == ugx(31_500)

    client = signed_in_client(hub_server.url)
    try:
        page = client.get("/sales").text
        assert "4 sales · KES 150.00, UGX 13,500" in page
        assert "Basket sales, cash" in page and "Cash refunds" in page
        home_page = client.get("/").text
        assert "expected UGX 31,500, KES 150.00" in home_page
        assert "float UGX 20,000" in home_page
        open_list = client.get("/shifts").text
        assert re.search(r'data-shift="1" class="open"', open_list)
        term.close_shift([ugx(31_000), Money(15_000, "KES")])
        await upload(home, journal)
        closed = client.get("/shifts").text
        assert "-UGX 500" in closed and "UGX 31,000" in closed
        assert 'class="open"' not in closed
        assert "no shift open" in client.get("/").text
    finally:
        client.close()


def test_the_migration_queues_a_journals_counter_history(tmp_path: Path) -> None:
    """A terminal that sold at the counter before this version uploads that history."""
    path = tmp_path / "journal.db"
    with Journal.open(path) as journal:
        shifts.open_shift(journal, "ann", ugx(1_000), dt.datetime.now(dt.UTC))
        shifts.move_cash(journal, "in", ugx(500), "coins", "ann", dt.datetime.now(dt.UTC))
    conn = sqlite3.connect(path, isolation_level=None)
    undo_constraints(conn)  # V_CONSTRAINTS, made after this version
    for trigger in ("sales_hub_insert", "sales_hub_update", "sale_tenders_hub_insert",
                    "shifts_hub_insert", "shifts_hub_update", "cash_moves_hub_insert"):
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("DROP TABLE hub_changes")
    from pos.journal.schema import _V_HUB_COUNTER, MIGRATIONS

    conn.execute(f"PRAGMA user_version = {MIGRATIONS.index(_V_HUB_COUNTER)}")
    conn.close()
    with Journal.open(path) as journal:
        queued = [(r["tbl"], r["key"]) for r in
                  journal.query("SELECT tbl, key FROM hub_changes ORDER BY id")]
    assert queued == [("shift", "1"), ("cash_move", "1")]


@pytest.mark.slow
async def test_drawer_and_shifts_in_headless_chromium_on_a_phone(term: Any, hub: Any,
                                                                 hub_server: Any,
                                                                 browser: Any) -> None:
    from selenium.webdriver.common.by import By

    from tests.hub_support import OWNER, click_to

    hub.dashboard.tz = midday_zone()
    await counter_day(term)
    home, journal = term.settings.home, term.journal
    await hubsync.enrol(home, hub_server.url, code_for(hub, term.settings.terminal_id))
    await upload(home, journal)
    d = browser

    def go(click: Any, url_part: str) -> None:
        click_to(d, click, url_part)

    d.get(hub_server.url + "login")
    d.find_element(By.ID, "username").send_keys(OWNER[0])
    d.find_element(By.ID, "password").send_keys(OWNER[1])
    go(d.find_element(By.ID, "sign-in").click, hub_server.url)
    name = term.settings.terminal_id
    row = d.find_element(By.CSS_SELECTOR, f'#terminals tr[data-terminal="{name}"]')
    drawer = row.find_element(By.CSS_SELECTOR, "td.drawer").text
    assert "expected UGX 31,500, KES 150.00" in drawer
    assert d.find_element(By.ID, "today-total").text.startswith("4 sales")
    go(d.find_element(By.LINK_TEXT, "Sales").click, "/sales")
    cash = d.find_element(By.CSS_SELECTOR, '#by-tender tr[data-key="cash"]').text
    assert "KES 150.00, UGX 8,500" in cash
    term.close_shift([ugx(31_000), Money(15_000, "KES")])
    await upload(home, journal)
    go(d.find_element(By.LINK_TEXT, "Shifts").click, "/shifts")
    shift = d.find_element(By.CSS_SELECTOR, "#shifts tr[data-shift='1']")
    assert shift.find_element(By.CSS_SELECTOR, "td.variance").text.startswith("-UGX 500")
    assert "UGX 31,500" in shift.find_element(By.CSS_SELECTOR, "td.expected").text
    width = d.execute_script("return document.documentElement.clientWidth")
    assert d.execute_script("return document.body.scrollWidth") <= width  # a phone's width


def test_a_long_outbox_goes_in_batches_and_resumes(tmp_path: Path, hub: Any,
                                                   hub_server: Any) -> None:
    """A drawer busy while the hub was down: its outbox goes in several uploads (each
    under the hub's row limit), and a second uploader (a restart) resumes after the last
    acknowledged one."""
    import asyncio

    home = tmp_path / "term"
    home.mkdir()
    asyncio.run(hubsync.enrol(home, hub_server.url, code_for(hub, "POS-001")))
    with Journal.open(home / "journal.db") as journal:
        now = dt.datetime.now(dt.UTC)
        shifts.open_shift(journal, "ann", ugx(0), now)
        for i in range(1, 31):
            shifts.move_cash(journal, "in", ugx(100 * i), f"float top-up {i}", "ann", now)
        cred = hubsync.load_credential(home)
        assert cred is not None

        async def go(max_batches: int) -> hubsync.UploadReport:
            up = hubsync.Uploader(journal, cred, batch=10)  # two outbox rows a batch
            try:
                return await up.run(None, max_batches=max_batches)
            finally:
                await up.aclose()

        part = asyncio.run(go(5))
        assert part.remaining and (part.batches, part.cash_moves) == (5, 9)
        assert hub_count(hub, t.cash_moves) == 9
        rest = asyncio.run(go(100))
        assert not rest.remaining and rest.cash_moves == 21
        assert hub_count(hub, t.cash_moves) == 30 and hub_count(hub, t.shifts) == 1
        with hub.db.read() as conn:
            total = conn.execute(select(func.sum(t.cash_moves.c.amount_minor))).scalar_one()
        assert total == sum(100 * i for i in range(1, 31))
        assert journal.query("SELECT count(*) AS n FROM hub_changes")[0]["n"] == 0
