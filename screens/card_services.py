"""Card services: Sente KYC activation, gift activation, top-up, lock / unlock, balance."""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Checkbox, Input, Label, Static

from pos.errors import Declined, InputError
from pos.text import MAX_NAME, MAX_REASON, validate_free_text
from screens.cards import CardSummaryScreen, scan_card, summary_lines
from screens.dialogs import ChoiceDialog, ConfirmDialog, Step, TextPrompt
from screens.entry import AmountScreen, PinScreen
from screens.handover import HandOverNotice
from screens.receipt import ResultScreen, finish_sale
from screens.widgets import Plain, PosInput

if TYPE_CHECKING:
    from screens.app import SentePOSApp
    from screens.port import Scanner

SERVICES = [
    ("sente", "Activate a Sente card (KYC)"),
    ("gift", "Activate a gift card"),
    ("topup", "Top-up / refund to a card (supervisor)"),
    ("lock", "Lock a card"),
    ("unlock", "Unlock a card (supervisor)"),
    ("balance", "Card balance (supervisor)"),
]


def holder_hand_over(purpose: str, note: str = "") -> HandOverNotice:
    """The hand-over to the card holder (a new PIN, the balance)."""
    return HandOverNotice("the card holder", purpose, note or
                          "Card holder: press Enter (or OK) when you have the terminal.")


