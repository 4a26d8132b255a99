"""The camera and its decoder in a process of their own (issue 11, point 4).

Decoding in a thread of the UI process shares the interpreter lock with Textual:
the decoder's Python steps held it while a key press waited to be painted (1.57x
the key-to-paint latency of the camera off). :class:`CameraProcess` runs the whole
:class:`hardware.camera.ScanLoop` (capture, decoding, the preview's scaling) in a
child process, niced and pinned to one core, and gives the UI process the same
interface as the in-process camera: ``on_scan``, ``on_status``, ``on_preview`` /
``preview_size``, ``start`` / ``stop``, ``grab_still``, ``show`` (the simulated
camera's), ``beeper``.

- The child is started lazily, by the first ``start`` (the scan screen opening),
  and kept warm: ``stop`` stops its camera (the device is released), not the
  process, so the next opening does not import OpenCV again. ``close`` ends it
  (``quit``, then SIGKILL after a timeout) and reaps it: no zombie.
- The UI process never imports OpenCV, numpy or the decoders for it; what crosses
  the socket is small: texts read, statuses, preview pictures of a few hundred
  bytes, a JPEG still on request.
- Frames never cross: they stay in the child, where the newest replaces one not yet
  decoded. Previews arriving faster than the UI takes them are replaced too, on
  this side, by a one-picture mailbox (the same :class:`LatestFrame`).
- If the UI process dies (even SIGKILL), the child's end of the socket reads EOF
  and it stops its camera and exits.

Run as ``python -m hardware.camproc FD``: the child's side, FD its socket.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import socket
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from hardware.beep import Beeper
from hardware.camera import CameraStatus, LatestFrame

if TYPE_CHECKING:
    from hardware.camera import ScanLoop
    from hardware.scanview import PreviewFrame

log = logging.getLogger(__name__)


def _ignore(_: object) -> None:
    """A callback nobody listens to."""


class CameraProcess:
    """A :class:`hardware.camera.ScanLoop` made by ``factory`` ("module:name", called with
    ``kwargs``) in a child process, seen through the in-process camera's interface."""

    def __init__(self, factory: str, kwargs: dict[str, Any] | None = None, *,
                 on_scan: Callable[[str], None] = _ignore,
                 on_status: Callable[[CameraStatus], None] | None = None,
                 preview_fps: float = 6.0, beep: str = "bell", niceness: int = 10,
                 pin: bool = True, timeout: float = 5.0) -> None:
        self.factory = factory
        self.kwargs = dict(kwargs or {})
        self.kwargs.setdefault("preview_fps", preview_fps)
        self.on_scan = on_scan
        self.on_status: Callable[[CameraStatus], None] = on_status or _ignore
        self.preview_fps = preview_fps
        #: The read beep (``camera.beep``), played on this side with the screen's flash.
        self.beeper = Beeper(beep)
        self.niceness, self.pin, self.timeout = niceness, pin, timeout
        self.status = CameraStatus("stopped")
        self.frames_decoded = 0  # as last reported by the child (with each status)
        self._on_preview: Callable[[PreviewFrame], None] | None = None
        self._preview_size = (0, 0)
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._replies: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._next_id = 0
        self._running = False
        self._previews = LatestFrame()
        self._closed = threading.Event()
        self._ended = threading.Event()  # this child's connection closed (the reader's)
        self._finalizer = weakref.finalize(self, _kill, [None])

    # -- the interface the scan screen uses
    @property
    def on_preview(self) -> Callable[[PreviewFrame], None] | None:
        return self._on_preview

    @on_preview.setter
    def on_preview(self, callback: Callable[[PreviewFrame], None] | None) -> None:
        self._on_preview = callback
        if callback is None:
            self._send("size", 0, 0)  # the child stops making previews nobody shows

    @property
    def preview_size(self) -> tuple[int, int]:
        return self._preview_size

    @preview_size.setter
    def preview_size(self, size: tuple[int, int]) -> None:
        self._preview_size = (int(size[0]), int(size[1]))
        self._send("size", *self._preview_size)

    @property
    def running(self) -> bool:
        return self._running and self.alive

    @property
    def alive(self) -> bool:
        """The child runs and its connection is open. Its end of the socket closes as it
        dies, a moment before ``poll()`` can reap it: in that moment a ``start`` went to
        the dead connection and no new child was made (seen on CI: the card shown next
        was never read)."""
        return (self._proc is not None and not self._ended.is_set()
                and self._proc.poll() is None)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start scanning (a new session); the first call starts the child process."""
        if not self.alive:
            self._spawn()
        self._running = True
        self._send("size", *self._preview_size)
        self._send("start")

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the camera and wait until the child says it stopped; the process stays."""
        if not self.alive:
            self._running = False
            return
        with contextlib.suppress(RuntimeError, TimeoutError):
            self._call("stop", timeout=timeout)
        self._running = False

    def show(self, item: str, *, replace: bool = False) -> None:
        """The simulated camera's ``show`` (the demo's F3), passed to the child; before the
        child runs, it starts it (the card waits there for the camera)."""
        if not self.alive:
            self._spawn()
        self._send("show", str(item), replace)

    def grab_still(self, max_bytes: int = 200_000) -> bytes:
        """The child's latest frame as JPEG; RuntimeError before it has one."""
        if not self.alive:
            raise RuntimeError("no frame captured yet")
        data = self._call("still", max_bytes, timeout=self.timeout)
        if isinstance(data, str):
            raise RuntimeError(data)
        return bytes(data)

    def close(self, timeout: float = 3.0) -> None:
        """End the child (asked, then killed after ``timeout``) and reap it."""
        self._closed.set()
        proc, conn = self._proc, self._conn
        self._running = False
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._send("quit")
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()
        self._proc = self._conn = None
        self._finalizer.detach()

    # -- the wire
    def _spawn(self) -> None:
        if self._closed.is_set():
            self._closed.clear()
        self._reap()
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        # The child imports what this process can (the factory may be a bench's or a
        # test's class): the same module search path.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hardware.camproc", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env)
        finally:
            theirs.close()
        self._proc = proc
        self._conn = Connection(ours.detach())
        self._ended = threading.Event()
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _kill, [proc])
        self._previews = LatestFrame()
        self._send("init", self.factory, self.kwargs, self.niceness, self.pin)
        threading.Thread(target=self._receive, args=(self._conn, self._ended), daemon=True,
                         name="camera-process-reader").start()
        threading.Thread(target=self._deliver_previews, args=(self._previews,), daemon=True,
                         name="camera-process-preview").start()

    def _send(self, *msg: Any) -> None:
        conn = self._conn
        if conn is None:
            return
        with self._send_lock:
            try:
                conn.send(msg)
            except (OSError, ValueError) as exc:  # the child is gone
                log.warning("camera process: %s", exc)

    def _call(self, kind: str, *args: Any, timeout: float) -> Any:
        """Send a request and wait for its reply (RuntimeError if the child is gone)."""
        with self._send_lock:
            self._next_id += 1
            rid = self._next_id
        done, slot = threading.Event(), list[Any]()
        self._replies[rid] = (done, slot)
        try:
            self._send(kind, rid, *args)
            if not done.wait(timeout):
                raise TimeoutError(f"the camera process did not answer {kind!r}")
            if not slot:
                raise RuntimeError("the camera process ended")
            return slot[0]
        finally:
            self._replies.pop(rid, None)

    def _reap(self) -> None:
        """Close the connection of a child that ended and reap it (no zombie)."""
        proc, conn = self._proc, self._conn
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()  # its connection is gone: it can only be on its way out
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()
        self._proc = self._conn = None

    def _receive(self, conn: Connection, ended: threading.Event) -> None:
        """The reader thread: the child's messages to the callbacks."""
        try:
            while True:
                msg = conn.recv()
                kind = msg[0]
                if kind == "scan":
                    with contextlib.suppress(Exception):
                        self.on_scan(msg[1])
                elif kind == "status":
                    self.status, self.frames_decoded = msg[1], msg[2]
                    if self.status.state in ("no-camera", "error", "stopped"):
                        self._running = False
                    with contextlib.suppress(Exception):
                        self.on_status(self.status)
                elif kind == "preview":
                    self._previews.put(msg[1])
                elif kind == "reply":
                    waiter = self._replies.get(msg[1])
                    if waiter is not None:
                        waiter[1].append(msg[2])
                        waiter[0].set()
        except (EOFError, OSError):
            pass
        finally:
            ended.set()
            for done, _ in list(self._replies.values()):
                done.set()  # nobody will answer: the waiters see an empty slot
            # A child already replaced (its reader ran late) says nothing of the new one.
            if self._conn is conn and not self._closed.is_set():
                self._running = False
                self.status = CameraStatus("error", "The camera process ended")
                with contextlib.suppress(Exception):
                    self.on_status(self.status)

    def _deliver_previews(self, previews: LatestFrame) -> None:
        """The newest preview to ``on_preview``; one the UI has not taken yet is replaced."""
        while self._conn is not None and not self._closed.is_set():
            frame = previews.take(0.2)
            callback = self._on_preview
            if frame is not None and callback is not None and self._preview_size != (0, 0):
                with contextlib.suppress(Exception):
                    callback(frame)


