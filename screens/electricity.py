"""Electricity token: meter (instant Luhn check) -> verify -> name -> amount -> tender ->
vend (pending shown) -> token in large groups of four -> receipt. Also: reprint last token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Label, Static

from pos.errors import Declined, InputError, LinkDown, QuoteExpired
from pos.meter import validate_meter
from screens.cards import card_tender, confirm_charge
from screens.dialogs import ChoiceDialog, ConfirmDialog, Step
from screens.entry import AmountScreen
from screens.printing import has_printer, print_in_background
from screens.receipt import ReceiptScreen, ResultScreen, offer_receipt
from screens.widgets import Plain, PosInput

if TYPE_CHECKING:
    from pos.money import Money
    from pos.usecases.electricity import TenderName
    from pos.usecases.quotes import Quote
    from pos.usecases.results import CardLookup, SaleResult
    from screens.app import SentePOSApp

Info = TypeVar("Info")


class Sell(Protocol):
    """A sale paid by one tender: ``Terminal.sell_token`` or ``Terminal.pay_bill`` with
    its customer and amount bound (see :func:`pay_with`)."""

    def __call__(self, *, tender: TenderName, card: CardLookup | None, wallet: str | None,
                 pin: str | None, quote: Quote | None) -> Awaitable[SaleResult]: ...


class NumberScreen(Step[str]):
    """A meter or account number with feedback on every keystroke."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("f2", "reprint", "Reprint last")]

    def __init__(self, title: str, label: str, check: Callable[[str], str], *,
                 reprint: bool = False) -> None:
        super().__init__(title)
        self.label = label
        self.check = check
        self.reprint = reprint

    def body(self) -> ComposeResult:
        yield Label(self.label)
        yield PosInput(id="number-input", restrict=r"[0-9 \-]*", max_length=20)
        yield Plain("", id="number-feedback")
        if self.reprint:
            yield Static("F2: reprint the last token", classes="step-note")

    def on_mount(self) -> None:
        self.query_one("#number-input", Input).focus()

    def _feedback(self, text: str, ok: bool) -> None:
        fb = self.query_one("#number-feedback", Static)
        fb.update(text)
        fb.set_class(ok, "ok-text")
        fb.set_class(not ok, "error-text")

    @on(Input.Changed, "#number-input")
    def _changed(self, event: Input.Changed) -> None:
        if not event.value.strip():
            self._feedback("", True)
            return
        try:
            value = self.check(event.value)
        except InputError as exc:
            self._feedback(exc.message, False)
        else:
            self._feedback(f"{value}: number OK, press Enter", True)

    @on(Input.Submitted, "#number-input")
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            value = self.check(event.value)
        except InputError as exc:
            self._feedback(exc.message, False)
            return
        self.dismiss(value)

    def action_reprint(self) -> None:
        if self.reprint:
            self.dismiss("reprint")


async def choose_tender(app: SentePOSApp, amount_text: str) -> TenderName | None:
    picked = await app.push_screen_wait(
        ChoiceDialog("How does the customer pay?", [("cash", "Cash"), ("card", "Card")],
                     note=f"Amount {amount_text}"))
    if picked is None:
        return None
    return "card" if picked == "card" else "cash"


async def verify_or_offline(app: SentePOSApp, check: Awaitable[Info],
                            what: str) -> Info | Literal[False] | None:
    """The customer check (meter or account); when PawaCard cannot answer in any form
    (down, a gateway error, a portal, a timeout) the sale goes on offline: None.

    Returns the info, None for "offline: go on for cash", or False (the cashier
    stopped)."""
    try:
        return await app.busy(f"Checking the {what}...", check)
    except LinkDown as exc:
        go_on = await app.push_screen_wait(ConfirmDialog(
            "PawaCard is offline",
            f"The {what} cannot be checked now ({exc.message}).\n\nSell for CASH anyway? "
            "The sale is queued and the token comes when the link is back "
            "(the receipt says TOKEN PENDING)."))
        return None if go_on else False


