"""The camera thread: capture frames, decode QR codes, report through callbacks.

No UI here: the threads call ``on_scan(text)``, ``on_status(CameraStatus)`` and
``on_preview(PreviewFrame)`` from their own thread; the screen marshals them
(``call_from_thread``). The same card held in view is one scan: a text is
delivered again only after frames decoded without it have covered ``dedupe_seconds``
of the camera's time (see :class:`Deduper`); every start of the camera is a new
scanning session that remembers no card.

OpenCV and the decoders are imported inside the thread, so importing this
module costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hardware.beep import Beeper

if TYPE_CHECKING:
    import numpy as np

    from hardware.scanview import PreviewFrame

State = Literal["starting", "scanning", "no-camera", "error", "stopped"]


@dataclass(frozen=True)
class CameraStatus:
    state: State
    message: str = ""
    fps: float = 0.0


class Deduper:
    """One delivery per card presentation.

    A text is delivered when it is first read; read again, it is a new presentation
    only once the decoder has *seen it gone*: frames decoded without it whose capture
    times reach more than ``window`` seconds past its last sighting. Times are the
    frames' capture times (``at``), not the moment the decoder got to them, so a
    decoder that falls behind (frames dropped, a loaded machine) neither forgets a card
    still in view nor holds on to one that left; a decoder that did not run at all in
    between has seen nothing leave, and the card held up meanwhile is the same
    presentation.
    """

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._last_seen: dict[str, float] = {}

    def reset(self) -> None:
        """Forget every card (a new scanning session)."""
        self._last_seen.clear()

    def observe(self, text: str | None, at: float | None = None) -> bool:
        """A frame captured at ``at`` was decoded and read ``text`` (None: nothing).
        True when ``text`` is a new presentation to deliver."""
        now = self.clock() if at is None else at
        for k, seen in list(self._last_seen.items()):
            if k != text and now - seen > self.window:  # seen gone long enough: forgotten
                del self._last_seen[k]
        if text is None:
            return False
        new = text not in self._last_seen
        self._last_seen[text] = now
        return new

    def should_emit(self, text: str, at: float | None = None) -> bool:
        """:meth:`observe` for a frame that read ``text``."""
        return self.observe(text, at)


class LatestFrame:
    """A one-frame mailbox between the capture and the decoding thread.

    ``put`` replaces the frame waiting (an older one not yet taken is dropped and
    counted in ``dropped``), so a slow decode never works through a backlog: it
    always gets the newest picture.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Any = None
        self._seq = 0
        self._taken = 0
        self.dropped = 0

    def put(self, frame: Any) -> None:
        with self._cond:
            if self._seq > self._taken:
                self.dropped += 1
            self._frame, self._seq = frame, self._seq + 1
            self._cond.notify_all()

    def wait_taken(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until the frame put last has been taken."""
        with self._cond:
            return self._cond.wait_for(lambda: self._seq == self._taken, timeout)

    def take(self, timeout: float) -> Any:
        """The newest frame not yet taken, waiting up to ``timeout`` s; None if none came."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > self._taken, timeout):
                return None
            self._taken = self._seq
            frame, self._frame = self._frame, None
            self._cond.notify_all()  # a lock-step producer waits for this
            return frame


def lower_thread_priority(niceness: int = 10) -> None:
    """Make the calling thread yield the CPU to the UI (Linux: threads have their own nice
    value). Best effort: elsewhere, or without permission, nothing changes."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                       os.getpriority(os.PRIO_PROCESS, 0) + niceness)


class ScanLoop:
    """Shared thread logic of the real and the simulated camera.

    Three threads: one captures frames into a :class:`LatestFrame`, one decodes the
    newest (frames that arrive meanwhile are dropped, never queued). When
    ``on_preview`` is set and ``preview_size`` (cells: columns, rows) is not zero, the
    decoding thread also makes a :class:`hardware.scanview.PreviewFrame` at most
    ``preview_fps`` times a second, with the code found outlined and the advice line,
    and leaves it in a second mailbox; the third thread calls ``on_preview`` with it,
    so a UI slow to take a picture (``call_from_thread`` waits for it) never holds up
    decoding: a picture it has not taken yet is replaced by the next one.
    """

    status_interval = 1.0
    #: Lock-step (the simulated camera in tests): the capture thread waits until the
    #: decoder has taken each frame, so every frame is decoded and none is dropped.
    lockstep = False
    #: How much the camera's threads lower their priority below the process's (0 in a
    #: camera process, which is niced as a whole).
    thread_niceness = 10

    def __init__(self, on_scan: Callable[[str], None],
                 on_status: Callable[[CameraStatus], None] | None = None,
                 dedupe_seconds: float = 3.0, preview_fps: float = 6.0,
                 beep: str = "bell") -> None:
        self.on_scan = on_scan
        #: The read beep (``camera.beep``); the screen plays it with its flash.
        self.beeper = Beeper(beep)
        self.on_status = on_status or (lambda s: None)
        self.on_preview: Callable[[PreviewFrame], None] | None = None
        self.preview_size: tuple[int, int] = (0, 0)
        self.preview_fps = preview_fps
        self.dedupe = Deduper(dedupe_seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: np.ndarray | None = None
        self._lock = threading.Lock()
        self.status = CameraStatus("stopped")
        self.slot = LatestFrame()
        self.previews = LatestFrame()
        self.frames_decoded = 0
        self._decoded = threading.Condition()

    # -- lifecycle
    def start(self) -> None:
        """Start scanning: a new session, which remembers no card read before it."""
        if self._thread is not None and self._thread.is_alive():
            return
        self.dedupe.reset()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _set_status(self, state: State, message: str = "", fps: float = 0.0) -> None:
        self.status = CameraStatus(state, message, fps)
        with contextlib.suppress(Exception):  # a callback bug must not kill the thread
            self.on_status(self.status)

    # -- frame source, provided by subclasses
    def _open(self) -> str | None:
        """Open the source; return an error message for "no-camera", else None."""
        raise NotImplementedError

    def _read(self) -> np.ndarray | None:
        """The next frame, or None on a read failure."""
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def _frame_time(self) -> float:
        """The capture time of the frame just read (the camera's clock)."""
        return time.monotonic()

    def wait_decoded(self, frames: int, timeout: float = 60.0) -> bool:
        """Wait until ``frames`` more frames have been decoded (False if ``timeout`` s
        passed first: a guard against a hang, not a measure)."""
        with self._decoded:
            goal = self.frames_decoded + frames
            return self._decoded.wait_for(lambda: self.frames_decoded >= goal, timeout)

    def _capture(self, failed: list[str]) -> None:
        """The capture thread: frames into the mailbox until stopped or the source fails."""
        lower_thread_priority(self.thread_niceness)
        failures = 0
        try:
            while not self._stop.is_set():
                if self.lockstep and not self.slot.wait_taken(0.1):
                    continue
                frame = self._read()
                if frame is None:
                    failures += 1
                    if failures >= 30:
                        failed.append("The camera stopped sending pictures")
                        return
                    self._stop.wait(0.05)
                    continue
                failures = 0
                at = self._frame_time()
                with self._lock:
                    self._latest = frame
                self.slot.put((frame, at))
        except Exception as exc:
            failed.append(f"Camera failed: {exc}")

    def _deliver_previews(self) -> None:
        """The preview thread: hands the newest preview to ``on_preview``."""
        lower_thread_priority(self.thread_niceness)
        while not self._stop.is_set():
            preview = self.previews.take(0.1)
            callback = self.on_preview
            if preview is not None and callback is not None:
                with contextlib.suppress(Exception):
                    callback(preview)

    def _run(self) -> None:
        from hardware.decode import MultiFrameDecoder, QRDecoder, to_gray
        from hardware.scanview import Advisor, make_preview, measure

        lower_thread_priority(self.thread_niceness)  # decoding gives way to key presses
        self._set_status("starting", "Opening the camera")
        try:
            error = self._open()
        except Exception as exc:
            error = str(exc) or type(exc).__name__
        if error:
            self._set_status("no-camera", error)
            return
        decoder = MultiFrameDecoder(QRDecoder())
        advisor = Advisor()
        failed: list[str] = []
        self.slot, self.previews = LatestFrame(), LatestFrame()
        capture = threading.Thread(target=self._capture, args=(failed,),
                                   name=f"{type(self).__name__}-capture", daemon=True)
        deliver = threading.Thread(target=self._deliver_previews,
                                   name=f"{type(self).__name__}-preview", daemon=True)
        frames, t_status = 0, time.monotonic()
        next_preview = 0.0
        self._set_status("scanning", "Hold the card's QR code up to the camera")
        capture.start()
        deliver.start()
        try:
            while not self._stop.is_set() and not failed:
                taken = self.slot.take(0.1)
                if taken is None:
                    continue
                frame, at = taken
                gray = to_gray(frame)
                text = decoder.feed(gray)
                emit = self.dedupe.observe(text, at)
                if emit:
                    with contextlib.suppress(Exception):
                        self.on_scan(text)  # type: ignore[arg-type]
                with self._decoded:
                    self.frames_decoded += 1
                    self._decoded.notify_all()
                now = time.monotonic()
                on_preview, (cols, rows) = self.on_preview, self.preview_size
                if on_preview is not None and cols > 0 and rows > 0 and now >= next_preview:
                    advice = advisor.feed(measure(
                        gray, decoder.last_motion, decoder.last_position,
                        decoder.decoder.last_candidate, text is not None), gray.shape[1])
                    preview = make_preview(gray, cols, rows, decoder.last_position,
                                           advice, text is not None)
                    if preview is not None:
                        self.previews.put(preview)
                    next_preview = now + 1.0 / max(0.1, self.preview_fps)
                frames += 1
                if now - t_status >= self.status_interval:
                    self._set_status("scanning", "", frames / (now - t_status))
                    frames, t_status = 0, now
        except Exception as exc:
            failed.append(f"Camera failed: {exc}")
        finally:
            self._stop.set()  # the capture and preview threads end with us
            capture.join(3.0)
            deliver.join(3.0)
            self._close()
        if failed:
            self._set_status("error", failed[0])
            return
        self._set_status("stopped")

    def grab_still(self, max_bytes: int = 200_000) -> bytes:
        """The latest frame as JPEG of at most ``max_bytes`` (quality, then size, lowered)."""
        import cv2

        with self._lock:
            frame = None if self._latest is None else self._latest.copy()
        if frame is None:
            raise RuntimeError("no frame captured yet")
        img = frame
        while True:
            for quality in (90, 75, 60, 45, 30):
                ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
                if ok and len(buf) <= max_bytes:
                    return bytes(buf)
            if min(img.shape[:2]) < 32:
                raise RuntimeError("cannot make the picture small enough")
            img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2),
                             interpolation=cv2.INTER_AREA)


class CameraScanner(ScanLoop):
    """A real camera through OpenCV: ``source`` is an index (0, "0") or a device path/URL."""

    def __init__(self, source: str | int, on_scan: Callable[[str], None] = lambda text: None,
                 on_status: Callable[[CameraStatus], None] | None = None,
                 width: int = 640, height: int = 480, fps: int = 15,
                 dedupe_seconds: float = 3.0, preview_fps: float = 6.0,
                 beep: str = "bell") -> None:
        super().__init__(on_scan, on_status, dedupe_seconds, preview_fps, beep)
        self.source = int(source) if isinstance(source, str) and source.isdigit() else source
        self.width, self.height, self.fps = width, height, fps
        self._cap: Any = None

    def _open(self) -> str | None:
        from hardware.cvlog import quiet_opencv

        quiet_opencv()
        import cv2

        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            cap.release()
            return f"No camera at {self.source!r}"
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # decode the newest frame, not a backlog
        self._cap = cap
        return None

    def _read(self) -> np.ndarray | None:
        ok, frame = self._cap.read()
        return frame if ok else None

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
