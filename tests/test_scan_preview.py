"""The camera preview, its advice line, the read beep and the capture/decode pipeline
(issue 11, points 3 and 4): pure functions on generated frames, real threads."""

from __future__ import annotations

import itertools
import shlex
import sys
import threading
import time
import wave
from io import BytesIO

import cv2
import numpy as np
import pytest

from bench.qrset import render
from hardware.beep import Beeper, tone_wav
from hardware.camera import LatestFrame
from hardware.cardimages import render_card
from hardware.decode import MultiFrameDecoder, QRDecoder, to_gray
from hardware.scanview import (
    HOLD_STILL,
    NO_CODE,
    TOO_BRIGHT,
    TOO_DARK,
    TOO_FAR,
    Advisor,
    PreviewFrame,
    make_preview,
    measure,
    preview_shape,
)
from hardware.simcam import SimulatedCamera
from pos.config import Settings
from pos.sandbox import data
from screens.widgets.camera_preview import (
    CONSOLE,
    FULL,
    LOWER,
    TRUECOLOR,
    UPPER,
    outline_pixels,
    render_preview,
)


def scene(card_height: int, *, offset: tuple[int, int] = (0, 0), grey: int = 96,
          payload: str = data.CARD_ACTIVE.payload) -> np.ndarray:
    """A 640x480 grey frame with a rendered card ``card_height`` px tall, centred + offset."""
    frame = np.full((480, 640), grey, np.uint8)
    card = to_gray(np.array(render_card(payload, height_px=card_height))[:, :, ::-1])
    h, w = card.shape
    y, x = (480 - h) // 2 + offset[1], (640 - w) // 2 + offset[0]
    frame[y:y + h, x:x + w] = card
    return frame


# ------------------------------------------------------------------ rendering

def test_cells_hold_two_pixels_upper_as_foreground() -> None:
    frame = PreviewFrame(2, 2, bytes([0, 255, 255, 0]))
    (line,) = render_preview(frame, TRUECOLOR)
    cells = [(ch, seg.style) for seg in line for ch in seg.text]
    assert [c for c, _ in cells] == [UPPER, UPPER]
    (_, left), (_, right) = cells
    assert left.color.triplet.hex == "#000000" and left.bgcolor.triplet.hex == "#ffffff"
    assert right.color.triplet.hex == "#ffffff" and right.bgcolor.triplet.hex == "#000000"


def test_console_cells_use_only_ansi_greys_and_no_bright_background() -> None:
    ramp = bytes(range(0, 256, 8))  # 32 greys across, the same in both rows
    frame = PreviewFrame(32, 2, ramp + ramp)
    (line,) = render_preview(frame, CONSOLE)
    fgs = {seg.style.color.name for seg in line}
    bgs = {seg.style.bgcolor.name for seg in line}
    assert fgs <= {"black", "bright_black", "white", "bright_white"}
    assert bgs <= {"black", "white"}
    cells = {(seg.text[0], seg.style.color.name, seg.style.bgcolor.name) for seg in line}
    assert len(cells) >= 4  # the ramp is seen in four steps at least, not two flat halves
    # A white upper pixel over a black lower one: a bright foreground on top.
    (cell,) = render_preview(PreviewFrame(1, 2, bytes([255, 0])), CONSOLE)[0]
    assert cell.text == UPPER and cell.style.color.name == "bright_white"
    # A black upper pixel over a white one: the glyph flips, the bright part stays foreground.
    (cell,) = render_preview(PreviewFrame(1, 2, bytes([0, 255])), CONSOLE)[0]
    assert cell.text == LOWER and cell.style.color.name == "bright_white"


def test_outline_is_drawn_in_its_colour() -> None:
    w, h = 20, 20
    quad = ((5.0, 5.0), (14.0, 5.0), (14.0, 14.0), (5.0, 14.0))
    frame = PreviewFrame(w, h, bytes([128] * (w * h)), outline=quad)
    lines = render_preview(frame, TRUECOLOR)
    assert len(lines) == 10 and all(sum(len(s.text) for s in line) == w for line in lines)
    coloured = [(y, x) for y, line in enumerate(lines)
                for x, (ch, seg) in enumerate((c, s) for s in line for c in s.text)
                if seg.style.color.triplet.hex == TRUECOLOR.outline]
    assert coloured and all(2 <= y <= 7 and 5 <= x <= 14 for y, x in coloured)
    assert (2, 5) in coloured and (7, 14) in coloured  # the corners
    # The left edge covers both pixels of its cells: full blocks.
    assert lines[4][0].text + lines[4][1].text != ""
    plain = render_preview(PreviewFrame(w, h, bytes([128] * (w * h))), TRUECOLOR)
    assert all(s.style.color.triplet.hex != TRUECOLOR.outline for line in plain for s in line)
    assert FULL in "".join(s.text for s in lines[3])
    assert outline_pixels(None, w, h) == set()


