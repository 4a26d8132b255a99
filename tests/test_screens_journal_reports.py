"""Journal (search, filter, event trail, DUPLICATE reprint, resolve flagged), X / Z reports,
and settings, through the screens."""

from __future__ import annotations

import tomllib

import pytest

from pos.journal import Kind, State
from pos.money import Money
from pos.sandbox import data
from pos.terminal import Terminal
from screens.dialogs import ChoiceDialog, ConfirmDialog, TextPrompt
from screens.home import HomeScreen
from screens.journal import JournalDetailScreen, JournalScreen
from screens.receipt import ReceiptScreen
from screens.reports import ReportScreen
from screens.settings import SettingsScreen
from screens.signin import SupervisorPinScreen
from tests.screens_support import (
    app_for,
    screen_text,
    type_text,
    wait_for,
    wait_screen,
)

pytestmark = [pytest.mark.sandbox(throttle_seconds=0, daily_limit=None),
              pytest.mark.counter(supervisor=True)]


def flagged_debit(term: Terminal) -> str:
    """A card debit accepted offline and refused at sync: flagged for the merchant."""
    j = term.journal
    txn = j.create(Kind.card_debit, Money(4000, "UGX"), operator="ann", terminal_id="POS-001",
                   card_id=109, card_no="1663********13455034", wallet="Current Account",
                   offline=True, state=State.queued)
    j.transition(txn.ref, State.sending)
    j.transition(txn.ref, State.declined_offline, error="Insufficient balance on card")
    return txn.ref


async def test_journal_search_detail_duplicate_and_resolve(term, sandbox):
    sale = await term.sell_token(data.METER_OK, Money(50000, "KES"), "Bilbo Baggins")
    assert sale.status == "approved"
    ref = flagged_debit(term)
    await term.open_shift(Money(0, "UGX"))
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        assert "Flagged 1" in screen_text(app)
        await pilot.press("5")
        screen = await wait_screen(pilot, JournalScreen)
        text = screen_text(app)
        assert sale.ref in text and ref in text
        await pilot.press("down")  # from the search box to the list
        await pilot.press("f")  # flagged only
        await pilot.pause()
        table = screen.query_one("#journal-table")
        await pilot.press("f")  # flagged only
        await wait_for(pilot, lambda: table.row_count == 1, what="the flagged row only")
        await pilot.press("a")
        await pilot.pause()
        assert table.row_count == 2
        await pilot.press("slash")  # back to the search box
        await type_text(pilot, data.METER_OK)
        await wait_for(pilot, lambda: table.row_count == 1, 5, "live search")
        await pilot.press("enter")  # open the vend
        await wait_screen(pilot, JournalDetailScreen)
        text = screen_text(app)
        assert "Event trail" in text and "-> done" in text
        assert "- ->" not in text  # the creation event reads "created by ...", once
        await pilot.press("r")
        await wait_screen(pilot, ReceiptScreen)
        assert "DUPLICATE" in screen_text(app)
        await pilot.press("escape", "escape")
        await wait_screen(pilot, JournalScreen)
        # Resolve the flagged debit.
        screen.query_one("#journal-search").value = ref
        screen.query_one("#journal-search").focus()
        await pilot.press("enter")  # searches at once and opens the match
        await wait_screen(pilot, JournalDetailScreen)
        assert "declined_offline" in screen_text(app)
        await pilot.press("s")
        await wait_screen(pilot, SupervisorPinScreen)
        await pilot.press(*"8642", "enter")
        await wait_screen(pilot, ChoiceDialog)
        assert "Cash UGX 4,000 collected from the customer" in screen_text(app)
        await pilot.press("1")
        await wait_screen(pilot, JournalScreen)
    txn, events = term.journal_detail(ref)
    assert txn.state == "resolved"
    assert events[-1].note == "cash collected" and events[-1].operator == "boss"
    # The cash went into the drawer: the X report and the shift's cash-up expect it.
    assert term.x_report().payload["cash_expected"]["UGX"] == 4000
    assert term.shift_report().expected("UGX") == Money(4000, "UGX")


async def _resolve_from_detail(app, pilot, ref: str) -> None:
    await pilot.press("5")
    screen = await wait_screen(pilot, JournalScreen)
    screen.query_one("#journal-search").value = ref
    await pilot.press("enter")  # searches at once and opens the match
    await wait_screen(pilot, JournalDetailScreen)
    await pilot.press("s")
    await wait_screen(pilot, SupervisorPinScreen)
    await pilot.press(*"8642", "enter")
    await wait_screen(pilot, ChoiceDialog)


