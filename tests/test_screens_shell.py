"""The app shell against a real Terminal (no provider needed): first run, sign-in,
idle lock, kiosk quitting, the one error handler and the console theme."""

from __future__ import annotations

from typing import Any

import pytest

from pos.operators import hash_pin
from pos.terminal import Terminal
from screens.dialogs import MessageDialog
from screens.home import HomeScreen
from screens.signin import CreateSupervisorScreen, SignInScreen, SupervisorPinScreen
from tests.screens_support import (
    app_for,
    make_settings,
    screen_text,
    type_text,
    wait_for,
    wait_screen,
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
async def term(home):
    t = await Terminal.open(make_settings(home))
    yield t
    await t.aclose()


@pytest.fixture
def ann(term):
    """The terminal with cashier ann (PIN 1111) signed in."""
    term.add_operator("ann", "cashier", "1111")
    term.sign_in("ann", "1111")
    return term


async def test_first_run_creates_a_supervisor_then_home(home, term):
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, CreateSupervisorScreen)
        await type_text(pilot, "Grace")
        await pilot.press("enter", *"2468", "enter", *"2467", "enter")
        await wait_for(pilot, lambda: "The two PINs differ" in screen_text(app),
                       what="the PINs-differ message")
        assert not term.has_operators()
        await pilot.press(*"2468", "enter", *"2468", "enter")
        await wait_screen(pilot, HomeScreen)
        assert term.operator is not None and term.operator.name == "Grace"
        assert term.operator.is_supervisor
        assert "Grace" in screen_text(app)
    assert [op.name for op in term.operators()] == ["Grace"]


async def test_sign_in_rejects_a_wrong_pin_and_escape_does_not_skip(home, term):
    term.add_operator("ann", "cashier", "1111")
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, SignInScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, SignInScreen)
        await pilot.press(*"ann", "enter", *"9999", "enter")
        refusal = app.screen.query_one("#form-error")  # the PIN is checked in a thread
        await wait_for(pilot, lambda: str(refusal.content).strip(), what="the refusal")
        assert isinstance(app.screen, SignInScreen)
        assert term.operator is None
        text = screen_text(app)
        assert "9999" not in text
        await pilot.press(*"1111", "enter")
        await wait_screen(pilot, HomeScreen)
        assert term.operator.name == "ann"


async def test_idle_lock_signs_out_and_asks_for_the_pin(home):
    settings = make_settings(home, kiosk={"idle_lock_seconds": 1})
    term = await Terminal.open(settings)
    try:
        term.add_operator("ann", "cashier", "1111")
        term.sign_in("ann", "1111")
        app = app_for(settings, term)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_screen(pilot, HomeScreen)
            await wait_screen(pilot, SignInScreen, timeout=5)
            assert term.operator is None
            assert "Locked after being idle" in screen_text(app)
            # Not idle again before the test looks: a loaded CI machine can take over the
            # 1 s between the sign-in and the check (the home screen locked once more).
            app.settings.kiosk.idle_lock_seconds = 600
            await pilot.press(*"ann", "enter", *"1111", "enter")
            await wait_screen(pilot, HomeScreen)
            assert term.operator.name == "ann"
    finally:
        await term.aclose()


