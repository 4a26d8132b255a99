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
    type_text,
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


def pilot_wedge() -> WedgeDetector:
    """Pilot key presses are slower than a real scanner's: a wider burst window."""
    return WedgeDetector(max_interval=0.25, min_length=8)


async def scanned_on_home(term, payload: str) -> str:
    """``payload`` scanned with the wedge on the home screen: the card summary's text."""
    app = app_for(term.settings, term, wedge=pilot_wedge())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await type_text(pilot, payload)
        await pilot.press("enter")
        await wait_screen(pilot, CardSummaryScreen, timeout=10)
        return screen_text(app)


async def test_wedge_burst_is_a_scan(term, sandbox):
    app = app_for(term.settings, term, wedge=pilot_wedge())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("1")
        await wait_screen(pilot, ScanScreen)
        await pilot.pause(1.1)  # the cashier's "1" is not part of the scan
        await type_text(pilot, data.CARD_NO_PIN.payload)
        await pilot.press("enter")
        await wait_screen(pilot, CardSummaryScreen, timeout=10)
        assert "Shopping Card" in screen_text(app)


async def test_a_scan_on_the_home_screen_starts_a_card_payment(term, sandbox):
    assert "1613*****65219" in await scanned_on_home(term, data.CARD_ACTIVE.payload)


async def test_a_scan_opening_with_a_menu_key_picks_no_menu_choice(term, sandbox):
    """A payload's first key is held until the scanner's next one shows it is a burst:
    ``0`` opens a shift on the home screen, but here it opens a scan (the fields of a
    card QR may come in any order)."""
    fields = data.CARD_ACTIVE.payload.split("&")
    payload = "&".join([fields[3], *fields[:3], *fields[4:]])
    assert payload.startswith("0&")
    assert "1613*****65219" in await scanned_on_home(term, payload)
    assert term.current_shift() is None


async def test_a_menu_key_typed_alone_still_picks_its_choice(term):
    """The held key reaches the home screen once no scanner key follows it."""
    from screens.entry import AmountScreen

    wedge = WedgeDetector(max_interval=0.03, min_length=8)
    app = app_for(term.settings, term, wedge=wedge)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("0")
        await wait_screen(pilot, AmountScreen)
        assert "float" in screen_text(app).lower()


async def test_fast_typing_elsewhere_is_not_eaten_by_the_wedge(term, sandbox):
    """Keys as fast as a scanner's (a paste, a terminal multiplexer) still reach a screen
    that takes no scans: the meter number and its Enter, the amount digits."""
    from screens.dialogs import ConfirmDialog
    from screens.electricity import NumberScreen
    from screens.entry import AmountScreen

    app = app_for(term.settings, term, wedge=pilot_wedge())
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


# ---------------------------------------------------------------- live preview (issue 11)

async def _scan_screen(pilot, app) -> ScanScreen:
    await wait_screen(pilot, HomeScreen)
    await pilot.press("1")
    return await wait_screen(pilot, ScanScreen)


async def test_preview_shows_the_camera_and_keeps_updating(term, sandbox):
    from screens.widgets.camera_preview import CameraPreview

    camera = SimulatedCamera(fps=30, preview_fps=8)
    app = app_for(term.settings, term, camera)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _scan_screen(pilot, app)
        preview = screen.query_one("#camera-preview", CameraPreview)
        await wait_for(pilot, lambda: preview.frames_shown >= 3, 15, "preview frames")
        first = preview.frames_shown
        await wait_for(pilot, lambda: preview.frames_shown >= first + 3, 15, "more frames")
        assert preview.display and preview.size.height >= 4
        assert "▀" in screen_text(app) or "█" in screen_text(app)
        w, h = camera.preview_size
        assert (w, h) == (preview.size.width, preview.size.height)
        assert "No code in view" in screen_text(app)  # the empty scene
        await pilot.press("escape")
        await wait_screen(pilot, HomeScreen)
        await wait_for(pilot, lambda: not camera.running, 5, "camera stopped")
    assert camera.on_preview is None


async def test_a_code_in_view_is_outlined(term, sandbox):
    from screens.widgets.camera_preview import CameraPreview

    camera = SimulatedCamera(fps=30, preview_fps=8)
    app = app_for(term.settings, term, camera)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _scan_screen(pilot, app)
        preview = screen.query_one("#camera-preview", CameraPreview)
        await wait_for(pilot, lambda: preview.frames_shown >= 1, 15, "preview")
        assert preview.outlined_frames == 0
        camera.show("PROMO-2026-NOT-A-CARD")  # read, outlined, refused: the screen stays
        await wait_for(pilot, lambda: preview.outlined_frames >= 1, 15, "outline")
        await wait_for(pilot, lambda: "Looking" not in screen_text(app), 10, "lookup")
        assert app.screen is screen


async def test_a_dark_scene_says_too_dark(term, sandbox):
    camera = SimulatedCamera(fps=30, preview_fps=8, scene_grey=6)
    app = app_for(term.settings, term, camera)
    async with app.run_test(size=(80, 24)) as pilot:
        await _scan_screen(pilot, app)
        await wait_for(pilot, lambda: "Too dark" in screen_text(app), 15, "advice")


async def test_a_read_flashes_and_beeps(term, sandbox, tmp_path):
    import shlex
    import sys

    from screens.widgets.camera_preview import CameraPreview

    mark = tmp_path / "beeped"
    beep = shlex.join([sys.executable, "-c", f"open({str(mark)!r}, 'w').close()"])
    camera = SimulatedCamera(fps=30, beep=beep)
    app = app_for(term.settings, term, camera)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _scan_screen(pilot, app)
        preview = screen.query_one("#camera-preview", CameraPreview)
        flashes: list[bool] = []
        camera.show(data.CARD_ACTIVE.payload)
        await wait_for(pilot, lambda: screen.cues >= 1, 15, "cue")
        flashes.append(preview.has_class("-flash"))
        await wait_screen(pilot, CardSummaryScreen, timeout=15)
        await wait_for(pilot, mark.exists, 10, "the beep command ran")
    assert flashes == [True] and screen.cues == 1


async def test_the_terminal_bell_is_the_default_beep(term, sandbox):
    rung: list[int] = []
    camera = SimulatedCamera(fps=30)
    assert camera.beeper.terminal_bell
    app = app_for(term.settings, term, camera)
    app.bell = lambda: rung.append(1)  # the app's bell is what the terminal would ring
    async with app.run_test(size=(80, 24)) as pilot:
        await _scan_screen(pilot, app)
        camera.show(data.CARD_ACTIVE.payload)
        await wait_screen(pilot, CardSummaryScreen, timeout=15)
    assert rung == [1]


async def test_no_camera_no_preview(term, sandbox):
    from screens.widgets.camera_preview import CameraPreview

    app = app_for(term.settings, term, None)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _scan_screen(pilot, app)
        assert not screen.query_one("#camera-preview", CameraPreview).display
        assert "▀" not in screen_text(app)
