"""Scanning a card with the (simulated) camera and with a keyboard-wedge scanner."""

from __future__ import annotations

from hardware.simcam import SimulatedCamera
from hardware.wedge import WedgeDetector
from pos.sandbox import data
from screens.cards import CardSummaryScreen
from screens.home import HomeScreen
from screens.scan import ScanScreen
from tests.screens_support import (
    app_for,
    screen_text,
    wait_for,
    wait_screen,
)


async def test_camera_scan_looks_the_card_up(term, sandbox):
    camera = SimulatedCamera(fps=30)
    app = app_for(term.settings, term, camera)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("1")
        await wait_screen(pilot, ScanScreen)
        await wait_for(pilot, lambda: "scanning" in screen_text(app), 10, "camera status")
        camera.show(data.CARD_ACTIVE.payload)
        await wait_screen(pilot, CardSummaryScreen, timeout=15)
        text = screen_text(app)
        assert "1613*****65219" in text and "Credit Account" in text
        # A card payment's summary is the cashier's: the holder's balances are not on it
        # (Card services > Balance, with a supervisor; issue 13).
        assert "150,000" not in text and "60,000" not in text
        assert "balance for the holder only" in text
        await pilot.press("escape")
        await wait_screen(pilot, HomeScreen)
        await wait_for(pilot, lambda: not camera.running, 5, "camera stopped")
    assert term.journal_list() == []


async def test_wedge_burst_is_a_scan(term, sandbox):
    # Pilot key presses are slower than a real scanner's, so widen the burst window.
    wedge = WedgeDetector(max_interval=0.25, min_length=8)
    app = app_for(term.settings, term, wedge=wedge)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("1")
        await wait_screen(pilot, ScanScreen)
        await pilot.pause(1.1)  # the cashier's "1" is not part of the scan
        await pilot.press(*[("space" if c == " " else c) for c in data.CARD_NO_PIN.payload],
                          "enter")
        await wait_screen(pilot, CardSummaryScreen, timeout=10)
        assert "Shopping Card" in screen_text(app)


async def test_a_scan_on_the_home_screen_starts_a_card_payment(term, sandbox):
    wedge = WedgeDetector(max_interval=0.25, min_length=8)
    app = app_for(term.settings, term, wedge=wedge)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press(*[("space" if c == " " else c) for c in data.CARD_ACTIVE.payload],
                          "enter")
        await wait_screen(pilot, CardSummaryScreen, timeout=10)
        assert "1613*****65219" in screen_text(app)


async def test_fast_typing_elsewhere_is_not_eaten_by_the_wedge(term, sandbox):
    """Keys as fast as a scanner's (a paste, a terminal multiplexer) still reach a screen
    that takes no scans: the meter number and its Enter, the amount digits."""
    from screens.dialogs import ConfirmDialog
    from screens.electricity import NumberScreen
    from screens.entry import AmountScreen

    wedge = WedgeDetector(max_interval=0.25, min_length=8)
    app = app_for(term.settings, term, wedge=wedge)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("2")
        await wait_screen(pilot, NumberScreen)
        await pilot.pause(1.1)
        await pilot.press(*data.METER_OK, "enter")
        await wait_screen(pilot, ConfirmDialog, timeout=10)
        await pilot.press("1")
        screen = await wait_screen(pilot, AmountScreen)
        await pilot.press(*"123456789")
        assert screen.text == "123456789"
