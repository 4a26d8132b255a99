"""What the scan screen shows of the camera: a small grey preview and advice to the cashier.

``make_preview`` turns a frame into a :class:`PreviewFrame`: grey levels at the
size of the space the screen has for it (one pixel per cell column, two per
cell row: the screen draws two pixel rows per text cell), with the code found
outlined in the preview's own coordinates. ``measure`` reads a frame's exposure
and movement; :class:`Advisor` turns those measures, frame after frame, into one
stable line ("Too dark", "Hold still", ...) that does not flicker.

No UI here: the screen renders a :class:`PreviewFrame` itself. OpenCV and numpy
are imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from hardware.decode import Quad


@dataclass(frozen=True)
class PreviewFrame:
    """A grey-scale picture for the screen, ``width`` x ``height`` pixels, row-major bytes.

    ``outline``: the code found, as corners in preview pixels (None: none found).
    ``advice``: the status line for the cashier ("" when there is nothing to say).
    ``read``: a code was read in this frame.
    """

    width: int
    height: int
    pixels: bytes
    outline: tuple[tuple[float, float], ...] | None = None
    advice: str = ""
    read: bool = False


def preview_shape(frame_w: int, frame_h: int, cols: int, rows: int) -> tuple[int, int]:
    """(width, height) in pixels of a preview that fits ``cols`` x ``rows`` cells, keeping the
    frame's aspect (a cell is about twice as tall as wide, and holds two pixel rows, so a
    preview pixel is square). The height is even: whole cells."""
    if cols <= 0 or rows <= 0 or frame_w <= 0 or frame_h <= 0:
        return 0, 0
    w = cols
    h = round(cols * frame_h / frame_w)
    if h > 2 * rows:
        h = 2 * rows
        w = max(1, round(h * frame_w / frame_h))
    h -= h % 2
    return (w, h) if h >= 2 else (0, 0)


def make_preview(gray: np.ndarray, cols: int, rows: int, outline: Quad | None = None,
                 advice: str = "", read: bool = False) -> PreviewFrame | None:
    """``gray`` (a grey frame) scaled to fit ``cols`` x ``rows`` cells; None if nothing fits."""
    import cv2

    fh, fw = gray.shape[:2]
    w, h = preview_shape(fw, fh, cols, rows)
    if not w:
        return None
    small = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA)
    scaled = None
    if outline is not None:
        sx, sy = w / fw, h / fh
        scaled = tuple((x * sx, y * sy) for x, y in outline)
    return PreviewFrame(w, h, small.tobytes(), scaled, advice, read)


# ------------------------------------------------------------------ advice

@dataclass(frozen=True)
class Measures:
    """What one frame says about the scene (grey levels 0-255, sizes in frame pixels)."""

    mean: float
    p5: float
    p95: float
    bright: float  # share of the code's region (else the frame's) that is saturated: glare
    motion: float  # mean grey-level change from the previous frame (1/16 thumbnail)
    code_side: float | None  # side of the code found (or of the QR-like region seen)
    read: bool  # a code was read in this frame


def code_side(quad: Quad | None) -> float | None:
    """The longer diagonal of ``quad`` divided by sqrt(2): a square code's side."""
    if quad is None or len(quad) < 4:
        return None
    (ax, ay), (bx, by), (cx, cy), (dx, dy) = quad[:4]
    diag = max(((cx - ax) ** 2 + (cy - ay) ** 2) ** 0.5, ((dx - bx) ** 2 + (dy - by) ** 2) ** 0.5)
    return diag / 2 ** 0.5


