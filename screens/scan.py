"""Scan a card: camera, keyboard-wedge scanner or typed by hand; then look it up.

The camera runs in its own thread (``hardware.camera.CameraScanner`` or the
simulated one) and calls back from that thread; we hop onto the UI thread
with ``call_from_thread`` and never touch widgets from the camera thread.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Label, Static

from pos.errors import Declined, InputError
from pos.usecases.results import CardLookup
from screens.dialogs import Step, dismiss_when_on_top
from screens.widgets import Plain, PosInput

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

    def body(self) -> ComposeResult:
        yield Static("Hold the card's QR code in front of the camera, or scan it with the "
                     "hand scanner.", classes="step-note")
        yield Plain("Camera: starting", id="camera-status", classes="camera-status")
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
        if scanner is not None:
            scanner.on_scan = self._scan_from_thread
            scanner.on_status = self._status_from_thread
            try:
                scanner.start()
            except Exception as exc:  # a missing camera must not stop manual entry
                self._show_status(f"unavailable ({exc})")
        else:
            self._show_status("none: type the code or use the hand scanner")
        if self._initial:
            self.submit(self._initial)

    def on_unmount(self) -> None:
        scanner = self.scanner
        if scanner is not None:
            try:
                scanner.stop()
            finally:
                scanner.on_scan = _ignore
                scanner.on_status = _ignore

    # Camera thread -> UI thread
    def _scan_from_thread(self, payload: str) -> None:
        with contextlib.suppress(RuntimeError):  # the app is shutting down
            self.app.call_from_thread(self.submit, payload)

    def _status_from_thread(self, status: CameraReading) -> None:
        text = f"{status.state}" + (f": {status.message}" if status.message else "")
        with contextlib.suppress(RuntimeError):
            self.app.call_from_thread(self._show_status, text)

    def _show_status(self, text: str) -> None:
        self.query_one("#camera-status", Static).update(f"Camera: {text}")

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
