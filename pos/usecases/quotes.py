"""One quote per card-paid sale: what the card is charged for a price in another currency.

The quote is fetched once (Patasente ``convert-currency``), shown to the customer before
the PIN and carried into the debit, so the amount debited is the amount shown. It holds
for ``patasente.quote_seconds`` (measured on the boot clock, so a wall-clock step neither
stretches nor cuts it); an older one is refused with :class:`QuoteExpired` and the screen
fetches a new one and shows it again before a PIN is taken for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from pos.clock import Stamp, elapsed
from pos.errors import InputError, LinkDown, ProviderError, ProviderUnavailable, QuoteExpired
from pos.money import Money
from pos.usecases.context import Context
from pos.usecases.results import CardLookup

#: Significant digits of a rate shown to a person (28.5, 0.03509, 3,690).
RATE_DIGITS = 4


@dataclass(frozen=True)
class Quote:
    """``charge`` (card currency) pays ``price`` (the sale's currency)."""

    price: Money
    charge: Money
    card_id: int
    fetched: Stamp | None = None  # None: no conversion, nothing to expire
    valid_for: float = 0.0

    @property
    def converted(self) -> bool:
        return self.price.currency != self.charge.currency

    @property
    def rate(self) -> Decimal | None:
        """Card currency per unit of the sale's currency, as charged (rounding included)."""
        if not self.converted or self.price.minor == 0:
            return None
        return self.charge.major / self.price.major

    def rate_text(self) -> str:
        """``1 KES = 28.5 UGX``; turned round when below one (``1 USD = 3,690 UGX``), so the
        customer never reads a row of zeros."""
        rate = self.rate
        if rate is None or rate == 0:
            return ""
        a, b = self.price.currency, self.charge.currency
        if rate < 1:
            rate, a, b = 1 / rate, b, a
        return f"1 {a} = {_significant(rate)} {b}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"price": self.price.to_json(), "charge": self.charge.to_json(),
                               "card_id": self.card_id}
        if self.converted:
            out["rate"] = self.rate_text()
            out["valid_for"] = self.valid_for
        if self.fetched is not None:
            out["fetched"] = self.fetched.to_json()
        return out


def _significant(value: Decimal) -> str:
    """``value`` to :data:`RATE_DIGITS` significant digits, thousands separated, no
    trailing zeros."""
    exp = value.adjusted() - RATE_DIGITS + 1
    q = value.quantize(Decimal(1).scaleb(min(exp, 0)), rounding=ROUND_HALF_EVEN)
    text = f"{q:,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


async def get_quote(ctx: Context, lookup: CardLookup, price: Money) -> Quote:
    """The card's amount for ``price``: the same money when the currencies agree (no
    request), else one conversion. Raises LinkDown when Patasente cannot answer (a
    conversion moves no money: offline for this sale)."""
    card = lookup.card
    if price.currency == card.currency:
        return Quote(price, price, card.card_id)
    link = ctx.link.patasente
    if not link.should_try():
        raise ProviderUnavailable("Patasente is offline: the card's amount cannot be worked "
                                  "out now", provider="Patasente")
    try:
        charge = await ctx.patasente.convert_currency(price.currency, card.currency, price)
    except LinkDown as exc:
        link.record_failure(str(exc))
        raise
    link.record_success()
    if charge.currency != card.currency or charge.minor <= 0:
        raise ProviderError(f"Patasente converted {price.format()} into {charge.format()}",
                            provider="Patasente")
    return Quote(price, charge, card.card_id, ctx.device.stamp(),
                 ctx.settings.patasente.quote_seconds)


def is_fresh(ctx: Context, quote: Quote) -> bool:
    if not quote.converted:
        return True
    return elapsed(quote.fetched, ctx.device.stamp()) < quote.valid_for


def check_quote(ctx: Context, quote: Quote, lookup: CardLookup, price: Money) -> None:
    """Refuse a quote for another sale or card (InputError) or too old (QuoteExpired)."""
    if (quote.price != price or quote.card_id != lookup.card.card_id
            or quote.charge.currency != lookup.card.currency):
        raise InputError("The card's amount shown was worked out for another sale: "
                         "start the card payment again")
    if quote.converted and quote.fetched is None:
        raise QuoteExpired("The exchange rate has no time: ask for a new one")
    if not is_fresh(ctx, quote):
        raise QuoteExpired("The exchange rate shown has expired: the customer sees the new "
                           "amount before the PIN")
