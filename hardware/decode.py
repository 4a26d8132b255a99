"""QR decoding for camera frames: a fast path, then escalation only when it fails.

The first step is zxing-cpp with its own recovery (try_invert, try_downscale,
try_rotate; QR Models 1 and 2), so the chain never reads fewer frames than the
library alone. zxing-cpp reads a mirrored code by itself (a selfie camera's
frame), so a second look at the flipped frame is an escalation step, not part
of the fast path: it cost as much as the fast path on every frame the fast path
missed, and left that much less of the budget to the steps that read them.
When that reads nothing, the chain finds the most
QR-like region of the frame (dense edges in both directions, found at 1/4
scale: usually the card), then the QR inside it (the same measure at a finer
scale), crops the QR with a small margin and rescales it (200/280/400 px,
cubic upscaling for small codes) and tries variants on the crop in the order
of ``ORDER``: sharpening, adaptive thresholds, Wiener deconvolution along the
blur direction with the blur length estimated from the crop (only when the
crop looks motion-blurred) or by a disk (defocus), pyzbar as a second opinion
(when ``libzbar0`` is installed), OpenCV's detector, and last pyzbar and
OpenCV each alone on the whole frame (so the chain reads every frame any of the
libraries reads alone). It stops at the first success. Codes the fast path
read that are not a card (a promotion flyer, a receipt) are painted out of the
frame the escalation works on, and proposals centred on them are dropped, so
the escalation looks at the card beside them. ``ORDER`` was chosen by
measuring every step on two seeds of the bench set and ordering by frames read
per millisecond (``python -m bench.tune_decode``).

Only the libraries produce text, and all of them check the QR's Reed-Solomon
error correction, so preprocessing can make a code readable but cannot make
it say something else. A decoded text must also be printable.

Escalation is bounded by ``budget_ms`` of the decoding thread's CPU time per
frame (a step starts only if its typical cost, listed in ``ORDER``, fits in what
is left); :class:`MultiFrameDecoder`
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
CARD_ASPECT = 85.6 / 54.0  # ID-1 card, as hardware.cardimages renders it
CROP_TARGET = 280  # px: the crop's long side after scaling
LIVE_BUDGET_MS = 6.5  # CPU ms per live frame (the p95 goal is 8 ms per frame)

#: Where a code is in a frame: four (x, y) corners in frame pixels, clockwise from the
#: code's top-left as read (for a box found by the escalation: the box's corners).
Quad = tuple[tuple[float, float], ...]


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
            from hardware.cvlog import quiet_opencv

            quiet_opencv()
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

Found = tuple[str, Quad]  # a text and its code's four corners in the frame


def _zxing_found(img: np.ndarray) -> list[Found]:
    """zxing-cpp with its own recovery on (invert, downscale, rotate), QR Models 1 and 2,
    with where each code is.

    The chain's first step: the chain is never worse than the library alone.
    Micro QR and rMQR stay out (clutter reads as tiny Micro QR symbols; cards
    are never Micro QR).
    """
    zx = _Libs.load().zx
    fmts = zx.BarcodeFormats((zx.BarcodeFormat.QRCodeModel2, zx.BarcodeFormat.QRCodeModel1))
    return [(r.text, _corners(r.position))
            for r in zx.read_barcodes(img, formats=fmts, try_rotate=True,
                                      try_invert=True, try_downscale=True) if r.valid]


def _corners(position: Any) -> Quad:
    return tuple((float(p.x), float(p.y)) for p in (
        position.top_left, position.top_right, position.bottom_right, position.bottom_left))


def _mirrored_found(img: np.ndarray) -> list[Found]:
    """The frame flipped left to right, read with recovery on; the corners in the
    (unflipped) frame's coordinates. zxing-cpp reads mirrored codes without it; the
    flipped frame is only another sampling of the same pixels (an escalation step)."""
    right = img.shape[1] - 1
    return [(text, tuple((right - x, y) for x, y in quad))
            for text, quad in _zxing_found(_Libs.load().cv2.flip(img, 1))]


def _mirrored(img: np.ndarray) -> list[str]:
    return [t for t, _ in _mirrored_found(img)]


Box = tuple[int, int, int, int]  # x, y, w, h


def mask_codes(gray: np.ndarray, corners: list[Quad]) -> tuple[np.ndarray, list[Box]]:
    """``gray`` with the codes at ``corners`` (and their quiet zones) painted flat,
    and the boxes painted.

    Codes already read that are not the card (a promotion, a receipt) are the
    most QR-like regions of the frame; painted out (and the regions around
    them left out of the proposals, see :class:`_Frame`), the escalation looks
    at the card instead of cropping them again.
    """
    cv2, np_ = _Libs.load().cv2, _Libs.np
    out = gray.copy()
    boxes = []
    for quad in corners:
        q = np_.array(quad, np_.float32)
        c = q.mean(axis=0)
        grown = ((q - c) * 1.3 + c).round().astype(np_.int32)
        x, y, w, h = cv2.boundingRect(grown)
        patch = gray[max(0, y):y + h, max(0, x):x + w]
        fill = int(np_.median(patch)) if patch.size else 128
        cv2.fillConvexPoly(out, grown, fill)
        boxes.append((x, y, w, h))
    return out, boxes


def _covers(box: Box, code: Box) -> bool:
    """Whether ``box`` is centred on ``code``: a proposal around a code already read
    (a proposal beside it, or overlapping it, is another object: maybe the card)."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return code[0] <= cx <= code[0] + code[2] and code[1] <= cy <= code[1] + code[3]