def test_preview_fits_the_space_and_keeps_the_aspect() -> None:
    assert preview_shape(640, 480, 80, 40) == (80, 60)  # width-bound: 4:3
    assert preview_shape(640, 480, 80, 12) == (32, 24)  # height-bound: 12 cells, 24 px
    assert preview_shape(640, 480, 0, 10) == (0, 0)
    gray = scene(240)
    decoder = QRDecoder()
    assert decoder.decode(gray) == [data.CARD_ACTIVE.payload]
    quad = decoder.last_position
    assert quad is not None
    pf = make_preview(gray, 64, 24, quad)
    assert pf is not None and (pf.width, pf.height) == (64, 48)
    assert len(pf.pixels) == 64 * 48 and pf.outline is not None
    for (x, y), (fx, fy) in zip(pf.outline, quad, strict=True):
        assert x == pytest.approx(fx / 10) and y == pytest.approx(fy / 10)
    assert make_preview(gray, 0, 0) is None


def test_decoder_says_where_the_code_is_mirrored_too() -> None:
    gray = scene(240, offset=(120, 0))
    decoder = QRDecoder()
    decoder.decode(gray)
    xs = [x for x, _ in decoder.last_position or ()]
    decoder.decode(cv2.flip(gray, 1))  # zxing-cpp reads a mirrored code itself
    mxs = [x for x, _ in decoder.last_position or ()]
    assert xs and mxs
    assert min(xs) > 320 and max(mxs) < 320  # right half, then left half: frame coordinates
    assert min(mxs) == pytest.approx(639 - max(xs), abs=3)
    decoder.decode(np.full((480, 640), 96, np.uint8))
    assert decoder.last_position is None


# ------------------------------------------------------------------ advice

def advise(frames: list[np.ndarray], settle: int = 3) -> list[str]:
    mf, adv, out = MultiFrameDecoder(QRDecoder()), Advisor(settle=settle), []
    for g in frames:
        text = mf.feed(g)
        out.append(adv.feed(measure(g, mf.last_motion, mf.last_position,
                                    mf.decoder.last_candidate, text is not None), g.shape[1]))
    return out


