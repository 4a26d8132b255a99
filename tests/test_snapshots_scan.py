"""Snapshot of the scan screen with the live preview (issue 11) at 80x24, both themes.

The camera is a still one: a card rendered on a grey counter, read by the real decoder
once so the code is outlined where it found it, and sent through the real preview path
(``make_preview`` on a thread, rendered and handed over with ``call_from_thread``) once,
so the picture is the same on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import numpy as np
import pytest

from hardware.camera import CameraStatus
from hardware.cardimages import render_card
from hardware.decode import QRDecoder, to_gray
from hardware.scanview import HOLD_STILL, make_preview
from pos.clock import DeviceClock
from pos.terminal import Terminal
from tests.screens_support import FROZEN, app_for, make_settings

PAYLOAD = "1613*****65219&11/29&UGX&0&Debit Card&108"


def still_frame() -> tuple[np.ndarray, Any]:
    frame = np.full((480, 640), 96, np.uint8)
    card = to_gray(np.array(render_card(PAYLOAD, height_px=260))[:, :, ::-1])
    h, w = card.shape
    y, x = (480 - h) // 2, (640 - w) // 2
    frame[y:y + h, x:x + w] = card
    decoder = QRDecoder(budget_ms=None)
    assert decoder.decode(frame) == [PAYLOAD]
    return frame, decoder.last_position


class StillCamera:
    """The scanner interface the scan screen uses, showing one picture once."""

    def __init__(self) -> None:
        self.on_scan: Any = lambda text: None
        self.on_status: Any = lambda status: None
        self.on_preview: Any = None
        self.preview_size = (0, 0)
        self.preview_fps = 6.0
        self.beeper = None
        self.sent = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frame, self.quad = still_frame()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.on_status(CameraStatus("scanning"))
        while not self._stop.is_set():
            callback, (cols, rows) = self.on_preview, self.preview_size
            if callback is not None and cols and rows:
                callback(make_preview(self.frame, cols, rows, self.quad, HOLD_STILL))
                self.sent.set()
                return
            self._stop.wait(0.01)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


@pytest.fixture
def make(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    terms: list[Terminal] = []

    def build(theme: str) -> Any:
        settings = make_settings(tmp_path)
        term = Terminal.open_sync(settings, device=DeviceClock(wall=lambda: FROZEN,
                                                               synced=lambda: True))
        terms.append(term)
        if not term.has_operators():
            term.add_operator("ann", "cashier", "1111")
        term.sign_in("ann", "1111")
        return app_for(settings, term, StillCamera(), theme=theme, background=False)

    yield build
    for term in terms:
        with contextlib.suppress(Exception):
            asyncio.run(term.aclose())


async def _with_preview(pilot: Any) -> None:
    from screens.scan import ScanScreen
    from screens.widgets.camera_preview import CameraPreview

    await pilot.pause()
    await pilot.app.push_screen(ScanScreen())
    for _ in range(500):
        await pilot.pause(0.01)
        shown = pilot.app.screen.query(CameraPreview)
        if pilot.app.scanner.sent.is_set() and shown and shown.first().frames_shown:
            break
    await pilot.pause()
    await pilot.pause()


@pytest.mark.parametrize("theme", ["default", "console"])
def test_scan_with_preview(snap_compare, make, theme):
    assert snap_compare(make(theme), run_before=_with_preview, terminal_size=(80, 24))
