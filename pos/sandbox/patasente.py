"""Simulated Patasente ``phantom-api`` (document 002), the endpoints the terminal uses.

Parameters travel in the query string even on POST and PUT; answers are JSON:
data or ``{"success": ...}`` with HTTP 200, ``{"error": ...}`` with 400 (404 /
401 for login and authentication). Debits and credits are NOT idempotent, like
the real API: every accepted call applies again, and the terminal reconciles
with ``get-prepaid-transactions?search=<ref>``.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from pos.refs import REF_TAG
from pos.sandbox import data
from pos.sandbox.state import AppliedOp, CardState, SandboxState, Verification
from pos.sandbox.wire import Reply, Req, formatted, reply

PROVIDER = "patasente"

_PIN_RE = re.compile(r"^\d{4}$")
_PHONE_RE = re.compile(r"^\+?256\d{9}$")
_AMOUNT_RE = re.compile(r"^\d{1,12}(\.0+)?$")
_B64_RE = re.compile(r"^[A-Za-z0-9+/=\s]+$")
_REF_RE = re.compile(re.escape(REF_TAG) + r"(\d+)")
_STATUSES = ("active", "inactive", "expired")

Handler = Callable[[SandboxState, Req], Reply]


def error(msg: str, status: int = 400) -> Reply:
    return reply({"error": msg}, status)


def success(msg: str, **extra: Any) -> Reply:
    return reply({"success": msg, **extra})


def ref_of(reason: str) -> str | None:
    """The terminal's ref embedded in a payment reason ("Sale ref:123456789012")."""
    m = _REF_RE.search(reason)
    return m.group(1) if m else None


def _stamp(state: SandboxState) -> str:
    return state.clock.local().strftime("%Y-%m-%d %H:%M:%S")


def _amount(text: str | None) -> int | None:
    """A positive whole UGX amount from the query string ("3000" or "3000.00")."""
    if text is None or not _AMOUNT_RE.match(text.strip()):
        return None
    try:
        value = int(Decimal(text.strip()))
    except InvalidOperation:  # pragma: no cover - the regex guards this
        return None
    return value if value > 0 else None


def _card(state: SandboxState, card_id: str) -> CardState | None:
    return state.patasente.cards.get(int(card_id)) if card_id.isdigit() else None


def _usable(state: SandboxState, card: CardState) -> str | None:
    """Why the card cannot pay, or None."""
    status = card.shown_status(state.clock.today())
    if status == "locked":
        return "Card is locked"
    if status == "expired":
        return "Card has expired"
    if status != "active":
        return "Card is inactive"
    return None


#: What the document's own credit example records as the reason of a credit.
REWRITTEN_REASON = "Funds transferred to card"


def _record(state: SandboxState, kind: str, card: CardState, amount: int, reason: str,
            wallet: str | None, req: Req | None = None) -> None:
    """Book an applied debit or credit: prepaid transaction row + ``applied`` record.

    Under a ``rewrite_reason`` fault the row keeps the server's own wording instead of
    the reason sent (the ``applied`` record keeps the ref, for the tests' counters).
    """
    ps = state.patasente
    sent_reason = reason
    if req is not None and "rewrite_reason" in req.modifiers:
        reason = REWRITTEN_REASON
    tid = ps.next_transaction_id
    ps.next_transaction_id += 1
    debit = kind == "debit"
    ps.add_transaction({
        "id": tid, "currency_format": card.currency, "charge_currency_format": card.currency,
        "amount": str(amount), "transaction_id": f"{tid:08d}",
        "transaction_id_from_callback": None, "reference_id_from_callback": None,
        "financial_instrument_id": "", "financial_instrument_no": "",
        "names": card.card_type, "phone": card.phone, "bill_account_no": None,
        "bank_account": None, "bank_name": None, "bank_branch": None, "balance": "0",
        "charge": "0", "transaction_status": "Processed", "payment_reason": reason,
        "paid_to": data.MERCHANT_NAME if debit else "",
        "paid_by": "" if debit else data.MERCHANT_NAME,
        "paid_to_merchant_code": data.MERCHANT_CODE if debit else "",
        "paid_by_merchant_code": "" if debit else data.MERCHANT_CODE,
        "charge_bearer": None, "exchange_rate": None, "send_receipt": True,
        "transaction_type": "wallet payment", "type": "wallet", "created_at": _stamp(state),
        "wallet_balance": formatted(ps.wallet), "card_transaction_type": kind,
        "patasente_card_no": card.card_no,
    }, at=state.clock.now())
    ps.applied.append(AppliedOp(kind=kind, card_id=card.id, card_no=card.card_no,
                                amount=amount, wallet=wallet, payment_reason=reason,
                                ref=ref_of(sent_reason), transaction_id=f"{tid:08d}",
                                at=state.clock.now()))


