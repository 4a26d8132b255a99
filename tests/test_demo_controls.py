"""The demo's controls (issue 13, point 8) and the link probe cycle under them.

The demo picks the card held up to the simulated camera and takes each provider's
link down and back with the sandbox's fault switches; the status bar must follow
within the terminal's probe cycle (pos.link), the sales queue, and the queue syncs
once the link is back. Against the sandbox over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest

from hardware.camera import Deduper
from hardware.simcam import SimulatedCamera
from pos.clock import DeviceClock
from pos.link import Link, LinkMonitor
from pos.sandbox import data
from pos.sandbox.faults import FaultRegistry
from pos.terminal import Terminal
from screens.cards import CardSummaryScreen, HandOverScreen
from screens.demo import CameraCardPicker, DemoMenu
from screens.dialogs import ChoiceDialog
from screens.entry import AmountScreen, PinScreen
from screens.home import HomeScreen
from screens.receipt import ResultScreen
from screens.scan import ScanScreen
from sente_pos.demo import FAILURE_FORMS, SandboxDemo, camera_card
from tests.screens_support import app_for, make_settings, screen_text, wait_for, wait_screen

TODAY = dt.date(2026, 3, 14)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# ------------------------------------------------------------------ the probe cycle
def test_a_quiet_link_is_probed_every_heartbeat_and_a_down_one_after_its_back_off():
    clock = FakeClock()
    link = Link("Patasente", probe_base=1, probe_max=4, heartbeat=3, clock=clock)
    assert link.probe_due()  # never asked: find out now
    link.record_success()
    assert not link.probe_due()
    clock.t += 2.9
    assert not link.probe_due()
    clock.t += 0.1
    assert link.probe_due()  # quiet for a heartbeat
    link.record_failure("dropped")
    assert not link.probe_due() and not link.should_try()
    clock.t += 1
    assert link.probe_due()  # the back-off: 1, 2, 4, 4 s
    link.record_failure("dropped")
    clock.t += 1.9
    assert not link.probe_due()
    clock.t += 0.1
    assert link.probe_due()
    link.record_success()
    assert link.online and not link.probe_due()


def test_the_monitor_takes_its_cycle_from_the_probe_interval():
    monitor = LinkMonitor.every(15.0)
    for link in monitor.links.values():
        assert (link.heartbeat, link.probe_base, link.probe_max) == (15.0, 5.0, 60.0)
    quick = LinkMonitor.every(1.0)
    assert (quick.pawacard.heartbeat, quick.pawacard.probe_base,
            quick.pawacard.probe_max) == (1.0, 1.0, 4.0)
    assert sorted(quick.due()) == ["patasente", "pawacard"]


@pytest.mark.parametrize("mode", ["http503", "drop", "reset"])
async def test_probing_finds_a_provider_down_and_back(tmp_path, monkeypatch, sandbox, mode):
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    term = await Terminal.open(make_settings(tmp_path, sandbox, sync={"probe_interval": 0.2}))
    try:
        assert await term.probe_links() == []  # both answered: nothing came back
        assert term.link.online and not term.probe_due()
        sandbox.faults.add("pawacard", "*", mode, count=None)
        await wait_until(term.probe_due)
        await term.probe_links()
        assert term.status().link == "offline: PawaCard"
        sandbox.faults.clear()
        back: list[str] = []
        while not back:
            await wait_until(term.probe_due)
            back = await term.probe_links()
        assert back == ["PawaCard"] and term.status().online
    finally:
        await term.aclose()


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------ the camera
def wait_true(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(predicate())


def restart_and_watch(cam: SimulatedCamera, frames: int = 120) -> None:
    """Stop the camera, let the de-duplication window pass (the scan screen closed for a
    while: a fresh de-duplicator remembers no card), start it again and watch ``frames``
    frames."""
    cam.stop()
    cam.dedupe = Deduper(cam.dedupe.window)
    served = cam.frames_served
    cam.start()
    try:
        assert wait_true(lambda: cam.frames_served > served + frames)
    finally:
        cam.stop()


def test_a_card_read_is_taken_back_when_the_camera_stops():
    """The defect: the rest of a shown card's frames played at the next opening of the
    scan screen, reading the card again."""
    scans: list[str] = []
    cam = SimulatedCamera(on_scan=scans.append, fps=200, dedupe_seconds=5.0,
                          hold_frames=60, gap_frames=1)
    cam.start()
    cam.show(data.CARD_LOCKED.payload)
    assert wait_true(lambda: scans == [data.CARD_LOCKED.payload])
    restart_and_watch(cam)  # long before the 60 frames were shown
    assert scans == [data.CARD_LOCKED.payload]


def test_the_playlist_plays_once_however_often_the_camera_starts():
    """The defect: every start appended the playlist again."""
    scans: list[str] = []
    cam = SimulatedCamera([data.CARD_NO_PIN.payload], on_scan=scans.append, fps=200,
                          dedupe_seconds=5.0, hold_frames=6, gap_frames=1)
    cam.start()
    assert wait_true(lambda: scans == [data.CARD_NO_PIN.payload])
    served = cam.frames_served
    assert wait_true(lambda: cam.frames_served > served + 20)  # the list (7 frames) played
    restart_and_watch(cam)
    restart_and_watch(cam)
    assert scans == [data.CARD_NO_PIN.payload]


def test_a_card_shown_replaces_one_not_yet_in_view():
    scans: list[str] = []
    cam = SimulatedCamera(on_scan=scans.append, fps=200, hold_frames=3, gap_frames=1)
    cam.show(data.CARD_LOCKED.payload)  # while stopped: waits for the camera
    cam.show(data.CARD_ACTIVE.payload, replace=True)
    cam.start()
    try:
        assert wait_true(lambda: scans == [data.CARD_ACTIVE.payload])
        served = cam.frames_served
        assert wait_true(lambda: cam.frames_served > served + 30)
    finally:
        cam.stop()
    assert scans == [data.CARD_ACTIVE.payload]


# ------------------------------------------------------------------ the controls
def test_each_demo_card_has_its_own_state():
    states = [camera_card(c, TODAY).state for c in data.DEMO_CARDS]
    assert states == ["active", "active, no PIN", "gift, inactive", "locked", "expired",
                      "credit only", "Sente, new (KYC)", "low balance"]
    active = camera_card(data.CARD_ACTIVE, TODAY)
    assert active.detail == "PIN 1234, UGX 150,000" and "Current Account" in active.note


class FakeSandbox:
    def __init__(self) -> None:
        self.faults = FaultRegistry()


def test_a_link_goes_down_in_the_chosen_form_and_back_up_alone():
    sb = FakeSandbox()
    demo = SandboxDemo(sb, SimulatedCamera(), probe_every=5, today=TODAY)
    other = sb.faults.add("pawacard", "vend", "pending", count=None)  # someone else's
    demo.failure_form = "503 Service Unavailable"
    demo.set_link("patasente", up=False)
    demo.failure_form = "no answer (time-out)"
    demo.set_link("pawacard", up=False)
    assert {(f.provider, f.endpoint, f.mode, f.count) for f in sb.faults.active()} == {
        ("patasente", "*", "http503", None), ("pawacard", "*", "hang", None),
        ("pawacard", "vend", "pending", None)}
    assert [(lv.name, lv.down) for lv in demo.links()] == [
        ("Patasente", "503 Service Unavailable"), ("PawaCard", "no answer (time-out)")]
    demo.set_link("patasente", up=True)
    assert [lv.down for lv in demo.links()] == [None, "no answer (time-out)"]
    assert sb.faults.take("patasente", "debit-patasente-card").failure is None
    demo.set_link("pawacard", up=True)
    assert [f.id for f in sb.faults.active()] == [other.id]  # left alone
    with pytest.raises(ValueError):
        demo.set_link("patascore", up=False)
    assert set(FAILURE_FORMS.values()) <= {"drop", "reset", "http503", "hang"}


def test_a_link_cleared_elsewhere_shows_up_again():
    sb = FakeSandbox()
    demo = SandboxDemo(sb, SimulatedCamera(), probe_every=5, today=TODAY)
    demo.set_link("pawacard", up=False)
    sb.faults.clear()  # the control endpoint's DELETE /_control/faults
    assert [lv.down for lv in demo.links()] == [None, None]


# ------------------------------------------------------------------ the screens
@pytest.fixture
async def quick_term(tmp_path, monkeypatch, sandbox):
    """A counter terminal whose links are probed every second."""
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    t = await Terminal.open(make_settings(tmp_path, sandbox, sync={"probe_interval": 1.0}),
                            device=DeviceClock(synced=lambda: True))
    t.add_operator("ann", "cashier", "1111")
    t.sign_in("ann", "1111")
    yield t
    await t.aclose()


async def test_a_fault_posted_to_the_sandbox_turns_the_bar_offline_and_back(quick_term,
                                                                           sandbox):
    """The defect: nothing asked a quiet provider, so the bar said ONLINE under a fault
    (until a sale or the minute's float refresh happened to find out)."""
    app = app_for(quick_term.settings, quick_term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await wait_for(pilot, lambda: "● ONLINE" in screen_text(app), what="online")
        sandbox.faults.add("patasente", "*", "http503", count=None)
        await wait_for(pilot, lambda: "OFFLINE" in screen_text(app), what="the bar offline")
        assert quick_term.status().link == "offline: Patasente"
        sandbox.faults.clear()
        await wait_for(pilot, lambda: "● ONLINE" in screen_text(app), what="the bar online")


def demo_for(sandbox: Any) -> tuple[SandboxDemo, SimulatedCamera]:
    camera = SimulatedCamera(fps=30, dedupe_seconds=0.5)
    return SandboxDemo(sandbox, camera, probe_every=1.0), camera


async def hold_up(pilot: Any, key: str) -> None:
    """On the scan screen: F3, then the card's number in the picker."""
    await wait_screen(pilot, ScanScreen)
    await pilot.press("f3")
    await wait_screen(pilot, CameraCardPicker)
    await pilot.press(key)


@pytest.mark.slow
async def test_the_card_picked_is_the_card_read(quick_term, sandbox):
    demo, camera = demo_for(sandbox)
    app = app_for(quick_term.settings, quick_term, camera, demo=demo)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("1")
        scan = await wait_screen(pilot, ScanScreen)
        assert "F3 picks the card" in screen_text(app) and "f3 Demo card" in screen_text(app)
        await hold_up(pilot, "4")
        await wait_screen(pilot, CardSummaryScreen, timeout=15)
        assert data.CARD_LOCKED.card_no in screen_text(app)
        assert "locked" in screen_text(app)
        await pilot.press("escape")
        await wait_screen(pilot, HomeScreen)
        await pilot.press("1")
        await hold_up(pilot, "1")
        await wait_screen(pilot, CardSummaryScreen, timeout=15)
        assert data.CARD_ACTIVE.card_no in screen_text(app)
        assert demo.chosen == 0 and scan is not app.screen
    assert quick_term.journal_list() == []


async def test_a_counter_without_demo_controls_has_no_demo_keys(quick_term, sandbox):
    camera = SimulatedCamera(fps=30)
    app = app_for(quick_term.settings, quick_term, camera)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        assert "Demo" not in screen_text(app)
        await pilot.press("f12")
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("1")
        await wait_screen(pilot, ScanScreen)
        await pilot.press("f3")
        await pilot.pause()
        assert isinstance(app.screen, ScanScreen) and "Demo" not in screen_text(app)


@pytest.mark.slow
async def test_link_down_queues_a_card_sale_and_link_up_syncs_it(quick_term, sandbox):
    demo, camera = demo_for(sandbox)
    before = sandbox.state.patasente.balance(data.CARD_ACTIVE)
    app = app_for(quick_term.settings, quick_term, camera, demo=demo)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await wait_for(pilot, lambda: "● ONLINE" in screen_text(app), what="online")
        # Seen online once (offline limits: only a card the terminal knows pays offline).
        await pilot.press("1")
        await hold_up(pilot, "1")
        await wait_screen(pilot, CardSummaryScreen, timeout=15)
        await pilot.press("escape")
        await wait_screen(pilot, HomeScreen)
        await pilot.press("f12")
        await wait_screen(pilot, DemoMenu)
        await pilot.press("1")  # Patasente down (connection dropped)
        await wait_for(pilot, lambda: "offline: Patasente" in screen_text(app),
                       what="the terminal seeing it")
        assert "DOWN: connection dropped" in screen_text(app)
        assert "OFFLINE" in screen_text(app)
        await pilot.press("escape")
        await wait_screen(pilot, HomeScreen)

        await pilot.press("1")
        await hold_up(pilot, "1")
        await wait_screen(pilot, CardSummaryScreen, timeout=15)
        await pilot.press("enter")
        await wait_screen(pilot, AmountScreen)
        await pilot.press(*"5000", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog | HandOverScreen),
                       what="wallet or hand-over")
        if isinstance(app.screen, ChoiceDialog):
            await pilot.press("1")
        await wait_screen(pilot, HandOverScreen)
        await pilot.press("enter")
        await wait_screen(pilot, PinScreen)
        await pilot.press(*"1234", "enter")
        await wait_screen(pilot, ResultScreen)
        assert "ACCEPTED OFFLINE" in screen_text(app)
        (queued,) = quick_term.journal_list()
        assert queued.offline and queued.state == "queued"
        await pilot.press("enter")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("3")
        await wait_screen(pilot, HomeScreen)
        assert "Unsynced 1" in screen_text(app)
        assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == before

        await pilot.press("f12")
        await wait_screen(pilot, DemoMenu)
        await pilot.press("4")  # both links up: no key press syncs, the terminal does
        await pilot.press("escape")
        await wait_screen(pilot, HomeScreen)
        await wait_for(pilot, lambda: quick_term.journal_detail(queued.ref)[0].state == "done",
                       timeout=30, what="the queued sale synced")
        await wait_for(pilot, lambda: "● ONLINE" in screen_text(app)
                       and "All synced" in screen_text(app), what="the bar")
    assert sandbox.state.patasente.applied_count(queued.ref) == 1
    assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == before - 5000