def is_card(text: str) -> bool:
    """Whether ``text`` parses as a Sente / Patasente card payload."""
    from pos.cardqr import CardQRError, parse_card_qr

    try:
        parse_card_qr(text)
    except CardQRError:
        return False
    return True


def prefer_card(texts: list[str]) -> list[str]:
    """``texts`` with those that parse as a card first (several codes in one frame)."""
    return sorted(texts, key=lambda t: not is_card(t))


def _zxing(img: np.ndarray, binarizer: Any = None) -> list[str]:
    zx = _Libs.load().zx
    # Model 2 only: zxing-cpp 3's QRCode format family includes Micro QR, whose
    # smallest symbols (numeric, error detection only) appear in clutter; cards
    # are never Micro QR (seen on the bench set: a "857000" read from a counter).
    kw: dict[str, Any] = {"formats": zx.BarcodeFormats(zx.BarcodeFormat.QRCodeModel2),
                          "try_rotate": False, "try_invert": False,
                          "try_downscale": False}
    if binarizer is not None:
        kw["binarizer"] = binarizer
    return [r.text for r in zx.read_barcodes(img, **kw) if r.valid]


def _zbar(img: np.ndarray) -> list[str]:
    pz = _Libs.load().zbar
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
    cv2, np_ = _Libs.load().cv2, _Libs.np
    if frame.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        frame = cv2.cvtColor(frame, code)
    if frame.dtype != np_.uint8:
        frame = np_.clip(frame, 0, 255).astype(np_.uint8)
    return np_.ascontiguousarray(frame)


