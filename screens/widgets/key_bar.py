"""The key hints at the foot of every screen: what Textual's ``Footer`` shows, in one widget.

``Footer`` mounts a widget per key and recomposes whenever the bindings change;
on the counter that was a quarter of the cost of showing a screen (~25 ms of a
cold start, more on a Pi). This bar renders one line of text instead and only
repaints when the bindings change. A tap on a hint presses its key, as on
``Footer``, so a touch screen can use it.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widget import Widget


class KeyBar(Widget, can_focus=False):
    """One line: ``key description`` for each shown binding of the screen."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"key-bar--key", "key-bar--description"}

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
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
        self._spans: list[tuple[int, int, Binding, bool]] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, _screen: object) -> None:
        self.refresh()

    def shown(self) -> list[tuple[Binding, bool]]:
        """The bindings to show, one per action (the first key bound to it), in order."""
        seen: dict[str, tuple[Binding, bool]] = {}
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if binding.show and binding.action not in seen:
                seen[binding.action] = (binding, active.enabled)
        return list(seen.values())

    def render(self) -> Text:
        key_style = self.get_component_rich_style("key-bar--key")
        text_style = self.get_component_rich_style("key-bar--description")
        out = Text(no_wrap=True, overflow="ellipsis", end="")
        spans: list[tuple[int, int, Binding, bool]] = []
        for binding, enabled in self.shown():
            start = len(out)
            out.append(f" {self.app.get_key_display(binding)} ", key_style)
            out.append(f"{binding.description} ", text_style)
            if not enabled:
                out.stylize("dim", start)
            spans.append((start, len(out), binding, enabled))
            out.append(" ")
        self._spans = spans
        return out

    def on_click(self, event: events.Click) -> None:
        for start, end, binding, enabled in self._spans:
            if start <= event.x < end:
                if enabled:
                    self.app.simulate_key(binding.key.split(",")[0])
                else:
                    self.app.bell()
                return
