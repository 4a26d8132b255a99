"""The end of every sale: the result, then the receipt (print, show or skip)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button

from screens.dialogs import ChoiceDialog, Step
from screens.printing import has_printer, print_in_background
from screens.widgets import Plain, ReceiptView, TokenDisplay

if TYPE_CHECKING:
    from pos.usecases.results import SaleResult
    from screens.app import SentePOSApp

HEADLINES = {
    "approved": ("APPROVED", "result-approved"),
    "declined": ("DECLINED", "result-declined"),
    "offline": ("ACCEPTED OFFLINE", "result-offline"),
    "pending": ("PENDING", "result-offline"),
    "failed": ("FAILED", "result-declined"),
    "refunded": ("FAILED - CARD CREDITED BACK", "result-declined"),
    "review": ("SUPERVISOR NEEDED", "result-declined"),
}

EXPLAIN = {
    "offline": "The link is down. The sale is saved and will be sent automatically.",
    "pending": "The provider has not finished yet. The terminal keeps asking; the token "
               "will be in the journal and can be reprinted.",
    "review": "Do not sell or charge again. A supervisor settles it from the journal "
              "(flagged items) with the customer.",
}


class ResultScreen(Step[bool]):
    """Approved / declined (with the provider's reason) / offline / pending."""

    BINDINGS = [Binding("escape", "done", "Done"), Binding("enter", "done", "Done")]

    def __init__(self, status: str, message: str, amount_text: str = "",
                 token: str | None = None, extra: list[str] | None = None) -> None:
        super().__init__("Result")
        self.status = status
        self.message = message
        self.amount_text = amount_text
        self.token = token
        self.extra = extra or []

    def body(self) -> ComposeResult:
        headline, css = HEADLINES.get(self.status, (self.status.upper(), "result-offline"))
        if self.amount_text:
            headline += f"  {self.amount_text}"
        yield Plain(headline, classes=f"result-headline {css}", id="result-headline")
        if self.token:
            yield TokenDisplay(self.token, id="result-token")
        # The message and the extra lines side by side: with a token's big digits, the
        # OK was below an 80x24 screen when they were stacked.
        with Horizontal(classes="result-notes"):
            if self.message:
                yield Plain(self.message, classes="step-note", id="result-message")
            if self.extra:
                yield Plain("\n".join(self.extra), classes="result-extra")
        if self.status in EXPLAIN:
            yield Plain(EXPLAIN[self.status], classes="step-note")
        yield Button("OK", id="result-ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#result-ok", Button).focus()

    @on(Button.Pressed, "#result-ok")
    def action_done(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(True)


class ReceiptScreen(Step[bool]):
    """The receipt on screen; P prints it."""

    BINDINGS = [Binding("escape", "cancel", "Close"), Binding("p", "print", "Print")]

    def __init__(self, ref: str, *, duplicate: bool = False) -> None:
        super().__init__("Receipt" + (" (DUPLICATE)" if duplicate else ""))
        self.ref = ref
        self.duplicate = duplicate

    def body(self) -> ComposeResult:
        from pos.receipts import render_text

        app = self.app
        receipt = app.terminal.receipt(self.ref, duplicate=self.duplicate)
        text = render_text(receipt, app.settings.printer.columns)
        yield ReceiptView(text, id="receipt-view")

    def action_print(self) -> None:
        app = self.app
        print_in_background(app, app.terminal.print_receipt, self.ref, duplicate=self.duplicate)

    def on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            self.dismiss(True)


async def offer_receipt(app: SentePOSApp, ref: str, *, duplicate: bool = False) -> None:
    """Print / show / skip."""
    choice = await app.push_screen_wait(
        ChoiceDialog("Receipt", [("print", "Print"), ("show", "Show on screen"),
                                 ("skip", "No receipt")])
    )
    if choice == "print" and has_printer(app):
        print_in_background(app, app.terminal.print_receipt, ref, duplicate=duplicate)
    elif choice == "print":  # no printer here: the receipt on screen, not a dead end
        app.notify("No printer: the receipt is on screen", severity="warning")
        await app.push_screen_wait(ReceiptScreen(ref, duplicate=duplicate))
    elif choice == "show":
        await app.push_screen_wait(ReceiptScreen(ref, duplicate=duplicate))


async def finish_sale(app: SentePOSApp, result: SaleResult, amount_text: str = "",
                      extra: list[str] | None = None) -> None:
    """Show a ``SaleResult`` and, unless it was declined, offer its receipt."""
    await app.push_screen_wait(ResultScreen(result.status, result.message, amount_text,
                                            token=result.token, extra=extra))
    if result.status != "declined":
        await offer_receipt(app, result.ref)