class KycForm(Step[dict[str, str]]):
    """Customer details for a Sente card; both agreements must be accepted."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def body(self) -> ComposeResult:
        # A label beside its field, and one-line checkboxes: Continue fits 80x24 and a
        # 480x320 console (it was below the screen).
        with Horizontal(classes="form-row"):
            yield Label("Full name")
            yield PosInput(id="kyc-name")
        with Horizontal(classes="form-row"):
            yield Label("Phone (2567...)")
            yield PosInput(id="kyc-phone", restrict=r"[0-9+]*")
        with Horizontal(classes="form-row"):
            yield Label("E-mail (optional)")
            yield PosInput(id="kyc-email")
        yield Checkbox("Customer accepts the card agreement", id="kyc-card-agreement")
        yield Checkbox("Customer accepts the platform agreement", id="kyc-platform-agreement")
        yield Plain("", id="kyc-error", classes="error-text")
        yield Button("Continue", id="kyc-go", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#kyc-name", Input).focus()

    @on(Input.Submitted)
    def _next(self) -> None:
        self.focus_next()

    @on(Button.Pressed, "#kyc-go")
    def _go(self) -> None:
        name = self.query_one("#kyc-name", Input).value.strip()
        phone = self.query_one("#kyc-phone", Input).value.strip()
        email = self.query_one("#kyc-email", Input).value.strip()
        error = ""
        try:  # both go to Patasente: no control characters
            name = validate_free_text(name, "customer name", MAX_NAME, optional=True)
            email = validate_free_text(email, "e-mail", MAX_NAME, optional=True)
        except InputError as exc:
            error = exc.message
        if error:
            pass  # shown below
        elif len(name.split()) < 2:
            error = "Enter the customer's full name as on the ID"
        elif not phone.lstrip("+").isdigit() or len(phone.lstrip("+")) < 9:
            error = "Enter the customer's phone number"
        elif not (self.query_one("#kyc-card-agreement", Checkbox).value
                  and self.query_one("#kyc-platform-agreement", Checkbox).value):
            error = "The customer must accept both agreements"
        if error:
            self.query_one("#kyc-error", Static).update(error)
            return
        self.dismiss({"name": name, "phone": phone, "email": email})


async def new_pin_twice(app: SentePOSApp, title: str) -> str | None:
    """A new 4-digit card PIN, typed twice by the holder once the cashier handed them the
    terminal (the cashier neither types nor sees it)."""
    if not await app.push_screen_wait(holder_hand_over(
            "to choose the card's new PIN",
            "Card holder: you will type your new 4-digit PIN twice. Press Enter (or OK) "
            "when you have the terminal.")):
        return None
    while True:
        first = await app.push_screen_wait(PinScreen(title, "Choose a 4-digit PIN",
                                                     timeout=app.pin_timeout))
        if first is None:
            return None
        second = await app.push_screen_wait(PinScreen(title, "Type the same PIN again",
                                                      timeout=app.pin_timeout))
        if second is None:
            return None
        if first == second:
            return str(first)
        await app.show_message(title, "The two PINs differ. Try again.", "warning")


def _still(scanner: Scanner, max_bytes: int, wait: float = 3.0) -> bytes:
    """Run the camera long enough to have a frame, and return it as JPEG (camera thread)."""
    import time

    started = not scanner.running
    if started:
        scanner.start()
    try:
        end = time.monotonic() + wait
        while True:
            try:
                return bytes(scanner.grab_still(max_bytes=max_bytes))
            except RuntimeError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
    finally:
        if started:
            scanner.stop()


async def grab_id_photo(app: SentePOSApp) -> str | None:
    """A still from the camera (JPEG), base64-encoded for the provider."""
    scanner = app.scanner
    if scanner is None or not hasattr(scanner, "grab_still"):
        await app.show_message("ID photo", "No camera is available for the ID photo.", "error")
        return None
    while True:
        if not await app.push_screen_wait(ConfirmDialog(
                "ID photo", "Hold the customer's ID document in front of the camera.",
                yes="Take photo", no="Cancel")):
            return None
        try:
            grab = asyncio.to_thread(_still, scanner, app.id_photo_max_bytes)
            jpeg = await app.busy("Taking the photo...", grab)
        except Exception:
            await app.show_message("ID photo", "The camera could not take a photo. Try again.",
                                   "error")
            continue
        if jpeg:
            app.notify(f"ID photo taken ({len(jpeg) // 1024} KB)")
            return base64.b64encode(jpeg).decode("ascii")


async def activate_sente(app: SentePOSApp) -> None:
    term = app.terminal
    lookup = await scan_card(app, "Scan the new Sente card")
    if lookup is None or not await app.push_screen_wait(
            CardSummaryScreen(lookup, "Sente card", activating="sente")):
        return
    details = await app.push_screen_wait(KycForm("Sente card: customer details"))
    if details is None:
        return
    document = await grab_id_photo(app)
    if document is None:
        return
    pin = await new_pin_twice(app, "Sente card PIN")
    if pin is None:
        return
    try:
        activation = await app.busy("Activating the card...", term.activate_sente(
            lookup, details["name"], details["phone"], details["email"] or None, pin, document))
    except Declined as exc:
        await app.push_screen_wait(ResultScreen("declined", exc.message))
        return
    finally:
        pin = None
    while True:
        code = await app.push_screen_wait(TextPrompt(
            "SMS code", "Code sent by SMS", note=activation.message or
            f"A code was sent to {activation.phone_number}",
            check=lambda v: validate_free_text(v, "code", 12)))
        if code is None:
            await app.show_message("Sente card", "The card stays inactive until the SMS code "
                                   "is verified.", "warning")
            return
        try:
            message = await app.busy("Checking the code...", term.verify_sente_code(
                activation.user_id, activation.phone_number, code.strip()))
        except (InputError, Declined) as exc:
            await app.show_message("SMS code", exc.message, "error")
            continue
        await app.push_screen_wait(ResultScreen("approved", message or "Card activated"))
        return


async def activate_gift(app: SentePOSApp) -> None:
    lookup = await scan_card(app, "Scan the gift card")
    if lookup is None or not await app.push_screen_wait(
            CardSummaryScreen(lookup, "Gift card", activating="gift")):
        return
    supervisor = None
    if lookup.has_pin:  # activated before: its PIN is replaced, with no way to check it
        supervisor = await app.ask_supervisor("a new PIN for a card that has one")
        if supervisor is None:
            return
    pin = await new_pin_twice(app, "Gift card PIN")
    if pin is None:
        return
    phone = await app.push_screen_wait(TextPrompt(
        "Gift card", "Customer phone (optional)",
        check=lambda v: validate_free_text(v, "phone number", 20, optional=True)))
    if phone is None:
        return
    try:
        result = await app.busy("Activating the gift card...", app.terminal.activate_gift(
            lookup, pin, phone_number=phone.strip() or None, supervisor=supervisor))
    except Declined as exc:
        await app.push_screen_wait(ResultScreen("declined", exc.message))
        return
    await finish_sale(app, result)


async def top_up(app: SentePOSApp) -> None:
    supervisor = await app.ask_supervisor("card top-up / refund")
    if supervisor is None:
        return
    lookup = await scan_card(app, "Scan the card to credit")
    if lookup is None or not await app.push_screen_wait(CardSummaryScreen(lookup,
                                                                          balances=True)):
        return
    amount = await app.push_screen_wait(AmountScreen("Amount to credit",
                                                     app.settings.card_currency))
    if amount is None:
        return
    reason = await app.push_screen_wait(TextPrompt(
        "Top-up", "Reason", value="Top-up",
        check=lambda v: validate_free_text(v, "reason", MAX_REASON)))
    if reason is None:
        return
    try:
        result = await app.busy("Crediting the card...",
                                app.terminal.top_up(lookup, amount, reason, supervisor))
    except Declined as exc:
        await app.push_screen_wait(ResultScreen("declined", exc.message, amount.format()))
        return
    await finish_sale(app, result, amount.format())


async def lock_or_unlock(app: SentePOSApp, lock: bool) -> None:
    """Lock: any operator (it only protects the holder). Unlock: a supervisor approves;
    Patasente's unlock takes no card PIN and a locked card cannot be debited, so the
    holder has no way to prove the PIN (see README, Card services)."""
    verb = "Lock" if lock else "Unlock"
    lookup = await scan_card(app, f"Scan the card to {verb.lower()}")
    if lookup is None:
        return
    status = str(lookup.status).lower()
    if not lookup.offline and (status == "locked") == lock:  # refused before any PIN
        await app.show_message(f"{verb} card", f"Card {lookup.card.number} is {status}: "
                               f"there is nothing to {verb.lower()}.", "warning")
        return
    if not await app.push_screen_wait(ConfirmDialog(
            f"{verb} card", f"{verb} card {lookup.card.number}?")):
        return
    supervisor = None
    if not lock:
        supervisor = await app.ask_supervisor("unlock a card")
        if supervisor is None:
            return
    try:
        if supervisor is None:  # locking needs no approval
            message = await app.busy("Locking the card...", app.terminal.lock_card(lookup))
        else:
            message = await app.busy("Unlocking the card...",
                                     app.terminal.unlock_card(lookup, supervisor))
    except Declined as exc:
        await app.push_screen_wait(ResultScreen("declined", exc.message))
        return
    await app.push_screen_wait(ResultScreen("approved", message or f"Card {verb.lower()}ed"))


async def balance(app: SentePOSApp) -> None:
    """A supervisor approves, then the holder is handed the terminal to read it.
    ``get-patasente-card`` takes no PIN and Patasente checks a card PIN only on a debit,
    so a typed PIN could not be verified: asking for one would only pretend."""
    lookup = await scan_card(app, "Scan the card")
    if lookup is None:
        return
    supervisor = await app.ask_supervisor("show a card's balance")
    if supervisor is None:
        return
    info = await app.busy("Asking for the balance...",
                          app.terminal.card_balance(lookup, supervisor))
    if not await app.push_screen_wait(holder_hand_over("to read the card's balance")):
        return
    from dataclasses import replace

    fresh = replace(lookup, info=info, offline=False)
    rows = [(k, v) for k, v in summary_lines(fresh, balances=True)
            if k not in ("PIN required",)]
    await app.show_message("Card balance", "\n".join(f"{k}: {v}" for k, v in rows))


async def card_services(app: SentePOSApp) -> None:
    choice = await app.push_screen_wait(ChoiceDialog("Card services", SERVICES))
    if choice == "sente":
        await activate_sente(app)
    elif choice == "gift":
        await activate_gift(app)
    elif choice == "topup":
        await top_up(app)
    elif choice in ("lock", "unlock"):
        await lock_or_unlock(app, choice == "lock")
    elif choice == "balance":
        await balance(app)
