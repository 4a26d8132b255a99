"""Deterministic set of 640x480 "card held up to the camera" photos, with distortions.

Each sample is a rendered card (``hardware.cardimages``, QR at error
correction H) warped into a cluttered counter scene, then distorted according
to its category. Everything derives from one seed, so the set is the same on
every machine. ``frame`` > 0 renders another frame of the same scene: the
same card pose and distortion with fresh sensor noise and a little hand
shake, as the next frame of a live stream would be.

    python -m bench.qrset [--per-category N] [--seed S]   # writes the cache, prints its path
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import random
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hardware.cardimages import render_card
from pos.cardqr import make_payload

W, H = 640, 480
SS = 2  # supersampling factor of the scene before the camera's downscale
GENERATOR_VERSION = 4

SYNTHETIC_CATEGORIES = (
    "clean", "rotation", "perspective", "motion", "defocus", "lowlight", "glare",
    "lowcontrast", "small", "damaged", "curvature", "jpeg",
)
# Rendered by bench.qrphoto: phone screens, printed cards, other codes in view...
PHOTO_CATEGORIES = (
    "screen-light", "screen-dark", "mirrored", "large", "hires", "tiny", "multi",
    "printed", "exposure",
)
CATEGORIES = SYNTHETIC_CATEGORIES + PHOTO_CATEGORIES + ("noqr",)

CARD_TYPES = ("Debit Card", "Credit Card", "Gift Card", "Sente Card", "Prepaid Card")
CURRENCIES = ("UGX", "UGX", "UGX", "KES", "USD")


@dataclass(frozen=True)
class Sample:
    category: str
    index: int
    payload: str | None  # None on the no-QR negatives
    image: np.ndarray  # BGR uint8, H x W x 3


def random_payload(rng: random.Random) -> str:
    number = f"{rng.randint(1000, 9999)}*****{rng.randint(10000, 99999)}"
    expiry = f"{rng.randint(1, 12):02d}/{rng.randint(24, 35):02d}"
    return make_payload(number, expiry, rng.choice(CURRENCIES), rng.randint(0, 9),
                        rng.choice(CARD_TYPES), rng.randint(1, 999_999))


# --------------------------------------------------------------------------- scene

def _background(rng: np.random.Generator, size: tuple[int, int] = (W, H),
                ss: int = SS) -> np.ndarray:
    """A counter: a colour gradient, some boxes and lines, sensor-free (``size`` x ``ss``)."""
    h, w = size[1] * ss, size[0] * ss
    c0 = rng.uniform(40, 200, 3)
    c1 = rng.uniform(40, 200, 3)
    t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    grad = (c0 * (1 - t) + c1 * t).astype(np.float32) * np.ones((h, 1, 1), np.float32)
    img = np.ascontiguousarray(grad.astype(np.uint8))
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(20, 300)), y0 + int(rng.integers(20, 300))
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x0, y0), (x1, y1), col, -1)
        else:
            cv2.line(img, (x0, y0), (x1, y1), col, int(rng.integers(2, 12)))
    for _ in range(int(rng.integers(0, 4))):
        org = (int(rng.integers(0, w - 200)), int(rng.integers(30, h)))
        cv2.putText(img, "SALE 2x1 UGX", org, cv2.FONT_HERSHEY_SIMPLEX,
                    float(rng.uniform(0.8, 2.5)), (20, 20, 20), 3)
    return img.astype(np.float32)


def _card_bgr(payload: str | None, rng: np.random.Generator) -> np.ndarray:
    """The card face, BGR float32, ~1.7k px wide so the warp has detail to sample."""
    if payload is None:
        # A card-like object with a QR-ish but non-QR texture: text and a
        # block of random modules without finder patterns.
        card = np.array(render_card("0000*****00000&01/30&UGX&0&Sente Card&1",
                                    height_px=1080), dtype=np.float32)[:, :, ::-1].copy()
        qr_h = 1080 - 1080 // 7 - 1080 // 12
        x0 = card.shape[1] - qr_h - 45
        y0 = 1080 // 7 + 30
        blocks = rng.random((37, 37)) < 0.5
        patch = np.where(np.kron(blocks, np.ones((24, 24))) > 0, 0.0, 250.0).astype(np.float32)
        ph = min(patch.shape[0], card.shape[0] - y0 - 10, card.shape[1] - x0 - 10)
        card[y0:y0 + ph, x0:x0 + ph, :] = patch[:ph, :ph, None]
        return card
    return np.array(render_card(payload, height_px=1080), dtype=np.float32)[:, :, ::-1].copy()


def _curve(card: np.ndarray, alpha: np.ndarray,
           amount: float) -> tuple[np.ndarray, np.ndarray]:
    """Bend the card around a vertical cylinder (a card held in a curled hand)."""
    h, w = card.shape[:2]
    xs = np.linspace(-1, 1, w, dtype=np.float32)
    ys = np.linspace(-1, 1, h, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)
    theta = amount  # radians of arc at the card edge
    # Projected x: sin; the bulge makes vertical extent grow towards the middle.
    src_x = np.arcsin(np.clip(gx * math.sin(theta), -1, 1)) / theta
    scale_y = 1.0 + 0.18 * amount * (1 - gx**2)
    src_y = gy / scale_y
    map_x = ((src_x + 1) * 0.5 * (w - 1)).astype(np.float32)
    map_y = ((src_y + 1) * 0.5 * (h - 1)).astype(np.float32)
    def warp(a: np.ndarray) -> np.ndarray:
        return cv2.remap(a, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=0)

    return warp(card), warp(alpha)


@dataclass(frozen=True)
class _Pose:
    cx: float
    cy: float
    width: float  # card width in output pixels
    angle: float  # degrees, in-plane
    tilt_x: float  # out-of-plane, as a fraction of the half width
    tilt_y: float


def _corners(p: _Pose, aspect: float, ss: int = SS) -> np.ndarray:
    hw, hh = p.width / 2, p.width / aspect / 2
    pts = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]], dtype=np.float32)
    # Perspective: shrink one side (tilt_x) and the top or bottom (tilt_y).
    pts[:, 1] *= 1 + p.tilt_x * np.sign(pts[:, 0])
    pts[:, 0] *= 1 + p.tilt_y * np.sign(pts[:, 1])
    a = math.radians(p.angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=np.float32)
    pts = pts @ rot.T
    pts += np.array([p.cx, p.cy], dtype=np.float32)
    return pts * ss


def _place(bg: np.ndarray, card: np.ndarray, alpha: np.ndarray, pose: _Pose,
           ss: int = SS, shadow_px: float = 6.0) -> np.ndarray:
    h, w = card.shape[:2]
    src = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
    dst = _corners(pose, w / h, ss)
    m = cv2.getPerspectiveTransform(src, dst)
    size = (bg.shape[1], bg.shape[0])
    warped = cv2.warpPerspective(card, m, size, flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(alpha, m, size, flags=cv2.INTER_LINEAR)
    # A soft shadow under the card, then the card.
    shadow = cv2.GaussianBlur(mask, (0, 0), shadow_px * ss)
    out = bg * (1 - 0.35 * shadow[:, :, None])
    return out * (1 - mask[:, :, None]) + warped * mask[:, :, None]


def _camera(img: np.ndarray, rng: np.random.Generator, noise: float,
            size: tuple[int, int] = (W, H), ss: int = SS) -> np.ndarray:
    """Lens softness, downscale to the sensor, sensor noise. float32 in, float32 out."""
    img = cv2.GaussianBlur(img, (0, 0), 0.6 * ss)
    if ss != 1:
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    if noise > 0:
        img = img + rng.normal(0, noise, img.shape).astype(np.float32)
    return img


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    n = math.ceil(length) | 1
    k = np.zeros((n, n), np.float32)
    c = n // 2
    dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    for t in np.linspace(-length / 2, length / 2, 4 * n):
        k[round(c + t * dy), round(c + t * dx)] += 1
    return k / k.sum()


def _disk_kernel(radius: float) -> np.ndarray:
    r = math.ceil(radius)
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    k = (x**2 + y**2 <= radius**2).astype(np.float32)
    return k / k.sum()


def _damage(card: np.ndarray, rng: np.random.Generator, qr_box: tuple[int, int, int, int],
            fraction: float) -> None:
    """Scratches, ink blots and worn patches over the QR area (in place)."""
    x0, y0, side, _ = qr_box
    area = side * side
    done = 0.0
    while done < fraction * area:
        kind = rng.random()
        cx, cy = x0 + rng.uniform(0.1, 0.9) * side, y0 + rng.uniform(0.1, 0.9) * side
        val = float(rng.choice([0.0, 250.0, rng.uniform(60, 200)]))
        if kind < 0.4:  # blot
            r = rng.uniform(0.03, 0.09) * side
            cv2.circle(card, (int(cx), int(cy)), int(r), (val, val, val), -1)
            done += math.pi * r * r
        elif kind < 0.75:  # scratch
            ang = rng.uniform(0, math.pi)
            ln = rng.uniform(0.2, 0.6) * side
            th = max(3, int(rng.uniform(0.008, 0.02) * side))
            p0 = (int(cx - ln / 2 * math.cos(ang)), int(cy - ln / 2 * math.sin(ang)))
            p1 = (int(cx + ln / 2 * math.cos(ang)), int(cy + ln / 2 * math.sin(ang)))
            cv2.line(card, p0, p1, (val, val, val), th)
            done += ln * th
        else:  # worn patch: lowered contrast
            r = int(rng.uniform(0.05, 0.12) * side)
            ys = slice(max(0, int(cy) - r), int(cy) + r)
            xs = slice(max(0, int(cx) - r), int(cx) + r)
            card[ys, xs] = card[ys, xs] * 0.35 + 150
            done += (2 * r) ** 2 * 0.5


def _qr_box(card_h: int, card_w: int) -> tuple[int, int, int, int]:
    """Approximate QR square on a rendered card (mirrors ``render_card``'s layout)."""
    band = card_h // 7
    side = card_h - band - card_h // 12
    x0 = card_w - side - card_h // 24
    y0 = band + (card_h - band - side) // 2
    return x0, y0, side, side


def scene_seed(seed: int, category: str, index: int) -> int:
    key = f"{seed}:{category}:{index}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def render(category: str, index: int, seed: int = 1, frame: int = 0) -> Sample:
    """Sample ``index`` of ``category``; ``frame`` > 0 is a later frame of the same scene."""
    if category in PHOTO_CATEGORIES:
        from bench.qrphoto import render_photo

        return render_photo(category, index, seed, frame)
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")
    scene_seed_ = scene_seed(seed, category, index)
    prng = random.Random(scene_seed_)
    rng = np.random.default_rng(scene_seed_)
    frng = np.random.default_rng(scene_seed_ + 7919 * (frame + 1))

    payload = None if category == "noqr" else random_payload(prng)
    card = _card_bgr(payload, rng)
    # Card tint (printed card stock is not pure white) and global illumination.
    card *= rng.uniform(0.85, 1.0, 3).astype(np.float32)
    alpha = np.ones(card.shape[:2], np.float32)

    pose = _Pose(cx=W / 2 + rng.uniform(-90, 90), cy=H / 2 + rng.uniform(-60, 60),
                 width=rng.uniform(300, 420), angle=rng.uniform(-8, 8),
                 tilt_x=rng.uniform(-0.05, 0.05), tilt_y=rng.uniform(-0.05, 0.05))
    noise = rng.uniform(1.5, 4.0)
    gain, offset = 1.0, 0.0
    post: list[str] = []

    c = category
    if c == "rotation":
        pose = _Pose(pose.cx, pose.cy, pose.width, rng.uniform(0, 360), pose.tilt_x, pose.tilt_y)
    elif c == "perspective":
        tx = rng.uniform(0.2, 0.45) * rng.choice([-1, 1])
        ty = rng.uniform(0.1, 0.3) * rng.choice([-1, 1])
        pose = _Pose(pose.cx, pose.cy, pose.width, rng.uniform(-25, 25), tx, ty)
    elif c == "small":
        pose = _Pose(W / 2 + rng.uniform(-200, 200), H / 2 + rng.uniform(-150, 150),
                     rng.uniform(125, 185), rng.uniform(-20, 20), pose.tilt_x, pose.tilt_y)
    elif c == "damaged":
        _damage(card, rng, _qr_box(*card.shape[:2]), rng.uniform(0.03, 0.11))
    elif c == "curvature":
        card, alpha = _curve(card, alpha, rng.uniform(0.5, 1.1))
    elif c == "lowlight":
        gain = rng.uniform(0.07, 0.18)
        noise = rng.uniform(3.0, 7.0)
    elif c == "lowcontrast":
        gain = rng.uniform(0.1, 0.2)
        offset = rng.uniform(70, 170)
    elif c in ("motion", "defocus", "glare", "jpeg"):
        post.append(c)
    if c == "noqr" and index % 2:
        pose = _Pose(pose.cx, pose.cy, pose.width, rng.uniform(0, 360), pose.tilt_x, pose.tilt_y)

    # Hand shake between frames of the live stream.
    if frame:
        pose = _Pose(pose.cx + frng.normal(0, 1.5), pose.cy + frng.normal(0, 1.5),
                     pose.width * (1 + frng.normal(0, 0.005)), pose.angle + frng.normal(0, 0.5),
                     pose.tilt_x, pose.tilt_y)

    img = _place(_background(rng), card, alpha, pose)

    if "glare" in post:
        # A specular highlight: a saturating soft ellipse near the QR.
        qcx = pose.cx + pose.width * 0.22 + rng.uniform(-50, 50)
        qcy = pose.cy + rng.uniform(-50, 50)
        yy, xx = np.mgrid[0:H * SS, 0:W * SS].astype(np.float32)
        ax, ay = rng.uniform(30, 80) * SS, rng.uniform(15, 45) * SS
        a = math.radians(rng.uniform(0, 180))
        dx, dy = xx - qcx * SS, yy - qcy * SS
        u = (dx * math.cos(a) + dy * math.sin(a)) / ax
        v = (-dx * math.sin(a) + dy * math.cos(a)) / ay
        spot = np.exp(-(u**2 + v**2) * 1.2)
        img = img + (rng.uniform(200, 420) * spot)[:, :, None]
        img = img + rng.uniform(10, 50)  # veiling glare lifts everything

    img = img * gain + offset
    img = _camera(img, frng, noise)

    if "motion" in post:
        k = _motion_kernel(rng.uniform(3, 10), rng.uniform(0, 180))
        img = cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)
    if "defocus" in post:
        img = cv2.filter2D(img, -1, _disk_kernel(rng.uniform(1.5, 3.5)),
                           borderType=cv2.BORDER_REFLECT)
        img = img + frng.normal(0, 1.5, img.shape).astype(np.float32)

    out = np.clip(img, 0, 255).astype(np.uint8)
    if "jpeg" in post:
        q = int(rng.integers(4, 14))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        assert ok
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return Sample(category, index, payload, out)


