"""Card summary and the steps shared by every card-paid flow (wallet, hand-over, PIN)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, NamedTuple

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Button, Static

from pos.errors import ProviderError
from pos.money import Money
from screens.dialogs import ChoiceDialog, Step
from screens.entry import PinScreen
from screens.handover import ReadyStep
from screens.scan import ScanScreen
from screens.widgets import ChargePanel, Plain

if TYPE_CHECKING:
    from pos.usecases.quotes import Quote
    from pos.usecases.results import CardLookup
    from screens.app import SentePOSApp

#: In place of a wallet's figures where no one proved they may see them.
BALANCE_HIDDEN = "balance for the holder only"


def summary_lines(lookup: CardLookup, *, balances: bool = False) -> list[tuple[str, str]]:
    """Label/value rows describing a looked-up card for the cashier. ``balances``: the
    wallets' figures too, only where a supervisor approved (top-up, Card services >
    Balance): the card's QR is printed on it, and reading it must not tell anyone the
    holder's balance (issue 13)."""
    card = lookup.card
    rows = [
        ("Card", f"{card.card_type} {card.number}"),
        ("Expiry", card.expiry),
        ("Status", lookup.status + ("  (offline: last known)" if lookup.offline else "")),
        ("PIN required", "yes" if lookup.has_pin else "no"),
    ]
    info = lookup.info
    for wallet in lookup.wallets:
        if not balances:
            value = BALANCE_HIDDEN
        elif info is not None:
            if "credit" in wallet.lower():
                value = (f"{info.available_credit.format()} available "
                         f"(limit {info.credit_limit.format()})")
            else:
                value = info.current_balance.format()
        else:
            value = "balance unknown offline"
        rows.append((wallet, value))
    return rows


def payment_refusals(lookup: CardLookup) -> list[str]:
    """Why this card cannot pay (locked, inactive, expired: decided at look-up; the
    debit use case refuses the same, pos.usecases.cards). A card without a PIN pays
    without one, as the issuer allows."""
    return list(lookup.problems)


class CardSummaryScreen(Step[bool]):
    """What the issuer says about the card; Enter continues, Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("enter", "go", "Continue")]

    def __init__(self, lookup: CardLookup, title: str = "Card", *, paying: bool = False,
                 balances: bool = False,
                 activating: Literal["gift", "sente"] | None = None) -> None:
        super().__init__(title)
        self.lookup = lookup
        self.balances = balances
        #: For a payment, a card that cannot pay (locked, inactive, expired, no PIN) is
        #: refused here, before an amount, a hand-over or a PIN is asked for; for an
        #: activation, a card that cannot be activated, before a PIN or the KYC.
        self._refusals = (payment_refusals(lookup) if paying else
                          lookup.activation_problems(activating) if activating else [])
        self._what = "pay" if paying else "be activated"
        self.refused = bool(self._refusals)

    def body(self) -> ComposeResult:
        rows = summary_lines(self.lookup, balances=self.balances)
        width = max(len(label) for label, _ in rows) + 2
        text = "\n".join(f"{label:<{width}}{value}" for label, value in rows)
        yield Plain(text, classes="summary", id="card-summary")
        problems = self._refusals if self.refused else self.lookup.problems
        for problem in problems:
            yield Plain(f"{self.app_glyph('warn')} {problem}", classes="error-text")
        if self.refused:
            advice = ("ask for another card or another tender" if self._what == "pay"
                      else "nothing was changed")
            yield Static(f"This card cannot {self._what}: {advice}.", classes="step-note")
            yield Button("Back", id="card-continue", variant="primary")
            return
        if self.lookup.offline:
            yield Static("The card service cannot be reached: the sale will be accepted "
                         "offline within the limits and sent later.", classes="step-note")
        yield Button("Continue", id="card-continue", variant="primary")

    def app_glyph(self, name: str) -> str:
        return self.app.glyphs.get(name, "!")

    def on_mount(self) -> None:
        self.query_one("#card-continue", Button).focus()

    @on(Button.Pressed, "#card-continue")
    def action_go(self) -> None:
        self.dismiss(not self.refused)

    def action_cancel(self) -> None:
        self.dismiss(False)


class HandOverScreen(ReadyStep):
    """Tells the cashier to hand the terminal to the customer, who sees what the card will
    be charged (the quote: in the card's currency, with the sale amount and the rate when
    converted) before typing the PIN."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("enter", "go", "Customer ready")]
    READY_ID = "handover-ok"

    def __init__(self, quote: Quote, wallet: str, *, renewed: bool = False) -> None:
        super().__init__("Hand the terminal to the customer")
        self.quote = quote
        self.wallet = wallet
        self.renewed = renewed

    def body(self) -> ComposeResult:
        if self.renewed:
            yield Plain("The exchange rate was renewed: check the new amount.",
                        classes="error-text", id="handover-renewed")
        yield ChargePanel(self.quote, self.wallet, id="handover-amount")
        yield Static("Customer: check the amount, then press Enter (or OK) to type your PIN.",
                     classes="step-note")
        yield Button("OK", id=self.READY_ID, variant="primary")


