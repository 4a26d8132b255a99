"""Every screen fits 80x24 and a 480x320 display's console (60x20 cells, console theme):
a snapshot of each at both sizes, and a Pilot check that its key control (the button, the
field, the keypad) and its key bar are on the screen, not below the fold or clipped.

The screens are listed in tests/screen_gallery.py; a screen class added to screens/
without an entry there fails ``test_every_screen_is_in_the_gallery``. Update the
snapshots with ``pytest tests/test_screen_sizes.py --snapshot-update`` (look at the SVGs).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import inspect
import pkgutil
from typing import Any

import pytest

from pos.clock import DeviceClock
from pos.terminal import Terminal
from tests.screen_gallery import NAMES, SIZES, Shot, shots
from tests.screens_support import FROZEN, app_for, make_settings, screen_text

SIZE_IDS = [f"{w}x{h}" for w, h, _theme in SIZES]
#: Abstract bases: never shown themselves.
BASES = {"dialogs.Step", "dialogs.Dialog", "signin._Form", "handover.ReadyStep",
         "journal.VoidableDetail"}


@pytest.fixture
def build(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    terms: list[Terminal] = []

    def make(shot: Shot, theme: str) -> Any:
        from hardware.simcam import SimulatedCamera
        from sente_pos.demo import SandboxDemo
        from tests.test_snapshots_demo import FakeSandbox

        settings = make_settings(tmp_path)
        term = Terminal.open_sync(settings, device=DeviceClock(wall=lambda: FROZEN,
                                                               synced=lambda: True))
        terms.append(term)
        term.add_operator("ann", "cashier", "1111")
        if shot.signed_in:
            term.sign_in("ann", "1111")
        demo = None
        if shot.demo:
            demo = SandboxDemo(FakeSandbox(), SimulatedCamera(), probe_every=5,
                               today=dt.date(2026, 3, 14))
            demo.set_link("pawacard", up=False)
        return app_for(settings, term, theme=theme, background=False, demo=demo)

    yield make
    for term in terms:
        with contextlib.suppress(Exception):
            asyncio.run(term.aclose())


def show(shot: Shot) -> Any:
    async def run_before(pilot: Any) -> None:
        await pilot.pause()
        await pilot.pause()
        if shot.build is not None:
            await pilot.app.push_screen(shot.build(pilot.app))
        await pilot.pause()
        if shot.keys:
            await pilot.press(*shot.keys)
        await pilot.pause()
        await pilot.pause()

    return run_before


def test_every_screen_is_in_the_gallery():
    import screens

    shown = {shot.cls for shot in shots().values()}
    assert sorted(shots()) == sorted(NAMES)
    missing = []
    for info in pkgutil.iter_modules(screens.__path__):
        module = importlib.import_module(f"screens.{info.name}")
        from textual.screen import Screen

        for name, cls in inspect.getmembers(module, inspect.isclass):
            qual = f"{info.name}.{name}"
            if (issubclass(cls, Screen) and cls.__module__ == module.__name__
                    and qual not in BASES and qual not in shown):
                missing.append(qual)
    assert not missing, f"screens without a snapshot at both sizes: {missing}"


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("name", NAMES)
def test_snapshot(snap_compare, build, name, size):
    width, height, theme = size
    shot = shots()[name]
    assert snap_compare(build(shot, theme), terminal_size=(width, height),
                        run_before=show(shot))


def on_screen(app: Any, widget: Any) -> bool:
    """``widget`` is drawn whole: inside the screen and not clipped by a container."""
    width, height = app.size
    placed = app.screen._compositor.visible_widgets.get(widget)
    if placed is None:
        return False
    region, clip = placed
    return (region.area > 0 and clip.contains_region(region)
            and region.right <= width and region.bottom <= height)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("name", NAMES)
async def test_key_control_on_screen(build, name, size):
    """The KYC form's Continue and the token result's OK were below an 80x24 screen; the
    Settings' Save below a 60x20 one, the journal's Amount column cut off there, the
    demo's card list wrapped and the journal detail's last keys cut off its key bar."""
    from screens.widgets import KeyBar

    width, height, theme = size
    shot = shots()[name]
    app = build(shot, theme)
    async with app.run_test(size=(width, height)) as pilot:
        await show(shot)(pilot)
        screen = app.screen
        assert type(screen).__name__ == shot.cls.split(".")[1], screen_text(app)
        control = screen.query_one(shot.key)
        assert on_screen(app, control), (f"{shot.key} is not on the {width}x{height} "
                                         f"screen:\n{screen_text(app)}")
        for bar in screen.query(KeyBar):
            assert on_screen(app, bar), f"the key bar is off the screen:\n{screen_text(app)}"
            text = screen_text(app)
            for binding, _enabled in bar.shown():  # every key it offers, not cut off
                hint = f"{app.get_key_display(binding)} {binding.description}"
                assert hint in text, f"{hint!r} is cut off the key bar:\n{text}"
        if shot.shows:
            lines = screen_text(app).splitlines()
            for text in shot.shows:
                assert any(text in line for line in lines), (
                    f"{text!r} is not whole on the {width}x{height} screen:\n"
                    + "\n".join(lines))