def measure(gray: np.ndarray, motion: float = 0.0, position: Quad | None = None,
            candidate: tuple[int, int, int, int] | None = None, read: bool = False) -> Measures:
    """The frame's exposure from a 1/8 thumbnail, with what the decoder measured: the
    movement, where the code was read (``position``) or the QR-like region it looked at
    (``candidate``)."""
    import cv2
    import numpy as np

    h, w = gray.shape[:2]
    thumb = cv2.resize(gray, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
    p5, p95 = (float(v) for v in np.percentile(thumb, (5, 95)))
    side = code_side(position)
    box = candidate
    if position is not None:
        xs, ys = [p[0] for p in position], [p[1] for p in position]
        box = (int(min(xs)), int(min(ys)), int(max(xs) - min(xs)), int(max(ys) - min(ys)))
    if side is None and candidate is not None:
        side = float(max(candidate[2], candidate[3]))
    # Glare is a white patch on the code: measured where the code is, if it is known.
    region = thumb
    if box is not None and box[2] > 0 and box[3] > 0:
        x, y, bw, bh = (max(0, int(v)) for v in box)
        region = gray[y:y + bh:2, x:x + bw:2]
        if region.size == 0:
            region = thumb
    return Measures(mean=float(thumb.mean()), p5=p5, p95=p95,
                    bright=float((region >= 254).mean()), motion=motion, code_side=side,
                    read=read)


TOO_DARK = "Too dark: more light on the card"
TOO_BRIGHT = "Too bright: tilt the card out of the glare"
TOO_FAR = "Too far: bring the card closer"
HOLD_STILL = "Hold the card still"
NO_CODE = "No code in view"


class Advisor:
    """One advice line from the frames' measures, with hysteresis.

    A condition starts with a stricter threshold than it ends with (so a frame near the
    limit does not switch it on and off), and the line shown changes only when another
    one has been what the frames say for ``settle`` frames in a row.
    """

    # Exposure (grey levels): on below/above the first value, off past the second.
    dark_on, dark_off = 50.0, 65.0  # the 95th percentile: even the brightest part is dim
    bright_on, bright_off = 0.30, 0.18  # share of the code (or frame) saturated: glare
    washed_on, washed_off = 200.0, 185.0  # the 5th percentile: even the darkest part is pale
    motion_on, motion_off = 9.0, 5.0  # mean thumbnail change per frame (bench hand shake: < 8)
    # A QR-like region smaller than this share of the frame's width, and not read, is too
    # far (at 640 px: 83 px; on the bench set the regions of codes at a readable distance
    # measure 98 px and more, those of the "small" category 58-112 px).
    far_on, far_off = 0.13, 0.16

    def __init__(self, frame_width: int = 640, settle: int = 3) -> None:
        self.frame_width = frame_width
        self.settle = max(1, settle)
        self.shown = ""
        self._active: set[str] = set()
        self._candidate = ""
        self._count = 0

    def feed(self, m: Measures, frame_width: int | None = None) -> str:
        """The line to show after this frame."""
        if frame_width:
            self.frame_width = frame_width
        now = self._conditions(m)
        self._active = now
        wanted = next((line for line in (TOO_DARK, TOO_BRIGHT, HOLD_STILL, TOO_FAR, NO_CODE)
                       if line in now), "")
        if m.read:  # a read ends any advice at once
            self.shown, self._candidate, self._count = "", "", 0
            return self.shown
        if wanted == self.shown:
            self._candidate, self._count = "", 0
        elif wanted == self._candidate:
            self._count += 1
            if self._count >= self.settle:
                self.shown, self._candidate, self._count = wanted, "", 0
        else:
            self._candidate, self._count = wanted, 1
            if self.settle == 1:
                self.shown, self._candidate, self._count = wanted, "", 0
        return self.shown

    def _conditions(self, m: Measures) -> set[str]:
        was = self._active
        out: set[str] = set()
        if m.p95 < (self.dark_off if TOO_DARK in was else self.dark_on):
            out.add(TOO_DARK)
        if m.bright > (self.bright_off if TOO_BRIGHT in was else self.bright_on) or \
                m.p5 > (self.washed_off if TOO_BRIGHT in was else self.washed_on):
            out.add(TOO_BRIGHT)
        if m.motion > (self.motion_off if HOLD_STILL in was else self.motion_on):
            out.add(HOLD_STILL)
        if m.code_side is None:
            if not m.read:
                out.add(NO_CODE)
        elif not m.read:
            limit = (self.far_off if TOO_FAR in was else self.far_on) * self.frame_width
            if m.code_side < limit:
                out.add(TOO_FAR)
        return out
