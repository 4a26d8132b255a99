"""Real-photo-like categories of the bench set: what a counter camera really sees.

A customer shows the card's QR on a phone (light or dark mode: an emissive,
bright screen, moiré from the pixel grid beating against the sensor's, glare
off the glass, a dimmed screen), or a printed card (gloss, a bend, wallet
scuffs); the frame may be mirrored (a selfie-style camera), the code may fill
the frame or a 1280x720 / 1920x1080 one, or be tiny (40-60 px); another QR
(a promotion flyer, a receipt) may be in view beside the card, and the
camera's auto-exposure hunts between frames (too dark, too bright).

Same rules as :mod:`bench.qrset` (which calls :func:`render_photo` for these
categories): everything derives from the seed; ``frame`` > 0 is the next
frame of the same scene (fresh sensor noise, hand shake, and for
``exposure`` the next step of the exposure swing).
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import cv2
import numpy as np

from bench import qrset as Q
from hardware.cardimages import qr_matrix

PHOTO_CATEGORIES = Q.PHOTO_CATEGORIES

HIRES_SIZES = ((1280, 720), (1920, 1080))


# ------------------------------------------------------------------- faces

def _qr_image(payload: str, module_px: int, dark: float, light: float) -> np.ndarray:
    """The QR symbol with its quiet zone, float32 gray, ``dark`` modules on ``light``."""
    m = np.array(qr_matrix(payload), dtype=bool)
    img = np.where(m, dark, light).astype(np.float32)
    return np.kron(img, np.ones((module_px, module_px), np.float32))


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float,
          colour: tuple[float, float, float], thick: int) -> None:
    """Draw ``text`` on a float32 face (OpenCV draws text on 8-bit images only)."""
    layer = np.clip(img, 0, 255).astype(np.uint8)
    cv2.putText(layer, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)
    changed = np.any(layer != np.clip(img, 0, 255).astype(np.uint8), axis=2)
    img[changed] = layer[changed]


def _screen_grid(h: int, w: int, pitch: float, depth: float) -> np.ndarray:
    """An LCD/OLED pixel grid: RGB sub-pixel stripes and dark gaps, BGR gains in 0..1.

    Seen at close to the sensor's own pitch it beats with it: moiré.
    """
    x = np.arange(w, dtype=np.float32)[None, :]
    y = np.arange(h, dtype=np.float32)[:, None]
    px = (x % pitch) / pitch  # 0..1 across one screen pixel
    py = (y % pitch) / pitch
    gap = ((px > 0.85) | (py > 0.85)).astype(np.float32)
    out = np.empty((h, w, 3), np.float32)
    for ch, sub in enumerate((2, 1, 0)):  # BGR: R stripe first on screen
        lit = ((px * 3).astype(np.int32) == sub).astype(np.float32)
        out[:, :, ch] = 1 - depth * (1 - lit) * 0.6
    return out * (1 - depth * gap)[:, :, None]


def phone_face(payload: str, dark_mode: bool,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A phone showing the card's QR in the card app: (BGR float32 face, screen mask)."""
    pw, ph = 600, 1240
    face = np.full((ph, pw, 3), float(rng.uniform(15, 45)), np.float32)  # body and bezel
    bz = int(pw * 0.045)
    sx0, sy0, sx1, sy1 = bz, int(ph * 0.06), pw - bz, ph - int(ph * 0.06)
    screen_mask = np.zeros((ph, pw), np.float32)
    screen_mask[sy0:sy1, sx0:sx1] = 1.0
    bg, ink = (float(rng.uniform(14, 34)), float(rng.uniform(205, 245))) if dark_mode else \
        (float(rng.uniform(238, 255)), float(rng.uniform(10, 40)))
    face[sy0:sy1, sx0:sx1] = bg
    bar = (150.0, 88.0, 24.0) if not dark_mode else (90.0, 60.0, 30.0)
    face[sy0:sy0 + 110, sx0:sx1] = bar
    _text(face, "Sente", (sx0 + 30, sy0 + 75), 2.0, (255.0, 255.0, 255.0), 4)
    n = len(qr_matrix(payload))
    module = int((sx1 - sx0) * rng.uniform(0.72, 0.86)) // n
    qr = _qr_image(payload, module, ink, bg)
    qx = sx0 + ((sx1 - sx0) - qr.shape[1]) // 2
    qy = sy0 + 170
    face[qy:qy + qr.shape[0], qx:qx + qr.shape[1]] = qr[:, :, None]
    col = (ink, ink, ink)
    _text(face, payload.split("&")[0], (sx0 + 40, qy + qr.shape[0] + 80), 1.4, col, 3)
    _text(face, "Show this code at the till", (sx0 + 40, qy + qr.shape[0] + 150), 1.0, col, 2)
    return face, screen_mask