async def pay_with(app: SentePOSApp, amount: Money, call: Sell, busy_text: str, *,
                   cash_only: bool = False) -> SaleResult | None:
    """Ask the tender (and the card) then run ``call(tender=..., card=..., wallet=..., pin=...)``.

    ``cash_only``: the link is down, so a card cannot pay for electricity now.
    Returns the SaleResult, or None when cancelled or declined (already shown)."""
    tender = "cash" if cash_only else await choose_tender(app, amount.format())
    if tender is None:
        return None
    paid = None
    if tender == "card":
        paid = await card_tender(app, amount)
        if paid is None:
            return None
    pin, quote = (paid.pin, paid.quote) if paid is not None else (None, None)
    try:
        while True:
            try:
                return await app.busy(busy_text, call(
                    tender=tender, card=paid.lookup if paid else None,
                    wallet=paid.wallet if paid else None, pin=pin, quote=quote))
            except QuoteExpired:
                if paid is None:
                    raise
                # The rate expired between the PIN and the sale: the customer sees the new
                # amount and types the PIN for it (nothing was sent).
                pin = None
                again = await confirm_charge(app, paid.lookup, amount, paid.wallet,
                                             renewed=True)
                if again is None:
                    return None
                quote, pin = again
    except Declined as exc:
        await app.push_screen_wait(ResultScreen("declined", exc.message, amount.format()))
        return None
    finally:
        pin = paid = None


def charge_lines(result: SaleResult) -> list[str]:
    lines = []
    if result.units:
        lines.append(f"Units: {result.units}")
    for charge in result.txn.charges:
        lines.append(f"{charge.get('name', '')}: {charge.get('amount', '')}")
    if result.refund_ref:
        lines.append(f"Card credited back (ref {result.refund_ref})")
    return lines


async def settle_pending(app: SentePOSApp, result: SaleResult) -> SaleResult:
    """A pending vend or bill: poll in front of the cashier; the sync worker goes on after."""
    if result.status != "pending":
        return result
    return await app.busy("Token pending: asking PawaCard again...",
                          app.terminal.wait_settled(result.ref))


async def electricity(app: SentePOSApp) -> None:
    term = app.terminal
    meter = await app.push_screen_wait(
        NumberScreen("Electricity token", "Meter number", validate_meter, reprint=True))
    if meter is None:
        return
    if meter == "reprint":
        await reprint_last_token(app)
        return
    throttled = term.meter_throttled(meter)
    if throttled is not None:  # refused here, before an amount, a card or a PIN
        await app.show_message("Electricity token", throttled, "warning")
        return
    info = await verify_or_offline(app, term.verify_meter(meter), "meter")
    if info is False:
        return
    name = info.customer_name if info is not None else ""
    if info is not None and not await app.push_screen_wait(ConfirmDialog(
            "Confirm the customer", f"Meter {info.meter}\nName: {info.customer_name}\n\n"
            "Is this the customer's name?")):
        return
    currency = app.settings.pawacard.currency
    note = f"Meter {meter}  {name}" if name else f"Meter {meter}  (offline: cash only)"
    amount = await app.push_screen_wait(AmountScreen("Token amount", currency, note=note))
    if amount is None:
        return

    def vend(*, tender: TenderName, card: CardLookup | None, wallet: str | None,
             pin: str | None, quote: Quote | None) -> Awaitable[SaleResult]:
        return term.sell_token(meter, amount, name, tender=tender, card=card, wallet=wallet,
                               pin=pin, quote=quote)

    result = await pay_with(app, amount, vend, "Vending the token...", cash_only=info is None)
    if result is None:
        return
    result = await settle_pending(app, result)
    await app.push_screen_wait(ResultScreen(result.status, result.message, amount.format(),
                                            token=result.token, extra=charge_lines(result)))
    if result.status != "declined":
        await offer_receipt(app, result.ref)


async def reprint_last_token(app: SentePOSApp) -> None:
    ref = app.terminal.last_token_ref()
    if ref is None:
        await app.show_message("Reprint", "No token has been sold on this terminal yet.")
        return
    if has_printer(app):
        print_in_background(app, app.terminal.print_receipt, ref, duplicate=True)
    await app.push_screen_wait(ReceiptScreen(ref, duplicate=True))


__all__ = ["NumberScreen", "electricity", "pay_with", "verify_or_offline"]
