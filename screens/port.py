"""The devices the screens drive, as the screens see them.

The layers forbid ``screens`` to import ``hardware`` (pyproject's import-linter
contract), so the camera, the keyboard-wedge detector and the printer are typed
here by what the screens use of them. ``hardware``'s classes satisfy these
Protocols structurally (``CameraScanner``/``SimulatedCamera``, ``WedgeDetector``,
``EscposPrinter``/``DummyPrinter``/``NullPrinter``); the wiring (``sente_pos``)
hands them to :func:`screens.app.make_app`, and mypy checks that they fit.

The domain itself is reached through :class:`pos.terminal.Terminal`, the
concrete class: the tests run the real one against the sandbox, so a Protocol
would buy nothing there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class CameraReading(Protocol):
    """What the camera thread reports (``hardware.camera.CameraStatus``)."""

    @property
    def state(self) -> str: ...

    @property
    def message(self) -> str: ...


class Scanner(Protocol):
    """A camera that scans QR codes in its own thread and calls back from it."""

    on_scan: Callable[[str], None]
    #: Called with a :class:`CameraReading`. ``Any`` because a settable attribute is
    #: checked both ways: the camera's own ``Callable[[CameraStatus], None]`` fits only
    #: a parameter type mypy can see as equal, and screens may not import hardware's.
    on_status: Callable[[Any], None]
    #: The live preview (hardware.camera.ScanLoop): a frame for the screen, from the
    #: camera's thread, while ``preview_size`` (cells) is not zero. ``Any`` as above.
    on_preview: Callable[[Any], None] | None
    preview_size: tuple[int, int]

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...

    def grab_still(self, max_bytes: int = ...) -> bytes:
        """The latest frame as JPEG of at most ``max_bytes``; RuntimeError before one."""
        ...


class Wedge(Protocol):
    """Tells a keyboard-wedge scanner's key burst from a person typing."""

    #: Seconds between a scanner's keys at most (a burst's first key waits this long).
    max_interval: float

    def feed(self, char: str, t: float) -> str | None: ...

    def feed_enter(self, t: float) -> str | None: ...

    def in_burst(self, t: float) -> bool: ...

    def reset(self) -> None: ...


class ReportPrinter(Protocol):
    """The receipt printer, for what is printed outside a sale (reports)."""

    def print_text(self, text: str) -> None:
        """Print plain text or raise ``PosError`` (a message for the cashier)."""
        ...
