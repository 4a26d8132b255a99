"""Card payment: scan -> summary -> amount -> wallet -> hand-over -> PIN -> result -> receipt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pos.errors import Declined
from screens.cards import CardSummaryScreen, choose_wallet, confirm_charge, scan_card
from screens.entry import AmountScreen
from screens.receipt import ResultScreen, finish_sale

if TYPE_CHECKING:
    from screens.app import SentePOSApp


async def card_payment(app: SentePOSApp, payload: str | None = None) -> None:
    """One card sale as straight-line code; every step can be cancelled (nothing is sent)."""
    term = app.terminal
    lookup = await scan_card(app, payload=payload)
    if lookup is None or not await app.push_screen_wait(CardSummaryScreen(lookup,
                                                                          paying=True)):
        return
    currency = app.settings.card_currency
    amount = await app.push_screen_wait(AmountScreen("Amount to pay", currency))
    if amount is None:
        return
    wallet = await choose_wallet(app, lookup, amount)
    if wallet is None:
        return
    got = await confirm_charge(app, lookup, amount, wallet)
    if got is None:
        return
    _quote, pin = got
    reason = f"POS sale {app.settings.terminal_id}"
    try:
        result = await app.busy("Charging the card...",
                                term.pay_by_card(lookup, amount, wallet, pin, reason))
    except Declined as exc:
        await app.push_screen_wait(ResultScreen("declined", exc.message, amount.format()))
        return
    finally:
        pin = None
    await finish_sale(app, result, amount.format())

