"""The customer's PIN pad: masked, 4 digits, clear, cancel, time-out.

The digits live only in this widget's private buffer until the screen
returns them; they are never rendered, logged or put in a message.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from screens.widgets.keypad import NumericKeypad

PIN_LENGTH = 4


class PinPad(Vertical):
    """Masked dots above a :class:`NumericKeypad`."""

    def __init__(self, *, set_glyph: str = "●", empty_glyph: str = "○",
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self._digits: list[str] = []
        self._set = set_glyph
        self._empty = empty_glyph

    def compose(self) -> ComposeResult:
        yield Static(self._mask(), id="pin-mask")
        yield NumericKeypad(id="pin-keypad")

    def _mask(self) -> str:
        n = len(self._digits)
        return " ".join([self._set] * n + [self._empty] * (PIN_LENGTH - n))

    def _update(self) -> None:
        self.query_one("#pin-mask", Static).update(self._mask())

    @property
    def length(self) -> int:
        return len(self._digits)

    @property
    def complete(self) -> bool:
        return len(self._digits) == PIN_LENGTH

    def press(self, key: str) -> None:
        """Apply a keypad key (digit, ``back``, ``clear``); ``ok`` is the screen's business."""
        if len(key) == 1 and key in "0123456789":
            if len(self._digits) < PIN_LENGTH:
                self._digits.append(key)
        elif key == "back":
            if self._digits:
                self._digits.pop()
        elif key == "clear":
            self._digits.clear()
        self._update()

    def take(self) -> str:
        """Return the PIN and forget it."""
        pin = "".join(self._digits)
        self._digits.clear()
        self._update()
        return pin