async def test_resolve_another_way_takes_a_note_and_moves_no_cash(term, sandbox):
    ref = flagged_debit(term)
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await _resolve_from_detail(app, pilot, ref)
        await pilot.press("2")
        await wait_screen(pilot, TextPrompt)
        await pilot.press(*"written", "space", *"off", "enter")
        await wait_screen(pilot, JournalScreen)
    txn, events = term.journal_detail(ref)
    assert txn.state == "resolved" and events[-1].note == "written off"
    assert term.x_report().payload["cash_expected"].get("UGX", 0) == 0


async def test_resolve_with_cash_needs_an_open_shift_and_changes_nothing(term, sandbox):
    ref = flagged_debit(term)
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await _resolve_from_detail(app, pilot, ref)
        await pilot.press("1")
        await wait_for(pilot, lambda: "No shift is open" in screen_text(app),
                       what="the no-shift message")
    assert term.journal.require(ref).is_flagged


async def test_void_a_card_payment_from_the_journal(term, sandbox):
    card = data.CARD_ACTIVE
    before = sandbox.state.patasente.balance(card)
    lookup = await term.lookup_card(card.payload)
    paid = await term.pay_by_card(lookup, Money(3000, "UGX"), data.CURRENT, card.pin, "shoes")
    assert paid.status == "approved"
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("5")
        await wait_screen(pilot, JournalScreen)
        await pilot.press("enter")  # newest first: the payment
        await wait_screen(pilot, JournalDetailScreen)
        await pilot.press("o")
        await wait_screen(pilot, ConfirmDialog)
        await pilot.press("1")
        await wait_screen(pilot, SupervisorPinScreen)
        await pilot.press(*"8642", "enter")
        await wait_screen(pilot, TextPrompt)
        await pilot.press(*"wrong", "space", *"size", "enter")
        await wait_for(pilot, lambda: "credited back" in screen_text(app), 10, "void message")
    assert sandbox.state.patasente.balance(card) == before
    refund = [t for t in term.journal.children(paid.ref) if t.kind == Kind.card_refund]
    # Booked to the cashier who took the sale (issue 13); the approving supervisor is kept.
    cashier = term.journal.require(paid.ref).operator
    assert refund and refund[0].state == State.done and refund[0].operator == cashier != "boss"
    assert refund[0].details["supervisor"] == "boss"


