"""Electricity token and bill through the screens, against the PawaCard sandbox."""

from __future__ import annotations

import pytest

from pos.sandbox import data
from screens.cards import CardSummaryScreen, HandOverScreen
from screens.dialogs import ChoiceDialog, ConfirmDialog, MessageDialog
from screens.electricity import NumberScreen
from screens.entry import AmountScreen, PinScreen
from screens.home import HomeScreen
from screens.receipt import ReceiptScreen, ResultScreen
from screens.scan import ScanScreen
from screens.widgets import TokenDisplay
from tests.screens_support import (
    app_for,
    screen_text,
    wait_for,
    wait_screen,
)

pytestmark = pytest.mark.sandbox(throttle_seconds=0, daily_limit=None)


async def start_token(pilot, meter: str, amount: str) -> None:
    await pilot.press("2")
    await wait_screen(pilot, NumberScreen)
    await pilot.press(*meter, "enter")
    await wait_screen(pilot, ConfirmDialog)
    assert data.METER_NAMES.get(meter, "") in screen_text(pilot.app)
    await pilot.press("1")
    await wait_screen(pilot, AmountScreen)
    await pilot.press(*amount, "enter")
    await wait_screen(pilot, ChoiceDialog)


async def test_meter_number_gets_instant_luhn_feedback(term, sandbox):
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("2")
        await wait_screen(pilot, NumberScreen)
        await pilot.press(*data.METER_BAD_LUHN)
        await wait_for(pilot, lambda: "not valid (check digit)" in screen_text(app),
                       what="the check-digit message")
        await pilot.press("enter")
        assert isinstance(app.screen, NumberScreen)  # nothing sent
        for _ in data.METER_BAD_LUHN:
            await pilot.press("backspace")
        await pilot.press(*data.METER_OK)
        await wait_for(pilot, lambda: "number OK" in screen_text(app), what="number OK")
    assert term.journal_list() == []
    assert sandbox.state.vends_performed == 0


async def test_cash_token_is_shown_large_and_journaled(term, sandbox):
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await start_token(pilot, data.METER_OK, "500")
        await pilot.press("1")  # cash
        screen = await wait_screen(pilot, ResultScreen)
        token = screen.query_one(TokenDisplay)
        text = screen_text(app)
        assert "APPROVED" in text
        assert token.plain in text  # groups of four under the big digits
        assert "█" in text
        await pilot.press("enter")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("3")
        await wait_screen(pilot, HomeScreen)
    (txn,) = term.journal_list()
    assert (txn.kind, txn.state, txn.tender) == ("vend", "done", "cash")
    assert txn.token and " ".join(txn.token[i:i + 4] for i in range(0, 20, 4)) == token.plain
    assert sandbox.state.vends_performed == 1


async def test_pending_vend_is_shown_then_completes(term, sandbox):
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await start_token(pilot, data.METER_PENDING, "700")
        await pilot.press("1")
        await wait_for(pilot, lambda: "pending" in screen_text(app).lower()
                       or isinstance(app.screen, ResultScreen), 10, "pending state")
        await wait_screen(pilot, ResultScreen, timeout=20)
        assert "APPROVED" in screen_text(app)
        assert app.screen.query(TokenDisplay)
    (txn,) = term.journal_list()
    assert txn.state == "done" and txn.token
    events = [e.to_state for e in term.journal_detail(txn.ref)[1]]
    assert "pending" in events


async def test_token_paid_by_card_then_reprint_last_token(term, sandbox):
    before = sandbox.state.patasente.balance(data.CARD_ACTIVE)
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await start_token(pilot, data.METER_OK, "1000")
        await pilot.press("2")  # card
        scan = await wait_screen(pilot, ScanScreen)
        scan.query_one("#scan-manual").value = data.CARD_ACTIVE.payload
        await pilot.press("enter")
        await wait_screen(pilot, CardSummaryScreen)
        await pilot.press("enter")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("1")
        await wait_screen(pilot, HandOverScreen)
        await pilot.press("enter")
        await wait_screen(pilot, PinScreen)
        await pilot.press(*"1234", "enter")
        await wait_screen(pilot, ResultScreen, timeout=20)
        assert "APPROVED" in screen_text(app)
        await pilot.press("enter")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("3")
        await wait_screen(pilot, HomeScreen)
        # Reprint the last token from the meter screen (F2).
        await pilot.press("2")
        await wait_screen(pilot, NumberScreen)
        await pilot.press("f2")
        await wait_screen(pilot, ReceiptScreen)
        text = screen_text(app)
        assert "DUPLICATE" in text
        vend = next(t for t in term.journal_list() if t.kind == "vend")
        assert vend.token[:4] in text
    assert sandbox.state.patasente.balance(data.CARD_ACTIVE) != before
    kinds = sorted((t.kind, t.state) for t in term.journal_list())
    assert ("vend", "done") in kinds and ("card_debit", "done") in kinds


async def test_failed_vend_paid_by_card_is_credited_back(term, sandbox):
    before = sandbox.state.patasente.balance(data.CARD_NO_PIN)
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await start_token(pilot, data.METER_FAIL, "300")
        await pilot.press("2")
        scan = await wait_screen(pilot, ScanScreen)
        scan.query_one("#scan-manual").value = data.CARD_NO_PIN.payload
        await pilot.press("enter")
        await wait_screen(pilot, CardSummaryScreen)
        await pilot.press("enter")
        await wait_screen(pilot, HandOverScreen)
        await pilot.press("enter")
        await wait_screen(pilot, ResultScreen, timeout=20)
        text = screen_text(app)
        assert "CARD CREDITED BACK" in text
        await pilot.press("enter")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("3")
        # The refund goes out in the background as soon as the flow ends.
        await wait_for(pilot, lambda: sandbox.state.patasente.balance(data.CARD_NO_PIN) == before,
                       15, "the refund")
    states = {t.kind: t.state for t in term.journal_list()}
    assert states == {"card_debit": "done", "vend": "declined", "card_refund": "done"}
    assert any(t.kind == "card_refund" for t in term.journal_list())


async def test_postpaid_bill_cash(term, sandbox):
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("3")
        await wait_screen(pilot, NumberScreen)
        await pilot.press(*data.ACCOUNT_OK, "enter")
        await wait_screen(pilot, ConfirmDialog)
        assert "Bilbo Baggins" in screen_text(app)
        await pilot.press("1")
        await wait_screen(pilot, AmountScreen)
        await pilot.press(*"250", "enter")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("1")
        await wait_screen(pilot, ResultScreen, timeout=20)
        assert "APPROVED" in screen_text(app)
        await pilot.press("enter")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("2")
        await wait_screen(pilot, ReceiptScreen)
        assert "ELECTRICITY BILL" in screen_text(app)
    (txn,) = term.journal_list()
    assert (txn.kind, txn.state, txn.account) == ("postpaid", "done", data.ACCOUNT_OK)


async def test_unknown_meter_shows_the_providers_message_and_sells_nothing(term, sandbox):
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("2")
        await wait_screen(pilot, NumberScreen)
        await pilot.press(*data.METER_UNKNOWN, "enter")
        await wait_screen(pilot, MessageDialog, timeout=15)
        assert "Not completed" in screen_text(app)
        assert app.errors_shown and "Traceback" not in screen_text(app)
        await pilot.press("enter")
        await wait_screen(pilot, HomeScreen)
    assert term.journal_list() == []
    assert sandbox.state.vends_performed == 0