async def scan_card(app: SentePOSApp, title: str = "Scan the card",
                    payload: str | None = None) -> CardLookup | None:
    """Scan and look a card up; None when the cashier cancels."""
    return await app.push_screen_wait(ScanScreen(title, payload=payload))


async def choose_wallet(app: SentePOSApp, lookup: CardLookup,
                        amount: Money | None = None) -> str | None:
    """The wallet to debit: asked only when the card has more than one."""
    wallets = list(lookup.wallets) or [app.settings.patasente.default_wallet]
    if len(wallets) == 1:
        return wallets[0]
    choices = [(wallet, wallet) for wallet in wallets]  # no figures: see summary_lines
    note = f"Amount {amount.format()}" if amount is not None else ""
    result: str | None = await app.push_screen_wait(ChoiceDialog("Which wallet?", choices, note))
    return result


async def customer_pin(app: SentePOSApp, lookup: CardLookup, quote: Quote, wallet: str, *,
                       renewed: bool = False) -> tuple[bool, str | None]:
    """Hand-over then PIN pad, both showing ``quote``. Returns (go on?, pin); the pin is
    None when not needed."""
    if not await app.push_screen_wait(HandOverScreen(quote, wallet, renewed=renewed)):
        return False, None
    if not lookup.has_pin:
        return True, None
    screen = PinScreen(f"PIN for {quote.charge.format()}", timeout=app.pin_timeout,
                       charge=quote, wallet=wallet)
    pin = await app.push_screen_wait(screen)
    if pin is None:
        if screen.timed_out:
            await app.show_message("PIN", "No PIN was typed in time: nothing was charged.",
                                   "warning")
        return False, None
    return True, pin


async def fetch_quote(app: SentePOSApp, lookup: CardLookup, amount: Money) -> Quote | None:
    """The sale's one quote (a conversion behind a wait box when the currencies differ);
    None, after telling the cashier, when Patasente cannot work it out now."""
    term = app.terminal
    if amount.currency == lookup.card.currency:
        quote: Quote = await term.quote(lookup, amount)  # no request
        return quote
    try:
        quote = await app.busy("Working out the card's amount...", term.quote(lookup, amount))
    except ProviderError as exc:  # any link failure or an answer we cannot use
        await app.show_message(
            "Exchange rate", f"The card's amount cannot be worked out now ({exc.message}). "
            "Nothing was charged: take cash or try again.", "warning")
        return None
    return quote


async def confirm_charge(app: SentePOSApp, lookup: CardLookup, amount: Money, wallet: str, *,
                         renewed: bool = False) -> tuple[Quote, str | None] | None:
    """One quote, shown on the hand-over and PIN screens, and the PIN typed for it.

    A quote that expired before the PIN was confirmed is fetched again and shown again
    before a new PIN: the debit is always the amount the customer saw."""
    while True:
        quote = await fetch_quote(app, lookup, amount)
        if quote is None:
            return None
        ok, pin = await customer_pin(app, lookup, quote, wallet, renewed=renewed)
        if not ok:
            return None
        if app.terminal.quote_fresh(quote):
            return quote, pin
        pin, renewed = None, True  # typed for a rate that no longer holds: ask again


class CardTender(NamedTuple):
    lookup: CardLookup
    wallet: str
    pin: str | None
    quote: Quote


async def card_tender(app: SentePOSApp, amount: Money,
                      payload: str | None = None) -> CardTender | None:
    """Scan, summary, wallet, quote, hand-over and PIN for paying ``amount`` by card."""
    lookup = await scan_card(app, payload=payload)
    if lookup is None or not await app.push_screen_wait(CardSummaryScreen(lookup,
                                                                          paying=True)):
        return None
    wallet = await choose_wallet(app, lookup, amount)
    if wallet is None:
        return None
    got = await confirm_charge(app, lookup, amount, wallet)
    if got is None:
        return None
    quote, pin = got
    return CardTender(lookup, wallet, pin, quote)
