"""A simulated camera for the demo and the tests.

It has :class:`hardware.camera.CameraScanner`'s interface and runs the same
thread loop, so every frame goes through the real decoder chain and the same
de-duplication. Its frames are rendered: a card carrying a payload (see
``hardware.cardimages``) or an image file, held "in view" for ``hold_frames``
frames, with empty frames in between.

Its clock is its frame count: the ``n``-th frame is captured at ``n / fps`` seconds,
however late a loaded machine serves it, so the de-duplication window counts
frames of the scene, not the machine's speed. ``lockstep=True`` (tests) serves the
next frame only when the decoder has taken the last one: every frame is decoded,
as fast as the decoder goes, and a test waits for frames decoded
(:meth:`hardware.camera.ScanLoop.wait_decoded`), never for time.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from hardware.camera import CameraStatus, ScanLoop

if TYPE_CHECKING:
    import numpy as np

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


class SimulatedCamera(ScanLoop):
    """Plays ``source`` (payload strings or image paths), then whatever ``show()`` is given.

    ``source`` is played once over the camera's life, however often it is stopped
    and started again (a scan screen starts it on every opening); ``loop`` replays
    it forever. Otherwise the camera shows an empty scene once the list is played.
    """

    def __init__(self, source: Iterable[str | Path] = (),
                 on_scan: Callable[[str], None] = lambda text: None,
                 on_status: Callable[[CameraStatus], None] | None = None,
                 width: int = 640, height: int = 480, fps: float = 15,
                 dedupe_seconds: float = 3.0, hold_frames: int = 8, gap_frames: int = 4,
                 loop: bool = False, preview_fps: float = 6.0, beep: str = "bell",
                 scene_grey: int = 96, lockstep: bool = False) -> None:
        super().__init__(on_scan, on_status, dedupe_seconds, preview_fps, beep)
        self.lockstep = lockstep
        self.items = list(source)
        self.width, self.height, self.fps = width, height, fps
        self.hold_frames, self.gap_frames, self.loop = hold_frames, gap_frames, loop
        self.scene_grey = scene_grey  # the grey of the empty scene (low: a dark counter)
        self._shown: queue.SimpleQueue[str | Path] = queue.SimpleQueue()
        self._plan: list[np.ndarray | None] = []
        self._cursor = 0
        self._planned = False
        self._held: list[np.ndarray | None] = []  # the frames of the card shown now
        self._cache: dict[str, np.ndarray] = {}
        self._empty: np.ndarray | None = None
        self.frames_served = 0

    def show(self, item: str | Path, *, replace: bool = False) -> None:
        """Put a card (payload text) or an image file in front of the camera, now (or as
        soon as the camera runs again). ``replace``: instead of any card shown and not
        yet in view, as a person swapping the card in their hand."""
        if replace:
            while True:
                try:
                    self._shown.get_nowait()
                except queue.Empty:
                    break
        self._shown.put(item)

    # -- ScanLoop frame source
    def _open(self) -> str | None:
        import numpy as np

        self._empty = np.full((self.height, self.width, 3), self.scene_grey, np.uint8)
        if not self._planned:  # once: a restart goes on where the playlist was
            self._planned = True
            for item in self.items:
                self._plan += ([None] * self.gap_frames
                               + [self._frame_for(item)] * self.hold_frames)
        return None

    def _frame_time(self) -> float:
        return self.frames_served / (self.fps if self.fps > 0 else 15.0)

    def _read(self) -> np.ndarray | None:
        if self.fps > 0 and not self.lockstep:
            self._stop.wait(1.0 / self.fps)
        try:
            shown = self._shown.get_nowait()
        except queue.Empty:
            pass
        else:  # a shown card interrupts the playlist
            self._held = [None] * self.gap_frames + [self._frame_for(shown)] * self.hold_frames
        frame: np.ndarray | None = None
        if self._held:
            frame = self._held.pop(0)
        elif self._cursor < len(self._plan):
            frame = self._plan[self._cursor]
            self._cursor += 1
            if self.loop and self._cursor >= len(self._plan):
                self._cursor = 0
        self.frames_served += 1
        return frame if frame is not None else self._empty

    def _close(self) -> None:
        """The camera stops (its scan screen closed): a shown card is taken back, so the
        next opening does not read it again."""
        self._held = []

    def _frame_for(self, item: str | Path) -> np.ndarray:
        key = str(item)
        if key not in self._cache:
            p = Path(key)
            if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file():
                self._cache[key] = self._load_image(p)
            else:
                self._cache[key] = self._render(key)
        return self._cache[key]

    def _load_image(self, path: Path) -> np.ndarray:
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"cannot read image {path}")
        return self._fit(img)

    def _render(self, payload: str) -> np.ndarray:
        import numpy as np

        from hardware.cardimages import render_card

        card = np.array(render_card(payload, height_px=max(60, self.height // 2)))[:, :, ::-1]
        return self._fit(card)

    def _fit(self, img: np.ndarray) -> np.ndarray:
        """Centre ``img`` on the empty scene, scaled down if it does not fit."""
        import cv2
        import numpy as np

        canvas = np.full((self.height, self.width, 3), self.scene_grey, np.uint8)
        h, w = img.shape[:2]
        scale = min(1.0, 0.9 * self.width / w, 0.9 * self.height / h)
        if scale < 1.0:
            img = cv2.resize(img, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
            h, w = img.shape[:2]
        y, x = (self.height - h) // 2, (self.width - w) // 2
        canvas[y:y + h, x:x + w] = img
        return canvas
