"""The counter through the screens: basket -> tender by card, cash with change, split;
shift open, cash in, blind cash-up. Against the sandbox over real HTTP."""

from __future__ import annotations

import pytest

from hardware.printer import DummyPrinter
from pos.sandbox import data
from screens.basket import BasketScreen, PercentScreen
from screens.cards import CardSummaryScreen, HandOverScreen
from screens.dialogs import ChoiceDialog, MessageDialog, TextPrompt
from screens.entry import AmountScreen, PinScreen
from screens.home import HomeScreen
from screens.receipt import ResultScreen
from screens.scan import ScanScreen
from screens.shift import ShiftReportScreen
from screens.tender import ChangeScreen, SaleReceiptScreen, TenderScreen
from tests.screens_support import app_for, screen_text, wait_for, wait_screen


async def open_shift(pilot, amount: str) -> None:
    await pilot.press("0")
    await wait_screen(pilot, AmountScreen)
    await pilot.press(*amount, "enter")
    await wait_screen(pilot, MessageDialog)
    await pilot.press("enter")
    await wait_screen(pilot, HomeScreen)


async def basket_of_three(pilot) -> None:
    """F1 (Soda 1,000), F4 (Sugar 4,500), product 19 typed (Milk 1,500) = UGX 7,000."""
    await pilot.press("9")
    await wait_screen(pilot, BasketScreen)
    await pilot.press("f1", "f4", "1", "9", "enter")


async def tender_of_three(pilot) -> None:
    """:func:`basket_of_three`, then Enter: the tender screen."""
    await basket_of_three(pilot)
    await wait_for(pilot, lambda: len(pilot.app.screen.basket.lines) == 3)
    await pilot.press("enter")
    await wait_screen(pilot, TenderScreen)


async def card_steps(pilot, card: data.DemoCard, pin: str, *, wallet: bool = True) -> None:
    screen = await wait_screen(pilot, ScanScreen)
    screen.query_one("#scan-manual").value = card.payload
    await pilot.press("enter")
    await wait_screen(pilot, CardSummaryScreen)
    await pilot.press("enter")
    if wallet:
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("1")
    await wait_screen(pilot, HandOverScreen)
    await pilot.press("enter")
    await wait_screen(pilot, PinScreen)
    await pilot.press(*pin, "enter")


async def finish(pilot, receipt: str = "3") -> None:
    await wait_screen(pilot, ResultScreen)
    await pilot.press("enter")
    await wait_screen(pilot, ChoiceDialog)
    await pilot.press(receipt)


async def test_basket_paid_by_card(term, sandbox):
    before = sandbox.state.patasente.balance(data.CARD_ACTIVE)
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await basket_of_three(pilot)
        basket = pilot.app.screen
        await wait_for(pilot, lambda: len(basket.basket.lines) == 3, what="3 lines")
        assert "TOTAL UGX 7,000" in screen_text(app)
        await pilot.press("enter")
        await wait_screen(pilot, TenderScreen)
        assert "TO PAY UGX 7,000" in screen_text(app)
        await pilot.press("1")
        await card_steps(pilot, data.CARD_ACTIVE, "1234")
        await finish(pilot, "2")
        await wait_screen(pilot, SaleReceiptScreen)
        text = screen_text(app)
        assert "Sugar 1kg" in text and "Soda 300ml" in text and "Milk 500ml" in text
        await pilot.press("escape")
        await wait_screen(pilot, HomeScreen)
    debit = term.journal_list()[0]
    assert debit.kind == "card_debit" and debit.state == "done" and debit.amount.minor == 7_000
    assert debit.reason == "Sale: Soda 300ml, Sugar 1kg, Milk 500ml"
    assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == before - 7_000
    sale = term.sale(debit.details["sale_id"])
    assert sale.state == "done" and [p.tender for p in sale.parts] == ["card"]


async def test_cash_with_change_opens_the_drawer(term):
    printer = DummyPrinter()
    term.printer = printer
    app = app_for(term.settings, term, printer=printer)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await open_shift(pilot, "20000")
        await tender_of_three(pilot)
        await pilot.press("2")
        await wait_screen(pilot, AmountScreen)
        await pilot.press(*"10000")
        assert "UGX 10,000" in screen_text(app)  # grouped as typed: a zero too many shows
        await pilot.press("enter")
        await wait_screen(pilot, ChangeScreen)
        assert "CHANGE UGX 3,000" in screen_text(app)
        await pilot.press("enter")
        await finish(pilot)
        await wait_screen(pilot, HomeScreen)
    assert printer.kicks == 2  # the float, then the sale
    rep = term.shift_report()
    assert rep.expected().minor == 20_000 + 7_000