def _unsharp(img: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    cv2 = _Libs.load().cv2
    blur = cv2.GaussianBlur(img, (0, 0), sigma)
    return cv2.addWeighted(img, 1 + amount, blur, -amount, 0)


def _adaptive(img: np.ndarray, block: int = 31) -> np.ndarray:
    cv2 = _Libs.load().cv2
    return cv2.adaptiveThreshold(img, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY,
                                 block, 5)


def proposals(gray: np.ndarray, k: int = 2) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, w, h) of the most QR-like regions, best first.

    A QR code has strong edges in both directions at once; text mostly in
    one. Scored on a 1/4-scale image by min(|dx|, |dy|) summed over the blob.
    """
    cv2, np_ = _Libs.load().cv2, _Libs.np
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
    cv2 = _Libs.load().cv2
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x1 = int(min(gray.shape[1], cx + side / 2))
    y1 = int(min(gray.shape[0], cy + side / 2))
    crop = gray[y0:y1, x0:x1]
    scale = target / max(1, max(crop.shape[:2]))
    if scale < 0.9:  # big crops cost the slow steps dearly: bring them down too
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
    cv2, np_ = _Libs.load().cv2, _Libs.np
    f = img.astype(np_.float32)
    gx = cv2.Sobel(f, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(f, cv2.CV_32F, 0, 1)
    jxx, jyy, jxy = float((gx * gx).sum()), float((gy * gy).sum()), float((gx * gy).sum())
    root = math.sqrt(((jxx - jyy) / 2) ** 2 + jxy**2)
    lam1, lam2 = (jxx + jyy) / 2 + root, (jxx + jyy) / 2 - root
    theta = 0.5 * math.atan2(2 * jxy, jxx - jyy)  # strongest gradient
    return theta + math.pi / 2, lam2 / max(lam1, 1e-6)


def _motion_psf(length: float, angle: float) -> np.ndarray:
    np_ = _Libs.load().np
    size = math.ceil(length) * 2 + 3
    k = np_.zeros((size, size), np_.float32)
    c = size // 2
    dx, dy = math.cos(angle), math.sin(angle)
    for t in np_.linspace(-length / 2, length / 2, int(4 * length) + 1):
        k[round(c + t * dy), round(c + t * dx)] += 1
    return k / k.sum()


def refine_box(gray: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The QR inside a proposal box (a card): its densest two-direction-edge blob.

    The proposals are found at 1/4 scale and usually frame the whole card;
    a crop framing only the code gets the code more pixels for the same cost.
    """
    cv2, np_ = _Libs.load().cv2, _Libs.np
    x, y, w, h = box
    m = int(0.1 * max(w, h))
    x0, y0 = max(0, x - m), max(0, y - m)
    x1, y1 = min(gray.shape[1], x + w + m), min(gray.shape[0], y + h + m)
    sub = gray[y0:y1, x0:x1]
    if min(sub.shape[:2]) < 16:
        return box
    f = 2 if max(sub.shape[:2]) > 160 else 1
    if f > 1:
        sub = cv2.resize(sub, (sub.shape[1] // f, sub.shape[0] // f),
                         interpolation=cv2.INTER_AREA)
    gx = cv2.convertScaleAbs(cv2.Sobel(sub, cv2.CV_16S, 1, 0))
    gy = cv2.convertScaleAbs(cv2.Sobel(sub, cv2.CV_16S, 0, 1))
    energy = cv2.blur(cv2.min(gx, gy), (9, 9))
    _, mask = cv2.threshold(energy, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np_.ones((5, 5), np_.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    best, best_score = None, -1.0
    for c in contours:
        bx, by, bw, bh = cv2.boundingRect(c)
        score = float(energy[by:by + bh, bx:bx + bw].sum())
        if score > best_score:
            best, best_score = (bx, by, bw, bh), score
    if best is None:
        return box
    bx, by, bw, bh = best
    return x0 + bx * f, y0 + by * f, bw * f, bh * f


def card_quad(gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """The card's corners (4x2 float32) around a proposal box, or None.

    The card is the largest bright blob (Otsu) near the box; its convex hull is
    reduced to four corners, ordered clockwise from the top-left of the card
    held upright (long edges horizontal, top edge the higher one).
    """
    cv2, np_ = _Libs.load().cv2, _Libs.np
    x, y, w, h = box
    m = int(0.15 * max(w, h))
    x0, y0 = max(0, x - m), max(0, y - m)
    x1, y1 = min(gray.shape[1], x + w + m), min(gray.shape[0], y + h + m)
    f = 2
    sub = gray[y0:y1, x0:x1]
    if min(sub.shape[:2]) < 8 * f:
        return None
    small = cv2.resize(sub, (sub.shape[1] // f, sub.shape[0] // f), interpolation=cv2.INTER_AREA)
    _, mask = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np_.ones((7, 7), np_.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    blob = max(contours, key=cv2.contourArea)
    if cv2.contourArea(blob) < 0.15 * small.shape[0] * small.shape[1]:
        return None
    hull = cv2.convexHull(blob)
    peri = cv2.arcLength(hull, True)
    for eps in (0.02, 0.04, 0.06):
        quad = cv2.approxPolyDP(hull, eps * peri, True)
        if len(quad) == 4:
            break
    else:
        quad = cv2.boxPoints(cv2.minAreaRect(hull))
    q = quad.reshape(4, 2).astype(np_.float32) * f + np_.array([x0, y0], np_.float32)
    c = q.mean(axis=0)
    q = q[np_.argsort(np_.arctan2(q[:, 1] - c[1], q[:, 0] - c[0]))]  # clockwise on screen
    if np_.linalg.norm(q[1] - q[0]) < np_.linalg.norm(q[2] - q[1]):
        q = np_.roll(q, -1, axis=0)  # start a long edge
    if (q[0, 1] + q[1, 1]) > (q[2, 1] + q[3, 1]):
        q = np_.roll(q, -2, axis=0)  # the top long edge first
    return q


def warp_qr(gray: np.ndarray, quad: np.ndarray, side: int = 240) -> np.ndarray:
    """The QR area of a card (where ``render_card`` puts it), rectified to ``side`` px."""
    cv2, np_ = _Libs.load().cv2, _Libs.np
    # Card layout in units of the card's height (see hardware.cardimages.render_card).
    band, qr = 1 / 7, 1 - 1 / 7 - 1 / 12
    qx, qy = CARD_ASPECT - qr - 1 / 24, band + (1 - band - qr) / 2
    mg = 0.16 * qr  # the corners found are a few px off: keep the whole code in
    scale = side / (qr + 2 * mg)
    ox, oy = (qx - mg) * scale, (qy - mg) * scale
    w, h = CARD_ASPECT * scale, scale
    dst = np_.array([[-ox, -oy], [w - ox, -oy], [w - ox, h - oy], [-ox, h - oy]], np_.float32)
    m = cv2.getPerspectiveTransform(quad, dst)
    return cv2.warpPerspective(gray, m, (side, side), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REPLICATE)


def _pad_dft(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float32 image padded by edge replication to fast DFT sizes, its spectrum)."""
    cv2, np_ = _Libs.load().cv2, _Libs.np
    h, w = img.shape[:2]
    ph, pw = cv2.getOptimalDFTSize(h), cv2.getOptimalDFTSize(w)
    f = cv2.copyMakeBorder(img, 0, ph - h, 0, pw - w, cv2.BORDER_REPLICATE).astype(np_.float32)
    return f, cv2.dft(f, flags=cv2.DFT_COMPLEX_OUTPUT)


def _disk_psf(radius: float) -> np.ndarray:
    np_ = _Libs.load().np
    r = math.ceil(radius)
    yy, xx = np_.mgrid[-r:r + 1, -r:r + 1]
    k = (xx**2 + yy**2 <= radius**2).astype(np_.float32)
    return k / k.sum()


def wiener_spec(spec: np.ndarray, shape: tuple[int, int], psf: np.ndarray,
                k: float = 0.01) -> np.ndarray:
    """Wiener deconvolution given the image's spectrum; returns the ``shape`` top-left part."""
    cv2, np_ = _Libs.load().cv2, _Libs.np
    ph, pw = spec.shape[:2]
    kernel = np_.zeros((ph, pw), np_.float32)
    s = psf.shape[0]
    kernel[:s, :s] = psf
    kernel = np_.roll(kernel, (-(s // 2), -(s // 2)), (0, 1))
    hf = cv2.dft(kernel, flags=cv2.DFT_COMPLEX_OUTPUT)
    num = cv2.mulSpectrums(spec, hf, 0, conjB=True)  # G * conj(H)
    den = cv2.mulSpectrums(hf, hf, 0, conjB=True)[..., 0] + k  # |H|^2 + k
    out = num / den[..., None]
    res = cv2.idft(out, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)
    h, w = shape
    return np_.clip(res[:h, :w], 0, 255).astype(np_.uint8)


# Motion-blurred crops in the bench set have a structure-tensor anisotropy
# (weak / strong eigenvalue) of 0.18-0.48; sharp or defocused ones 0.6-1.
MOTION_ANISOTROPY = 0.55
DEBLUR_SIDE = 192  # px: the QR crop's side for deconvolution (DFT cost grows fast)


@dataclass
class _Frame:
    """Per-frame working state; derived images are computed once, on demand."""

    gray: np.ndarray
    read: list[Box] = field(default_factory=list)  # codes already read: not proposals
    _boxes: list[tuple[int, int, int, int]] | None = None
    _qboxes: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    _crops: dict[tuple[int, int], tuple[np.ndarray, float]] = field(default_factory=dict)
    _blur: tuple[float, float] | None = None
    _spec: np.ndarray | None = None
    _blur_len: float | None = None
    _warped: np.ndarray | None = None
    _warp_done: bool = False

    def boxes(self) -> list[tuple[int, int, int, int]]:
        if self._boxes is None:
            k = 2 + len(self.read)
            self._boxes = [b for b in proposals(self.gray, k)
                           if not any(_covers(b, r) for r in self.read)][:2]
        return self._boxes

    def qbox(self, i: int) -> tuple[int, int, int, int] | None:
        boxes = self.boxes()
        if i >= len(boxes):
            return None
        if i not in self._qboxes:
            self._qboxes[i] = refine_box(self.gray, boxes[i])
        return self._qboxes[i]

    def crop(self, i: int = 0, target: int = CROP_TARGET) -> tuple[np.ndarray, float] | None:
        """The QR crop of proposal ``i``, scaled to ``target`` px (< 0: -target times its size)."""
        key = (i, target)
        if key not in self._crops:
            q = self.qbox(i)
            if q is None:
                return None
            if target < 0:
                target = min(MAX_UPSCALED, int(-target * max(q[2], q[3]) * 1.3))
            self._crops[key] = crop_box(self.gray, q, margin=0.15, target=target)
        return self._crops[key]

    def blur(self) -> tuple[float, float] | None:
        c = self.crop(0, DEBLUR_SIDE)
        if c is None:
            return None
        if self._blur is None:
            self._blur = blur_direction(c[0])
        return self._blur

    def blur_len(self) -> float:
        c, b = self.crop(0, DEBLUR_SIDE), self.blur()
        if c is None or b is None:
            return 0.0
        if self._blur_len is None:
            # Blur in the set is up to ~10 px of the frame; look a little further.
            self._blur_len = float(blur_length(c[0], b[0], math.ceil(14 * c[1])))
        return self._blur_len

    def warped(self) -> np.ndarray | None:
        """The QR area of the card rectified by the card's outline (None: no card found)."""
        if not self._warp_done:
            self._warp_done = True
            boxes = self.boxes()
            quad = card_quad(self.gray, boxes[0]) if boxes else None
            self._warped = warp_qr(self.gray, quad) if quad is not None else None
        return self._warped

    def spectrum(self) -> np.ndarray | None:
        c = self.crop(0, DEBLUR_SIDE)
        if c is None:
            return None
        if self._spec is None:
            self._spec = _pad_dft(c[0])[1]
        return self._spec


MAX_UPSCALED = 420  # px: cap on the side of an upscaled crop
Step = Callable[[_Frame], list[str]]
Gate = Callable[[_Frame], bool]  # cheap test: is the step worth its cost on this frame?


def _on_crop(i: int, target: int, fn: Callable[[np.ndarray], list[str]]) -> Step:
    def step(fr: _Frame) -> list[str]:
        c = fr.crop(i, target)
        return fn(c[0]) if c is not None else []

    return step


def _on_warp(fn: Callable[[np.ndarray], list[str]]) -> Step:
    def step(fr: _Frame) -> list[str]:
        w = fr.warped()
        return fn(w) if w is not None else []

    return step


def _motion(length: float) -> Step:
    """Wiener deconvolution along the estimated blur direction, blur ``length`` px (frame)."""
    def step(fr: _Frame) -> list[str]:
        c, b, spec = fr.crop(0, DEBLUR_SIDE), fr.blur(), fr.spectrum()
        if c is None or b is None or spec is None:
            return []
        return _zxing(wiener_spec(spec, c[0].shape[:2], _motion_psf(length * c[1], b[0])))

    return step


def blur_length(img: np.ndarray, angle: float, max_len: int = 24) -> int:
    """Length in px of a linear motion blur along ``angle``, 0 if none is found.

    A box blur of length L turns the derivative along the motion into the
    difference of two copies of the sharp edges L apart, so the derivative's
    autocorrelation has its deepest minimum at lag L.
    """
    cv2 = _Libs.load().cv2
    h, w = img.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), math.degrees(angle), 1.0)
    r = cv2.warpAffine(img, rot, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    m = h // 5
    d = cv2.Sobel(r[m:h - m:2, m:w - m], cv2.CV_32F, 1, 0, ksize=1)  # every other row
    d -= float(d.mean())
    best, best_v = 0, 0.0
    for lag in range(2, min(max_len, d.shape[1] // 3) + 1):
        v = float((d[:, :-lag] * d[:, lag:]).sum())
        if v < best_v:
            best, best_v = lag, v
    return best


def looks_motion_blurred(fr: _Frame) -> bool:
    c, b = fr.crop(0, DEBLUR_SIDE), fr.blur()
    return c is not None and b is not None and b[1] <= MOTION_ANISOTROPY


def _motion_est(delta: float = 0.0) -> Step:
    """Wiener deconvolution along the blur direction with the estimated blur length."""
    def step(fr: _Frame) -> list[str]:
        c, b = fr.crop(0, DEBLUR_SIDE), fr.blur()
        if c is None or b is None or not looks_motion_blurred(fr):
            return []  # gradients in all directions: not a motion blur
        spec, length = fr.spectrum(), fr.blur_len()
        if spec is None or length < 2:
            return []
        psf = _motion_psf(length + delta * c[1], b[0])
        return _zxing(wiener_spec(spec, c[0].shape[:2], psf))

    return step


def _defocus(radius: float) -> Step:
    """Wiener deconvolution by a disk of ``radius`` px (frame)."""
    def step(fr: _Frame) -> list[str]:
        c, spec = fr.crop(0, DEBLUR_SIDE), fr.spectrum()
        if c is None or spec is None:
            return []
        return _zxing(wiener_spec(spec, c[0].shape[:2], _disk_psf(radius * c[1])))

    return step


def _full(fn: Callable[[np.ndarray], np.ndarray]) -> Step:
    return lambda fr: _zxing(fn(fr.gray))


def _half(g: np.ndarray) -> np.ndarray:
    cv2 = _Libs.load().cv2
    return cv2.resize(g, (g.shape[1] // 2, g.shape[0] // 2), interpolation=cv2.INTER_AREA)


def _otsu(g: np.ndarray) -> np.ndarray:
    cv2 = _Libs.load().cv2
    return cv2.threshold(g, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]


def _close(img: np.ndarray) -> np.ndarray:
    """Grey closing: fills thin dark scratches across light modules."""
    cv2, np_ = _Libs.load().cv2, _Libs.np
    return cv2.morphologyEx(img, cv2.MORPH_CLOSE, np_.ones((3, 3), np_.uint8))


def _whole(fn: Callable[[np.ndarray], list[str]]) -> Step:
    """A library alone on the whole frame: whatever it reads alone, the chain reads too."""
    return lambda fr: fn(fr.gray)


def _smooth(img: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """A Gaussian blur: sensor noise in a dark frame breaks up a threshold's modules."""
    return _Libs.load().cv2.GaussianBlur(img, (0, 0), sigma)


def _median(img: np.ndarray) -> np.ndarray:
    """A 3x3 median: removes specks and thin scratches, keeps module edges."""
    return _Libs.load().cv2.medianBlur(img, 3)


def _zxing_adaptive(block: int) -> Callable[[np.ndarray], list[str]]:
    return lambda c: _zxing(_adaptive(c, block))


def all_steps() -> dict[str, tuple[str, Step]]:
    """Every escalation step: name -> (library it needs: "zxing"/"zbar"/"opencv", step).

    A step with an entry in :data:`GATES` runs only on frames its gate passes.
    """
    s: dict[str, tuple[str, Step]] = {}
    for t in (200, 280, 400):
        s[f"q{t}"] = ("zxing", _on_crop(0, t, _zxing))
        s[f"q{t}+sharpen"] = ("zxing", _on_crop(0, t, lambda c: _zxing(_unsharp(c, 1.0, 1.0))))
        s[f"q{t}+sharpen2"] = ("zxing", _on_crop(0, t, lambda c: _zxing(_unsharp(c, 2.0, 1.5))))
        for b in (15, 31, 51):
            s[f"q{t}+adaptive{b}"] = ("zxing", _on_crop(0, t, _zxing_adaptive(b)))
        s[f"q{t}+zbar"] = ("zbar", _on_crop(0, t, _zbar))
        s[f"q{t}+adaptive+zbar"] = ("zbar", _on_crop(0, t, lambda c: _zbar(_adaptive(c))))
        s[f"q{t}+adaptive15+zbar"] = ("zbar", _on_crop(0, t, lambda c: _zbar(_adaptive(c, 15))))
        s[f"q{t}+sharpen+zbar"] = ("zbar", _on_crop(0, t, lambda c: _zbar(_unsharp(c, 1.0, 1.0))))
        s[f"q{t}+close+zbar"] = ("zbar", _on_crop(0, t, lambda c: _zbar(_adaptive(_close(c)))))
        s[f"q{t}+smooth+zbar"] = ("zbar", _on_crop(0, t, lambda c: _zbar(_smooth(c))))
        s[f"q{t}+median+zbar"] = ("zbar", _on_crop(0, t, lambda c: _zbar(_median(c))))
        s[f"q{t}+smooth+adaptive"] = ("zxing", _on_crop(0, t, lambda c: _zxing(
            _adaptive(_smooth(c), 31))))
        s[f"q{t}+median"] = ("zxing", _on_crop(0, t, lambda c: _zxing(_median(c))))
    for x in (2, 3):
        s[f"qx{x}"] = ("zxing", _on_crop(0, -x, _zxing))
        s[f"qx{x}+sharpen"] = ("zxing", _on_crop(0, -x, lambda c: _zxing(_unsharp(c, 1.5, 1.0))))
        s[f"qx{x}+adaptive+zbar"] = ("zbar", _on_crop(0, -x, lambda c: _zbar(_adaptive(c))))
    for length in (3, 4, 5, 6, 7, 8, 9, 10):
        s[f"motion{length}"] = ("zxing", _motion(length))
    for delta in (0.0, -1.5, 1.5):
        s[f"motion-est{delta:+}"] = ("zxing", _motion_est(delta))
    for r in (1.5, 2.0, 2.5, 3.0, 3.5):
        s[f"defocus{r}"] = ("zxing", _defocus(r))
    s["card-warp"] = ("zxing", _on_warp(_zxing))
    s["card-warp+sharpen"] = ("zxing", _on_warp(lambda c: _zxing(_unsharp(c, 1.0, 1.0))))
    s["card-warp+adaptive"] = ("zxing", _on_warp(lambda c: _zxing(_adaptive(c, 15))))
    s["card-warp+sharpen2"] = ("zxing", _on_warp(lambda c: _zxing(_unsharp(c, 2.0, 1.5))))
    s["card-warp+adaptive+zbar"] = ("zbar", _on_warp(lambda c: _zbar(_adaptive(c, 15))))
    s["q280+opencv"] = ("opencv", _on_crop(0, 280, _opencv))
    s["q280+clahe"] = ("zxing", _on_crop(0, 280, lambda c: _zxing(
        _Libs.cv2.createCLAHE(2.0, (4, 4)).apply(c))))
    s["card2/q280"] = ("zxing", _on_crop(1, 280, _zxing))
    s["card2/q280+adaptive+zbar"] = ("zbar", _on_crop(1, 280, lambda c: _zbar(_adaptive(c))))
    s["mirror"] = ("zxing", _whole(_mirrored))
    s["half"] = ("zxing", _full(_half))
    s["otsu"] = ("zxing", _full(_otsu))
    s["zbar-frame"] = ("zbar", _whole(_zbar))
    s["zbar-half"] = ("zbar", _whole(lambda g: _zbar(_half(g))))
    s["zbar-smooth"] = ("zbar", _whole(lambda g: _zbar(_smooth(g))))
    s["opencv-frame"] = ("opencv", _whole(_opencv))
    return s


# Steps on the whole frame: their listed cost is for 640x480 and grows with the area.
WHOLE_FRAME = frozenset({"half", "otsu", "mirror", "zbar-frame", "zbar-half", "zbar-smooth",
                         "opencv-frame"})
BASE_AREA = 640 * 480


GATES: dict[str, Gate] = {
    name: looks_motion_blurred for name in ("motion-est+0.0", "motion-est-1.5", "motion-est+1.5")
}

# The escalation order and each step's typical cost (ms, one core of the bench
# machine; p75 over the frames that reach it): ``python -m bench.tune_decode
# --seeds 1 2 --budget 6.5`` measured every step of ``all_steps()`` on two
# seeds of the bench set and ordered them by frames read per millisecond,
# then by simulating the budget. Seed 3 was held out to check it.
ORDER: list[tuple[str, float]] = [
    ("q280+sharpen", 0.5),
    ("q280+adaptive15", 0.3),
    ("motion-est+0.0", 2.3),
    ("q200+adaptive51", 0.4),
    ("q200+adaptive15+zbar", 0.8),
    ("q400+sharpen2", 0.9),
    ("half", 0.1),
    ("otsu", 0.4),
    ("card-warp+adaptive", 1.0),
    ("motion-est-1.5", 1.3),
    ("defocus3.5", 1.4),
    ("q200+adaptive+zbar", 0.9),
    ("q200+sharpen2", 0.3),
    ("q200+zbar", 1.5),
    ("q200+adaptive15", 0.2),
    ("q280+adaptive51", 0.2),
    ("q200+sharpen", 0.2),
    ("q400+sharpen", 0.5),
    ("q280+sharpen2", 0.5),
    ("card2/q280+adaptive+zbar", 1.1),
    ("motion8", 1.2),
    ("motion7", 1.2),
    ("q280+adaptive15+zbar", 1.6),
    ("q280+adaptive+zbar", 1.6),
    ("q280+zbar", 2.6),
    ("q400+close+zbar", 2.9),
    ("card-warp+sharpen2", 0.4),  # added by hand after the tuning run: multi-frame / files
    ("card-warp+adaptive+zbar", 1.1),
    ("q280+opencv", 8.3),
    # Each library alone on the whole frame, last: the chain reads every frame that one
    # of them reads alone (bench_decode found frames only pyzbar read). Under a live
    # budget they run as the one step of a later frame, when the frame is small enough.
    # The flipped frame: zxing-cpp reads mirrored codes itself, this is a second sampling.
    ("mirror", 1.0),
    ("zbar-frame", 7.5),
    ("opencv-frame", 10.0),
]


def escalation_steps(with_pyzbar: bool = True, with_opencv: bool = True,
                     order: list[tuple[str, float]] | None = None,
                     ) -> list[tuple[str, float, Step, Gate | None]]:
    """The escalation chain in order: (name, typical cost in ms, step, gate or None)."""
    steps = all_steps()
    out = []
    for name, cost in ORDER if order is None else order:
        lib, fn = steps[name]
        if (lib == "zbar" and not with_pyzbar) or (lib == "opencv" and not with_opencv):
            continue
        out.append((name, cost, fn, GATES.get(name)))
    return out


class QRDecoder:
    """Decode the QR codes in one frame. ``decode`` returns the texts read (maybe empty).

    ``budget_ms`` bounds the escalation per frame (``None``: run the whole
    chain, as for image files). ``use_pyzbar=False`` or a missing libzbar0
    leaves pyzbar out; the rest of the chain is unchanged.

    After each ``decode``, ``last_position`` says where the first text returned
    was found (its corners; the escalation's box when a later step read it) and
    ``last_candidate`` the most QR-like region (x, y, w, h) the escalation
    looked at when nothing was read (None when it did not look).
    """

    def __init__(self, budget_ms: float | None = LIVE_BUDGET_MS, use_pyzbar: bool = True,
                 use_opencv: bool = True,
                 clock: Callable[[], float] = time.thread_time) -> None:
        libs = _Libs.load()
        self.budget_ms = budget_ms
        #: What the budget is measured with: the CPU time of the thread that decodes, so
        #: the work done per frame (and what is read) is the same on a loaded machine as
        #: on a quiet one. Sound for the live path because the camera hands the decoder
        #: only its newest frame (``hardware.camera``'s one-frame mailbox): a frame that
        #: takes longer on a busy machine means fewer frames decoded, never a backlog,
        #: and the time the thread waits for the interpreter lock or a core is not
        #: counted as work it did.
        self.clock = clock
        self.pyzbar = use_pyzbar and libs.zbar is not None
        self.steps = escalation_steps(self.pyzbar, use_opencv)
        self.last_step: str | None = None  # which step read the last frame (for the bench)
        self.next_step = 0  # where the chain stopped on the last frame (budget ran out)
        self.last_position: Quad | None = None
        self.last_candidate: tuple[int, int, int, int] | None = None

    def decode(self, frame: np.ndarray, start: int = 0) -> list[str]:
        """Fast path, then the escalation steps from ``start`` until one reads or time is up."""
        t0 = self.clock()
        gray = to_gray(frame)
        self.last_step = None
        self.last_position = self.last_candidate = None
        hits = [(t, q) for t, q in _zxing_found(gray) if accept(t)]
        where = dict(reversed(hits))  # the first place each text was read
        found = [t for t, _ in hits]
        if found and any(is_card(t) for t in found):
            self.last_step = "fast"
            self.next_step = 0
            return self._placed(prefer_card(_unique(found)), where)
        # Nothing, or only codes that are not a card (a promotion, a receipt's QR beside
        # the card): the escalation looks for the card before those are reported, on
        # the frame with those codes painted out.
        others = _unique(found)
        fr = _Frame(*mask_codes(gray, [c for _, c in hits])) if hits else _Frame(gray)
        area = gray.shape[0] * gray.shape[1] / BASE_AREA
        n = len(self.steps)
        ran = False
        for j in range(n):
            idx = (start + j) % n
            name, cost, step, gate = self.steps[idx]
            if gate is not None and not gate(fr):
                continue
            if name in WHOLE_FRAME:
                cost *= area
                if self.budget_ms is not None and cost > 2 * self.budget_ms:
                    continue  # a live frame this large: never within a frame's budget
            # Stop before a step that would overrun the budget (the first one always runs).
            if ran and self.budget_ms is not None and \
                    (self.clock() - t0) * 1000 + cost > self.budget_ms:
                self.next_step = idx
                self.last_step = "fast" if others else None
                return self._placed(others, where, fr)
            ran = True
            found = [t for t in step(fr) if accept(t) and t not in others]
            if found and (not others or any(is_card(t) for t in found)):
                self.last_step = name
                self.next_step = 0
                box = fr.qbox(1 if name.startswith("card2/") else 0)
                if box is not None:
                    where.update((t, _box_quad(box)) for t in found if t not in where)
                return self._placed(prefer_card(_unique(found + others)), where, fr)
        self.next_step = 0
        self.last_step = "fast" if others else None
        return self._placed(others, where, fr)

    def _placed(self, texts: list[str], where: dict[str, Quad],
                fr: _Frame | None = None) -> list[str]:
        """``texts``, with ``last_position`` / ``last_candidate`` set for them."""
        self.last_position = where.get(texts[0]) if texts else None
        if not texts and fr is not None:
            self.last_candidate = fr._qboxes.get(0)  # only if a step computed it: no extra cost
        return texts

    def decode_file(self, path: str | Path) -> list[str]:
        """Decode an image file with the whole chain (no time budget)."""
        cv2 = _Libs.load().cv2
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


def _box_quad(box: tuple[int, int, int, int]) -> Quad:
    x, y, w, h = box
    return ((x, y), (x + w, y), (x + w, y + h), (x, y + h))


def _unique(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(texts))


AVERAGE_COST_MS = 1.5  # decoding the running average of the frames (two zxing reads)


class MultiFrameDecoder:
    """Use several frames of a live stream.

    Each frame gets the fast path plus the part of the escalation chain that
    fits in the decoder's budget, resuming where the previous frame stopped.
    While the scene is still, the last ``window`` frames are also averaged
    (sensor noise drops by sqrt(window)) and the average decoded; a text read
    only from an average must be read twice before it is reported.

    After each ``feed``: ``last_position`` is where the text returned was found
    (see :class:`QRDecoder`), ``last_motion`` the mean grey-level change of the
    frame's 1/16 thumbnail from the previous frame's (0 on a first frame).
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
        self.last_position: Quad | None = None
        self.last_motion = 0.0

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
        same_shape = self._thumb is not None and self._thumb.shape == thumb.shape
        self.last_motion = float(cv2.absdiff(self._thumb, thumb).mean()) \
            if self._thumb is not None and same_shape else 0.0
        self.last_position = None
        if self._frames and (not same_shape or self.last_motion > self.still_threshold):
            self._frames.clear()  # the scene moved: averaging would smear it
            self._start = 0  # and a new scene starts with the most productive steps
        self._thumb = thumb
        self._frames.append(gray)

        # The average of the recent frames is decoded too: leave it room in the budget.
        budget = self.decoder.budget_ms
        if budget is not None and len(self._frames) >= 2:
            self.decoder.budget_ms = max(0.0, budget - AVERAGE_COST_MS)
        try:
            found = self.decoder.decode(gray, start=self._start)
        finally:
            self.decoder.budget_ms = budget
        self._start = self.decoder.next_step
        if found:
            self._pending.clear()
            self.last_position = self.decoder.last_position
            return found[0]
        if len(self._frames) >= 2:
            np_ = libs.np
            stack = np_.stack(self._frames)
            avg = (stack.sum(axis=0, dtype=np_.uint16) // len(self._frames)).astype(np_.uint8)
            for text in _zxing(avg) or _zxing(_unsharp(avg, 1.0, 1.0)):
                if accept(text):
                    if text in self._pending:
                        self._pending.clear()
                        box = self.decoder.last_candidate
                        self.last_position = _box_quad(box) if box is not None else None
                        return text
                    self._pending.append(text)
        return None
