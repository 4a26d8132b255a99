"""Keypad steps: an amount in a currency, and the customer's PIN."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Static

from pos.errors import InputError
from pos.money import Money, exponent, parse_user_amount
from screens.dialogs import Step
from screens.widgets import ChargePanel, KeyPressed, NumericKeypad, PinPad, Plain
from screens.widgets.keypad import key_from_event

if TYPE_CHECKING:
    from pos.usecases.quotes import Quote


def grouped(typed: str) -> str:
    """What was typed, with thousands separators: ``1500000.5`` shows ``1,500,000.5``."""
    whole, dot, fraction = typed.partition(".")
    return f"{int(whole or 0):,}{dot}{fraction}"


class AmountScreen(Step[Money]):
    """Type an amount on the keypad (or keyboard); Enter confirms."""

    MAX_DIGITS = 12

    def __init__(self, title: str, currency: str, *, note: str = "",
                 minimum: Money | None = None, maximum: Money | None = None,
                 allow_zero: bool = False) -> None:
        super().__init__(title)
        self.allow_zero = allow_zero  # a count or a float may be nothing at all
        self.currency = currency.upper()
        self.note = note
        self.minimum = minimum
        self.maximum = maximum
        self.text = ""

    def body(self) -> ComposeResult:
        if self.note:
            yield Plain(self.note, classes="step-note")
        yield Static(self._display(), id="amount-display", classes="amount-display")
        yield Plain("", id="amount-error", classes="error-text")
        yield NumericKeypad(id="amount-keypad")

    def _display(self) -> str:
        return f"{self.currency} {grouped(self.text)}"

    def _update(self, error: str = "") -> None:
        self.query_one("#amount-display", Static).update(self._display())
        self.query_one("#amount-error", Static).update(error)

    def press(self, key: str) -> None:
        if len(key) == 1 and key in "0123456789":
            if len(self.text.replace(".", "")) < self.MAX_DIGITS and self.text != "0":
                self.text += key
            elif self.text == "0":
                self.text = key
        elif key == "." and exponent(self.currency) and "." not in self.text:
            self.text = (self.text or "0") + "."
        elif key == "back":
            self.text = self.text[:-1]
        elif key == "clear":
            self.text = ""
        elif key == "ok":
            self.confirm()
            return
        self._update()

    def confirm(self) -> None:
        try:
            if self.allow_zero and not (self.text or "0").strip("0."):
                self.dismiss(Money.zero(self.currency))
                return
            money = parse_user_amount(self.text or "0", self.currency)
            if self.minimum is not None and money < self.minimum:
                raise InputError(f"The smallest amount is {self.minimum.format()}")
            if self.maximum is not None and money > self.maximum:
                raise InputError(f"The largest amount is {self.maximum.format()}")
        except InputError as exc:
            self._update(exc.message)
            return
        self.dismiss(money)

    @on(KeyPressed)
    def _keypad(self, event: KeyPressed) -> None:
        self.press(event.key)

    def on_key(self, event: events.Key) -> None:
        key = "." if event.character == "." else key_from_event(event.key, event.character)
        if key is not None:
            event.stop()
            event.prevent_default()
            self.press(key)


class PinScreen(Step[str]):
    """The customer's (or a supervisor's) 4-digit PIN, masked; times out when left alone."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, prompt: str = "Type your 4-digit PIN, then OK",
                 *, timeout: float = 60.0, charge: Quote | None = None,
                 wallet: str = "") -> None:
        super().__init__(title)
        self.prompt = prompt
        self.timeout = timeout
        self.timed_out = False
        self._idle = 0.0
        #: The quote (pos.usecases.quotes.Quote) the PIN agrees to: shown beside the pad.
        self.charge = charge
        self.wallet = wallet

    def body(self) -> ComposeResult:
        yield Plain(self.prompt, classes="step-note")
        g = self.app.glyphs
        pad = PinPad(set_glyph=g.get("pin_set", "*"), empty_glyph=g.get("pin_empty", "_"),
                     id="pin-pad")
        if self.charge is None:
            yield pad
        else:
            with Horizontal(id="pin-layout"):
                yield ChargePanel(self.charge, self.wallet, id="pin-charge")
                yield pad
        yield Static("", id="pin-error", classes="error-text")

    def on_mount(self) -> None:
        if self.timeout > 0:
            self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        self._idle += 1.0
        if self._idle >= self.timeout:
            self.timed_out = True
            self.query_one("#pin-pad", PinPad).take()
            self.dismiss(None)

    def press(self, key: str) -> None:
        self._idle = 0.0
        pad = self.query_one("#pin-pad", PinPad)
        if key == "ok":
            if pad.complete:
                self.dismiss(pad.take())
            else:
                self.query_one("#pin-error", Static).update("The PIN has 4 digits")
            return
        self.query_one("#pin-error", Static).update("")
        pad.press(key)

    @on(KeyPressed)
    def _keypad(self, event: KeyPressed) -> None:
        event.stop()
        self.press(event.key)

    def on_key(self, event: events.Key) -> None:
        key = key_from_event(event.key, event.character)
        if key is not None:
            event.stop()
            event.prevent_default()
            self.press(key)