async def test_cash_with_no_shift_open_asks_the_float_before_the_cash(term):
    """Seen in tmux: basket, Cash, 10,000 typed, and only then "No shift is open". The
    float is asked first, the shift opens, and the same sale takes its cash."""
    app = app_for(term.settings, term)
    async with app.run_test(size=(60, 20)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await tender_of_three(pilot)
        await pilot.press("2")
        screen = await wait_screen(pilot, AmountScreen)
        assert screen.step_title == "Open shift: opening float" and "No shift is open" in \
            screen_text(app)
        await pilot.press(*"5000", "enter")
        screen = await wait_for(pilot, lambda: isinstance(pilot.app.screen, AmountScreen)
                                and pilot.app.screen.step_title == "Cash tendered"
                                and pilot.app.screen, what="the cash tendered")
        assert term.current_shift() is not None
        await pilot.press(*"7000", "enter")
        await wait_screen(pilot, ChangeScreen)
        await pilot.press("enter")
        await finish(pilot)
        await wait_screen(pilot, HomeScreen)
    report = term.shift_report()
    assert report.expected().minor == 5_000 + 7_000
    assert ("Baskets sold", "1") in report.lines()  # the sale began before the shift


async def test_split_tender_declined_card_then_card_and_cash(term, sandbox):
    await term.open_shift(term.new_basket().total)
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await tender_of_three(pilot)
        await pilot.press("3")  # split
        await wait_screen(pilot, AmountScreen)
        await pilot.press(*"5000", "enter")
        await card_steps(pilot, data.CARD_ACTIVE, "9999")  # wrong PIN: declined
        await wait_screen(pilot, ResultScreen)
        assert "DECLINED" in screen_text(app)
        await pilot.press("enter")
        tender = await wait_screen(pilot, TenderScreen)
        assert tender.sale.remaining.minor == 7_000 and "DECLINED" in screen_text(app)
        await pilot.press("3")
        await wait_screen(pilot, AmountScreen)
        await pilot.press(*"5000", "enter")
        await card_steps(pilot, data.CARD_ACTIVE, "1234")
        tender = await wait_screen(pilot, TenderScreen)
        assert "TO PAY UGX 2,000" in screen_text(app)
        await pilot.press("2")
        await wait_screen(pilot, AmountScreen)
        await pilot.press(*"2000", "enter")
        await wait_screen(pilot, ChangeScreen)
        await pilot.press("enter")
        await finish(pilot)
        await wait_screen(pilot, HomeScreen)
    sale = term.sale(tender.sale.id)
    assert sale.state == "done" and sale.tender_label() == "SPLIT"
    assert [(p.tender, p.state, p.amount.minor) for p in sale.parts] == [
        ("card", "declined", 5_000), ("card", "paid", 5_000), ("cash", "paid", 2_000)]


@pytest.mark.counter(supervisor=True)
async def test_discount_over_the_cashier_cap_needs_the_supervisor(term):
    from screens.signin import SupervisorPinScreen

    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("9")
        basket = await wait_screen(pilot, BasketScreen)
        await pilot.press("f3", "d")  # Bread 6,000
        await wait_screen(pilot, PercentScreen)
        await pilot.press("2", "5", "enter")
        await wait_screen(pilot, SupervisorPinScreen)
        await pilot.press(*"8642", "enter")
        await wait_for(pilot, lambda: basket.basket.total.minor == 4_500, what="discount")
        assert basket.basket.discount_by == "boss"
        assert "-25%" in screen_text(app)


async def test_shift_cash_in_and_blind_cash_up(term):
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await open_shift(pilot, "50000")
        await pilot.press("0")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("1")  # cash in
        await wait_screen(pilot, AmountScreen)
        await pilot.press(*"3000", "enter")
        prompt = await wait_screen(pilot, TextPrompt)
        prompt.query_one("#prompt-input").value = "coins from the bank"
        await pilot.press("enter")
        await wait_screen(pilot, HomeScreen)
        await pilot.press("0")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("3")  # close
        await wait_screen(pilot, AmountScreen)
        text = screen_text(app)
        assert "53,000" not in text and "xpected" not in text  # blind
        await pilot.press(*"52500", "enter")
        await wait_screen(pilot, AmountScreen)  # KES
        await pilot.press("0", "enter")
        await wait_screen(pilot, ShiftReportScreen)
        text = screen_text(app)
        assert "UGX 53,000" in text and "-UGX 500" in text
    assert term.current_shift() is None


@pytest.mark.parametrize("width", [12, 16, 18, 22, 40])
def test_a_quick_key_label_cuts_the_name_never_the_key_or_the_price(width):
    from pos.catalogue import Item
    from pos.money import Money
    from screens.basket import quick_label

    item = Item("Bread (large loaf)", Money(6_000, "UGX"), 3)
    label = quick_label(3, item, width)
    assert label.startswith("F3 ") and label.endswith(" 6,000")
    assert len(label) <= max(width, len("F3 B. 6,000"))
    if width >= len("F3 Bread (large loaf) 6,000"):
        assert label == "F3 Bread (large loaf) 6,000"
    else:
        assert "Bread (large loaf)" not in label and label.split(" ", 1)[1].count(".") == 1
        cut = label[len("F3 "):-len(" 6,000") - 1]  # less its "."
        # between words, or a hard cut where not even "Bread" fits
        assert item.name[len(cut):len(cut) + 1] in (" ", "") or len(cut) < len("Bread")


def test_a_quick_key_label_cuts_between_words():
    from pos.catalogue import Item
    from pos.money import Money
    from screens.basket import quick_label

    assert quick_label(1, Item("Soda 300ml", Money(1_000, "UGX"), 1), 16) == "F1 Soda. 1,000"
    assert quick_label(1, Item("Sugar 1kg", Money(4_500, "UGX"), 1), 18) == "F1 Sugar 1kg 4,500"
    assert quick_label(1, Item("Mangoes", Money(4_500, "UGX"), 1), 14) == "F1 Mang. 4,500"


@pytest.mark.parametrize(("typed", "shown"), [
    ("", "0"), ("0", "0"), ("950", "950"), ("1500000", "1,500,000"), ("1234.", "1,234."),
    ("1234.5", "1,234.5"), ("0.05", "0.05")])
def test_the_amount_display_groups_thousands_as_typed(typed, shown):
    from screens.entry import grouped

    assert grouped(typed) == shown
