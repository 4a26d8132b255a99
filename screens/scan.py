"""Scan a card: camera, keyboard-wedge scanner or typed by hand; then look it up.

The camera runs in its own threads (``hardware.camera.CameraScanner`` or the
simulated one) and calls back from them; we hop onto the UI thread with
``call_from_thread`` and never touch widgets from a camera thread. Its live
preview is rendered into lines on the camera's thread (a pure function), so
the UI thread only swaps them in; a read flashes the preview and beeps.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Label, Static

from pos.errors import Declined, InputError
from pos.usecases.results import CardLookup
from screens.dialogs import Step, dismiss_when_on_top
from screens.widgets import Plain, PosInput
from screens.widgets.camera_preview import PALETTES, CameraPreview, render_preview

if TYPE_CHECKING:
    from screens.demo import DemoControls
    from screens.port import CameraReading, Scanner


def _ignore(_: object) -> None:
    """Camera callback while no scan screen is open."""


class ScanScreen(Step[CardLookup]):
    """Returns a ``CardLookup`` (or None on cancel). Errors stay on this screen.

    In the demo (the app has demo controls), F3 picks the card held up to the
    simulated camera; elsewhere the key does nothing and is not shown.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel"),
                Binding("f3", "demo_card", "Demo card")]

    def __init__(self, title: str = "Scan the card", *, payload: str | None = None) -> None:
        super().__init__(title)
        self._initial = payload
        self._busy = False
        self._palette = PALETTES["default"]
        self.cues = 0  # success cues given (flash and beep), for the tests

    def body(self) -> ComposeResult:
        yield Static("Hold the card's QR code in front of the camera, or scan it with the "
                     "hand scanner.", classes="step-note")
        yield Plain("Camera: starting", id="camera-status", classes="camera-status")
        yield CameraPreview(id="camera-preview")
        yield Plain("", id="camera-advice", classes="camera-advice")
        yield Label("Or type the card code:")
        yield PosInput(placeholder="1613*****65219&11/29&UGX&0&Debit Card&108", id="scan-manual")
        yield Plain("", id="scan-error", classes="error-text")
        if self.demo is not None:
            yield Plain("Demo: F3 picks the card held up to the camera, F12 takes a "
                        "provider's link down.", id="scan-demo", classes="step-note")

    @property
    def demo(self) -> DemoControls | None:
        return self.app.demo

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "demo_card":
            return self.demo is not None
        return True

    def action_demo_card(self) -> None:
        demo = self.demo
        if demo is None or any(w.group == "demo-card" and w.is_running
                               for w in self.app.workers):
            return

        from screens.demo import pick_camera_card  # the demo's screens: only in the demo

        async def pick() -> None:
            card = await pick_camera_card(self.app, demo)
            if card is not None:
                self._show_status(f"{card.label} held up")

        self.app.run_worker(pick(), group="demo-card", exit_on_error=False)

    @property
    def scanner(self) -> Scanner | None:
        return self.app.scanner

    def on_mount(self) -> None:
        self.query_one("#scan-manual", Input).focus()
        scanner = self.scanner
        preview = self.query_one("#camera-preview", CameraPreview)
        if scanner is not None:
            self._palette = PALETTES.get(getattr(self.app, "theme_name", ""), self._palette)
            scanner.on_scan = self._scan_from_thread
            scanner.on_status = self._status_from_thread
            if hasattr(scanner, "on_preview") and getattr(scanner, "preview_fps", 1) > 0:
                preview.sized = self._preview_sized
                scanner.on_preview = self._preview_from_thread
            else:
                preview.display = False
            try:
                scanner.start()
            except Exception as exc:  # a missing camera must not stop manual entry
                preview.display = False
                self._show_status(f"unavailable ({exc})")
        else:
            preview.display = False
            self.query_one("#camera-advice", Static).display = False
            self._show_status("none: type the code or use the hand scanner")
        if self._initial:
            self.submit(self._initial)

    def on_unmount(self) -> None:
        scanner = self.scanner
        if scanner is not None:
            if hasattr(scanner, "on_preview"):
                scanner.on_preview = None
                scanner.preview_size = (0, 0)
            try:
                scanner.stop()
            finally:
                scanner.on_scan = _ignore
                scanner.on_status = _ignore

    # Camera thread -> UI thread
    def _scan_from_thread(self, payload: str) -> None:
        with contextlib.suppress(RuntimeError):  # the app is shutting down
            self.app.call_from_thread(self._camera_read, payload)

    def _status_from_thread(self, status: CameraReading) -> None:
        text = f"{status.state}" + (f": {status.message}" if status.message else "")
        with contextlib.suppress(RuntimeError):
            self.app.call_from_thread(self._show_status, text, status.state)

    def _preview_sized(self, columns: int, rows: int) -> None:
        scanner = self.scanner
        if scanner is not None and hasattr(scanner, "preview_size"):
            scanner.preview_size = (columns, rows)

    def _preview_from_thread(self, frame: Any) -> None:
        """On the camera's thread: render the frame, then hand the lines to the UI."""
        lines = render_preview(frame, self._palette)
        with contextlib.suppress(RuntimeError):
            self.app.call_from_thread(self._show_preview, lines, frame.outline is not None,
                                      frame.advice)

    def _show_preview(self, lines: Any, outlined: bool, advice: str) -> None:
        if not self.is_attached:
            return
        self.query_one("#camera-preview", CameraPreview).show_lines(lines, outlined)
        self.query_one("#camera-advice", Static).update(advice)

    def _camera_read(self, payload: str) -> None:
        if not self.is_attached:
            return
        self.success_cue()
        self.submit(payload)

    def success_cue(self) -> None:
        """A card was read: the preview flashes and the configured beep sounds."""
        self.cues += 1
        preview = self.query_one("#camera-preview", CameraPreview)
        preview.add_class("-flash")
        self.set_timer(0.6, lambda: preview.remove_class("-flash"))
        self.query_one("#camera-advice", Static).update("")
        beeper = getattr(self.scanner, "beeper", None)
        if beeper is None:
            return
        if beeper.terminal_bell:
            self.app.bell()
        else:
            beeper.beep()

    def _show_status(self, text: str, state: str = "") -> None:
        self.query_one("#camera-status", Static).update(f"Camera: {text}")
        if state in ("no-camera", "error", "stopped"):
            self.query_one("#camera-preview", CameraPreview).display = False
            self.query_one("#camera-advice", Static).update("")

    def on_wedge_scan(self, payload: str) -> None:
        self.query_one("#scan-manual", Input).value = ""
        self.submit(payload)

    @on(Input.Submitted, "#scan-manual")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.submit(event.value.strip())

    def submit(self, payload: str) -> None:
        """Look the card up; a bad scan or a refusal is shown here and scanning goes on."""
        if self._busy or not self.is_attached:
            return
        self._busy = True
        self.query_one("#scan-error", Static).update("Looking the card up...")
        self.app.run_worker(self._lookup(payload), group="scan", exit_on_error=False)

    async def _lookup(self, payload: str) -> None:
        try:
            lookup = await self.app.terminal.lookup_card(payload)
        except (InputError, Declined) as exc:
            self.query_one("#scan-error", Static).update(exc.message)
            self.query_one("#scan-manual", Input).value = ""
            self._busy = False
            return
        except BaseException:
            self._busy = False
            await dismiss_when_on_top(self, None)
            raise
        await dismiss_when_on_top(self, lookup)
