"""The home screen: ten big numbered choices (1-9, 0), usable from a numeric keypad."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import Button, Label

from screens.widgets import KeyBar, StatusBar

if TYPE_CHECKING:
    from textual import getters

    from screens.app import SentePOSApp, Task

#: Each task (screens.app.Task, its flow in SentePOSApp.flow) and its label.
CHOICES: tuple[tuple[Task, str], ...] = (
    ("card", "Card payment"),
    ("token", "Electricity token"),
    ("bill", "Electricity bill"),
    ("services", "Card services"),
    ("journal", "Journal"),
    ("reports", "Reports"),
    ("sync", "Sync"),
    ("settings", "Settings"),
    ("sale", "Sale (basket)"),
    ("shift", "Shift / drawer"),
)

#: The key of each choice: 1-9, then 0.
KEYS = tuple(str(i % 10) for i in range(1, len(CHOICES) + 1))


class HomeScreen(Screen[None]):
    """Pick a task with 1-9 and 0 (or arrows and Enter, or a tap)."""

    if TYPE_CHECKING:
        app = getters.app(SentePOSApp)

    SWALLOW_WEDGE_BURSTS = True

    BINDINGS = [
        *(Binding(k, f"choose('{key}')", label, show=False)
          for k, (key, label) in zip(KEYS, CHOICES, strict=True)),
        Binding("down,right", "app.focus_next", show=False),
        Binding("up,left", "app.focus_previous", show=False),
        Binding("l", "lock", "Lock"),
        Binding("q", "app.quit", "Quit"),
    ]

    def compose(self) -> ComposeResult:
        app = self.app
        yield StatusBar()
        yield Label(f"{app.settings.merchant_name}  -  {app.settings.terminal_id}",
                    id="home-title", markup=False)
        with Grid(id="home-grid"):
            for k, (key, label) in zip(KEYS, CHOICES, strict=True):
                button = Button(f"{k}  {label}", id=f"home-{key}", classes="home-choice")
                yield button
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#home-card", Button).focus()

    def on_screen_resume(self) -> None:
        self.app.refresh_status()

    @on(Button.Pressed, ".home-choice")
    def _pressed(self, event: Button.Pressed) -> None:
        self.action_choose((event.button.id or "").removeprefix("home-"))

    def action_choose(self, key: str) -> None:
        """Start the task named ``key`` (from a digit binding or a button's id)."""
        for task, _label in CHOICES:
            if task == key:
                self.app.start_task(task)

    def action_lock(self) -> None:
        self.app.lock()

    def on_wedge_scan(self, payload: str) -> None:
        """A card scanned with the keyboard-wedge scanner on the home screen starts a payment."""
        self.app.start_task("card", payload=payload)