# ------------------------------------------------------------------ account
def login(state: SandboxState, req: Req) -> Reply:
    username = req.query.get("username", "").strip()
    password = req.query.get("password", "")
    if not username:
        return error("The username field is required.")
    if username.lstrip("+") not in (data.MERCHANT_CODE, data.MERCHANT_EMAIL, data.MERCHANT_PHONE):
        return error(f"Account with {username} doesn't exist !!", 404)
    if password != data.MERCHANT_PASSWORD:
        return error("Wrong password, please try again", 401)
    token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(48)
    state.patasente.tokens.add(token)
    state.patasente.logins += 1
    return reply({"token": token})


def company_details(state: SandboxState, req: Req) -> Reply:
    ps = state.patasente
    return reply({
        "id": data.MERCHANT_COMPANY_ID, "user_id": data.MERCHANT_COMPANY_ID,
        "business_name": data.MERCHANT_NAME, "business_email": data.MERCHANT_EMAIL,
        "business_website": None, "business_description": "Groceries and electricity tokens",
        "address": "Kampala Road, Kampala", "business_billing_address": None,
        "business_shipping_address": None, "nature_of_business": "Retail",
        "PoB": None, "tin": None, "business_phone": "+" + data.MERCHANT_PHONE,
        "wallet_balance": int(ps.wallet), "currency": "UGX", "currency_id": 1,
        "local_currency": True, "merchant_code": data.MERCHANT_CODE, "region": "Kampala",
        "country": "UG", "account": 4, "account_type": "Business Account",
        "user_type": "Business", "status": "active", "verified": "verified",
        "email_phone_verification": "verified", "pin": "set", "has_products": 1,
        "has_services": 0, "updated_at": "2020-05-29 06:43:29",
        "created_at": {"date": "2020-04-04 14:40:18"}, "reseller_account": True,
        "agent_account": "active", "prepaid_account": "active",
        "notifiable_email": data.MERCHANT_EMAIL, "notifiable_phone": None,
        "notifiable_channel": "email", "registered_with": "email", "registered_using": "Web",
        "timezone": "Africa/Kampala",
    })


def wallet_balance(state: SandboxState, req: Req) -> Reply:
    ps = state.patasente
    return reply({
        "id": 3, "company_id": data.MERCHANT_COMPANY_ID, "currency": "UGX", "currency_id": 1,
        "formated_amount": formatted(ps.wallet), "formated_commission_amount": "0",
        "commission_amount": 0,
        "formated_reseller_float": formatted(data.MERCHANT_RESELLER_FLOAT),
        "reseller_float": data.MERCHANT_RESELLER_FLOAT,
        "formated_prepaid_account_balance": formatted(ps.prepaid_float),
        "formated_credit_account_balance": formatted(data.MERCHANT_CREDIT_BALANCE),
        "prepaid_account_balance": str(ps.prepaid_float),
        "credit_account_balance": str(data.MERCHANT_CREDIT_BALANCE),
        "amount": ps.wallet,  # a JSON float such as 474561.0023449999, as in the document
        "account_no": data.MERCHANT_ACCOUNT_NO,
    })