def _kill(holder: list[subprocess.Popen[bytes] | None]) -> None:
    """The owner was collected without ``close``: end and reap the child."""
    proc = holder[0]
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------ the child's side
def _make(factory: str, kwargs: dict[str, Any]) -> ScanLoop:
    module, _, name = factory.partition(":")
    made: ScanLoop = getattr(importlib.import_module(module), name)(**kwargs)
    return made


def _settle(niceness: int, pin: bool) -> None:
    """Give way to the UI: a lower priority, one core, one OpenCV thread."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(niceness)
    if pin:
        with contextlib.suppress(OSError, AttributeError):
            cpus = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {cpus[-1]})


def child_main(fd: int) -> int:
    conn = Connection(fd)
    lock = threading.Lock()

    def send(*msg: Any) -> None:
        with lock, contextlib.suppress(OSError, ValueError):
            conn.send(msg)

    try:
        kind, factory, kwargs, niceness, pin = conn.recv()
    except EOFError:
        return 0
    assert kind == "init"
    _settle(niceness, pin)
    from hardware.cvlog import quiet_opencv

    quiet_opencv()
    import cv2

    cv2.setNumThreads(1)
    import hardware.decode
    import hardware.scanview  # warm: the first start does not import them

    hardware.decode._Libs.load()
    cam = _make(factory, kwargs)
    cam.thread_niceness = 0  # the process as a whole is niced
    cam.on_scan = lambda text: send("scan", text)
    cam.on_status = lambda st: send("status", st, cam.frames_decoded)
    cam.on_preview = lambda frame: send("preview", frame)
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break  # the UI process is gone
            kind = msg[0]
            if kind == "start":
                cam.start()
            elif kind == "stop":
                cam.stop()
                send("reply", msg[1], True)
            elif kind == "size":
                cam.preview_size = (msg[1], msg[2])
            elif kind == "show":
                cam.show(msg[1], replace=msg[2])  # type: ignore[attr-defined]
            elif kind == "still":
                try:
                    send("reply", msg[1], cam.grab_still(max_bytes=msg[2]))
                except RuntimeError as exc:
                    send("reply", msg[1], str(exc))
            elif kind == "quit":
                break
    finally:
        cam.stop()
        with contextlib.suppress(OSError):
            conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(child_main(int(sys.argv[1])))