def flyer_face(text: str, rng: np.random.Generator) -> np.ndarray:
    """A promotion flyer: a big QR of a URL under a headline."""
    w, h = 600, 820
    paper = float(rng.uniform(215, 250))
    face = np.full((h, w, 3), paper, np.float32)
    face[:150] = rng.uniform(30, 220, 3).astype(np.float32)
    _text(face, "SCAN TO WIN", (40, 100), 2.0, (255.0, 255.0, 255.0), 5)
    n = len(qr_matrix(text))
    qr = _qr_image(text, 480 // n, float(rng.uniform(10, 50)), paper)
    x0 = (w - qr.shape[1]) // 2
    face[190:190 + qr.shape[0], x0:x0 + qr.shape[1]] = qr[:, :, None]
    _text(face, "50,000 UGX airtime", (60, 790), 1.5, (30.0, 30.0, 30.0), 3)
    return face


def receipt_face(ref: str, rng: np.random.Generator) -> np.ndarray:
    """A thermal receipt strip ending in the QR of its ref."""
    w, h = 420, 1000
    paper = float(rng.uniform(225, 250))
    face = np.full((h, w, 3), paper, np.float32)
    ink = (60.0, 60.0, 60.0)
    for i, line in enumerate(("SENTE POS", "Sale  12,500 UGX", "Card ****5219", "Thank you")):
        _text(face, line, (30, 70 + 70 * i), 1.1, ink, 2)
    n = len(qr_matrix(ref))
    qr = _qr_image(ref, 330 // n, float(rng.uniform(20, 70)), paper)
    x0 = (w - qr.shape[1]) // 2
    face[420:420 + qr.shape[0], x0:x0 + qr.shape[1]] = qr[:, :, None]
    _text(face, ref, (60, 420 + qr.shape[0] + 60), 1.1, ink, 2)
    return face


def scuff(card: np.ndarray, rng: np.random.Generator, count: int) -> None:
    """Wallet wear over the whole card (in place): thin light scratches, a few dark ones."""
    h, w = card.shape[:2]
    layer = card.copy()
    for _ in range(count):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        ang, ln = rng.uniform(0, math.pi), rng.uniform(40, 420)
        p0 = (int(cx - ln / 2 * math.cos(ang)), int(cy - ln / 2 * math.sin(ang)))
        p1 = (int(cx + ln / 2 * math.cos(ang)), int(cy + ln / 2 * math.sin(ang)))
        v = float(rng.uniform(190, 250)) if rng.random() < 0.85 else float(rng.uniform(40, 90))
        cv2.line(layer, p0, p1, (v, v, v), int(rng.integers(2, 6)), cv2.LINE_AA)
    a = float(rng.uniform(0.45, 0.85))
    card[:] = card * (1 - a) + layer * a


def gloss(img: np.ndarray, rng: np.random.Generator, cx: float, cy: float, size: float,
          ss: int) -> np.ndarray:
    """A broad specular sheen off a laminated card (scene px, before the camera)."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ax, ay = size * rng.uniform(0.25, 0.5) * ss, size * rng.uniform(0.1, 0.25) * ss
    a = math.radians(rng.uniform(0, 180))
    dx, dy = xx - cx * ss, yy - cy * ss
    u = (dx * math.cos(a) + dy * math.sin(a)) / ax
    v = (-dx * math.sin(a) + dy * math.cos(a)) / ay
    return img + (rng.uniform(90, 220) * np.exp(-(u**2 + v**2)))[:, :, None]


def reflection(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Glare off a phone's glass (a soft bright band) and the room's veil, over ``mask``."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ys, xs = np.nonzero(mask > 0.5)
    out = img + rng.uniform(0, 45) * mask[:, :, None]  # the room's veil
    if rng.random() < 0.6 and len(xs):
        cx, cy = float(rng.choice(xs)), float(rng.choice(ys))
        a = math.radians(rng.uniform(0, 180))
        d = (xx - cx) * math.cos(a) + (yy - cy) * math.sin(a)
        width = rng.uniform(0.03, 0.12) * max(h, w)
        band = np.exp(-(d / width) ** 2) * rng.uniform(60, 200)
        out = out + (band * mask)[:, :, None]
    return out


# ------------------------------------------------------------------- scenes

def _compose(bg: np.ndarray, face: np.ndarray, alpha: np.ndarray, pose: Q._Pose, ss: int,
             kernel: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Place ``face`` (optionally motion-blurred by ``kernel``, scene px) on ``bg``.

    Returns the scene and the face's mask in scene pixels.
    """
    h, w = face.shape[:2]
    src = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(src, Q._corners(pose, w / h, ss))
    size = (bg.shape[1], bg.shape[0])
    warped = cv2.warpPerspective(face, m, size, flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(alpha, m, size, flags=cv2.INTER_LINEAR)
    if kernel is not None:
        warped = cv2.filter2D(warped, -1, kernel)
        mask = cv2.filter2D(mask, -1, kernel)
    shadow = cv2.GaussianBlur(mask, (0, 0), 5 * ss)
    out = bg * (1 - 0.35 * shadow[:, :, None])
    return out * (1 - mask[:, :, None]) + warped * mask[:, :, None], mask


def _shake(pose: Q._Pose, frng: np.random.Generator, frame: int) -> Q._Pose:
    if not frame:
        return pose
    return replace(pose, cx=pose.cx + frng.normal(0, 1.5), cy=pose.cy + frng.normal(0, 1.5),
                   width=pose.width * (1 + frng.normal(0, 0.005)),
                   angle=pose.angle + frng.normal(0, 0.5))


def _qr_offset(card_w: int, card_h: int) -> tuple[float, float]:
    """The QR's centre relative to the card's centre, in fractions of the card's width."""
    x0, y0, side, _ = Q._qr_box(card_h, card_w)
    return (x0 + side / 2 - card_w / 2) / card_w, (y0 + side / 2 - card_h / 2) / card_w


def _card(payload: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    card = Q._card_bgr(payload, rng)
    card *= rng.uniform(0.85, 1.0, 3).astype(np.float32)
    return card, np.ones(card.shape[:2], np.float32)


def render_photo(category: str, index: int, seed: int = 1, frame: int = 0) -> Q.Sample:
    """Sample ``index`` of one of :data:`PHOTO_CATEGORIES`."""
    if category not in PHOTO_CATEGORIES:
        raise ValueError(f"unknown category {category!r}")
    scene_seed = Q.scene_seed(seed, category, index)
    prng = random.Random(scene_seed)
    rng = np.random.default_rng(scene_seed)
    frng = np.random.default_rng(scene_seed + 7919 * (frame + 1))
    payload = Q.random_payload(prng)
    fw, fh = Q.W, Q.H  # the frame's size
    size, ss = (fw, fh), Q.SS
    noise = rng.uniform(1.5, 4.0)
    gain = 1.0
    c = category

    if c == "hires":
        size, ss = HIRES_SIZES[index % 2], 1
        fw, fh = size
    bg = Q._background(rng, size, ss)
    blur_after: np.ndarray | None = None

    if c in ("screen-light", "screen-dark"):
        face, screen = phone_face(payload, c == "screen-dark", rng)
        # The screen gives off its own light: brighter than the scene the camera exposes for.
        face[screen > 0] *= rng.uniform(1.0, 1.5) if rng.random() < 0.7 else rng.uniform(0.5, 0.8)
        gh, gw = face.shape[:2]
        pitch, depth = rng.uniform(3.0, 6.5), rng.uniform(0.15, 0.6)
        face = face * np.where(screen[:, :, None] > 0, _screen_grid(gh, gw, pitch, depth), 1)
        pose = Q._Pose(cx=fw / 2 + rng.uniform(-120, 120), cy=fh / 2 + rng.uniform(40, 120),
                       width=rng.uniform(150, 230), angle=rng.uniform(-15, 15),
                       tilt_x=rng.uniform(-0.12, 0.12), tilt_y=rng.uniform(-0.12, 0.12))
        bg *= rng.uniform(0.55, 1.0)
        img, mask = _compose(bg, face, np.ones(face.shape[:2], np.float32),
                             _shake(pose, frng, frame), ss)
        # The glass reflects over the whole front, the screen glows only where it is.
        img = reflection(img, mask, rng)
    elif c == "multi":
        img, blur_after = _multi(bg, payload, index, rng, frng, frame, ss)
    else:
        card, alpha = _card(payload, rng)
        ch, cw = card.shape[:2]
        pose = Q._Pose(cx=fw / 2 + rng.uniform(-90, 90), cy=fh / 2 + rng.uniform(-60, 60),
                       width=rng.uniform(300, 420), angle=rng.uniform(-8, 8),
                       tilt_x=rng.uniform(-0.05, 0.05), tilt_y=rng.uniform(-0.05, 0.05))
        if c == "mirrored":
            pose = replace(pose, angle=rng.uniform(-20, 20), tilt_x=rng.uniform(-0.15, 0.15))
        elif c in ("large", "hires"):
            n = len(qr_matrix(payload))
            qr_side_face = (ch - ch // 7 - ch // 12) // n * n  # px on the card face
            # large: most of a 640x480 frame; hires: 200-800 px of a 720p / 1080p one
            qr_px = rng.uniform(330, 460) if c == "large" else \
                rng.uniform(200, min(800.0, 0.9 * fh))
            width = qr_px * cw / qr_side_face
            ox, oy = _qr_offset(cw, ch)
            ang = rng.uniform(-10, 10)
            a = math.radians(ang)
            dx, dy = ox * width, oy * width
            # Put the QR, not the card, near the middle of the frame.
            pose = Q._Pose(cx=fw / 2 - (dx * math.cos(a) - dy * math.sin(a)) + rng.uniform(-30, 30),
                           cy=fh / 2 - (dx * math.sin(a) + dy * math.cos(a)) + rng.uniform(-20, 20),
                           width=width, angle=ang, tilt_x=rng.uniform(-0.06, 0.06),
                           tilt_y=rng.uniform(-0.06, 0.06))
            if c == "large":  # close to the lens: a little out of focus
                blur_after = Q._disk_kernel(rng.uniform(0.5, 1.6))
        elif c == "tiny":
            n = len(qr_matrix(payload))
            module_face = (ch - ch // 7 - ch // 12) // n
            symbol_px = rng.uniform(40, 60)  # the code itself, quiet zone excluded
            width = symbol_px * cw / ((n - 2 * 4) * module_face)
            pose = Q._Pose(fw / 2 + rng.uniform(-200, 200), fh / 2 + rng.uniform(-150, 150),
                           width, rng.uniform(-20, 20), pose.tilt_x, pose.tilt_y)
        elif c == "printed":
            card[:] = 40 + card * rng.uniform(0.75, 0.9)  # ink is not deep black
            scuff(card, rng, int(rng.integers(30, 90)))
            card, alpha = Q._curve(card, alpha, rng.uniform(0.3, 0.9))
            pose = replace(pose, angle=rng.uniform(-20, 20), tilt_x=rng.uniform(-0.15, 0.15),
                           tilt_y=rng.uniform(-0.1, 0.1))
        elif c == "exposure":
            g0 = rng.uniform(0.15, 0.35) if index % 2 == 0 else rng.uniform(1.8, 3.2)
            gain = g0 ** ((-0.6) ** frame)  # auto-exposure hunting: over- then under-shoot
        pose = _shake(pose, frng, frame)
        img, _ = _compose(bg, card, alpha, pose, ss)
        if c == "printed":
            ox, oy = _qr_offset(cw, ch)
            img = gloss(img, rng, pose.cx + ox * pose.width, pose.cy + oy * pose.width,
                        pose.width, ss)

    if c == "exposure":
        img = Q._camera(img, frng, 0.0, size, ss) * gain
        img = img + frng.normal(0, noise, img.shape).astype(np.float32)  # sensor noise after
    else:
        img = Q._camera(img * gain, frng, noise, size, ss)
    if blur_after is not None:
        img = cv2.filter2D(img, -1, blur_after, borderType=cv2.BORDER_REFLECT)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if c == "mirrored":
        out = np.ascontiguousarray(cv2.flip(out, 1))
    return Q.Sample(category, index, payload, out)


def _multi(bg: np.ndarray, payload: str, index: int, rng: np.random.Generator,
           frng: np.random.Generator, frame: int, ss: int) -> tuple[np.ndarray, None]:
    """The card beside a promotion flyer, a receipt, or both; the card often the harder read."""
    kind = ("promo", "receipt", "both")[index % 3]
    others = []
    if kind in ("promo", "both"):
        others.append(flyer_face(f"https://promo.example.com/sente/{rng.integers(10**6)}", rng))
    if kind in ("receipt", "both"):
        others.append(receipt_face(f"{rng.integers(10**12):012d}", rng))
    slots = [110.0, 320.0, 530.0] if len(others) == 2 else [170.0, 470.0]
    order = list(rng.permutation(len(slots)))
    card_slot = slots[order[0]]
    img = bg
    for face, slot in zip(others, (slots[i] for i in order[1:]), strict=True):
        width = rng.uniform(120, 150) if len(others) == 2 else rng.uniform(150, 210)
        p = Q._Pose(slot + rng.uniform(-15, 15), Q.H / 2 + rng.uniform(-50, 50), width,
                    rng.uniform(-12, 12), rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08))
        img, _ = _compose(img, face, np.ones(face.shape[:2], np.float32),
                          _shake(p, frng, frame), ss)
    card, alpha = _card(payload, rng)
    trouble = ("none", "motion", "far", "tilt")[int(rng.integers(4))]
    width = rng.uniform(200, 260) if len(others) == 1 else rng.uniform(190, 215)
    pose = Q._Pose(card_slot + rng.uniform(-10, 10), Q.H / 2 + rng.uniform(-60, 60), width,
                   rng.uniform(-10, 10), rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05))
    kernel = None
    if trouble == "motion":  # the customer moves the card, the flyer lies still
        kernel = Q._motion_kernel(rng.uniform(3, 8) * ss, rng.uniform(0, 180))
    elif trouble == "far":
        pose = replace(pose, width=rng.uniform(140, 170))
    elif trouble == "tilt":
        pose = replace(pose, tilt_x=rng.uniform(0.2, 0.35) * rng.choice([-1, 1]),
                       angle=rng.uniform(-25, 25))
    img, _ = _compose(img, card, alpha, _shake(pose, frng, frame), ss, kernel)
    return img, None
