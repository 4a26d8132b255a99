"""What the customer sees before the PIN when the card pays in another currency (issue 13,
point 4): the card's amount, the rate and the sale amount, on the hand-over and PIN screens,
at 80x24 and on a 480x320 console (60x20 cells); one quote per sale, shown and debited."""

from __future__ import annotations

import pytest

from pos.money import Money
from pos.sandbox import data
from screens.cards import CardSummaryScreen, HandOverScreen
from screens.dialogs import ChoiceDialog, ConfirmDialog, MessageDialog
from screens.electricity import NumberScreen
from screens.entry import AmountScreen, PinScreen
from screens.home import HomeScreen
from screens.receipt import ResultScreen
from screens.scan import ScanScreen
from tests.screens_support import app_for, screen_text, wait_screen

pytestmark = pytest.mark.sandbox(throttle_seconds=0, daily_limit=None)

SIZES = [(80, 24), (60, 20)]
QUOTES = "patasente/convert-currency"


async def to_hand_over(pilot, meter: str, amount: str, payload: str) -> None:
    await pilot.press("2")
    await wait_screen(pilot, NumberScreen)
    await pilot.press(*meter, "enter")
    await wait_screen(pilot, ConfirmDialog)
    await pilot.press("1")
    await wait_screen(pilot, AmountScreen)
    await pilot.press(*amount, "enter")
    await wait_screen(pilot, ChoiceDialog)
    await pilot.press("2")  # card
    scan = await wait_screen(pilot, ScanScreen)
    scan.query_one("#scan-manual").value = payload
    await pilot.press("enter")
    await wait_screen(pilot, CardSummaryScreen)
    await pilot.press("enter")
    await wait_screen(pilot, ChoiceDialog)  # which wallet
    await pilot.press("1")
    await wait_screen(pilot, HandOverScreen)


def assert_charge_shown(text: str, charge: str, price: str, rate: str) -> None:
    flat = " ".join(text.split())
    assert charge in flat, text
    assert price in flat, text
    assert rate in flat, text
    assert "█" in text, text  # the card's amount in big digits


def quotes(sandbox) -> int:
    return sandbox.state.request_counts[QUOTES]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_customer_sees_card_amount_rate_and_sale_before_the_pin(term, sandbox, size):
    """KES 150 of electricity paid from a UGX card at 28.5 UGX per KES: UGX 4,275."""
    before = sandbox.state.patasente.balance(data.CARD_ACTIVE)
    app = app_for(term.settings, term)
    async with app.run_test(size=size) as pilot:
        await wait_screen(pilot, HomeScreen)
        await to_hand_over(pilot, data.METER_OK, "150", data.CARD_ACTIVE.payload)
        assert_charge_shown(screen_text(app), "UGX 4,275", "KES 150.00", "1 KES = 28.5 UGX")
        assert app.screen.query_one("#handover-ok").region.bottom <= size[1]
        await pilot.press("enter")
        await wait_screen(pilot, PinScreen)
        assert_charge_shown(screen_text(app), "UGX 4,275", "KES 150.00", "1 KES = 28.5 UGX")
        assert "KES 200" not in screen_text(app)
        await pilot.press(*"1234", "enter")
        await wait_screen(pilot, ResultScreen, timeout=20)
        assert "APPROVED" in screen_text(app)
    debit = next(t for t in term.journal_list() if t.kind == "card_debit")
    assert debit.amount == Money(4_275, "UGX")
    assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == before - 4_275
    assert quotes(sandbox) == 1  # one quote per sale: shown and debited