def company_products(state: SandboxState, req: Req) -> Reply:
    stamp = {"date": "2019-03-07 23:26:53.000000", "timezone_type": 3, "timezone": "UTC"}
    return reply([
        {"id": pid, "product_name": name, "unit_price_formatted": formatted(price),
         "unit_price": price, "unit_measure": 6, "units": units, "currency_id": 1,
         "currency_format": "UGX", "optimum_stock": "10", "optimum_stock_1": "10",
         "current_stock_1": "5", "current_stock": "5", "stockup": "5", "stock_out_date": "",
         "previous_stock_date": "2019-02-28", "deleted": 0, "created_at": stamp,
         "updated_at": stamp, "qualities": []}
        for pid, name, price, units in data.PRODUCTS
    ])


def convert_currency(state: SandboxState, req: Req) -> Reply:
    frm, to, amount_s = (a.upper() for a in req.args)
    if frm not in data.UGX_PER_UNIT or to not in data.UGX_PER_UNIT:
        return error("Currency not supported")
    try:
        amount = Decimal(amount_s.replace(",", ""))
    except InvalidOperation:
        return error("The amount must be a number.")
    if not amount.is_finite() or amount < 0:
        return error("The amount must be a number.")
    ugx = amount * Decimal(data.UGX_PER_UNIT[frm])
    return reply({"result": (ugx / Decimal(data.UGX_PER_UNIT[to])).quantize(Decimal("0.001"))})


# -------------------------------------------------------------------- cards
def _card_json(state: SandboxState, card: CardState) -> dict[str, Any]:
    return {
        "id": card.id, "company_id": data.MERCHANT_COMPANY_ID, "currency": card.currency,
        "currency_id": 1, "card_no": card.card_no,
        "credit_account_limit": str(card.credit_limit),
        "available_credit": str(card.available_credit),
        "current_account_wallet_balance": card.balance,
        "total_monetary_points_value": 0, "total_points": 0,
        "status": card.shown_status(state.clock.today()), "has_pin": card.has_pin,
        "expiry_date": card.expiry,
        "wallets": [{"name": w} for w in card.wallets],
    }


def get_card(state: SandboxState, req: Req) -> Reply:
    card_id, card_no = req.args
    card = _card(state, card_id)
    if card is None or card.card_no != card_no:
        return error("Card doesn't exist.")
    return reply(_card_json(state, card))


def debit_card(state: SandboxState, req: Req) -> Reply:
    ps = state.patasente
    card = _card(state, req.args[0])
    if card is None:
        return error("Card doesn't exist.")
    q = req.query
    amount = _amount(q.get("amount"))
    if amount is None:
        return error("The amount must be a whole number greater than 0.")
    reason = q.get("payment_reason", "").strip()
    if not reason:
        return error("The payment reason field is required.")
    wallet = q.get("wallet_account", "").strip()
    if not wallet:
        return error("The wallet account field is required.")
    why = _usable(state, card)
    if why:
        return error(why)
    if card.has_pin:
        pin = q.get("pin", "")
        if not pin:
            return error("This card requires a PIN to complete this transaction")
        if not ps.pin_ok(card, pin):
            card.wrong_pins += 1
            if card.wrong_pins >= data.MAX_WRONG_PINS:
                card.status = "locked"
                return error("Wrong PIN. The card has been locked after "
                             f"{data.MAX_WRONG_PINS} wrong PIN attempts")
            left = data.MAX_WRONG_PINS - card.wrong_pins
            return error(f"Wrong PIN. {left} attempt{'s' if left > 1 else ''} left "
                         "before the card is locked")
        card.wrong_pins = 0
    if wallet not in card.wallets:
        return error(f"This card has no {wallet} wallet")
    if wallet == data.CREDIT:
        if amount > card.available_credit:
            return error("Insufficient credit on card. Available credit is UGX "
                         f"{card.available_credit:,}")
        card.available_credit -= amount
    else:
        if amount > card.balance:
            return error(f"Insufficient balance on card. Balance is UGX {card.balance:,}")
        card.balance -= amount
    ps.wallet += amount
    _record(state, "debit", card, amount, reason, wallet, req)
    return success(f"Funds have been debited from card {card.card_no}")


