"""The journal's basket sales (S): a cash-only sale has no journal row of its own, so
this is where it is found again. A sale's detail: its receipt, its parts (G opens the
card part's journal row), a DUPLICATE reprint and the void (supervisor)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding

from pos.text import printable
from screens.journal import VoidableDetail
from screens.printing import has_printer, print_in_background
from screens.widgets import Plain, ReceiptView

if TYPE_CHECKING:
    import datetime as dt

    from pos.usecases.sale import Sale


def sale_row(sale: Sale, *, narrow: bool = False, today: dt.date | None = None
             ) -> tuple[Text, ...]:
    """The journal list's columns (screens.journal.COLUMNS) for a basket sale."""
    from screens.journal import row_cells

    return row_cells(sale.created_at, narrow, today, ref=sale.id, kind="sale",
                     state=sale.state, amount=sale.total.format(), who=sale.tender_label())


class SaleDetailScreen(VoidableDetail):
    """One basket sale: state, parts, the receipt; R reprints it (DUPLICATE), O voids
    it when it can be voided, G opens the card part's journal row."""

    BINDINGS = [
        Binding("escape", "cancel", "Back"),
        Binding("r", "reprint", "Reprint DUPLICATE"),
        Binding("o", "void", "Void"),
        Binding("p", "void_receipt", "Void receipt"),
        Binding("g", "linked", "Card part"),
    ]

    def __init__(self, sale_id: str) -> None:
        super().__init__(f"Sale {sale_id}", sale_id)
        self.sale_id = sale_id

    def body(self) -> ComposeResult:
        from pos.receipts import render_text

        app = self.app
        sale = app.terminal.sale(self.sale_id)
        self.voidable = app.terminal.void_check(self.sale_id)
        self.voided = sale.state == "voided"
        self.linked = next((p.txn_ref for p in sale.parts if p.txn_ref), None)
        rows = [f"State      {sale.state}", f"Total      {sale.total.format()}",
                f"Operator   {sale.operator}"]
        for part in sale.parts:
            extra = f" (ref {part.txn_ref})" if part.txn_ref else ""
            rows.append(f"  {part.tender} {part.amount.format()} {part.state}{extra}")
        if not self.voidable.ok and not self.voided:
            rows.append(f"Void       not possible: {self.voidable.why_not}")
        yield Plain("\n".join(printable(r) for r in rows), classes="summary",
                    id="sale-fields")
        text = render_text(app.terminal.sale_receipt(self.sale_id), app.settings.printer.columns)
        yield ReceiptView(text, id="sale-receipt-view")

    def void_label(self) -> str:
        sale = self.app.terminal.sale(self.sale_id)
        return f"sale {sale.id} {sale.total.format()}"

    def action_reprint(self) -> None:
        app = self.app
        if has_printer(app):
            print_in_background(app, app.terminal.print_sale_receipt, self.sale_id,
                                duplicate=True)
        else:
            app.notify("No printer: the receipt is on screen", severity="warning")
