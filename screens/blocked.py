"""The screen shown instead of the counter when the terminal must not sell: a damaged or
missing journal, a data directory that cannot be written. No key leads to a sale."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Label

from screens.widgets import Plain

TITLE = "SELLING IS STOPPED"


class BlockedScreen(Screen[None]):
    """A full screen with the reason and what to do; it cannot be dismissed."""

    BINDINGS = [Binding("escape", "nothing", show=False)]
    DEFAULT_CSS = """
    BlockedScreen { align: center middle; }
    BlockedScreen > Vertical { width: 90%; height: auto; border: solid $error;
                               padding: 1 2; }
    BlockedScreen #blocked-title { text-style: bold; color: $error; width: 100%;
                                   content-align: center middle; }
    """

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(TITLE, id="blocked-title")
            yield Plain(self.message, id="blocked-message")
            yield Plain("Call the supervisor. Ctrl+Q closes the program.", id="blocked-hint")

    def action_nothing(self) -> None:
        """Nothing leaves this screen but fixing the cause and restarting."""


class BlockedApp(App[int]):
    """Run when the terminal cannot even be opened (``sente-pos run`` / ``demo``)."""

    TITLE = "Sente POS"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
                Binding("ctrl+c", "quit", show=False, priority=True)]

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def on_mount(self) -> None:
        self.push_screen(BlockedScreen(self.message))

    async def action_quit(self) -> None:
        self.exit(1)
