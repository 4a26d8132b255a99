"""Operators through the screens: Settings (supervisor) > F3 > add, change role, disable."""

from __future__ import annotations

import pytest

from pos.pinguard import security_events
from screens.dialogs import ChoiceDialog, ConfirmDialog, TextPrompt
from screens.handover import HandOverNotice
from screens.home import HomeScreen
from screens.operators import NewPinForm, OperatorsScreen
from screens.settings import SettingsScreen
from screens.signin import SignInScreen, SupervisorPinScreen
from tests.screens_support import app_for, screen_text, type_text, wait_for, wait_screen

pytestmark = pytest.mark.counter(supervisor=True)


async def open_operators(pilot) -> OperatorsScreen:
    await wait_screen(pilot, HomeScreen)
    await pilot.press("8")
    await wait_screen(pilot, SupervisorPinScreen)
    await pilot.press(*"8642", "enter")
    await wait_screen(pilot, SettingsScreen)
    await pilot.press("f3")
    return await wait_screen(pilot, OperatorsScreen)


async def new_pin(pilot, app, pin: str, again: str | None = None) -> None:
    await wait_screen(pilot, HandOverNotice)
    await pilot.press("enter")
    await wait_screen(pilot, NewPinForm)
    await pilot.press(*pin, "enter", *(again or pin), "enter")


async def pick(pilot, app, name: str) -> None:
    screen = await wait_screen(pilot, OperatorsScreen)
    button = next(b for b in screen.query(".operator-row") if b.name == name)
    button.focus()
    await pilot.press("enter")


async def test_a_supervisor_adds_a_cashier_who_types_their_own_pin(term, sandbox):
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_operators(pilot)
        assert "ann" in screen_text(app) and "boss" in screen_text(app)
        await pilot.press("a")
        await wait_screen(pilot, TextPrompt)
        await type_text(pilot, "joe")
        await pilot.press("enter")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("1")  # cashier
        await new_pin(pilot, app, "2468", "2469")  # typed differently: asked again
        await wait_for(pilot, lambda: "differ" in screen_text(app), 5, "the PINs differ")
        await pilot.press(*"2468", "enter", *"2468", "enter")
        await wait_screen(pilot, OperatorsScreen)
        await wait_for(pilot, lambda: "joe added as cashier" in screen_text(app), 5, "note")
        assert "2468" not in screen_text(app)
        await pilot.press("escape")
        await wait_screen(pilot, SettingsScreen)  # back where F3 was pressed
    assert term.sign_in("joe", "2468").name == "joe"
    (event,) = [e for e in security_events(term.journal, kinds=["operator_added"])
                if e.subject == "operator:joe"]
    assert event.operator == "boss"


async def test_a_cashier_made_supervisor_cannot_keep_a_trivial_pin(term, sandbox):
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_operators(pilot)
        await pick(pilot, app, "ann")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("2")  # make supervisor
        await new_pin(pilot, app, "1234")
        await wait_for(pilot, lambda: "too easy" in screen_text(app), 5, "refusal")
        assert isinstance(app.screen, NewPinForm)
        assert term.journal.operator_get("ann").role == "cashier"
        await pilot.press(*"5831", "enter", *"5831", "enter")
        await wait_for(pilot, lambda: "ann is now a supervisor" in screen_text(app), 5,
                       "note")
    assert term.check_supervisor("5831").name == "ann"


async def test_disabling_the_signed_in_cashier_signs_her_out(term, sandbox):
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_operators(pilot)
        await pick(pilot, app, "ann")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("3")  # disable
        await wait_screen(pilot, ConfirmDialog)
        await pilot.press("1")
        screen = await wait_screen(pilot, SignInScreen)
        assert "ann" not in screen_text(app).split("Sign in", 1)[-1].split("PIN")[0]
        assert screen is app.screen
    assert term.operator is None
    assert term.journal.operator_get("ann").disabled


async def test_the_last_supervisor_cannot_disable_himself(term, sandbox):
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_operators(pilot)
        await pick(pilot, app, "boss")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("3")
        await wait_screen(pilot, ConfirmDialog)
        await pilot.press("1")
        await wait_for(pilot, lambda: "Another supervisor" in screen_text(app), 5, "refusal")
        await pilot.press("enter")
        await wait_screen(pilot, OperatorsScreen)
    assert not term.journal.operator_get("boss").disabled
