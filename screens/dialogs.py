"""Generic modal steps: messages, confirmations, numbered choices, prompts, busy.

Every flow step is a ``ModalScreen[T]`` that ``dismiss()``es its value
(``None`` for cancel), so flows read as straight-line code with
``push_screen_wait``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from screens.widgets import KeyBar, Plain, PosInput, StatusBar, plain_label

if TYPE_CHECKING:
    from textual import getters

    from screens.app import SentePOSApp

T = TypeVar("T")
R = TypeVar("R")


class Step(ModalScreen[T | None]):
    """A full-screen step of a flow: status bar, a body, key hints. Escape cancels:
    a ``Step[T]`` dismisses a ``T``, or None when cancelled."""

    if TYPE_CHECKING:
        app = getters.app(SentePOSApp)

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    TITLE_TEXT = ""

    def __init__(self, title: str | None = None) -> None:
        super().__init__(classes="step")
        self.step_title = title if title is not None else self.TITLE_TEXT

    def compose(self) -> ComposeResult:
        yield StatusBar()
        with Vertical(classes="step-body"):
            if self.step_title:
                yield Label(self.step_title, classes="step-title")
            yield from self.body()
        yield KeyBar()

    def body(self) -> ComposeResult:
        yield from ()

    def on_screen_resume(self) -> None:
        self.app.refresh_status()

    def action_cancel(self) -> None:
        self.dismiss(None)


class Dialog(ModalScreen[T | None]):
    """A centred box over the current screen."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def action_cancel(self) -> None:
        self.dismiss(None)


class MessageDialog(Dialog[bool]):
    """A message with one OK button. ``severity``: information, warning or error."""

    def __init__(self, title: str, message: str, severity: str = "information") -> None:
        super().__init__(classes=f"dialog -{severity}")
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(self.title_text, classes="dialog-title")
            yield Plain(self.message, classes="dialog-message")
            yield Button("OK", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.dismiss(True)

    def on_key(self, event: events.Key) -> None:
        if event.key in ("enter", "escape"):
            event.stop()
            self.dismiss(True)


class ConfirmDialog(Dialog[bool]):
    """Yes / No. Enter or ``1`` = yes, Escape or ``2`` = no."""

    def __init__(self, title: str, message: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.message = message
        self.yes = yes
        self.no = no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(self.title_text, classes="dialog-title")
            yield Plain(self.message, classes="dialog-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"1 {self.yes}", id="yes", variant="primary")
                yield Button(f"2 {self.no}", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def on_key(self, event: events.Key) -> None:
        if event.key == "1":
            event.stop()
            self.dismiss(True)
        elif event.key in ("2", "escape"):
            event.stop()
            self.dismiss(False)


class ChoiceDialog(Step[str]):
    """Numbered choices, picked with a digit key, arrows + Enter, or a click."""

    def __init__(self, title: str, choices: Iterable[tuple[str, str]], note: str = "") -> None:
        super().__init__(title)
        self.choices = list(choices)
        self.note = note

    def body(self) -> ComposeResult:
        if self.note:
            yield Plain(self.note, classes="step-note")
        with Vertical(classes="choices"):
            for i, (value, label) in enumerate(self.choices, start=1):
                yield Button(plain_label(f"{i}  {label}"), id=f"choice-{i}", classes="choice",
                             name=value)

    def on_mount(self) -> None:
        if self.choices:
            self.query_one("#choice-1", Button).focus()

    @on(Button.Pressed, ".choice")
    def _picked(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.name)

    def on_key(self, event: events.Key) -> None:
        if event.character and event.character in "0123456789":
            n = int(event.character)
            if 1 <= n <= len(self.choices):
                event.stop()
                self.dismiss(self.choices[n - 1][0])
        elif event.key == "down":
            event.stop()
            self.focus_next()
        elif event.key == "up":
            event.stop()
            self.focus_previous()


class TextPrompt(Step[str]):
    """One text field. ``check`` may raise ``PosError`` to reject the value inline."""

    def __init__(self, title: str, label: str, *, value: str = "", password: bool = False,
                 placeholder: str = "", check: Callable[[str], str] | None = None,
                 note: str = "") -> None:
        super().__init__(title)
        self.label = label
        self.value = value
        self.password = password
        self.placeholder = placeholder
        self.check = check
        self.note = note

    def body(self) -> ComposeResult:
        if self.note:
            yield Plain(self.note, classes="step-note")
        yield Label(self.label)
        yield PosInput(self.value, password=self.password, placeholder=self.placeholder,
                    id="prompt-input")
        yield Plain("", id="prompt-error", classes="error-text")

    def on_mount(self) -> None:
        self.query_one("#prompt-input", Input).focus()

    @on(Input.Submitted, "#prompt-input")
    def _submitted(self, event: Input.Submitted) -> None:
        from pos.errors import PosError

        value = event.value
        if self.check is not None:
            try:
                value = self.check(value)
            except PosError as exc:
                self.query_one("#prompt-error", Static).update(exc.message)
                return
        self.dismiss(value)


@dataclass
class Outcome(Generic[T]):
    """What a :class:`BusyScreen` awaited: a value or the exception it raised."""

    value: T | None = None
    error: BaseException | None = None

    def unwrap(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class BusyScreen(ModalScreen[Outcome[T]]):
    """Shows what the terminal is waiting for while it awaits ``work``; no keys."""

    BINDINGS = [Binding("escape", "nothing", show=False)]

    def __init__(self, text: str, work: Awaitable[T]) -> None:
        super().__init__(classes="dialog busy")
        self.text = text
        self._work = work
        self._seconds = 0

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(self.text, classes="dialog-title", markup=False)
            yield Static("Please wait...", id="busy-elapsed")

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)
        self.run_worker(self._run(), group="busy")

    def _tick(self) -> None:
        self._seconds += 1
        self.query_one("#busy-elapsed", Static).update(f"Please wait... {self._seconds} s")

    def action_nothing(self) -> None:
        """Escape does nothing: the request is already on its way."""

    async def _run(self) -> None:
        outcome: Outcome[T] = Outcome()
        try:
            outcome.value = await self._work
        except Exception as exc:
            outcome.error = exc
        await dismiss_when_on_top(self, outcome)


async def dismiss_when_on_top(screen: ModalScreen[R], value: R) -> None:
    """Dismiss ``screen`` once it is the top screen again (the idle lock may be above it):
    ``dismiss`` always pops the top screen."""
    while screen.is_attached and screen.app.screen is not screen:
        await asyncio.sleep(0.1)
    if screen.is_attached:
        screen.dismiss(value)
