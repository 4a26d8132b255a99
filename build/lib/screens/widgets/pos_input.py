"""Input that honours the app's ``cursor_blink`` switch (off in snapshots and tests)."""

from __future__ import annotations

from textual.widgets import Input


class PosInput(Input):
    def on_mount(self) -> None:
        self.cursor_blink = bool(getattr(self.app, "cursor_blink", True))
