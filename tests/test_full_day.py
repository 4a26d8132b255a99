"""A whole trading day driven through the screens (issue 13, "done when"): shift with a
float, basket sales by card, cash and split, a card payment voided, a top-up given as a
refund, a cash token and a cash bill, a link outage with sales queued and synced after,
the blind cash-up and the Z. Every figure the shift report and the Z show is then
computed again, straight from the journal's tables with SQL written here, and from the
day's script itself: three roads to the same numbers."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Any

import pytest

from pos.meter import luhn_check_digit
from pos.money import Money
from pos.sandbox import data
from screens.basket import BasketScreen
from screens.cards import CardSummaryScreen, HandOverScreen
from screens.dialogs import ChoiceDialog, ConfirmDialog, MessageDialog, TextPrompt
from screens.electricity import NumberScreen
from screens.entry import AmountScreen, PinScreen
from screens.home import HomeScreen
from screens.journal import JournalDetailScreen, JournalScreen
from screens.receipt import ResultScreen
from screens.reports import ReportScreen
from screens.scan import ScanScreen
from screens.shift import ShiftReportScreen
from screens.signin import SupervisorPinScreen
from screens.tender import ChangeScreen, TenderScreen
from tests.screens_support import app_for, holds_within, screen_text, wait_for, wait_screen

pytestmark = [pytest.mark.sandbox(throttle_seconds=0, daily_limit=None),
              pytest.mark.counter(supervisor=True)]

FLOAT = 20_000
#: A second meter that vends (any Luhn-valid meter does): PawaCard allows one sale per
#: meter every 5 minutes, and the terminal keeps that rule offline too.
OTHER_METER = "0145117496" + luhn_check_digit("0145117496")


# ------------------------------------------------------------------ key presses
async def home(pilot: Any) -> None:
    await wait_screen(pilot, HomeScreen)


async def no_receipt(pilot: Any) -> None:
    await wait_screen(pilot, ResultScreen, timeout=20)
    await pilot.press("enter")
    await wait_screen(pilot, ChoiceDialog)
    await pilot.press("3")
    await home(pilot)


async def scan(pilot: Any, card: data.DemoCard) -> None:
    screen = await wait_screen(pilot, ScanScreen)
    screen.query_one("#scan-manual").value = card.payload
    await pilot.press("enter")
    await wait_screen(pilot, CardSummaryScreen)
    await pilot.press("enter")


async def hand_over(pilot: Any, pin: str | None, *, wallet: bool) -> None:
    if wallet:
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("1")
    await wait_screen(pilot, HandOverScreen)
    await pilot.press("enter")
    if pin is not None:
        await wait_screen(pilot, PinScreen)
        await pilot.press(*pin, "enter")


async def basket(pilot: Any) -> None:
    """F1 Soda 1,000 + F4 Sugar 4,500 + product 19 (Milk 1,500) = UGX 7,000."""
    await pilot.press("9")
    screen = await wait_screen(pilot, BasketScreen)
    await pilot.press("f1", "f4", "1", "9", "enter")
    await wait_for(pilot, lambda: len(screen.basket.lines) == 3, what="3 lines")
    await pilot.press("enter")
    await wait_screen(pilot, TenderScreen)


async def cash(pilot: Any, tendered: str) -> None:
    await pilot.press("2")
    await wait_screen(pilot, AmountScreen)
    await pilot.press(*tendered, "enter")
    await wait_screen(pilot, ChangeScreen)
    await pilot.press("enter")


async def card_payment(pilot: Any, card: data.DemoCard, amount: str, pin: str | None,
                       *, wallet: bool = True) -> None:
    await pilot.press("1")
    await scan(pilot, card)
    await wait_screen(pilot, AmountScreen)
    await pilot.press(*amount, "enter")
    await hand_over(pilot, pin, wallet=wallet)


async def cash_token(pilot: Any, meter: str, amount: str, *, offline: bool = False) -> None:
    await pilot.press("2")
    await wait_screen(pilot, NumberScreen)
    await pilot.press(*meter, "enter")
    await wait_screen(pilot, ConfirmDialog, timeout=20)
    await pilot.press("1")  # the customer's name, or "sell for cash anyway" offline
    await wait_screen(pilot, AmountScreen)
    await pilot.press(*amount, "enter")
    if not offline:
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("1")  # cash


async def cash_bill(pilot: Any, account: str, amount: str) -> None:
    await pilot.press("3")
    await wait_screen(pilot, NumberScreen)
    await pilot.press(*account, "enter")
    await wait_screen(pilot, ConfirmDialog, timeout=20)
    await pilot.press("1")
    await wait_screen(pilot, AmountScreen)
    await pilot.press(*amount, "enter")
    await wait_screen(pilot, ChoiceDialog)
    await pilot.press("1")


async def supervisor(pilot: Any) -> None:
    await wait_screen(pilot, SupervisorPinScreen)
    await pilot.press(*"8642", "enter")


async def void_newest_card_payment(pilot: Any, ref: str) -> None:
    await pilot.press("5")
    journal = await wait_screen(pilot, JournalScreen)
    journal.query_one("#journal-search").value = ref
    journal.query_one("#journal-search").focus()
    await pilot.press("enter")
    table = journal.query_one("#journal-table")
    await wait_for(pilot, lambda: table.row_count == 1, what="the search's one row")
    await pilot.press("enter")
    await wait_screen(pilot, JournalDetailScreen)
    await pilot.press("o")
    await wait_screen(pilot, ConfirmDialog)
    await pilot.press("1")
    await supervisor(pilot)
    await wait_screen(pilot, TextPrompt)
    await pilot.press(*"wrong", "space", *"size", "enter")
    await wait_for(pilot, lambda: "credited back" in screen_text(pilot.app), 15, "void")
    await pilot.press("enter")
    for _ in range(3):
        if isinstance(pilot.app.screen, HomeScreen):
            break
        await pilot.press("escape")
        await pilot.pause()
    await home(pilot)


async def refund_to_card(pilot: Any, card: data.DemoCard, amount: str) -> None:
    await pilot.press("4")
    await wait_screen(pilot, ChoiceDialog)
    await pilot.press("3")  # top-up / refund (supervisor)
    await supervisor(pilot)
    await scan(pilot, card)
    await wait_screen(pilot, AmountScreen)
    await pilot.press(*amount, "enter")
    prompt = await wait_screen(pilot, TextPrompt)
    prompt.query_one("#prompt-input").value = "refund: returned shoes"
    await pilot.press("enter")
    await no_receipt(pilot)


async def sync_until_settled(pilot: Any) -> None:
    """F5 like a cashier until the queue went through (the background sync may take
    part of it first: what counts is that nothing is left)."""
    def synced() -> bool:
        return "All synced" in screen_text(pilot.app).splitlines()[0]

    for _ in range(20):
        await pilot.press("f5")
        await wait_screen(pilot, MessageDialog, timeout=20)
        await pilot.press("enter")
        await home(pilot)
        if await holds_within(pilot, synced, 1.0):
            return
    raise AssertionError("the queued sales did not sync")


# ------------------------------------------------------------------ the day
@pytest.mark.slow
async def test_a_full_day_at_the_counter(term, sandbox) -> None:
    active, no_pin = data.CARD_ACTIVE, data.CARD_NO_PIN
    balance_active = sandbox.state.patasente.balance(active)
    balance_no_pin = sandbox.state.patasente.balance(no_pin)
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await home(pilot)
        # Open the shift with the float.
        await pilot.press("0")
        await wait_screen(pilot, AmountScreen)
        await pilot.press(*str(FLOAT), "enter")
        await wait_screen(pilot, MessageDialog)
        await pilot.press("enter")
        await home(pilot)
        shift_id = term.current_shift().id

        # Basket by card, by cash (change 3,000), split 5,000 card + 2,000 cash.
        await basket(pilot)
        await pilot.press("1")
        await scan(pilot, active)
        await hand_over(pilot, active.pin, wallet=True)
        await no_receipt(pilot)
        await basket(pilot)
        await cash(pilot, "10000")
        await no_receipt(pilot)
        await basket(pilot)
        await pilot.press("3")
        await wait_screen(pilot, AmountScreen)
        await pilot.press(*"5000", "enter")
        await scan(pilot, active)
        await hand_over(pilot, active.pin, wallet=True)
        await wait_screen(pilot, TenderScreen)
        assert "TO PAY UGX 2,000" in screen_text(app)
        await cash(pilot, "2000")
        await no_receipt(pilot)

        # A card payment, voided by the supervisor: credited back.
        await card_payment(pilot, active, "3000", active.pin)
        await no_receipt(pilot)
        paid = term.journal_list()[0]
        assert paid.kind == "card_debit" and paid.amount == Money(3_000, "UGX")
        await void_newest_card_payment(pilot, paid.ref)

        # A no-PIN card seen online (the terminal caches it for offline selling).
        await card_payment(pilot, no_pin, "1000", None, wallet=False)
        await no_receipt(pilot)
        # A refund to a card, given by the supervisor as a top-up.
        await refund_to_card(pilot, active, "2000")
        # Electricity for cash: a token and a bill.
        await cash_token(pilot, data.METER_OK, "500")
        await no_receipt(pilot)
        await cash_bill(pilot, data.ACCOUNT_OK, "250")
        await no_receipt(pilot)

        # The link drops: a card payment accepted offline, a token queued, a basket in cash.
        sandbox.stop()
        await card_payment(pilot, no_pin, "2000", None, wallet=False)
        await wait_screen(pilot, ResultScreen, timeout=20)
        assert "ACCEPTED OFFLINE" in screen_text(app)
        await no_receipt(pilot)
        await cash_token(pilot, OTHER_METER, "300", offline=True)
        await no_receipt(pilot)
        await basket(pilot)
        await cash(pilot, "7000")
        await no_receipt(pilot)
        assert "Unsynced 2" in screen_text(app)
        # The link is back: the queue syncs.
        sandbox.start()
        queued = [t.ref for t in term.journal_list() if t.state == "queued"]
        assert len(queued) == 2
        await sync_until_settled(pilot)
        assert all(term.journal.require(ref).state == "done" for ref in queued)

        # Blind cash-up: the cashier counts exactly what the day's script says is there.
        ugx_in_drawer = FLOAT + 7_000 + 2_000 + 7_000
        kes_in_drawer = 500_00 + 250_00 + 300_00
        await pilot.press("0")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("3")
        await wait_screen(pilot, AmountScreen)
        await pilot.press(*str(ugx_in_drawer), "enter")
        await wait_screen(pilot, AmountScreen)
        await pilot.press(*str(kes_in_drawer // 100), "enter")
        await wait_screen(pilot, ShiftReportScreen)
        await pilot.press("escape")
        await home(pilot)

        # The Z.
        await pilot.press("6")
        await wait_screen(pilot, ReportScreen)
        await pilot.press("z")
        await wait_screen(pilot, ConfirmDialog)
        await pilot.press("1")
        await wait_for(pilot, lambda: "Z REPORT #1" in screen_text(app), 10, "the Z")

    # ---------------------------------------------------------- the providers
    assert sandbox.state.patasente.balance(active) == balance_active - 7_000 - 5_000 + 2_000
    assert sandbox.state.patasente.balance(no_pin) == balance_no_pin - 1_000 - 2_000
    # ---------------------------------------------------------- the shift
    assert term.current_shift() is None
    rep = term.shift_report(shift_id)
    assert rep.expected("UGX") == Money(ugx_in_drawer, "UGX")
    assert rep.expected("KES") == Money(kes_in_drawer, "KES")
    assert rep.variance("UGX") == Money(0, "UGX") and rep.variance("KES") == Money(0, "KES")
    independent = _shift_from_tables(term.journal.path, shift_id)
    for cur, figs in independent.items():
        assert rep.figures[cur] == figs, cur
    # ---------------------------------------------------------- the Z
    (z,) = term.journal.z_reports()
    fig = z.payload
    assert fig["cash_expected"] == {"UGX": 7_000 + 2_000 + 7_000, "KES": kes_in_drawer}
    assert fig["cash_owed_back"] == {}
    kinds = _kinds_from_tables(term.journal.path)
    assert {k: v for k, v in fig["by_kind"].items()} == kinds
    assert kinds["card_debit"] == {"count": 5, "totals": {"UGX": 7_000 + 5_000 + 3_000
                                                         + 1_000 + 2_000}}
    assert kinds["card_refund"] == {"count": 1, "totals": {"UGX": 3_000}}
    assert kinds["card_credit"] == {"count": 1, "totals": {"UGX": 2_000}}
    assert kinds["vend"] == {"count": 2, "totals": {"KES": 800_00}}
    assert kinds["postpaid"] == {"count": 1, "totals": {"KES": 250_00}}
    assert kinds["basket_cash"] == {"count": 3, "totals": {"UGX": 7_000 + 2_000 + 7_000}}
    assert fig["by_tender"]["card"]["totals"] == {"UGX": 7_000 + 5_000 + 3_000 + 1_000
                                                  + 2_000 - 3_000}
    assert fig["by_tender"]["cash"]["totals"] == {"UGX": 16_000, "KES": 1_050_00}
    assert fig["transactions"] >= 10


def _db(path: Any) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def _kinds_from_tables(path: Any) -> dict[str, dict[str, Any]]:
    """By kind, from the rows: settled transactions, and the basket's cash parts."""
    out: dict[str, dict[str, Any]] = {}

    def add(kind: str, cur: str, n: int, amount: int) -> None:
        entry = out.setdefault(kind, {"count": 0, "totals": {}})
        entry["count"] += n
        entry["totals"][cur] = entry["totals"].get(cur, 0) + amount

    with _db(path) as conn:
        for r in conn.execute("SELECT kind, currency, count(*) n, sum(amount_minor) a"
                              " FROM txns WHERE state = 'done' GROUP BY kind, currency"):
            add(r["kind"], r["currency"], r["n"], r["a"])
        for r in conn.execute("SELECT s.currency, count(*) n, sum(t.amount_minor) a"
                              " FROM sale_tenders t JOIN sales s ON s.id = t.sale_id"
                              " WHERE t.tender = 'cash' AND t.state = 'paid'"
                              " GROUP BY s.currency"):
            add("basket_cash", r["currency"], r["n"], r["a"])
    return out