async def test_a_quote_that_expired_at_the_pin_is_fetched_again_and_shown(term, sandbox,
                                                                        monkeypatch):
    """The rate moves while the customer dithers: the PIN typed for the old figure debits
    nothing; the new figure is shown on the hand-over again and the debit is that one."""
    device = term.ctx.device
    real_mono = device.mono
    offset = [0.0]
    monkeypatch.setattr(device, "mono", lambda: real_mono() + offset[0])
    before = sandbox.state.patasente.balance(data.CARD_ACTIVE)
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await to_hand_over(pilot, data.METER_OK, "150", data.CARD_ACTIVE.payload)
        await pilot.press("enter")
        await wait_screen(pilot, PinScreen)
        assert "UGX 4,275" in screen_text(app)
        monkeypatch.setitem(data.UGX_PER_UNIT, "KES", "30")
        offset[0] = term.settings.patasente.quote_seconds + 1
        await pilot.press(*"1234", "enter")
        await wait_screen(pilot, HandOverScreen)
        assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == before  # nothing yet
        assert_charge_shown(screen_text(app), "UGX 4,500", "KES 150.00", "1 KES = 30 UGX")
        await pilot.press("enter")
        await wait_screen(pilot, PinScreen)
        assert "UGX 4,500" in screen_text(app)
        await pilot.press(*"1234", "enter")
        await wait_screen(pilot, ResultScreen, timeout=20)
        assert "APPROVED" in screen_text(app)
    debits = [t for t in term.journal_list() if t.kind == "card_debit"]
    assert [d.amount for d in debits] == [Money(4_500, "UGX")]
    assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == before - 4_500
    assert quotes(sandbox) == 2


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_bill_paid_by_card_shows_the_card_amount_before_the_pin(term, sandbox, size):
    app = app_for(term.settings, term)
    async with app.run_test(size=size) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("3")
        await wait_screen(pilot, NumberScreen)
        await pilot.press(*data.ACCOUNT_OK, "enter")
        await wait_screen(pilot, ConfirmDialog)
        await pilot.press("1")
        await wait_screen(pilot, AmountScreen)
        await pilot.press(*"1000", "enter")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("2")
        scan = await wait_screen(pilot, ScanScreen)
        scan.query_one("#scan-manual").value = data.CARD_ACTIVE.payload
        await pilot.press("enter")
        await wait_screen(pilot, CardSummaryScreen)
        await pilot.press("enter")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("1")
        await wait_screen(pilot, HandOverScreen)
        assert_charge_shown(screen_text(app), "UGX 28,500", "KES 1,000.00",
                            "1 KES = 28.5 UGX")
        await pilot.press("enter")
        await wait_screen(pilot, PinScreen)
        assert_charge_shown(screen_text(app), "UGX 28,500", "KES 1,000.00",
                            "1 KES = 28.5 UGX")
        await pilot.press(*"1234", "enter")
        await wait_screen(pilot, ResultScreen, timeout=20)
    debit = next(t for t in term.journal_list() if t.kind == "card_debit")
    assert debit.amount == Money(28_500, "UGX")
    assert quotes(sandbox) == 1


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_same_currency_card_payment_shows_the_amount_large_without_a_quote(
        term, sandbox, size):
    app = app_for(term.settings, term)
    async with app.run_test(size=size) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("1")
        scan = await wait_screen(pilot, ScanScreen)
        scan.query_one("#scan-manual").value = data.CARD_ACTIVE.payload
        await pilot.press("enter")
        await wait_screen(pilot, CardSummaryScreen)
        await pilot.press("enter")
        await wait_screen(pilot, AmountScreen)
        await pilot.press(*"12500", "enter")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("1")
        await wait_screen(pilot, HandOverScreen)
        text = screen_text(app)
        assert "UGX 12,500" in text and "█" in text and "Rate" not in text
        await pilot.press("enter")
        await wait_screen(pilot, PinScreen)
        text = screen_text(app)
        assert "UGX 12,500" in text and "█" in text
        await pilot.press("escape")
    assert quotes(sandbox) == 0


async def test_a_throttled_meter_is_refused_at_the_meter_number_before_any_pin(term, sandbox):
    """PawaCard's 5-minute throttle is told at the meter number: no amount, no card, no
    PIN is asked for a sale that would be refused."""
    first = await term.sell_token(data.METER_OK, Money(10_000, "KES"), "Bilbo")
    assert first.status == "approved"
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("2")
        await wait_screen(pilot, NumberScreen)
        await pilot.press(*data.METER_OK, "enter")
        await wait_screen(pilot, MessageDialog)
        assert "5 minutes" in screen_text(app)
        await pilot.press("enter")
        await wait_screen(pilot, HomeScreen)
    assert [t.kind for t in term.journal_list()] == ["vend"]
    assert quotes(sandbox) == 0


async def test_a_quote_expiring_between_the_pin_and_the_sale_is_shown_again(term, sandbox,
                                                                            monkeypatch):
    """The use case refuses a stale quote even when the screen's own check let it by (it
    expired in between): the new amount is shown and a new PIN taken; one debit."""
    device = term.ctx.device
    real_mono = device.mono
    offset = [0.0]
    monkeypatch.setattr(device, "mono", lambda: real_mono() + offset[0])
    checks = iter([True])  # the screen's first check passes; the use case's does not
    real_fresh = term.quote_fresh
    monkeypatch.setattr(term, "quote_fresh", lambda q: next(checks, None) or real_fresh(q))
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await to_hand_over(pilot, data.METER_OK, "150", data.CARD_ACTIVE.payload)
        await pilot.press("enter")
        await wait_screen(pilot, PinScreen)
        offset[0] = term.settings.patasente.quote_seconds + 1
        await pilot.press(*"1234", "enter")
        screen = await wait_screen(pilot, HandOverScreen)
        assert screen.renewed and "renewed" in screen_text(app)
        await pilot.press("enter")
        await wait_screen(pilot, PinScreen)
        await pilot.press(*"1234", "enter")
        await wait_screen(pilot, ResultScreen, timeout=20)
        assert "APPROVED" in screen_text(app)
    debits = [t for t in term.journal_list() if t.kind == "card_debit"]
    assert [(d.state, d.amount) for d in debits] == [("done", Money(4_275, "UGX"))]
    assert quotes(sandbox) == 2


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("price,charge", [(10_000_000, 2_850_000), (35_087_720, 10_000_000)],
                         ids=["power_max", "card_max"])
async def test_the_largest_amounts_are_never_clipped(term, sandbox, size, price, charge):
    """The most one electricity sale (KES 100,000) or one card payment (UGX 10,000,000)
    may be; too wide for big digits beside the pad, the amount is one bold line."""
    from pos.usecases.quotes import Quote

    quote = Quote(Money(price, "KES"), Money(charge, "UGX"), data.CARD_ACTIVE.id)
    shown = quote.charge.format()
    app = app_for(term.settings, term)
    async with app.run_test(size=size) as pilot:
        await wait_screen(pilot, HomeScreen)
        for screen in (HandOverScreen(quote, "Credit Account"),
                       PinScreen(f"PIN for {shown}", charge=quote, wallet="Credit Account")):
            app.push_screen(screen)
            await wait_screen(pilot, type(screen))
            assert_charge_shown(screen_text(app), shown, quote.price.format(),
                                "1 KES = 28.5 UGX")
            text = screen_text(app)
            assert f"Pay {shown}" in text and "Credit" in text and "Account" in text
            app.pop_screen()
            await pilot.pause()