async def test_kiosk_quit_needs_the_supervisor_pin(home, term, ann):
    # A supervisor on a terminal that has only a cashier: seeded as the demo seeds its own
    # (adding one through add_operator needs a supervisor's approval).
    term.add_hashed_operator("boss", "supervisor", hash_pin("4321"))
    app = app_for(term.settings, term, kiosk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        for key in ("q", "ctrl+c", "ctrl+q"):
            await pilot.press(key)
            await wait_screen(pilot, SupervisorPinScreen)
            await pilot.press("escape")
            await wait_screen(pilot, HomeScreen)
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert app.is_running
        await pilot.press("q")
        await wait_screen(pilot, SupervisorPinScreen)
        await pilot.press(*"1111", "enter")  # a cashier's PIN is not a supervisor's
        await wait_for(pilot, lambda: "Supervisor PIN not accepted" in screen_text(app),
                       what="the refusal")
        assert app.is_running
        await pilot.press(*"4321", "enter")
        await wait_for(pilot, lambda: app.return_code is not None, what="the app to quit")
    assert app.return_code == 0


async def test_outside_kiosk_q_asks_before_quitting(home, term, ann):
    """`q` quit at once: one stray key ended the program in the middle of the day."""
    from screens.dialogs import ConfirmDialog

    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("q")
        await wait_screen(pilot, ConfirmDialog)
        await pilot.press("q")  # pressed again while asking: still one question
        await pilot.press("escape")
        await wait_screen(pilot, HomeScreen)
        assert app.is_running
        await pilot.press("q")
        await wait_screen(pilot, ConfirmDialog)
        await pilot.press("1")
        await wait_for(pilot, lambda: app.return_code is not None, what="the app to quit")
    assert not app.is_running and app.return_code == 0


def test_a_crash_exits_non_zero(tmp_path, monkeypatch):
    """A crash exited 0, so the kiosk unit (Restart=on-failure) did not restart it."""
    from sente_pos import launch

    class Crashing:
        return_code = None

        def run(self) -> None:
            self.return_code = 1  # what Textual sets after drawing an unhandled exception

    monkeypatch.setattr(launch, "demo_app", lambda home, console=False:
                        __import__("contextlib").nullcontext(Crashing()))
    assert launch.run_demo(tmp_path) == 1


async def test_a_failing_worker_shows_one_plain_message(home, term, ann):
    from pos.errors import ProviderError

    app = app_for(term.settings, term)

    async def broken(_app):
        raise ProviderError("PawaCard answered with nonsense", provider="pawacard",
                            detail="<html>stack</html>")

    async def crash(_app):
        raise KeyError("internal detail")

    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        app.run_worker(broken(app), group="flow", exit_on_error=False)
        await wait_screen(pilot, MessageDialog)
        text = screen_text(app)
        assert "PawaCard answered with nonsense" in text
        assert "<html>" not in text and "Traceback" not in text
        await pilot.press("enter")
        app.run_worker(crash(app), group="flow", exit_on_error=False)
        await wait_screen(pilot, MessageDialog)
        text = screen_text(app)
        assert "Something went wrong" in text
        assert "internal detail" not in text and "KeyError" not in text
    assert len(app.errors_shown) == 2


async def test_status_bar_shows_offline_and_operator(home, term, ann):
    app = app_for(term.settings, term, theme="console")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        # The providers are unreachable: the first float refresh marks the link down.
        await wait_for(pilot, lambda: "OFFLINE" in screen_text(app).splitlines()[0], 10,
                       "offline in the status bar")
        text = screen_text(app)
        top = text.splitlines()[0]
        assert "ann" in top and "09:26" in top
        assert "1  Card payment" in text and "8  Settings" in text
        # console theme: no rounded/heavy box drawing and no bullets
        for glyph in "╭╮╰╯━┃●▔▁":
            assert glyph not in text, glyph


async def test_status_bar_at_60_columns_cuts_its_lines_and_never_wraps(home, term, ann,
                                                                       monkeypatch):
    """Seen in tmux at 60x20: the clock warning wrapped to a third line the bar's height
    hides, so the bar ended in a bare "! CLOCK:". Each line now stops at the edge with an
    ellipsis and the screen below is untouched."""
    import dataclasses

    from pos.money import Money

    real = term.status

    def status() -> Any:  # the demo's floats: the widest bottom line seen
        return dataclasses.replace(real(), pawacard_float=Money(50_000_000, "KES"),
                                   patasente_float=Money(500_000, "UGX"))

    monkeypatch.setattr(term, "status", status)
    monkeypatch.setattr(term, "clock_warning", lambda: "clock not synced (NTP)")
    app = app_for(term.settings, term, theme="console")
    async with app.run_test(size=(60, 20)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await wait_for(pilot, lambda: "clock" in screen_text(app).splitlines()[1], 10,
                       "the clock warning in the bar")
        lines = screen_text(app).splitlines()
        assert lines[1].startswith(" PawaCard KES 500,000.00 | Patasente UGX 500,000 | ! cl")
        assert lines[1].rstrip().endswith("…"), lines[1]
        assert "synced (NTP)" not in screen_text(app)  # not wrapped onto the screen below


async def test_a_status_tick_while_the_app_closes_does_nothing(home, term, ann):
    """The once-a-second tick fired after the screens were gone (seen on CI, loaded):
    ScreenStackError, and the app died at exit instead of closing."""
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
    assert not app.screen_stack
    app._tick()  # what a late timer would call
    app.refresh_status()


async def test_key_bar_shows_the_screens_keys_and_a_tap_presses_one(home, term, ann):
    from screens.widgets import KeyBar

    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        bar = app.screen.query_one(KeyBar)
        line = str(bar.render())
        assert "l Lock" in line and "q Quit" in line
        assert "Card payment" not in line  # the 1-8 choices are not shown (show=False)
        # A tap on "Lock" presses l: the cashier is signed out and the PIN is asked.
        await pilot.click(KeyBar, offset=(line.index("Lock"), 0))
        await wait_screen(pilot, SignInScreen)
        assert term.operator is None


async def test_no_key_sequence_crashes_the_counter(home, term, ann, sandbox):
    """Mash keys across every screen reachable from home (card balance with Escape
    pressed twice at once among them, which raised ScreenStackError and ended the
    app): the app keeps running and comes back home."""
    import random

    from pos.sandbox import data
    from tests.test_screens_card_services import open_service

    app = app_for(term.settings, term)
    keys = ["escape", "enter", "1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "tab",
            "f3", "backspace", "up", "down", "left", "right", "space"]
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await open_service(pilot, "6", data.CARD_CREDIT)
        await pilot.press("escape", "escape")
        await pilot.pause()
        rng = random.Random(3)
        for i in range(400):
            await pilot.press(rng.choice(keys))
            if i % 25 == 0:
                await pilot.pause()
            assert app.is_running, f"the app ended after key {i}"
        for _ in range(12):
            if isinstance(app.screen, HomeScreen):
                break
            await pilot.press("escape")
            await pilot.pause()
        assert app.is_running


def flow_running(app) -> bool:
    return any(w.group in ("flow", "kiosk") and not w.is_finished for w in app.workers)


async def back_home(pilot, tries: int = 200) -> None:
    """Escape until the home screen is on top with no flow left (a sync or a sale the
    mash started may still be talking to the providers)."""
    from screens.dialogs import ConfirmDialog

    app = pilot.app
    for _ in range(tries):
        if isinstance(app.screen, HomeScreen) and not flow_running(app):
            return
        top = app.screen
        if isinstance(top, ConfirmDialog) and top.title_text == "Cancel sale":
            await pilot.press("1")  # Escape there keeps the basket, by design
        elif not isinstance(top, HomeScreen):
            await pilot.press("escape")
        await pilot.pause(0.05)
    raise AssertionError(f"not back home:\n{screen_text(app)}")


MASH_KEYS = ["escape", "enter", *"1234567890", "tab", "backspace", "up", "down", "left",
             "right", "space", *(f"f{i}" for i in range(1, 13))]


@pytest.mark.slow
@pytest.mark.parametrize("size,theme", [((80, 24), "default"), ((60, 20), "console")],
                         ids=["80x24", "60x20-console"])
async def test_every_screen_from_home_survives_a_mash(home, term, ann, sandbox, size, theme):
    """Each of the home screen's ten choices is opened and mashed (Escape, Enter, digits,
    F-keys, arrows): the app never ends (no unhandled exception, no exit code) and
    Escape always leads back home."""
    import random

    from screens.home import KEYS

    app = app_for(term.settings, term, theme=theme)
    rng = random.Random(13)
    visited: list[str] = []
    async with app.run_test(size=size) as pilot:
        await wait_screen(pilot, HomeScreen)
        for choice in KEYS:
            await pilot.press(choice)
            await wait_for(pilot, lambda: not isinstance(app.screen, HomeScreen)
                           or not flow_running(app), what=f"choice {choice}")
            visited.append(type(app.screen).__name__)
            for i in range(40):
                await pilot.press(rng.choice(MASH_KEYS))
                if i % 20 == 0:
                    await pilot.pause()
                assert app.is_running and app.return_code is None, (
                    f"the app ended on choice {choice}, key {i}")
            await back_home(pilot)
            assert app.is_running and app.return_code is None
    assert len(visited) == len(KEYS)
    assert app.return_code is None