def _shift_from_tables(path: Any, shift_id: int) -> dict[str, dict[str, int]]:
    """The shift's figures per currency, from its rows."""
    figs: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    with _db(path) as conn:
        shift = conn.execute("SELECT * FROM shifts WHERE id = ?", (shift_id,)).fetchone()
        figs[shift["currency"]]["float"] += shift["float_minor"]
        for r in conn.execute("SELECT s.currency, t.tendered_minor, t.change_minor"
                              " FROM sale_tenders t JOIN sales s ON s.id = t.sale_id"
                              " WHERE t.shift_id = ? AND t.tender = 'cash'"
                              " AND t.state = 'paid'", (shift_id,)):
            figs[r["currency"]]["cash_sales"] += r["tendered_minor"]
            figs[r["currency"]]["change"] += r["change_minor"]
        for r in conn.execute("SELECT currency, amount_minor FROM txns WHERE tender = 'cash'"
                              " AND kind IN ('vend', 'postpaid') AND state = 'done'"
                              " AND created_at >= ? AND created_at < ?",
                              (shift["opened_at"], shift["closed_at"])):
            figs[r["currency"]]["power_cash"] += r["amount_minor"]
        names = {"in": "cash_in", "out": "cash_out", "refund": "refunds",
                 "collected": "collected"}
        for r in conn.execute("SELECT kind, currency, amount_minor FROM cash_moves"
                              " WHERE shift_id = ?", (shift_id,)):
            figs[r["currency"]][names[r["kind"]]] += r["amount_minor"]
    keys = ("float", "cash_sales", "change", "power_cash", "cash_in", "cash_out", "refunds",
            "collected")
    return {cur: {k: f.get(k, 0) for k in keys} for cur, f in figs.items()}
