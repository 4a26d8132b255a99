"""A card-paid electricity sale on the command line, as at the counter: one quote per sale,
shown before the PIN is read, and that quote debited.

The card's amount (and, when converted, the rate and the sale amount, with how long the
rate holds) goes to stderr before the PIN is read (stdout keeps the one result, or the
one JSON document). A quote gone stale by the time the PIN is in is fetched again and
shown again ("the exchange rate was renewed"), and a new PIN is read for it (the next
line of stdin): the PIN typed for the old figure is dropped unsent.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pos.errors import Declined, QuoteExpired
from pos.text import printable_lines

if TYPE_CHECKING:
    from pos.money import Money
    from pos.terminal import Terminal
    from pos.usecases.quotes import Quote
    from pos.usecases.results import CardLookup, SaleResult

#: The sale itself: ``Terminal.sell_token`` or ``Terminal.pay_bill`` with the target,
#: amount and name bound; called with ``pin=`` and ``quote=``.
Sell = Callable[..., Awaitable["SaleResult"]]


def charge_text(quote: Quote, card_no: str, wallet: str, until: dt.datetime | None, *,
                renewed: bool = False) -> str:
    """What the customer is shown before the PIN: the card's amount, from which wallet;
    converted, the sale amount, the rate and until when it holds."""
    lines = ["The exchange rate was renewed: this is the new amount."] if renewed else []
    lines.append(f"Card {card_no} pays {quote.charge.format()} from {wallet}")
    if quote.converted:
        lines.append(f"Sale: {quote.price.format()}   Rate: {quote.rate_text()}")
        if until is not None:
            lines.append(f"The rate holds {quote.valid_for:g} s, until "
                         f"{until.astimezone():%H:%M:%S}.")
    return "\n".join(lines)


def refuse_early(term: Terminal, lookup: CardLookup, meter: str | None) -> None:
    """What the counter refuses before any PIN: a card that cannot pay (locked,
    inactive, expired) and a meter inside PawaCard's 5-minute throttle."""
    if lookup.problems:
        raise Declined(f"This card cannot pay: {'; '.join(lookup.problems)}",
                       provider="Sente POS")
    refusal = term.meter_throttled(meter) if meter is not None else None
    if refusal is not None:
        raise Declined(refusal, provider="PawaCard")


async def sell_with_quote(term: Terminal, sell: Sell, lookup: CardLookup, amount: Money,
                          wallet: str, read_pin: Callable[[], str | None]
                          ) -> tuple[SaleResult, Quote]:
    """Quote, show, read the PIN, sell with that quote; renewed and shown again (and a
    new PIN read) while the quote expires before the sale takes it."""
    renewed = False
    while True:
        quote = await term.quote(lookup, amount)
        until = (term.ctx.clock() + dt.timedelta(seconds=quote.valid_for)
                 if quote.converted else None)
        show(charge_text(quote, lookup.card.number, wallet, until, renewed=renewed))
        pin = read_pin()
        renewed = True
        if not term.quote_fresh(quote):
            continue  # typed for a rate that no longer holds: nothing was sent
        try:
            return await sell(pin=pin, quote=quote), quote
        except QuoteExpired:
            continue  # expired between the check and the sale: refused unsent
        finally:
            pin = None


def show(text: str) -> None:
    print(printable_lines(text), file=sys.stderr, flush=True)


def result_json(res: SaleResult, quote: Quote) -> dict[str, Any]:
    return {**res.to_json(), "quote": quote.to_json()}
