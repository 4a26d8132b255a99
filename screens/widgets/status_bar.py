"""The always-visible status bar: link, unsynced sales, floats, operator, clock.

The app reads ``terminal.status()`` once a second (``app.current_status()``)
and repaints the bars of the visible screen; bars on screens underneath do not
query anything.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widget import Widget

if TYPE_CHECKING:
    from textual import getters

    from pos.terminal import TerminalStatus
    from screens.app import SentePOSApp


def format_status(status: TerminalStatus, now: datetime, g: dict[str, str]) -> tuple[Text, Text]:
    """The two lines of the bar for a ``TerminalStatus``."""
    sep = f" {g['sep']} "
    top = Text()
    if status.online:
        top.append(f"{g['online']} ONLINE", style="bold green")
    else:
        top.append(f"{g['offline']} OFFLINE", style="bold red")
    top.append(sep)
    if status.unsynced_count:
        totals = ", ".join(m.format() for m in status.unsynced_total) or ""
        top.append(f"Unsynced {status.unsynced_count}", style="bold yellow")
        if totals:
            top.append(f" {totals}")
        top.append(" [F5 sync]", style="dim")
    else:
        top.append("All synced")
    if status.flagged_count:
        top.append(sep)
        top.append(f"{g['warn']} Flagged {status.flagged_count}", style="bold red")
    top.append(sep)
    top.append(status.operator or "signed out", style="bold")
    top.append(sep)
    top.append(now.strftime("%H:%M"))

    bottom = Text()
    bottom.append("PawaCard ")
    bottom.append(status.pawacard_float.format() if status.pawacard_float else "--")
    bottom.append(sep)
    bottom.append("Patasente ")
    bottom.append(status.patasente_float.format() if status.patasente_float else "--")
    if status.low_float:
        bottom.append(sep)
        bottom.append(f"{g['warn']} LOW FLOAT", style="bold red")
    warning = status.clock_warning
    if warning:
        bottom.append(sep)
        bottom.append(f"{g['warn']} {warning}", style="bold yellow")
    return top, bottom


class StatusBar(Widget):
    """Two lines at the top of every screen."""

    if TYPE_CHECKING:
        app = getters.app(SentePOSApp)

    DEFAULT_CSS = """
    StatusBar { dock: top; height: 2; width: 100%; background: $panel; color: $foreground;
                padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def render(self) -> Text:
        app = self.app
        try:
            status = app.current_status()
        except Exception:  # the bar must never take the screen down
            return Text("status unavailable")
        top, bottom = format_status(status, app.now(), app.glyphs)
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append_text(top)
        out.append("\n")
        out.append_text(bottom)
        return out
