"""``sente-pos demo``: the app on the built-in sandbox, which starts serving after the
first paint, with the demo operators' PINs hashed in advance."""

from __future__ import annotations

import asyncio

import pytest

from pos.operators import is_pin_hash, verify_pin
from pos.terminal import Terminal
from screens.home import HomeScreen
from screens.signin import SignInScreen
from sente_pos.launch import DEMO_CASHIER, DEMO_PIN_HASHES, DEMO_SUPERVISOR, demo_app
from tests.screens_support import screen_text, type_text, wait_for, wait_screen


@pytest.mark.parametrize("name, pin", [DEMO_SUPERVISOR, DEMO_CASHIER])
def test_demo_pin_hashes_match_the_pins_shown(name, pin):
    assert verify_pin(pin, DEMO_PIN_HASHES[name])
    assert not verify_pin("0000", DEMO_PIN_HASHES[name])


#: Lines on a phone keypad (1 2 3 / 4 5 6 / 7 8 9 / 0) and a numeric pad (7 8 9 on top,
#: 0 under 1 and 2), both ways: the next guesses after repeats and runs.
KEYPAD_LINES = {line for forward in ("1470", "2580", "3690", "1590", "3570", "7410", "8520",
                                     "9630", "7530", "9510")
                for line in (forward, forward[::-1])}


def test_the_demo_supervisor_pin_is_one_the_product_accepts_for_a_supervisor():
    """The demo seeded ``boss`` with 9999, a PIN the product refuses to any supervisor."""
    from pos.operators import validate_supervisor_pin

    pin = DEMO_SUPERVISOR[1]
    assert validate_supervisor_pin(pin) == pin
    assert pin not in KEYPAD_LINES
    assert len(set(pin)) == len(pin)  # no digit twice


def test_a_hashed_operator_is_checked_like_any_other(tmp_path, monkeypatch):
    from pos.errors import InputError
    from tests.screens_support import make_settings

    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    term = Terminal.open_sync(make_settings(tmp_path))
    try:
        with pytest.raises(InputError):
            term.add_hashed_operator("eve", "cashier", "1111")  # a PIN is not a hash
        assert not is_pin_hash("scrypt$x$8$1$a$b") and not term.has_operators()
        term.add_hashed_operator("boss", "supervisor", DEMO_PIN_HASHES["boss"])
        with pytest.raises(InputError):
            term.sign_in("boss", "1234")
        assert term.sign_in(*DEMO_SUPERVISOR).is_supervisor
    finally:
        term.journal.close()


def test_demo_paints_sign_in_first_then_serves_the_sandbox(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))

    async def drive(app) -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_screen(pilot, SignInScreen)
            assert "Demo: cashier amina PIN 1111" in screen_text(app)
            await wait_for(pilot, lambda: sandbox.running, what="the sandbox serving")
            await type_text(pilot, "amina")
            await pilot.press("enter", *"1111", "enter")
            await wait_screen(pilot, HomeScreen)
            # The floats came from the sandbox (requests queued while it started).
            await wait_for(pilot, lambda: "UGX 500,000" in screen_text(app),
                           what="the Patasente float")

    with demo_app(tmp_path / "demo") as app:
        sandbox = app._after_first_paint[0].__self__
        assert not sandbox.running  # bound, not yet serving: nothing delays the first paint
        asyncio.run(drive(app))
    assert not sandbox.running  # the demo's sandbox stops with the app


async def test_the_pin_check_runs_off_the_event_loop(tmp_path, monkeypatch):
    """scrypt takes ~50 ms here and more on a Pi: the screen must stay live meanwhile."""
    from pos.errors import InputError
    from tests.screens_support import make_settings

    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    term = Terminal.open_sync(make_settings(tmp_path))
    term.add_hashed_operator("boss", "supervisor", DEMO_PIN_HASHES["boss"])
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        op = await term.sign_in_async(*DEMO_SUPERVISOR)
        assert term.operator == op and op.is_supervisor
        assert ticks > 10, "the event loop stood still during the PIN check"
        ticks = 0
        assert (await term.check_supervisor_async(DEMO_SUPERVISOR[1])).name == "boss"
        assert ticks > 10
        with pytest.raises(InputError):
            await term.sign_in_async("boss", "1234")
    finally:
        task.cancel()
        term.journal.close()


def test_the_demo_wiring_brings_its_controls(tmp_path, monkeypatch):
    """``sente-pos demo`` as shipped: F12 takes PawaCard down and the bar follows on the
    demo's probe cycle; F3 on the scan screen holds the picked card up to the camera."""
    from pos.sandbox import data
    from screens.cards import CardSummaryScreen
    from screens.demo import CameraCardPicker, DemoMenu
    from screens.scan import ScanScreen

    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))

    async def drive(app) -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_screen(pilot, SignInScreen)
            assert "F12" in screen_text(app) and "F3" in screen_text(app)
            await wait_for(pilot, lambda: app.demo.sandbox.running, what="the sandbox")
            await type_text(pilot, "amina")
            await pilot.press("enter", *"1111", "enter")
            await wait_screen(pilot, HomeScreen)
            await wait_for(pilot, lambda: "● ONLINE" in screen_text(app), what="online")
            await pilot.press("f12")
            await wait_screen(pilot, DemoMenu)
            await pilot.press("2")
            await wait_for(pilot, lambda: "offline: PawaCard" in screen_text(app),
                           timeout=15, what="the terminal seeing PawaCard down")
            await pilot.press("2", "escape")
            await wait_screen(pilot, HomeScreen)
            await wait_for(pilot, lambda: "● ONLINE" in screen_text(app), timeout=30,
                           what="PawaCard back")
            await pilot.press("1")
            await wait_screen(pilot, ScanScreen)
            await pilot.press("f3")
            await wait_screen(pilot, CameraCardPicker)
            await pilot.press("6")
            await wait_screen(pilot, CardSummaryScreen, timeout=15)
            assert data.CARD_CREDIT.card_no in screen_text(app)

    with demo_app(tmp_path / "demo") as app:
        asyncio.run(drive(app))
