"""Text that may have come from a provider (a customer or wallet name, a decline
message): shown as plain text, never as markup, never with a control character."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.content import Content
from textual.widgets import Static

if TYPE_CHECKING:
    from textual.visual import VisualType

from pos.text import printable


class Plain(Static):
    """A :class:`Static` whose string content goes through :func:`pos.text.printable`
    (line breaks kept) on construction and on every :meth:`update`, with markup off."""

    def __init__(self, content: str = "", **kwargs: Any) -> None:
        kwargs.pop("markup", None)
        super().__init__(printable(content, one_line=False), markup=False, **kwargs)

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        if isinstance(content, str):
            content = printable(content, one_line=False)
        super().update(content, layout=layout)


def plain_label(text: str) -> Content:
    """A one-line label (a button's) from text that may hold markup or controls."""
    return Content(printable(text))
