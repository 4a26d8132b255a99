"""Printable card images carrying the card QR payload.

The QR code uses error correction H (30% of the symbol can be lost) and the
4-module quiet zone the standard asks for: cards get scratched, bent and
photographed under shop lights, and the quiet zone is what lets a detector
find the finder patterns next to printed text. Used by ``sente-pos cards make
DIR``, by the demo's simulated camera and by the decoder bench.

Pure Pillow + ``qrcode``: no OpenCV, so this is cheap to import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

QUIET_ZONE = 4
"""Modules of white border around the symbol (ISO/IEC 18004 minimum)."""

CARD_ASPECT = 85.6 / 54.0
"""ISO/IEC 7810 ID-1 (bank card) width / height."""


def qr_matrix(payload: str) -> list[list[bool]]:
    """The module matrix of ``payload`` at error correction H, quiet zone included."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_H

    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_H, border=QUIET_ZONE, box_size=1)
    qr.add_data(payload.encode("utf-8"))
    qr.make(fit=True)
    return [list(row) for row in qr.get_matrix()]


def render_qr(payload: str, module_px: int = 8) -> Image.Image:
    """The bare QR symbol (with quiet zone) as a 1-bit-looking grayscale image."""
    from PIL import Image

    if module_px < 1:
        raise ValueError("module_px must be at least 1")
    m = qr_matrix(payload)
    n = len(m)
    img = Image.new("L", (n, n), 255)
    img.putdata([0 if dark else 255 for row in m for dark in row])
    return img.resize((n * module_px, n * module_px), Image.Resampling.NEAREST)


def render_card(payload: str, title: str = "Sente Card", height_px: int = 540,
                lines: Iterable[str] | None = None) -> Image.Image:
    """A bank-card-shaped RGB image: text on the left, the QR code on the right.

    ``lines`` default to what the payload says (masked number, expiry, type)
    when it parses as a card payload, else nothing.
    """
    from PIL import Image, ImageDraw, ImageFont

    width_px = round(height_px * CARD_ASPECT)
    card = Image.new("RGB", (width_px, height_px), (250, 250, 246))
    draw = ImageDraw.Draw(card)
    band = height_px // 7
    draw.rectangle((0, 0, width_px, band), fill=(24, 88, 150))
    title_font = ImageFont.load_default(size=max(10, band * 3 // 5))
    draw.text((band // 2, band // 5), title, fill=(255, 255, 255), font=title_font)

    # The QR fills most of the card's height on the right, quiet zone included.
    qr_side_target = height_px - band - height_px // 12
    n = len(qr_matrix(payload))
    module_px = max(1, qr_side_target // n)
    qr = render_qr(payload, module_px).convert("RGB")
    qx = width_px - qr.width - height_px // 24
    qy = band + (height_px - band - qr.height) // 2
    card.paste(qr, (qx, qy))

    if lines is None:
        lines = _card_lines(payload)
    font = ImageFont.load_default(size=max(8, height_px // 14))
    y = band + height_px // 10
    for line in lines:
        draw.text((band // 2, y), line, fill=(30, 30, 30), font=font)
        y += height_px // 8
    return card


def _card_lines(payload: str) -> list[str]:
    from pos.cardqr import CardQRError, parse_card_qr

    try:
        card = parse_card_qr(payload)
    except CardQRError:
        return []
    return [card.number, f"VALID THRU {card.expiry}", card.card_type, card.currency]


def _safe_name(payload: str) -> str:
    from pos.cardqr import CardQRError, parse_card_qr

    try:
        card = parse_card_qr(payload)
        stem = f"card-{card.card_id}-{card.last4}"
    except CardQRError:
        stem = "qr-" + payload[:24]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("_") or "qr"


def make_cards(directory: Path | str, payloads: Iterable[str], height_px: int = 540,
               qr_only: bool = False) -> list[Path]:
    """Write one PNG per payload into ``directory`` (created); return the paths.

    ``qr_only`` writes the bare symbol (8 px modules) instead of a whole card.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    seen: set[str] = set()
    for payload in payloads:
        name = _safe_name(payload)
        stem, i = name, 2
        while name in seen:
            name, i = f"{stem}-{i}", i + 1
        seen.add(name)
        img = render_qr(payload) if qr_only else render_card(payload, height_px=height_px)
        path = out / f"{name}.png"
        img.save(path)
        paths.append(path)
    return paths
