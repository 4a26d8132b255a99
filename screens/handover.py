"""Hand the terminal to someone else for a step only they may do (a card holder choosing
a PIN or reading a balance, an operator choosing their PIN). Enter or OK once they
have it; Escape cancels."""

from __future__ import annotations

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Button, Static

from screens.dialogs import Step
from screens.widgets import Plain


class ReadyStep(Step[bool]):
    """A step the person now holding the terminal confirms: Enter or the OK button
    (``READY_ID``) goes on, Escape cancels."""

    READY_ID = "handover-ready"

    def on_mount(self) -> None:
        self.query_one(f"#{self.READY_ID}", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == self.READY_ID:
            self.action_go()

    def action_go(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

    def on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            self.dismiss(True)


class HandOverNotice(ReadyStep):
    """``Hand the terminal to <whom>``, what for (large), and what they do next."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("enter", "go", "Ready")]
    DEFAULT_CSS = """
    HandOverNotice #handover-purpose { width: auto; max-width: 100%; height: auto;
        border: round $primary; padding: 0 2; text-style: bold; margin: 0 0 1 0; }
    HandOverNotice.-short #handover-purpose { border: none; padding: 0; margin: 0; }
    """

    def __init__(self, whom: str, purpose: str, note: str = "") -> None:
        super().__init__(f"Hand the terminal to {whom}")
        self.purpose = purpose
        self.note = note or "Press Enter (or OK) when you have the terminal."

    def body(self) -> ComposeResult:
        yield Plain(self.purpose, id="handover-purpose")
        yield Static(self.note, classes="step-note", markup=False)
        yield Button("OK", id=self.READY_ID, variant="primary")
