"""QR decoding for camera frames: a fast path, then escalation only when it fails.

The fast path is zxing-cpp restricted to QR codes on the gray frame (well
under a millisecond). When that reads nothing, the chain finds the most
QR-like region of the frame (dense edges in both directions), crops it,
scales it to ~260 px and tries cheap variants on the crop: sharpening, an
adaptive threshold, Wiener deconvolution along the blur direction when the
crop looks motion-blurred, pyzbar as a second opinion (when ``libzbar0`` is
installed), then a few whole-frame variants and OpenCV's detector last.
It stops at the first success.

Only the libraries produce text, and all of them check the QR's Reed-Solomon
error correction, so preprocessing can make a code readable but cannot make
it say something else. A decoded text must also be printable.

Escalation is bounded by ``budget_ms`` per frame; :class:`MultiFrameDecoder`
resumes the chain where the previous frame stopped, so a live stream walks
the whole chain over a few frames at a bounded cost per frame.

cv2, numpy, zxingcpp and pyzbar are imported on first use, not at import time.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

MAX_TEXT = 1024
CROP_TARGET = 280  # px: the crop's long side after scaling


def accept(text: str) -> bool:
    """Sanity check on a decoded text: non-empty, bounded, printable."""
    return 0 < len(text) <= MAX_TEXT and text.isprintable()


class _Libs:
    """The decoding libraries, imported once on first use."""

    _loaded = False
    cv2: Any = None
    np: Any = None
    zx: Any = None
    zbar: Any = None  # None when libzbar0 (or pyzbar) is missing
    zbar_error: str = ""

    @classmethod
    def load(cls) -> type[_Libs]:
        if not cls._loaded:
            import cv2
            import numpy
            import zxingcpp

            cls.cv2, cls.np, cls.zx = cv2, numpy, zxingcpp
            cls.zbar, cls.zbar_error = _load_pyzbar()
            cls._loaded = True
        return cls


def _load_pyzbar() -> tuple[Any, str]:
    try:
        from pyzbar import pyzbar
    except (ImportError, OSError) as exc:  # pyzbar raises ImportError without libzbar0
        return None, f"pyzbar unavailable: {exc}"
    return pyzbar, ""


def pyzbar_available() -> bool:
    return _Libs.load().zbar is not None


# ---------------------------------------------------------------- library calls

def _zxing(img: np.ndarray, binarizer: Any = None) -> list[str]:
    zx = _Libs.zx
    kw: dict[str, Any] = {"formats": zx.BarcodeFormats(zx.BarcodeFormat.QRCode),
                          "try_rotate": False, "try_invert": False}
    if binarizer is not None:
        kw["binarizer"] = binarizer
    return [r.text for r in zx.read_barcodes(img, **kw) if r.valid]


def _zbar(img: np.ndarray) -> list[str]:
    pz = _Libs.zbar
    if pz is None:
        return []
    out = []
    for r in pz.decode(img, symbols=[pz.ZBarSymbol.QRCODE]):
        try:
            out.append(r.data.decode("utf-8"))
        except UnicodeDecodeError:
            continue
    return out


def _opencv(img: np.ndarray) -> list[str]:
    det = _opencv_detector()
    text, _, _ = det.detectAndDecode(img)
    return [text] if text else []


_DETECTOR: Any = None


def _opencv_detector() -> Any:
    global _DETECTOR
    if _DETECTOR is None:
        _DETECTOR = _Libs.cv2.QRCodeDetector()
    return _DETECTOR


# ---------------------------------------------------------------- image helpers

def to_gray(frame: np.ndarray) -> np.ndarray:
    cv2, np_ = _Libs.cv2, _Libs.np
    if frame.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        frame = cv2.cvtColor(frame, code)
    if frame.dtype != np_.uint8:
        frame = np_.clip(frame, 0, 255).astype(np_.uint8)
    return np_.ascontiguousarray(frame)


def _unsharp(img: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    cv2 = _Libs.cv2
    blur = cv2.GaussianBlur(img, (0, 0), sigma)
    return cv2.addWeighted(img, 1 + amount, blur, -amount, 0)


def _adaptive(img: np.ndarray, block: int = 31) -> np.ndarray:
    cv2 = _Libs.cv2
    return cv2.adaptiveThreshold(img, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY,
                                 block, 5)


def proposals(gray: np.ndarray, k: int = 2) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, w, h) of the most QR-like regions, best first.

    A QR code has strong edges in both directions at once; text mostly in
    one. Scored on a 1/4-scale image by min(|dx|, |dy|) summed over the blob.
    """
    cv2, np_ = _Libs.cv2, _Libs.np
    f = 4
    h, w = gray.shape[:2]
    if h < 4 * f or w < 4 * f:
        return [(0, 0, w, h)]
    small = cv2.resize(gray, (w // f, h // f), interpolation=cv2.INTER_AREA)
    gx = cv2.convertScaleAbs(cv2.Sobel(small, cv2.CV_16S, 1, 0))
    gy = cv2.convertScaleAbs(cv2.Sobel(small, cv2.CV_16S, 0, 1))
    energy = cv2.blur(cv2.min(gx, gy), (7, 7))
    _, mask = cv2.threshold(energy, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np_.ones((5, 5), np_.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    scored = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        if bw * bh < 64:
            continue
        scored.append((float(energy[y:y + bh, x:x + bw].sum()), (x * f, y * f, bw * f, bh * f)))
    scored.sort(key=lambda s: s[0], reverse=True)
    return [b for _, b in scored[:k]]


def crop_box(gray: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.25,
             target: int = CROP_TARGET) -> tuple[np.ndarray, float]:
    """A square-ish crop around ``box`` with a margin, upscaled towards ``target`` px."""
    cv2 = _Libs.cv2
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x1 = int(min(gray.shape[1], cx + side / 2))
    y1 = int(min(gray.shape[0], cy + side / 2))
    crop = gray[y0:y1, x0:x1]
    scale = target / max(1, max(crop.shape[:2]))
    if scale < 0.6:  # big crops cost the slow steps dearly: bring them down too
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return crop, scale
    if scale > 1.15:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        return crop, scale
    return crop, 1.0


def blur_direction(img: np.ndarray) -> tuple[float, float]:
    """(angle of the blur in radians, anisotropy in 0..1; low = directional blur).

    From the image's structure tensor: motion blur removes gradient energy
    along the motion, so the weakest gradient direction is the blur's.
    """
    cv2, np_ = _Libs.cv2, _Libs.np
    f = img.astype(np_.float32)
    gx = cv2.Sobel(f, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(f, cv2.CV_32F, 0, 1)
    jxx, jyy, jxy = float((gx * gx).sum()), float((gy * gy).sum()), float((gx * gy).sum())
    root = math.sqrt(((jxx - jyy) / 2) ** 2 + jxy**2)
    lam1, lam2 = (jxx + jyy) / 2 + root, (jxx + jyy) / 2 - root
    theta = 0.5 * math.atan2(2 * jxy, jxx - jyy)  # strongest gradient
    return theta + math.pi / 2, lam2 / max(lam1, 1e-6)


def _motion_psf(length: float, angle: float) -> np.ndarray:
    np_ = _Libs.np
    size = math.ceil(length) * 2 + 3
    k = np_.zeros((size, size), np_.float32)
    c = size // 2
    dx, dy = math.cos(angle), math.sin(angle)
    for t in np_.linspace(-length / 2, length / 2, int(4 * length) + 1):
        k[round(c + t * dy), round(c + t * dx)] += 1
    return k / k.sum()


def wiener(img: np.ndarray, psf: np.ndarray, k: float = 0.02) -> np.ndarray:
    """Wiener deconvolution of ``img`` by ``psf`` (noise-to-signal ratio ``k``)."""
    cv2, np_ = _Libs.cv2, _Libs.np
    h, w = img.shape
    kernel = np_.zeros((h, w), np_.float32)
    s = psf.shape[0]
    kernel[:s, :s] = psf
    kernel = np_.roll(kernel, (-(s // 2), -(s // 2)), (0, 1))
    hf = cv2.dft(kernel, flags=cv2.DFT_COMPLEX_OUTPUT)
    gf = cv2.dft(img.astype(np_.float32), flags=cv2.DFT_COMPLEX_OUTPUT)
    hr, hi = hf[..., 0], hf[..., 1]
    gr, gi = gf[..., 0], gf[..., 1]
    den = hr * hr + hi * hi + k
    out = np_.empty_like(gf)
    out[..., 0] = (gr * hr + gi * hi) / den  # G * conj(H) / (|H|^2 + k)
    out[..., 1] = (gi * hr - gr * hi) / den
    res = cv2.idft(out, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)
    return np_.clip(res, 0, 255).astype(np_.uint8)


# ---------------------------------------------------------------- the chain

@dataclass
class _Frame:
    """Per-frame working state; derived images are computed once, on demand."""

    gray: np.ndarray
    _boxes: list[tuple[int, int, int, int]] | None = None
    _crops: dict[int, tuple[np.ndarray, float]] = field(default_factory=dict)
    _blur: tuple[float, float] | None = None

    def boxes(self) -> list[tuple[int, int, int, int]]:
        if self._boxes is None:
            self._boxes = proposals(self.gray)
        return self._boxes

    def crop(self, i: int = 0) -> tuple[np.ndarray, float] | None:
        boxes = self.boxes()
        if i >= len(boxes):
            return None
        if i not in self._crops:
            self._crops[i] = crop_box(self.gray, boxes[i])
        return self._crops[i]

    def blur(self) -> tuple[float, float] | None:
        c = self.crop(0)
        if c is None:
            return None
        if self._blur is None:
            self._blur = blur_direction(c[0])
        return self._blur


Step = Callable[[_Frame], list[str]]


def _on_crop(i: int, fn: Callable[[np.ndarray], list[str]]) -> Step:
    def step(fr: _Frame) -> list[str]:
        c = fr.crop(i)
        return fn(c[0]) if c is not None else []

    return step


def _deblur(length: float) -> Step:
    def step(fr: _Frame) -> list[str]:
        c, b = fr.crop(0), fr.blur()
        if c is None or b is None or b[1] > 0.5:  # not directional: not motion blur
            return []
        angle, _ = b
        return _zxing(wiener(c[0], _motion_psf(length * c[1], angle)))

    return step


def _full(fn: Callable[[np.ndarray], np.ndarray]) -> Step:
    return lambda fr: _zxing(fn(fr.gray))


def _half(g: np.ndarray) -> np.ndarray:
    cv2 = _Libs.cv2
    return cv2.resize(g, (g.shape[1] // 2, g.shape[0] // 2), interpolation=cv2.INTER_AREA)


def _otsu(g: np.ndarray) -> np.ndarray:
    cv2 = _Libs.cv2
    return cv2.threshold(g, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]


def _median(g: np.ndarray) -> np.ndarray:
    return _Libs.cv2.medianBlur(g, 3)


def escalation_steps(with_pyzbar: bool = True, with_opencv: bool = True) -> list[tuple[str, Step]]:
    """The escalation chain in order, cheapest and most productive first (see bench/)."""
    zbar = with_pyzbar
    steps: list[tuple[str, Step]] = [
        ("crop+adaptive", _on_crop(0, lambda c: _zxing(_adaptive(c)))),
        ("crop+sharpen", _on_crop(0, lambda c: _zxing(_unsharp(c, 1.0, 1.0)))),
        ("half", _full(_half)),
        ("crop", _on_crop(0, _zxing)),
        ("crop+deblur9", _deblur(9)),
    ]
    if zbar:
        steps.append(("crop+adaptive+zbar", _on_crop(0, lambda c: _zbar(_adaptive(c)))))
    steps += [
        ("crop+sharpen2", _on_crop(0, lambda c: _zxing(_unsharp(c, 2.0, 1.5)))),
        ("crop+deblur7", _deblur(7)),
        ("otsu", _full(_otsu)),
        ("median", _full(_median)),
    ]
    if zbar:
        steps += [
            ("crop+zbar", _on_crop(0, _zbar)),
            ("crop+sharpen+zbar", _on_crop(0, lambda c: _zbar(_unsharp(c, 2.0, 1.5)))),
        ]
    steps += [("crop+deblur11", _deblur(11)), ("crop2", _on_crop(1, _zxing))]
    if with_opencv:
        steps.append(("crop+opencv", _on_crop(0, _opencv)))
    return steps


class QRDecoder:
    """Decode the QR codes in one frame. ``decode`` returns the texts read (maybe empty).

    ``budget_ms`` bounds the escalation per frame (``None``: run the whole
    chain, as for image files). ``use_pyzbar=False`` or a missing libzbar0
    leaves pyzbar out; the rest of the chain is unchanged.
    """

    def __init__(self, budget_ms: float | None = 6.0, use_pyzbar: bool = True,
                 use_opencv: bool = True) -> None:
        libs = _Libs.load()
        self.budget_ms = budget_ms
        self.pyzbar = use_pyzbar and libs.zbar is not None
        self.steps = escalation_steps(self.pyzbar, use_opencv)
        self.last_step: str | None = None  # which step read the last frame (for the bench)
        self.next_step = 0  # where the chain stopped on the last frame (budget ran out)

    def decode(self, frame: np.ndarray, start: int = 0) -> list[str]:
        """Fast path, then the escalation steps from ``start`` until one reads or time is up."""
        t0 = time.perf_counter()
        gray = to_gray(frame)
        self.last_step = None
        found = [t for t in _zxing(gray) if accept(t)]
        if found:
            self.last_step = "fast"
            self.next_step = 0
            return _unique(found)
        fr = _Frame(gray)
        n = len(self.steps)
        for j in range(n):
            idx = (start + j) % n
            if j and self.budget_ms is not None and \
                    (time.perf_counter() - t0) * 1000 > self.budget_ms:
                self.next_step = idx
                return []
            name, step = self.steps[idx]
            found = [t for t in step(fr) if accept(t)]
            if found:
                self.last_step = name
                self.next_step = 0
                return _unique(found)
        self.next_step = 0
        return []

    def decode_file(self, path: str | Path) -> list[str]:
        """Decode an image file with the whole chain (no time budget)."""
        cv2 = _Libs.cv2
        if not Path(path).is_file():
            raise ValueError(f"no such image file: {path}")
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"cannot read image {path}")
        budget, self.budget_ms = self.budget_ms, None
        try:
            return self.decode(img)
        finally:
            self.budget_ms = budget


def _unique(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(texts))


class MultiFrameDecoder:
    """Use several frames of a live stream.

    Each frame gets the fast path plus the part of the escalation chain that
    fits in the decoder's budget, resuming where the previous frame stopped.
    While the scene is still, the last ``window`` frames are also averaged
    (sensor noise drops by sqrt(window)) and the average decoded; a text read
    only from an average must be read twice before it is reported.
    """

    def __init__(self, decoder: QRDecoder | None = None, window: int = 4,
                 still_threshold: float = 4.0) -> None:
        self.decoder = decoder or QRDecoder()
        self.window = max(1, window)
        self.still_threshold = still_threshold
        self._frames: deque[np.ndarray] = deque(maxlen=self.window)
        self._pending: deque[str] = deque(maxlen=self.window)
        self._thumb: np.ndarray | None = None
        self._start = 0

    def reset(self) -> None:
        self._frames.clear()
        self._pending.clear()
        self._thumb = None
        self._start = 0

    def feed(self, frame: np.ndarray) -> str | None:
        """The text read from this frame (or the recent ones), else ``None``."""
        libs = _Libs.load()
        cv2 = libs.cv2
        gray = to_gray(frame)
        # Stillness on a 1/16 thumbnail: sensor noise averages out, movement does not.
        thumb = cv2.resize(gray, (max(1, gray.shape[1] // 16), max(1, gray.shape[0] // 16)),
                           interpolation=cv2.INTER_AREA)
        if self._frames and (self._thumb is None or self._thumb.shape != thumb.shape or float(
                cv2.absdiff(self._thumb, thumb).mean()) > self.still_threshold):
            self._frames.clear()  # the scene moved: averaging would smear it
        self._thumb = thumb
        self._frames.append(gray)

        found = self.decoder.decode(gray, start=self._start)
        self._start = self.decoder.next_step
        if found:
            self._pending.clear()
            return found[0]
        if len(self._frames) >= 2:
            np_ = libs.np
            avg = np_.mean(np_.stack(self._frames), axis=0).astype(np_.uint8)
            for text in _zxing(avg) or _zxing(_unsharp(avg, 1.0, 1.0)):
                if accept(text):
                    if text in self._pending:
                        self._pending.clear()
                        return text
                    self._pending.append(text)
        return None
