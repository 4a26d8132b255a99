"""OpenCV's own log off by default: its warnings (``[ WARN:0@0.1] global cap_v4l.cpp ...
can't open camera by index`` with no camera) are written straight to fd 2 and drawn over
the TUI. A camera that is missing or fails is reported by our ``CameraStatus`` instead.
"""

from __future__ import annotations

import os


def quiet_opencv() -> None:
    """Call before the first ``import cv2`` (OpenCV reads the level once, then). A level
    the merchant set (``OPENCV_LOG_LEVEL=WARNING`` to debug a camera) wins."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