def credit_card(state: SandboxState, req: Req) -> Reply:
    ps = state.patasente
    card = _card(state, req.args[0])
    if card is None:
        return error("Card doesn't exist.")
    amount = _amount(req.query.get("amount"))
    if amount is None:
        return error("The amount must be a whole number greater than 0.")
    reason = req.query.get("payment_reason", "").strip()
    if not reason:
        return error("The payment reason field is required.")
    if card.shown_status(state.clock.today()) == "expired":
        return error("Card has expired")
    if card.face_value and card.balance + amount > card.face_value:
        return error(f"You can't add more than UGX {card.face_value:,} on this card."
                     f"Current balance on this card is UGX {card.balance:,}")
    if amount > ps.prepaid_float:
        return error("Your prepaid account balance is too low to complete this action")
    ps.prepaid_float -= amount
    card.balance += amount
    _record(state, "credit", card, amount, reason, data.CURRENT, req)
    return success("Funds have been transferred to card.")


def modify_card_status(state: SandboxState, req: Req) -> Reply:
    ps = state.patasente
    card = _card(state, req.args[0])
    if card is None:
        return error("Card doesn't exist.")
    q = req.query
    status = q.get("status", "").strip().lower()
    if status not in _STATUSES:
        return error("The selected status is invalid. Use active, inactive or expired")
    pin = q.get("pin", "").strip()
    if pin and not _PIN_RE.match(pin):
        return error("The PIN must be 4 digits")
    current = card.shown_status(state.clock.today())
    if status == "active":
        if current == "locked":
            return error("Card is locked")
        if current == "expired":
            return error("Card has expired")
        if current == "active":
            return error("Card is already active")
        if pin:
            card.pin_hash = ps.hash_pin(pin)
            card.wrong_pins = 0
    elif current == status:
        return error(f"Card is already {status}")
    card.status = status
    if q.get("phone_number", "").strip():
        card.phone = q["phone_number"].strip().lstrip("+")
    if q.get("card_names", "").strip():
        card.holder = q["card_names"].strip()
    card.updated_at = state.clock.today().isoformat()
    return success(f"Card is {status}")


def activate_sente_card(state: SandboxState, req: Req) -> Reply:
    ps = state.patasente
    q = req.query
    card_id = q.get("card_id", "").strip()
    card = _card(state, card_id)
    if card is None or not card.sente:
        return error("Card doesn't exist.")
    if card.holder or card.status != "inactive" or any(
        v.card_id == card.id and v.verified for v in ps.verifications.values()
    ):
        return error("Card is already assigned to an account")
    name = " ".join(q.get("name", "").split())
    if not name:
        return error("The name field is required.")
    phone = q.get("phone_number", "").strip()
    if not _PHONE_RE.match(phone):
        return error("The phone number must be a Ugandan number like 256780000000")
    pin = q.get("pin", "").strip()
    if not _PIN_RE.match(pin):
        return error("The PIN must be 4 digits")
    document = q.get("document", "").strip()
    for prefix in ("base64:", "data:"):
        if document.startswith(prefix):
            document = document[len(prefix):].split(",", 1)[-1]
    if not document or not _B64_RE.match(document):
        return error("The document must be a base64 encoded Passport, National ID or "
                     "Driver's License")
    if q.get("card_agreement") != "true":
        return error("The card holder must accept the card terms and conditions")
    if q.get("platform_agreement") != "true":
        return error("The card holder must accept the Patasente terms and conditions")
    email = q.get("email", "").strip() or None
    user_id = ps.next_user_id
    ps.next_user_id += 1
    digits = phone.lstrip("+")
    ps.verifications[user_id] = Verification(
        user_id=user_id, card_id=card.id, phone_number=digits, name=name, email=email,
        pin_hash=ps.hash_pin(pin), code=data.SMS_CODE)
    return success(f"A 4 digit verification code has been sent to {name}'s phone or email.",
                   phone_number="+" + digits, user_id=user_id)


