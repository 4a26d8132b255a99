"""Tender a basket sale: card (scan, PIN: the existing debit path), cash (tendered and
change, the drawer opens), or split (a card part, then the rest); then the receipt.

A declined card part leaves the sale open and comes back here: the cashier picks
another tender. Leaving with nothing paid abandons the sale (back to the basket).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Button, Static

from pos.errors import Declined, PosError
from screens.dialogs import ChoiceDialog, Step
from screens.entry import AmountScreen
from screens.printing import has_printer, print_in_background
from screens.receipt import ResultScreen
from screens.widgets import Plain, ReceiptView, plain_label

if TYPE_CHECKING:
    from pos.money import Money
    from pos.usecases.sale import Sale
    from screens.app import SentePOSApp

CHOICES = (("card", "Card"), ("cash", "Cash"), ("split", "Split: part by card"))


class TenderScreen(Step[str]):
    """What is due, and how it is paid: 1 card, 2 cash, 3 split."""

    BINDINGS = [Binding("escape", "cancel", "Back"),
                *(Binding(str(i), f"pick('{key}')", show=False)
                  for i, (key, _label) in enumerate(CHOICES, start=1))]

    def __init__(self, sale: Sale) -> None:
        super().__init__("Payment")
        self.sale = sale

    def body(self) -> ComposeResult:
        s = self.sale
        yield Static(f"TO PAY {s.remaining.format()}", id="tender-due", classes="amount-display")
        lines = [f"Total {s.total.format()}  ({len(s.lines)} lines)"]
        for part in s.parts:
            state = "" if part.state == "paid" else f" {part.state.upper()}"
            lines.append(f"  {part.tender} {part.amount.format()}{state}")
        yield Plain("\n".join(lines), id="tender-parts", classes="step-note")
        for i, (key, label) in enumerate(CHOICES, start=1):
            yield Button(plain_label(f"{i}  {label}"), id=f"tender-{key}", classes="choice",
                         name=key)

    def on_mount(self) -> None:
        self.query_one("#tender-card", Button).focus()

    @on(Button.Pressed, ".choice")
    def _picked(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.name)

    def action_pick(self, key: str) -> None:
        self.dismiss(key)


class ChangeScreen(Step[bool]):
    """The change to hand back, big; Enter when done."""

    BINDINGS = [Binding("enter", "done", "Done"), Binding("escape", "done", show=False)]

    def __init__(self, sale: Sale, tendered: Money) -> None:
        super().__init__("Cash")
        self.sale = sale
        self.tendered = tendered

    def body(self) -> ComposeResult:
        change = self.sale.parts[-1].change
        yield Static(f"CHANGE {change.format()}", id="change-due", classes="amount-display")
        yield Plain(f"Tendered {self.tendered.format()}", classes="step-note")
        left = self.sale.remaining
        yield Plain("Paid in full" if left.minor == 0 else f"Still to pay {left.format()}",
                    id="change-left", classes="step-note")
        yield Button("OK", id="change-ok", variant="primary")

    @on(Button.Pressed, "#change-ok")
    def action_done(self) -> None:
        self.dismiss(True)


class SaleReceiptScreen(Step[bool]):
    """The sale's receipt on screen; P prints it (in a thread)."""

    BINDINGS = [Binding("escape", "cancel", "Close"), Binding("enter", "cancel", "Close"),
                Binding("p", "print", "Print")]

    def __init__(self, sale_id: str) -> None:
        super().__init__("Receipt")
        self.sale_id = sale_id

    def body(self) -> ComposeResult:
        from pos.receipts import render_text

        app = self.app
        text = render_text(app.terminal.sale_receipt(self.sale_id), app.settings.printer.columns)
        yield ReceiptView(text, id="receipt-view")

    def action_print(self) -> None:
        app = self.app
        print_in_background(app, app.terminal.print_sale_receipt, self.sale_id)


async def _card_part(app: SentePOSApp, sale: Sale, split: bool) -> Sale:
    from screens.cards import card_tender

    term = app.terminal
    amount = sale.remaining
    if split:
        part = await app.push_screen_wait(AmountScreen(
            "Card part", sale.total.currency, note=f"Due {sale.remaining.format()}: the card "
            "pays this part, cash the rest", maximum=sale.remaining))
        if part is None:
            return sale
        amount = part
    got = await card_tender(app, amount)
    if got is None:
        return sale
    lookup, wallet, pin = got.lookup, got.wallet, got.pin
    try:
        result, sale = await app.busy("Charging the card...",
                                      term.sale_pay_card(sale.id, lookup, amount, wallet, pin))
    except Declined as exc:
        await app.push_screen_wait(ResultScreen("declined", exc.message, amount.format()))
        return term.sale(sale.id)
    finally:
        pin = None
    if result.status == "declined":
        await app.push_screen_wait(ResultScreen(
            "declined", result.message + "\nChoose another way to pay.", amount.format()))
    elif result.status != "approved":
        await app.push_screen_wait(ResultScreen(result.status, result.message, amount.format()))
    return sale


async def _cash_part(app: SentePOSApp, sale: Sale) -> Sale:
    from screens.shift import open_shift

    term = app.terminal
    if app.settings.counter.require_shift and term.current_shift() is None:
        # Asked before the amount tendered, not refused after it: the drawer is opened
        # here with its float, and the sale goes on.
        shift = await open_shift(app, note="No shift is open: count the cash in the "
                                 "drawer to open one, then take this sale's cash")
        if shift is None:
            return sale
        app.notify(f"Shift #{shift.id} open, float {shift.float.format()}")
    tendered = await app.push_screen_wait(AmountScreen(
        "Cash tendered", sale.total.currency, note=f"Due {sale.remaining.format()}"))
    if tendered is None:
        return sale
    try:
        sale = await term.sale_pay_cash(sale.id, tendered)
    except PosError as exc:
        await app.show_message("Cash", exc.message, "warning")
        return sale
    await app.push_screen_wait(ChangeScreen(sale, tendered))
    return sale


async def tender(app: SentePOSApp, sale_id: str) -> bool:
    """Take payment until the sale is paid (True), or the cashier goes back with nothing
    paid (False: the sale is abandoned). A sale part-paid stays here until it is paid."""
    term = app.terminal
    sale = term.sale(sale_id)
    while sale.state == "open":
        choice = await app.push_screen_wait(TenderScreen(sale))
        if choice is None:
            try:
                term.abandon_sale(sale.id)
            except PosError as exc:
                await app.show_message("Payment", exc.message, "warning")
                continue
            return False
        if choice == "cash":
            sale = await _cash_part(app, sale)
        else:
            sale = await _card_part(app, sale, split=choice == "split")
    await app.push_screen_wait(ResultScreen("approved", f"Sale {sale.id} paid "
                                            f"({sale.tender_label()})", sale.total.format()))
    pick = await app.push_screen_wait(ChoiceDialog(
        "Receipt", [("print", "Print"), ("show", "Show on screen"), ("skip", "No receipt")]))
    if pick == "print" and has_printer(app):
        print_in_background(app, term.print_sale_receipt, sale.id)
    elif pick == "print":  # no printer here: the receipt on screen, not a dead end
        app.notify("No printer: the receipt is on screen", severity="warning")
        await app.push_screen_wait(SaleReceiptScreen(sale.id))
    elif pick == "show":
        await app.push_screen_wait(SaleReceiptScreen(sale.id))
    return True
