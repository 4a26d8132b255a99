"""What the card will be charged, shown to the customer before the PIN.

The card's amount in big digits (the token font), then in words the line the customer
agrees to, and, when the sale is in another currency, the sale amount and the rate. The
big digits give way to one bold line when the panel is too narrow for them, so nothing is
ever clipped (80x24, or a 480x320 display's console of about 60x20 cells).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget

from pos.money import Money
from screens.widgets.plain import Plain
from screens.widgets.token_display import big_digits

if TYPE_CHECKING:
    from textual.geometry import Size

    from pos.usecases.quotes import Quote


def big_amount_lines(amount: Money, width: int = 0) -> list[str]:
    """``amount`` in big digits, its currency beside the last line where ``width`` (0:
    any) leaves room for it; [] when even the digits do not fit."""
    lines = big_digits(amount.format(symbol=False))
    if width and len(lines[0]) > width:
        return []
    suffix = f"  {amount.currency}"
    if not width or len(lines[-1]) + len(suffix) <= width:
        lines[-1] += suffix  # else the line under the digits names the currency
    return lines


class BigAmount(Widget):
    """An amount in big digits; one bold line where the width is too small for them."""

    DEFAULT_CSS = """
    BigAmount { height: auto; width: 100%; text-style: bold; }
    """

    def __init__(self, amount: Money, *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.amount = amount

    def _lines(self, width: int) -> list[str]:
        return big_amount_lines(self.amount, width) or [self.amount.format()]

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines(width))

    def render(self) -> Text:
        return Text("\n".join(self._lines(self.content_size.width)))


class ChargePanel(Vertical):
    """The card's amount (big), ``Pay <amount> from <wallet>``, and for a converted sale
    ``Sale: <price>`` and ``Rate: 1 KES = 28.5 UGX``."""

    DEFAULT_CSS = """
    ChargePanel { height: auto; width: 1fr; }
    ChargePanel Plain { height: auto; width: 100%; }
    """

    def __init__(self, quote: Quote, wallet: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.quote = quote
        self.wallet = wallet

    def compose(self) -> ComposeResult:
        quote = self.quote
        yield BigAmount(quote.charge, classes="charge-big")
        yield Plain(f"Pay {quote.charge.format()} from {self.wallet}", classes="charge-line")
        if quote.converted:
            yield Plain(f"Sale: {quote.price.format()}", classes="charge-sale")
            yield Plain(f"Rate: {quote.rate_text()}", classes="charge-rate")