def iter_set(per_category: int, seed: int = 1,
             categories: tuple[str, ...] = CATEGORIES, frame: int = 0) -> Iterator[Sample]:
    for c in categories:
        for i in range(per_category):
            yield render(c, i, seed, frame)


def cache_dir(per_category: int, seed: int) -> Path:
    base = Path(os.environ.get("SENTE_BENCH_DIR", Path(tempfile.gettempdir()) / "sente-bench"))
    return base / f"qrset-v{GENERATOR_VERSION}-s{seed}-n{per_category}"


def build_cache(per_category: int = 40, seed: int = 1, frames: int = 1) -> Path:
    """Write the set as PNG files (JPEG for the jpeg category) plus ``manifest.json``."""
    d = cache_dir(per_category, seed)
    manifest = d / f"manifest-f{frames}.json"
    if manifest.exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    jobs = [(c, i, seed, frames, str(d)) for c in CATEGORIES for i in range(per_category)]
    with multiprocessing.Pool(os.cpu_count() or 1) as pool:
        rows = pool.map(_write_sample, jobs, chunksize=4)
    manifest.write_text(json.dumps(rows, indent=1))
    return d


def _write_sample(job: tuple[str, int, int, int, str]) -> dict[str, object]:
    c, i, seed, frames, d = job
    files = []
    payload = None
    for f in range(frames):
        s = render(c, i, seed, f)
        payload = s.payload
        # The jpeg category is already JPEG-degraded; PNG stores it losslessly.
        name = f"{c}-{i:03d}-f{f}.png"
        cv2.imwrite(str(Path(d) / name), s.image)
        files.append(name)
    return {"category": c, "index": i, "payload": payload, "files": files}


def load_manifest(d: Path, frames: int = 1) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads((d / f"manifest-f{frames}.json").read_text())
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--per-category", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--frames", type=int, default=1)
    args = ap.parse_args()
    print(build_cache(args.per_category, args.seed, args.frames))


if __name__ == "__main__":
    main()