def phone_code_verification(state: SandboxState, req: Req) -> Reply:
    ps = state.patasente
    q = req.query
    user_id = q.get("user_id", "").strip()
    phone = q.get("phone_number", "").strip().lstrip("+")
    code = q.get("code", "").strip()
    v = ps.verifications.get(int(user_id)) if user_id.isdigit() else None
    if v is None or v.phone_number != phone or not secrets.compare_digest(v.code, code):
        return error("Verification code doesn't match")
    if v.verified:
        return error("Phone number is already verified")
    card = ps.cards[v.card_id]
    v.verified = True
    card.status = "active"
    card.pin_hash = v.pin_hash
    card.holder = v.name
    card.phone = v.phone_number
    card.wrong_pins = 0
    return success("Phone number has been verified")


def lock_card(state: SandboxState, req: Req) -> Reply:
    card = _card(state, req.args[0])
    if card is None:
        return error("Card doesn't exist.")
    if card.status == "locked":
        return error("Card is already locked")
    card.status = "locked"
    return success("Card is has been locked, no transactions can be done with this card.")


def unlock_card(state: SandboxState, req: Req) -> Reply:
    card = _card(state, req.args[0])
    if card is None:
        return error("Card doesn't exist.")
    if card.status != "locked":
        return error(f"Card is already {card.shown_status(state.clock.today())}")
    card.status = "active"
    card.wrong_pins = 0
    return success("Card is active")


def _page(req: Req) -> tuple[int, int]:
    skip_s, take_s = req.query.get("skip", "0").strip(), req.query.get("take", "10").strip()
    skip = int(skip_s) if skip_s.isdigit() else 0
    take = int(take_s) if take_s.isdigit() else 10
    return skip, take


def _date_arg(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip()) if text and text.strip() else None
    except ValueError:
        return None


def prepaid_transactions(state: SandboxState, req: Req) -> Reply:
    skip, take = _page(req)
    search = req.query.get("search", "").strip().lower()
    frm, to = _date_arg(req.query.get("from_date")), _date_arg(req.query.get("to_date"))
    ps = state.patasente
    out: list[dict[str, Any]] = []
    seen = 0
    # Faults: a search index that lags behind the books, or one that does not look
    # inside payment reasons (the document only says "search query").
    lag = req.modifiers.get("search_lag")
    blind = "search_blind" in req.modifiers
    now = state.clock.now()
    for i in range(len(ps.transactions) - 1, -1, -1):  # newest first
        if search:
            key = ps.search_keys[i]
            if blind:
                key = key.split("\x00", 1)[1]
            if search not in key:
                continue
            if lag is not None and now - ps.row_times[i] < lag:
                continue
        row = ps.transactions[i]
        if frm or to:
            day = dt.date.fromisoformat(row["created_at"][:10])
            if (frm and day < frm) or (to and day > to):
                continue
        seen += 1
        if seen <= skip:
            continue
        out.append(row)
        if len(out) >= take:
            break
    return reply(out)


def company_sente_cards(state: SandboxState, req: Req) -> Reply:
    today = state.clock.today()
    cards = [{"id": c.id, "card_no": c.card_no, "status": c.shown_status(today),
              "expiry_date": c.expiry}
             for c in state.patasente.cards.values() if c.sente]
    return reply(cards) if cards else error("No Cards found")


def activated_sente_cards(state: SandboxState, req: Req) -> Reply:
    ps = state.patasente
    cards = [{"id": c.id, "company_id": data.MERCHANT_COMPANY_ID,
              "business_name": data.MERCHANT_NAME, "merchant_code": data.MERCHANT_CODE,
              "card_names": (c.holder or "").upper(), "phone_number": "+" + (c.phone or ""),
              "card_no": c.card_no, "created_at": c.created_at + "T00:00:00.000000Z"}
             for c in ps.cards.values() if c.sente and c.holder]
    return reply(cards) if cards else error("No Cards found")