async def test_a_cash_basket_sale_is_found_in_the_journal_and_voided(term):
    """A cash-only basket sale has no journal row (seen in tmux: the journal said "All: 0"
    after one): S lists the basket sales; its detail has the receipt, a reprint and the
    void, with the cash to hand back."""
    from pos.catalogue import Item
    from screens.journal_sales import SaleDetailScreen

    await term.open_shift(Money(20_000, "UGX"))
    basket = term.new_basket()
    basket.add(Item("Bread (large)", Money(6_000, "UGX"), 3))
    sale = term.begin_sale(basket)
    await term.sale_pay_cash(sale.id, Money(10_000, "UGX"))
    other = term.begin_sale(basket)
    term.abandon_sale(other.id)  # abandoned with nothing paid: not listed
    app = app_for(term.settings, term, theme="console")
    async with app.run_test(size=(60, 20)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("5")
        screen = await wait_screen(pilot, JournalScreen)
        await pilot.press("down", "s")  # the list's S: basket sales
        await wait_for(pilot, lambda: sale.id in screen_text(app), what="the sale listed")
        assert other.id not in screen_text(app)
        assert "Basket sales: 1" in screen_text(app)
        await pilot.press("/")  # the search finds it by a line's name
        await type_text(pilot, "bread")
        await pilot.press("enter")
        detail = await wait_screen(pilot, SaleDetailScreen)
        text = screen_text(app)
        assert "Bread (large)" in text and "cash UGX 6,000 paid" in text
        await pilot.press("o")
        await wait_screen(pilot, ConfirmDialog)
        await wait_for(pilot, lambda: f"Void sale {sale.id} UGX 6,000" in screen_text(app),
                       what="the void's question")
        await pilot.press("1")
        await wait_screen(pilot, SupervisorPinScreen)
        await pilot.press(*"8642", "enter")
        await wait_screen(pilot, TextPrompt)
        await pilot.press(*"wrong", "enter")
        await wait_for(pilot, lambda: "voided" in screen_text(app), 10, "the void message")
        assert detail is not None
    assert term.sale(sale.id).state == "voided"
    assert screen.state == "sales"
    assert term.shift_report().expected().minor == 20_000  # the cash went back out


async def test_the_journal_reads_a_page_at_a_time_as_the_cursor_goes_down(term):
    """A first page, not the whole journal: the first paint does not grow with it
    (issue 15). Rows journaled while the list is open never show twice."""
    from screens.journal import PAGE_AHEAD

    PAGE_ROWS = 24  # a page is the screen's height (80x24)

    def sale(i: int) -> str:
        return term.journal.create(Kind.vend, Money(1000 + i, "UGX"), operator="ann",
                                   terminal_id="POS-001", meter=f"0145117{i:04d}").ref

    refs = [sale(i) for i in range(PAGE_ROWS * 2 + 7)]
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("5")
        screen = await wait_screen(pilot, JournalScreen)
        table = screen.query_one("#journal-table")
        assert table.row_count == PAGE_ROWS
        assert f"Showing all: {PAGE_ROWS}+" in screen_text(app)
        newest = sale(999)  # journaled while the list is open: pages shift by one
        await pilot.press("down")  # to the list
        for _ in range(PAGE_ROWS - PAGE_AHEAD):
            await pilot.press("down")
        # The new row moved the second page down by one: its first row was shown already.
        await wait_for(pilot, lambda: table.row_count == 2 * PAGE_ROWS - 1,
                       what="a second page")
        await pilot.press("ctrl+end")  # the bottom: the page after it is read too
        await wait_for(pilot, lambda: table.row_count == len(refs), what="the last page")
        await pilot.press("ctrl+end")
        await pilot.pause()
        assert [k.value for k in table.rows] == refs[::-1]  # each once, newest first
        assert newest not in table.rows  # until the list is read again
        assert f"Showing all: {len(refs)} " in screen_text(app)


async def test_x_report_then_day_close_needs_override_when_unsynced(term, sandbox):
    sale = await term.sell_token(data.METER_OK, Money(30000, "KES"), "Bilbo Baggins")
    assert sale.status == "approved"
    sandbox.stop()
    offline = await term.sell_token(data.METER_PENDING, Money(20000, "KES"), "Frodo")
    assert offline.status == "offline"
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("6")
        await wait_screen(pilot, ReportScreen)
        assert "X REPORT" in screen_text(app)
        await pilot.press("z")
        await wait_screen(pilot, ConfirmDialog)
        await pilot.press("1")
        await wait_screen(pilot, ConfirmDialog)  # unsynced: override?
        assert "not synced" in screen_text(app)
        await pilot.press("1")
        await wait_screen(pilot, SupervisorPinScreen)
        await pilot.press(*"8642", "enter")
        await wait_screen(pilot, ReportScreen)
        text = screen_text(app)
        assert "Z REPORT #1" in text
        await wait_for(pilot, lambda: "Override by" in screen_text(app) or "boss" in
                       app.screen.text, 5, "override line")
        # The Z is shown first; its backup is made by a worker thread meanwhile.
        from pos.backup import backups

        made = await wait_for(pilot, lambda: backups(term.settings.home), 30,
                              "the day-close backup")
        assert made[-1].name.endswith("-z1.db")
    (z,) = term.journal.z_reports()
    assert z.payload["override_by"] == "boss"


async def test_settings_saved_by_a_supervisor_with_passwords_masked(term, sandbox, tmp_path):
    app = app_for(term.settings, term, kiosk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("8")
        await wait_screen(pilot, SupervisorPinScreen)
        await pilot.press(*"8642", "enter")
        screen = await wait_screen(pilot, SettingsScreen)
        secret = term.settings.patasente.password.get_secret_value()
        assert secret and secret not in screen_text(app)
        screen.query_one("#set-offline-max_amount").value = "12345"
        screen.query_one("#set-kiosk-idle_lock_seconds").value = "abc"
        await pilot.press("f2")
        await wait_for(pilot, lambda: "idle_lock_seconds" in screen_text(app),
                       what="the invalid field named")
        assert isinstance(app.screen, SettingsScreen)  # invalid number: not saved
        screen.query_one("#set-kiosk-idle_lock_seconds").value = "300"
        await pilot.press("f2")
        await wait_screen(pilot, HomeScreen)
        assert app.settings.offline.max_amount == 12345
    saved = tomllib.loads((tmp_path / "config.toml").read_text())
    assert saved["offline"]["max_amount"] == 12345
    assert saved["kiosk"]["idle_lock_seconds"] == 300
    assert saved["patasente"]["password"] == secret  # an empty field keeps the password
    assert ((tmp_path / "config.toml").stat().st_mode & 0o077) == 0
