"""Layout snapshots of the demo's screens (sente-pos demo only) at 80x24, both themes.

Update with ``pytest tests/test_snapshots_demo.py --snapshot-update``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

import pytest

from hardware.simcam import SimulatedCamera
from pos.clock import DeviceClock
from pos.sandbox.faults import FaultRegistry
from pos.terminal import Terminal
from sente_pos.demo import SandboxDemo
from tests.screens_support import FROZEN, app_for, make_settings
from tests.test_snapshots import THEMES, settle


class FakeSandbox:
    def __init__(self) -> None:
        self.faults = FaultRegistry()


@pytest.fixture
def make(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    terms: list[Terminal] = []

    def build(theme: str) -> Any:
        settings = make_settings(tmp_path)
        term = Terminal.open_sync(settings, device=DeviceClock(wall=lambda: FROZEN,
                                                               synced=lambda: True))
        terms.append(term)
        term.add_operator("ann", "cashier", "1111")
        term.sign_in("ann", "1111")
        demo = SandboxDemo(FakeSandbox(), SimulatedCamera(), probe_every=5,
                           today=dt.date(2026, 3, 14))
        demo.set_link("pawacard", up=False)
        return app_for(settings, term, theme=theme, background=False, demo=demo)

    yield build
    for term in terms:
        with contextlib.suppress(Exception):
            asyncio.run(term.aclose())


def keys(*pressed: str) -> Any:
    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press(*pressed)
        await settle(pilot)
        await pilot.pause(0.1)

    return run_before


@pytest.mark.parametrize("theme", THEMES)
def test_demo_menu(snap_compare, make, theme):
    assert snap_compare(make(theme), run_before=keys("f12"))


@pytest.mark.parametrize("theme", THEMES)
def test_demo_card_picker(snap_compare, make, theme):
    assert snap_compare(make(theme), run_before=keys("f12", "6"))