def issued_cards(state: SandboxState, req: Req) -> Reply:
    skip, take = _page(req)
    search = req.query.get("search", "").strip().lower()
    today = state.clock.today()
    rows = []
    for c in sorted(state.patasente.cards.values(), key=lambda c: -c.id):
        if c.sente:
            continue
        if search and search not in c.card_no.lower() and search not in c.card_type.lower():
            continue
        rows.append({
            "id": c.id, "company_id": data.MERCHANT_COMPANY_ID, "card_names": c.holder,
            "card_request_names": c.card_type, "card_request_id": c.id, "card_type_id": 2,
            "currency": c.currency, "currency_id": 1, "card_type": c.card_type,
            "card_no": c.card_no, "amount": c.face_value, "balance": c.balance,
            "card_limit": c.face_value, "new_owner_company_id": None,
            "new_owner_business_name": None, "new_owner_merchant_code": None,
            "status_modified_by": data.MERCHANT_COMPANY_ID,
            "status_modified_by_business_name": data.MERCHANT_NAME,
            "status_modified_by_merchant_code": data.MERCHANT_CODE, "expiry_date": c.expiry,
            "status": c.shown_status(today), "deleted": None, "has_pin": c.has_pin,
            "created_at": c.created_at, "updated_at": c.updated_at,
        })
    page = rows[skip:skip + take]
    return reply(page) if page else error("No Card requests found.")


def card_statuses(state: SandboxState, req: Req) -> Reply:
    return reply(list(_STATUSES))


#: endpoint -> (methods, number of path arguments, handler, needs a token)
ROUTES: dict[str, tuple[frozenset[str], int, Handler, bool]] = {
    "login": (frozenset({"POST"}), 0, login, False),
    "get-company-details": (frozenset({"GET"}), 0, company_details, True),
    "get-wallet-balance": (frozenset({"GET"}), 0, wallet_balance, True),
    "get-company-products": (frozenset({"GET"}), 0, company_products, True),
    "convert-currency": (frozenset({"GET"}), 3, convert_currency, True),
    "get-patasente-card": (frozenset({"GET"}), 2, get_card, True),
    "debit-patasente-card": (frozenset({"POST"}), 1, debit_card, True),
    "credit-patasente-card": (frozenset({"POST"}), 1, credit_card, True),
    "modify-patasente-card-status": (frozenset({"PUT"}), 1, modify_card_status, True),
    "activate-sente-card": (frozenset({"POST"}), 0, activate_sente_card, True),
    "phone-code-verification": (frozenset({"PUT"}), 0, phone_code_verification, True),
    "lock-sente-card": (frozenset({"PUT"}), 1, lock_card, True),
    "unlock-sente-card": (frozenset({"PUT"}), 1, unlock_card, True),
    "get-prepaid-transactions": (frozenset({"GET"}), 0, prepaid_transactions, True),
    "get-company-sente-cards": (frozenset({"GET"}), 0, company_sente_cards, True),
    # The document says POST for this list; accept GET as well.
    "get-activated-sente-cards": (frozenset({"GET", "POST"}), 0, activated_sente_cards, True),
    "get-issued-patasente-cards": (frozenset({"GET"}), 0, issued_cards, True),
    "get-support-issued-card-statuses": (frozenset({"GET"}), 0, card_statuses, True),
}


def handle(state: SandboxState, req: Req) -> Reply:
    """Answer one Patasente request (the caller holds ``state.lock``)."""
    route = ROUTES.get(req.endpoint)
    if route is None or len(req.args) != route[1]:
        return error("Not found", 404)
    methods, _, handler, needs_token = route
    if req.method not in methods:
        return error("Method not allowed", 405)
    if needs_token:
        auth = req.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in state.patasente.tokens:
            return error("Unauthenticated.", 401)
    return handler(state, req)
