"""Electricity bill: account -> verify (name, balance) -> amount -> tender -> pay -> receipt."""

from __future__ import annotations

from typing import Any

from pos.meter import validate_account
from screens.dialogs import ConfirmDialog
from screens.electricity import NumberScreen, charge_lines, pay_with, settle_pending
from screens.entry import AmountScreen
from screens.receipt import ResultScreen, offer_receipt


async def postpaid(app: Any) -> None:
    term = app.terminal
    account = await app.push_screen_wait(
        NumberScreen("Electricity bill", "Account number (e.g. 0203754-01)", validate_account))
    if account is None:
        return
    info = await app.busy("Checking the account...", term.verify_account(account))
    balance = info.balance.format() if info.balance is not None else "unknown"
    if not await app.push_screen_wait(ConfirmDialog(
            "Confirm the customer",
            f"Account {info.account}\nName: {info.customer_name}\nBalance due: {balance}\n\n"
            "Is this the customer's account?")):
        return
    currency = app.settings.pawacard.currency
    amount = await app.push_screen_wait(AmountScreen(
        "Amount to pay", currency, note=f"{info.customer_name}  balance {balance}"))
    if amount is None:
        return

    def pay(**kw: Any) -> Any:
        return term.pay_bill(account, amount, info.customer_name, **kw)

    result = await pay_with(app, amount, pay, "Paying the bill...")
    if result is None:
        return
    result = await settle_pending(app, result)
    await app.push_screen_wait(ResultScreen(result.status, result.message, amount.format(),
                                            extra=charge_lines(result)))
    if result.status != "declined":
        await offer_receipt(app, result.ref)
