"""The key hints at the foot of every screen: what Textual's ``Footer`` shows, in one widget.

``Footer`` mounts a widget per key and recomposes whenever the bindings change;
on the counter that was a quarter of the cost of showing a screen (~25 ms of a
cold start, more on a Pi). This bar renders text instead and only repaints when
the bindings change. A tap on a hint presses its key, as on ``Footer``, so a touch
screen can use it. Hints that do not fit one line go on a second (a 480x320
console's 60 columns cut the journal detail's last keys off).
"""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.widget import Widget

#: Lines the bar may take; what does not fit them ends in an ellipsis.
MAX_LINES = 2


class KeyBar(Widget, can_focus=False):
    """``key description`` for each shown binding of the screen, on one line, or two
    when they do not fit."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"key-bar--key", "key-bar--description"}

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: auto;
        max-height: 2;
        width: 100%;
        background: $footer-background;
        color: $footer-foreground;
        .key-bar--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .key-bar--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._spans: list[tuple[int, int, int, Binding, bool]] = []  # line, x0, x1, ...

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, _screen: object) -> None:
        self.refresh(layout=True)  # the hints may now take another number of lines

    def shown(self) -> list[tuple[Binding, bool]]:
        """The bindings to show, one per action (the first key bound to it), in order."""
        seen: dict[str, tuple[Binding, bool]] = {}
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if binding.show and binding.action not in seen:
                seen[binding.action] = (binding, active.enabled)
        return list(seen.values())

    def _hints(self) -> list[tuple[str, str, Binding, bool]]:
        return [(f" {self.app.get_key_display(binding)} ", f"{binding.description} ",
                 binding, enabled) for binding, enabled in self.shown()]

    def _lines(self, width: int) -> list[list[tuple[str, str, Binding, bool]]]:
        """The hints laid out in order, a new line when the next does not fit ``width``
        (at most :data:`MAX_LINES`; the last takes the rest)."""
        lines: list[list[tuple[str, str, Binding, bool]]] = [[]]
        used = 0
        for hint in self._hints():
            cells = cell_len(hint[0]) + cell_len(hint[1])
            if lines[-1] and used + cells > width and len(lines) < MAX_LINES:
                lines.append([])
                used = 0
            lines[-1].append(hint)
            used += cells + 1
        return lines

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines(width))

    def render(self) -> Text:
        key_style = self.get_component_rich_style("key-bar--key")
        text_style = self.get_component_rich_style("key-bar--description")
        out = Text(no_wrap=True, overflow="ellipsis", end="")
        spans: list[tuple[int, int, int, Binding, bool]] = []
        for row, line in enumerate(self._lines(self.size.width or 80)):
            if row:
                out.append("\n")
            x = 0
            for key, description, binding, enabled in line:
                start = len(out)
                out.append(key, key_style)
                out.append(description, text_style)
                if not enabled:
                    out.stylize("dim", start)
                cells = cell_len(key) + cell_len(description)
                spans.append((row, x, x + cells, binding, enabled))
                out.append(" ")
                x += cells + 1
        self._spans = spans
        return out

    def on_click(self, event: events.Click) -> None:
        for row, start, end, binding, enabled in self._spans:
            if row == event.y and start <= event.x < end:
                if enabled:
                    self.app.simulate_key(binding.key.split(",")[0])
                else:
                    self.app.bell()
                return
