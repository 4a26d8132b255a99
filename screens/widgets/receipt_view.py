"""A receipt as the printer would print it (plain text, 32 or 48 columns)."""

from __future__ import annotations

from textual.containers import VerticalScroll

from screens.widgets.plain import Plain


class ReceiptView(VerticalScroll):
    """Scrollable paper-like view of ``pos.receipts.render_text`` output."""

    def __init__(self, text: str, *, id: str | None = None) -> None:
        super().__init__(Plain(text, classes="receipt-paper"), id=id)
        self.text = text
