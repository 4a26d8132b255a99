"""A numeric keypad for touch screens; the keyboard's digits do the same thing."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Grid
from textual.message import Message
from textual.widgets import Button

KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "ok")
LABELS = {"clear": "C", "ok": "OK"}


@dataclass
class KeyPressed(Message):
    """A keypad key: a digit, ``clear``, ``back`` or ``ok``."""

    key: str


class NumericKeypad(Grid):
    """3x4 grid of buttons posting :class:`KeyPressed`; never takes keyboard focus."""

    def compose(self) -> ComposeResult:
        for key in KEYS:
            button = Button(LABELS.get(key, key), id=f"key-{key}", classes="keypad-key")
            button.can_focus = False
            yield button

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        key = (event.button.id or "").removeprefix("key-")
        if key:
            self.post_message(KeyPressed(key))


def key_from_event(key: str, character: str | None) -> str | None:
    """Map a keyboard key to a keypad key (digits, clear, back, ok), or None."""
    if character is not None and len(character) == 1 and character in "0123456789":
        return character
    return {
        "backspace": "back",
        "delete": "clear",
        "enter": "ok",
        "kp_enter": "ok",
        "c": "clear",
    }.get(key)
