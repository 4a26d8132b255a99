"""The live camera picture on the scan screen: grey half-block cells, the code outlined.

Each text cell shows two pixels, one above the other: the glyph ``▀`` with the
upper pixel as its foreground colour and the lower one as its background.
:func:`render_preview` is pure (a frame in, lines of Rich segments out), so the
camera thread renders and the UI thread only swaps the lines in.

The console palette is for the Linux text console: four greys in the
foreground (black, bright black, white, bright white) but only the two
non-bright ones in the background (a bright background is not reliable
there), so each cell picks the glyph (``▀``, ``▄``, ``█`` or a space) and the
colours that come closest to its two pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.strip import Strip
from textual.widget import Widget

UPPER, LOWER, FULL = "▀", "▄", "█"


class Frame(Protocol):
    """What the camera sends (``hardware.scanview.PreviewFrame``)."""

    width: int
    height: int
    pixels: bytes
    outline: tuple[tuple[float, float], ...] | None


@dataclass(frozen=True)
class Palette:
    """Grey levels a cell may use: (grey value 0-255, colour) for foreground and background,
    and the colour of the outline around a code found."""

    fg: tuple[tuple[int, str], ...]
    bg: tuple[tuple[int, str], ...]
    outline: str
    outline_bg: str


def _greys(n: int) -> tuple[tuple[int, str], ...]:
    vals = [round(i * 255 / (n - 1)) for i in range(n)]
    return tuple((v, f"#{v:02x}{v:02x}{v:02x}") for v in vals)


TRUECOLOR = Palette(fg=_greys(24), bg=_greys(24), outline="#3fb950", outline_bg="#3fb950")
CONSOLE = Palette(
    fg=((0, "black"), (85, "bright_black"), (170, "white"), (255, "bright_white")),
    bg=((0, "black"), (170, "white")),
    outline="bright_green", outline_bg="green")
PALETTES = {"default": TRUECOLOR, "console": CONSOLE}

BINS = 32  # grey levels are looked up in 8-level bins: a 32 x 32 table of cells


def _nearest(levels: Sequence[tuple[int, str]], v: float) -> tuple[int, str]:
    return min(levels, key=lambda lv: abs(lv[0] - v))


def _first_nearest(levels: Sequence[tuple[int, str]], v: float) -> tuple[int, str]:
    """The first level of the least squared distance to ``v`` (ties: the earlier)."""
    best = levels[0]
    for lv in levels[1:]:
        if (v - lv[0]) ** 2 < (v - best[0]) ** 2 - 1e-9:
            best = lv
    return best


@lru_cache(maxsize=8)
def cell_table(palette: Palette) -> tuple[tuple[tuple[str, Style], ...], ...]:
    """For each (upper bin, lower bin): the glyph and style closest to those two greys.

    The error of a glyph is a sum of one term per half, so each colour is chosen on its
    own (a half block: the nearest foreground to one half, the nearest background to the
    other; a full or empty cell: the nearest to the two halves' mean), which is the same
    choice, ties included, as trying every foreground with every background, in
    O(levels) instead of O(levels²) per cell (2.4 M steps for 24 greys: seconds on a Pi).
    """
    fg, bg = palette.fg, palette.bg
    table = []
    for ub in range(BINS):
        row = []
        for lb in range(BINS):
            u, lo = (ub + 0.5) * 256 / BINS, (lb + 0.5) * 256 / BINS
            mean = (u + lo) / 2
            fu, fl, fm = _first_nearest(fg, u), _first_nearest(fg, lo), _first_nearest(fg, mean)
            bu, bl, bm = _first_nearest(bg, u), _first_nearest(bg, lo), _first_nearest(bg, mean)
            # (error, glyph, foreground, background), in the order ties are settled:
            choices = [
                ((u - fu[0]) ** 2 + (lo - bl[0]) ** 2, UPPER, fu, bl),
                ((u - bu[0]) ** 2 + (lo - fl[0]) ** 2, LOWER, fl, bu),
                ((u - fm[0]) ** 2 + (lo - fm[0]) ** 2, FULL, fm, bg[0]),
                ((u - bm[0]) ** 2 + (lo - bm[0]) ** 2, " ", fg[0], bm),
            ]
            best = choices[0]
            for choice in choices[1:]:
                if choice[0] < best[0] - 1e-9:
                    best = choice
            row.append((best[1], Style(color=best[2][1], bgcolor=best[3][1])))
        table.append(tuple(row))
    return tuple(table)


def outline_pixels(outline: Sequence[tuple[float, float]] | None, width: int,
                   height: int) -> set[tuple[int, int]]:
    """The pixels on the closed polygon ``outline`` (preview coordinates), clipped."""
    if not outline or len(outline) < 2:
        return set()
    out: set[tuple[int, int]] = set()
    pts = list(outline)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
        n = max(1, int(max(abs(x1 - x0), abs(y1 - y0)) * 2))
        for i in range(n + 1):
            x, y = round(x0 + (x1 - x0) * i / n), round(y0 + (y1 - y0) * i / n)
            if 0 <= x < width and 0 <= y < height:
                out.add((x, y))
    return out


def render_preview(frame: Frame, palette: Palette = TRUECOLOR) -> list[list[Segment]]:
    """The frame as ``height // 2`` lines of ``width`` cells (runs of one style merged)."""
    w, h, px = frame.width, frame.height, frame.pixels
    table = cell_table(palette)
    marks = outline_pixels(frame.outline, w, h)
    shift = 8 - (BINS.bit_length() - 1)
    mark_style: dict[tuple[bool, bool], Callable[[int], tuple[str, Style]]] = {
        (True, False): lambda lo: (UPPER, Style(color=palette.outline,
                                                bgcolor=_nearest(palette.bg, lo)[1])),
        (False, True): lambda up: (LOWER, Style(color=palette.outline,
                                                bgcolor=_nearest(palette.bg, up)[1])),
    }
    lines: list[list[Segment]] = []
    for row in range(h // 2):
        top, bottom = row * 2 * w, (row * 2 + 1) * w
        segs: list[Segment] = []
        run_text, run_style = "", None
        for x in range(w):
            u, lo = px[top + x], px[bottom + x]
            if marks and ((x, 2 * row) in marks or (x, 2 * row + 1) in marks):
                mu, ml = (x, 2 * row) in marks, (x, 2 * row + 1) in marks
                if mu and ml:
                    glyph, style = FULL, Style(color=palette.outline, bgcolor=palette.outline_bg)
                else:
                    glyph, style = mark_style[(mu, ml)](lo if mu else u)
            else:
                glyph, style = table[u >> shift][lo >> shift]
            if style is run_style or style == run_style:
                run_text += glyph
            else:
                if run_text:
                    segs.append(Segment(run_text, run_style))
                run_text, run_style = glyph, style
        if run_text:
            segs.append(Segment(run_text, run_style))
        lines.append(segs)
    return lines


class CameraPreview(Widget):
    """Shows the lines :func:`render_preview` made, centred; tells ``sized`` its size in
    cells so the camera makes pictures that fit."""

    DEFAULT_CSS = """
    CameraPreview { height: 1fr; min-height: 4; width: 100%; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._lines: list[Strip] = []
        self._width = 0
        self.frames_shown = 0
        self.outlined = False
        self.outlined_frames = 0
        #: Called with (columns, rows) whenever the widget's size changes.
        self.sized: Callable[[int, int], object] | None = None

    def on_resize(self, event: events.Resize) -> None:
        if self.sized is not None:
            self.sized(event.size.width, event.size.height)

    def show_lines(self, lines: list[list[Segment]], outlined: bool = False) -> None:
        """Put a rendered frame on screen (UI thread)."""
        self._lines = [Strip(segs) for segs in lines]
        self._width = max((s.cell_length for s in self._lines), default=0)
        self.frames_shown += 1
        self.outlined = outlined
        self.outlined_frames += outlined
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        top = max(0, (self.size.height - len(self._lines)) // 2)
        i = y - top
        if not 0 <= i < len(self._lines):
            return Strip.blank(width, self.rich_style)
        left = max(0, (width - self._width) // 2)
        line = self._lines[i]
        if left:
            line = Strip([Segment(" " * left, self.rich_style), *line])
        return line.crop(0, width)