def test_dark_frames_say_too_dark_after_a_few_frames_and_not_before() -> None:
    rng = np.random.default_rng(1)
    dark = [(scene(240) // 100 + rng.integers(0, 4, (480, 640))).astype(np.uint8)
            for _ in range(5)]  # a card in the dark: levels 0-5, unreadable
    lines = advise(dark)
    assert lines[:2] == ["", ""] and lines[2:] == [TOO_DARK] * 3


@pytest.mark.parametrize("category", ["clean", "perspective", "defocus", "small", "noqr"])
def test_no_false_alarm_on_the_bench_streams(category: str) -> None:
    """Well-lit, still scenes of the bench set (4 frames of a stream each, with hand shake):
    never told to fix the light or hold still; a code in view is never "no code"."""
    for index in range(4):
        lines = advise([to_gray(render(category, index, frame=f).image) for f in range(4)])
        assert not {TOO_DARK, TOO_BRIGHT, HOLD_STILL} & set(lines), (category, index, lines)
        if category != "noqr":
            assert NO_CODE not in lines


def test_exposure_near_the_limit_does_not_flicker() -> None:
    adv = Advisor(settle=1)
    base = dict(mean=40.0, p5=5.0, bright=0.0, motion=0.0, code_side=100.0, read=False)
    from hardware.scanview import Measures
    lines = [adv.feed(Measures(p95=p, **base)) for p in (45, 55, 48, 58, 52, 60, 70, 58)]
    # On below 50, then held until the frame is clearly brighter (65): one change each way.
    assert lines == [TOO_DARK] * 6 + ["", ""]


def test_glare_and_a_washed_out_frame_say_too_bright() -> None:
    glare = scene(240)
    h, w = glare.shape
    cv2.circle(glare, (w // 2 + 60, h // 2), 70, 255, -1)  # a white patch over the code
    assert advise([glare], settle=1) == [TOO_BRIGHT]  # the code is there, under the glare
    # Washed out: nothing left to see but white (zxing still reads a code at 249-255).
    washed = np.random.default_rng(2).integers(235, 256, (480, 640)).astype(np.uint8)
    assert advise([washed] * 4)[-1] == TOO_BRIGHT


def test_a_moving_card_says_hold_still_and_a_still_one_stops_saying_it() -> None:
    moving = [cv2.blur(scene(200, offset=(dx, 0)), (31, 1)) for dx in  # smeared
              (-120, -60, 0, 60, 120, 60, 0)]
    lines = advise(moving)
    assert lines[-1] == HOLD_STILL
    still = advise(moving[-1:] * 8)
    assert HOLD_STILL not in still[-3:]


def test_a_small_code_says_too_far_and_an_empty_scene_no_code() -> None:
    far = cv2.GaussianBlur(scene(44), (0, 0), 0.9)  # code ~25 px: too small to read
    lines = advise([far] * 5)
    assert lines[-1] == TOO_FAR
    assert advise([np.full((480, 640), 96, np.uint8)] * 4)[-1] == NO_CODE
    near = advise([scene(240)] * 4)
    assert near == [""] * 4  # read at once: no advice


# ------------------------------------------------------------------ beep

def test_a_command_beep_runs_the_command(tmp_path) -> None:
    mark = tmp_path / "beeped"
    beeper = Beeper(shlex.join([sys.executable, "-c", f"open({str(mark)!r}, 'w').close()"]))
    assert not beeper.terminal_bell and not beeper.silent
    thread = beeper.beep()
    assert thread is not None
    thread.join(10)
    assert mark.exists()


def test_beep_settings() -> None:
    assert Beeper("bell").terminal_bell and Beeper("bell").beep() is None
    assert Beeper("none").silent and Beeper("none").beep() is None
    alsa = Beeper("alsa:plughw:1,0")
    assert alsa.argv == ["aplay", "-q", "-D", "plughw:1,0", "-"]
    with wave.open(BytesIO(tone_wav())) as w:
        assert w.getnchannels() == 1 and w.getframerate() == 16_000 and w.getnframes() == 1280
    missing = Beeper("no-such-beep-program-xyz")
    t = missing.beep()
    assert t is not None
    t.join(10)
    assert missing.beep() is None  # logged once, then quiet
    assert Settings(camera={"beep": "alsa:default"}).camera.beep == "alsa:default"
    for bad in ("", "  ", "alsa:"):
        with pytest.raises(ValueError):
            Settings(camera={"beep": bad})


# ------------------------------------------------------------------ pipeline

def test_mailbox_keeps_only_the_newest_frame() -> None:
    box = LatestFrame()
    assert box.take(0.01) is None
    for i in range(3):
        box.put(i)
    assert box.take(0.01) == 2 and box.dropped == 2
    assert box.take(0.01) is None  # nothing newer


def test_a_slow_consumer_drops_frames_instead_of_queueing() -> None:
    """A camera faster than the decoder: the decoder always gets the newest frame, the
    capture never waits for it."""
    camera = SimulatedCamera([data.CARD_ACTIVE.payload], fps=2000, hold_frames=100_000,
                             gap_frames=0)
    previews: list[PreviewFrame] = []
    got = threading.Event()

    def on_preview(frame: PreviewFrame) -> None:
        previews.append(frame)
        if len(previews) >= 3 and camera.slot.dropped > 0:
            got.set()

    camera.on_preview = on_preview
    camera.preview_size = (40, 15)
    camera.preview_fps = 50
    camera.start()
    try:
        assert got.wait(30)
    finally:
        camera.stop()
    assert camera.slot.dropped > 0
    assert camera.frames_decoded + camera.slot.dropped <= camera.frames_served
    assert camera.frames_decoded < camera.frames_served
    assert all((p.width, p.height) == (40, 30) for p in previews)
    assert any(p.outline is not None and p.read for p in previews)


def test_previews_come_at_most_preview_fps() -> None:
    camera = SimulatedCamera(fps=200)
    stamps: list[float] = []
    camera.on_preview = lambda f: stamps.append(time.monotonic())
    camera.preview_size = (20, 10)
    camera.preview_fps = 5
    camera.start()
    try:
        deadline = time.monotonic() + 30
        while len(stamps) < 9 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        camera.stop()
    assert len(stamps) >= 9
    # Stamped where they arrive: one delivered late (a loaded machine delays the
    # preview thread) shortens the gap after it, so the bound is on the mean gap over
    # eight -- a lower bound, which a slow machine only raises. Without the limit the
    # 200 fps camera would give a preview per decoded frame (gaps of a few ms).
    gaps = [b - a for a, b in itertools.pairwise(stamps[:9])]
    assert sum(gaps) / len(gaps) >= 0.15, gaps


def test_cell_table_is_the_exhaustive_choice() -> None:
    """Each cell's glyph and colours are the pair of least error over every foreground and
    background (ties to the earlier glyph and colour), chosen one half at a time."""
    from screens.widgets.camera_preview import BINS, Palette, cell_table

    greys = tuple((v, f"#{v:02x}{v:02x}{v:02x}") for v in (0, 60, 128, 128, 200, 255))
    palette = Palette(fg=greys, bg=greys[1:5], outline="#00ff00", outline_bg="#00ff00")
    table = cell_table(palette)
    for ub, lb in itertools.product(range(BINS), repeat=2):
        u, lo = (ub + 0.5) * 256 / BINS, (lb + 0.5) * 256 / BINS
        best: tuple[float, str, str, str] | None = None
        for glyph in (UPPER, LOWER, FULL, " "):
            for f, fc in palette.fg:
                for b, bc in palette.bg:
                    top, bottom = {UPPER: (f, b), LOWER: (b, f), FULL: (f, f), " ": (b, b)}[glyph]
                    err = (u - top) ** 2 + (lo - bottom) ** 2
                    if best is None or err < best[0] - 1e-9:
                        best = (err, glyph, fc, bc)
        assert best is not None
        glyph, style = table[ub][lb]
        assert (glyph, style.color.name, style.bgcolor.name) == best[1:], (ub, lb)
