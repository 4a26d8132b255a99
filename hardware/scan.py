"""``sente-pos scan``: decode card QR codes from image files or a camera.

``scan_files`` returns one record per file::

    {"file": ..., "payload": <raw text or null>, "card": <parsed card or null>,
     "error": <message or null>}

The raw payload is given even when the card fails validation (malformed,
expired, unknown type); ``error`` then says why. The CLI prints each record
as one JSON line (``--json``) or as a readable line.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from pos.cardqr import CardQRError, parse_card_qr


def card_record(payload: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """(card json or None, error or None) for a decoded payload."""
    if payload is None:
        return None, "No QR code found in the image"
    try:
        card = parse_card_qr(payload)
    except CardQRError as exc:
        return None, str(exc)
    problems = card.problems()
    return card.to_json(), ("; ".join(problems) if problems else None)


def scan_file(path: str | Path, decoder: Any = None) -> dict[str, Any]:
    from hardware.decode import QRDecoder, is_card

    decoder = decoder or QRDecoder(budget_ms=None)
    rec: dict[str, Any] = {"file": str(path), "payload": None, "card": None, "error": None}
    try:
        texts = decoder.decode_file(path)
    except (ValueError, OSError) as exc:
        rec["error"] = str(exc)
        return rec
    # Several codes in one picture: prefer one that is a card.
    payload = next((t for t in texts if is_card(t)), texts[0] if texts else None)
    rec["payload"] = payload
    rec["card"], rec["error"] = card_record(payload)
    return rec


def scan_files(paths: Iterable[str | Path]) -> Iterator[dict[str, Any]]:
    from hardware.decode import QRDecoder

    decoder = QRDecoder(budget_ms=None)
    for p in paths:
        yield scan_file(p, decoder)


def format_record(rec: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(rec, ensure_ascii=False)
    if rec["card"]:
        c = rec["card"]
        line = (f"{rec['file']}: {c['card_type']} {c['number']} exp {c['expiry']} "
                f"{c['currency']} id {c['card_id']}")
        return line + (f" ({rec['error']})" if rec["error"] else "")
    if rec["payload"] is not None:
        return f"{rec['file']}: {rec['payload']!r}: {rec['error']}"
    return f"{rec['file']}: {rec['error']}"


def run_scan_images(paths: list[str], as_json: bool, out: TextIO) -> int:
    """Print one line per file; exit code 0 if every file gave a valid card, else 2."""
    all_ok = True
    for rec in scan_files(paths):
        print(format_record(rec, as_json), file=out, flush=True)
        all_ok = all_ok and rec["card"] is not None and rec["error"] is None
    return 0 if all_ok else 2


def run_scan_camera(source: str | int, as_json: bool, out: TextIO, count: int = 1,
                    timeout: float | None = 60.0,
                    make_scanner: Callable[..., Any] | None = None) -> int:
    """Scan ``count`` cards from a camera; exit code 0, 1 when no camera, 2 on timeout."""
    from hardware.camera import CameraScanner, CameraStatus

    done = threading.Event()
    got: list[str] = []
    failure: list[str] = []

    def on_scan(text: str) -> None:
        got.append(text)
        rec: dict[str, Any] = {"file": f"camera:{source}", "payload": text}
        rec["card"], rec["error"] = card_record(text)
        print(format_record(rec, as_json), file=out, flush=True)
        if len(got) >= count:
            done.set()

    def on_status(st: CameraStatus) -> None:
        if st.state in ("no-camera", "error"):
            failure.append(st.message)
            done.set()

    factory = make_scanner or CameraScanner
    scanner = factory(source, on_scan=on_scan, on_status=on_status)
    scanner.start()
    try:
        done.wait(timeout)
    finally:
        scanner.stop()
    if failure and len(got) < count:
        print(json.dumps({"error": failure[0]}) if as_json else failure[0], file=out)
        return 1
    return 0 if len(got) >= count else 2
