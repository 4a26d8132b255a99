"""Electricity bill: account -> verify (name, balance) -> amount -> tender -> pay -> receipt."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from pos.meter import validate_account
from screens.dialogs import ConfirmDialog
from screens.electricity import (
    NumberScreen,
    charge_lines,
    pay_with,
    settle_pending,
    verify_or_offline,
)
from screens.entry import AmountScreen
from screens.receipt import ResultScreen, offer_receipt

if TYPE_CHECKING:
    from pos.usecases.electricity import TenderName
    from pos.usecases.quotes import Quote
    from pos.usecases.results import CardLookup, SaleResult
    from screens.app import SentePOSApp


async def postpaid(app: SentePOSApp) -> None:
    term = app.terminal
    account = await app.push_screen_wait(
        NumberScreen("Electricity bill", "Account number (e.g. 0203754-01)", validate_account))
    if account is None:
        return
    info = await verify_or_offline(app, term.verify_account(account), "account")
    if info is False:
        return
    name = info.customer_name if info is not None else ""
    balance = info.balance.format() if info is not None and info.balance is not None \
        else "unknown"
    if info is not None and not await app.push_screen_wait(ConfirmDialog(
            "Confirm the customer",
            f"Account {info.account}\nName: {info.customer_name}\nBalance due: {balance}\n\n"
            "Is this the customer's account?")):
        return
    currency = app.settings.pawacard.currency
    note = f"{name}  balance {balance}" if info is not None else \
        f"Account {account}  (offline: cash only)"
    amount = await app.push_screen_wait(AmountScreen("Amount to pay", currency, note=note))
    if amount is None:
        return

    def pay(*, tender: TenderName, card: CardLookup | None, wallet: str | None,
            pin: str | None, quote: Quote | None) -> Awaitable[SaleResult]:
        return term.pay_bill(account, amount, name, tender=tender, card=card, wallet=wallet,
                             pin=pin, quote=quote)

    result = await pay_with(app, amount, pay, "Paying the bill...", cash_only=info is None)
    if result is None:
        return
    result = await settle_pending(app, result)
    await app.push_screen_wait(ResultScreen(result.status, result.message, amount.format(),
                                            extra=charge_lines(result)))
    if result.status != "declined":
        await offer_receipt(app, result.ref)
