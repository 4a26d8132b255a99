"""Doctor checks for the devices (camera opens and a frame decodes; printer reachable)."""

from __future__ import annotations

import time

from pos.config import CameraSettings, PrinterSettings
from pos.doctor import Check


def camera_check(settings: CameraSettings, *, seconds: float = 3.0) -> Check:
    """Open the camera, read frames for a moment, try to decode them."""
    try:
        from hardware.cvlog import quiet_opencv

        quiet_opencv()
        import cv2
    except ImportError as exc:  # pragma: no cover - opencv is a dependency
        return Check("camera", False, f"OpenCV missing: {exc}")
    from hardware.decode import QRDecoder

    source: int | str = int(settings.device) if settings.device.isdigit() else settings.device
    cap = cv2.VideoCapture(source)
    try:
        if not cap.isOpened():
            return Check("camera", False, f"cannot open camera {settings.device!r} "
                         "(connected? user in the video group?)")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, settings.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, settings.height)
        decoder = QRDecoder()
        frames = 0
        payload = None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ok, frame = cap.read()
            if not ok:
                break
            frames += 1
            found = decoder.decode(frame)
            if found:
                payload = found[0]
                break
        if frames == 0:
            return Check("camera", False, f"camera {settings.device!r} opened but gave no frame")
        h, w = frame.shape[:2]
        if payload:
            return Check("camera", True, f"{w}x{h}, {frames} frames, decoded a QR code")
        return Check("camera", True, f"{w}x{h}, {frames} frames; no QR code in view to decode "
                     "(hold a card up to test decoding)", warning=True)
    finally:
        cap.release()


def printer_check(settings: PrinterSettings) -> Check:
    from hardware.printer import make_printer

    if settings.kind == "none":
        return Check("printer", True, "no printer configured (receipts on screen)",
                     warning=True)
    status = make_printer(settings).status()
    return Check("printer", status.ok, status.message)
