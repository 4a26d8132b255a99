"""Patasente (Uganda): async client for cards, float, products.

Wire format (document 002): parameters go in the query string even on POST
and PUT, exactly as the document sends them; a bearer token from ``login``
authorises everything else. Errors come back as HTTP 400 ``{"error": msg}``
and successes as ``{"success": msg}``.

Money moves on ``debit-patasente-card`` and ``credit-patasente-card``. Each is
sent ONCE by this client; the terminal's ref travels in ``payment_reason``
(``... ref:<ref>``). An answer lost on the way raises
:class:`~pos.errors.OutcomeUnknown`: Patasente does not de-duplicate by ref, and
the document does not say that ``get-prepaid-transactions?search=`` finds a ref
inside a reason (its own credit example shows a reason rewritten by the server),
so whether anything is sent again is decided by reconciliation
(pos.usecases.reconcile) from several signals, never here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

from pos.cardqr import CardRef
from pos.config import PatasenteSettings
from pos.digits import is_digits
from pos.errors import (
    AuthError,
    Declined,
    InputError,
    PosError,
)
from pos.money import Money, parse_amount
from pos.providers import http
from pos.providers.http import RetryPolicy, as_bool, as_int, as_str
from pos.providers.models import (
    CardInfo,
    CardOpResult,
    CardOpStatus,
    CompanyDetails,
    PrepaidTransaction,
    Product,
    SenteActivation,
    WalletBalance,
)
from pos.refs import REF_TAG, reason_with_ref

PROVIDER = "Patasente"

#: A 400 answer to a search meaning "nothing matched" (the document answers
#: ``{"error": "No Card requests found."}`` for an empty card-request list).
_NOTHING_FOUND = re.compile(r"\bno\b.*\bfound\b", re.I)
#: Above this size the KYC document goes in a form body, not the URL (see activate).
_QUERY_DOCUMENT_LIMIT = 4096
FAILED_ROW = re.compile(r"fail|declin|revers|cancel", re.I)


def _amount(value: Any, currency: str, field: str) -> Money:
    try:
        return parse_amount(value, currency)
    except PosError:
        raise http.unexpected(PROVIDER, 200, f"{field} is not an amount: {value!r}") from None


def _opt_amount(data: Mapping[str, Any], currency: str, *fields: str) -> Money | None:
    """The first of ``fields`` present and readable as an amount (raw or ``formated_``)."""
    for f in fields:
        v = data.get(f)
        if v is None or v == "":
            continue
        try:
            return parse_amount(v, currency)
        except PosError:
            continue
    return None


def _obj(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise http.unexpected(PROVIDER, 200, f"{what}: a {type(data).__name__}, not an object")
    return data


def _date(value: Any) -> str | None:
    """``"2020-09-13 03:51:07"`` or ``{"date": "2019-06-24 23:56:00.000000", ...}``."""
    if isinstance(value, dict):
        value = value.get("date")
    return as_str(value)


# ------------------------------------------------------------------ parsing
def parse_card(data: Any, card: CardRef | None = None) -> CardInfo:
    """``get-patasente-card``: tolerant of numbers as strings, odd expiry, missing fields."""
    d = _obj(data, "card")
    currency = (as_str(d.get("currency")) or (card.currency if card else None) or "UGX").upper()
    card_id = as_int(d.get("id"))
    if card_id is None:
        card_id = card.card_id if card else None
    if card_id is None:
        raise http.unexpected(PROVIDER, 200, "card without an id")
    wallets: list[str] = []
    raw_wallets = d.get("wallets")
    if isinstance(raw_wallets, list):
        for w in raw_wallets:
            name = as_str(w.get("name")) if isinstance(w, dict) else as_str(w)
            if name:
                wallets.append(name)
    zero = Money.zero(currency)
    balance = _opt_amount(d, currency, "current_account_wallet_balance", "balance") or zero
    limit = _opt_amount(d, currency, "credit_account_limit", "card_limit") or zero
    available = _opt_amount(d, currency, "available_credit") or zero
    if not wallets:
        wallets = ["Current Account"]  # a gift card: only its own balance
    return CardInfo(
        card_id=card_id,
        card_no=as_str(d.get("card_no")) or (card.number if card else ""),
        currency=currency,
        status=(as_str(d.get("status")) or "unknown").lower(),
        has_pin=as_bool(d.get("has_pin"), default=True),  # unknown: ask for the PIN
        wallets=tuple(wallets),
        current_balance=balance,
        credit_limit=limit,
        available_credit=available,
        expiry=as_str(d.get("expiry_date")),
        company_id=as_int(d.get("company_id")),
        raw=d,
    )


def parse_wallet_balance(data: Any) -> WalletBalance:
    d = _obj(data, "wallet balance")
    currency = (as_str(d.get("currency")) or "UGX").upper()
    amount = _opt_amount(d, currency, "amount", "formated_amount")
    if amount is None:
        raise http.unexpected(PROVIDER, 200, "wallet balance without an amount")
    return WalletBalance(
        currency=currency,
        amount=amount,
        prepaid_float=_opt_amount(
            d, currency, "prepaid_account_balance", "formated_prepaid_account_balance"
        ),
        credit_balance=_opt_amount(
            d, currency, "credit_account_balance", "formated_credit_account_balance"
        ),
        reseller_float=_opt_amount(d, currency, "reseller_float", "formated_reseller_float"),
        account_no=as_str(d.get("account_no")),
    )


def parse_prepaid_transaction(data: Any, currency: str = "UGX") -> PrepaidTransaction:
    """One ``get-prepaid-transactions`` row. Strict on amount and reason (they decide
    reconciliation), lenient on the rest."""
    d = _obj(data, "transaction")
    cur = (as_str(d.get("currency_format")) or currency).upper()
    reason = d.get("payment_reason")
    if not isinstance(reason, str):
        raise http.unexpected(PROVIDER, 200, "transaction without a payment_reason")
    return PrepaidTransaction(
        id=as_int(d.get("id")) or 0,
        transaction_id=as_str(d.get("transaction_id")) or "",
        amount=_amount(d.get("amount"), cur, "amount"),
        payment_reason=reason,
        status=as_str(d.get("transaction_status")) or "",
        card_transaction_type=(as_str(d.get("card_transaction_type")) or "").lower() or None,
        card_no=as_str(d.get("patasente_card_no")),
        created_at=_date(d.get("created_at")),
        raw=d,
    )


def parse_prepaid_transactions(data: Any, currency: str = "UGX") -> list[PrepaidTransaction]:
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]  # a paginated envelope, should one appear
    if not isinstance(data, list):
        raise http.unexpected(PROVIDER, 200, "transactions: not a list")
    return [parse_prepaid_transaction(row, currency) for row in data]


def parse_company_details(data: Any) -> CompanyDetails:
    d = _obj(data, "company details")
    currency = (as_str(d.get("currency")) or "UGX").upper()
    cid = as_int(d.get("id"))
    if cid is None:
        raise http.unexpected(PROVIDER, 200, "company details without an id")
    return CompanyDetails(
        id=cid,
        business_name=as_str(d.get("business_name")) or "",
        merchant_code=as_str(d.get("merchant_code")) or "",
        currency=currency,
        wallet_balance=_opt_amount(d, currency, "wallet_balance"),
        prepaid_account=as_str(d.get("prepaid_account")),
        raw=d,
    )


def parse_products(data: Any, currency: str = "UGX") -> list[Product]:
    if not isinstance(data, list):
        raise http.unexpected(PROVIDER, 200, "products: not a list")
    out: list[Product] = []
    for row in data:
        d = _obj(row, "product")
        cur = (as_str(d.get("currency_format")) or currency).upper()
        price = _opt_amount(d, cur, "unit_price", "unit_price_formatted")
        pid = as_int(d.get("id"))
        if price is None or pid is None:
            raise http.unexpected(PROVIDER, 200, "product without an id or a price")
        out.append(
            Product(
                id=pid,
                name=as_str(d.get("product_name")) or as_str(d.get("name")) or f"#{pid}",
                unit_price=price,
                units=as_str(d.get("units")),
            )
        )
    return out


def ref_in_reason(reason: str, ref: str) -> bool:
    """True when ``reason`` carries exactly ``ref:<ref>`` (not a longer number)."""
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(REF_TAG + ref)}(?!\d)", reason) is not None


def _message(data: Any, key: str) -> str | None:
    return as_str(data.get(key)) if isinstance(data, dict) else None


class PatasenteClient(http.ClientBase):
    """Async client of the Patasente merchant API (see module docstring)."""

    provider = PROVIDER

    def __init__(
        self,
        settings: PatasenteSettings,
        currency: str = "UGX",
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        policy = retry or RetryPolicy(attempts=settings.retry_attempts,
                                      wait_initial=settings.retry_wait)
        super().__init__(settings, transport=transport, retry=policy)
        self.currency = currency.upper()
        self._token: str | None = None  # in memory only
        self._login_lock = asyncio.Lock()

    # ---------------------------------------------------------------- plumbing
    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        *,
        token: str | None,
        data: Mapping[str, str] | None = None,
    ) -> http.Answer:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        return await self._http_send(method, path, params=query, headers=headers, data=data)

    def _decode(self, answer: http.Answer) -> Any:
        """The JSON of a 2xx answer; a 4xx ``{"error": msg}`` raises Declined(msg).

        Link failures (3xx, 408, 429, 5xx, a non-JSON 2xx) raise LinkDown
        (see :func:`pos.providers.http.link_failure`); a 4xx without the documented
        ``error`` field is still a refusal (document 002: errors come back as 400).
        """
        status = answer.status_code
        failure = http.link_failure(PROVIDER, answer)
        if failure is not None:
            raise failure
        if 400 <= status < 500:
            data = http.decode_json_or_none(answer)
            raise http.refused(PROVIDER, status, _message(data, "error") or
                               _message(data, "message"))
        data = http.decode_json(PROVIDER, answer)
        error = _message(data, "error")
        if error and not _message(data, "success"):
            raise Declined(error[:300], provider=PROVIDER)
        return data

    async def login(self) -> None:
        """Log in with the merchant credentials; the token stays in memory only."""

        async def once() -> Any:
            params = {
                "username": self._settings.username,
                "password": self._settings.password.get_secret_value(),
            }
            resp = await self._send("POST", "login", params, token=None)
            if 400 <= resp.status_code < 500 and resp.status_code not in (407, 408, 425, 429):
                msg = _message(http.decode_json_or_none(resp), "error") or "login refused"
                raise AuthError(f"Patasente refused the merchant login: {msg}", provider=PROVIDER,
                                http_status=resp.status_code)
            return self._decode(resp)

        try:
            data = await http.retrying(self._retry, once)
        except Declined as exc:
            raise AuthError(f"Patasente refused the merchant login: {exc.message}",
                            provider=PROVIDER) from None
        token = _message(data, "token")
        if not token:
            raise http.unexpected(PROVIDER, 200, "login answer without a token")
        self._token = "".join(token.split())  # the document wraps tokens over lines

    async def _ensure_token(self, stale: str | None = None) -> str:
        async with self._login_lock:
            if self._token is None or self._token == stale:
                self._token = None
                await self.login()
            assert self._token is not None
            return self._token

    async def _authed_once(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> Any:
        """Send with the bearer token; on 401 log in again once and repeat (a 401
        means the request was refused, so repeating is safe even for a debit)."""
        token = await self._ensure_token()
        resp = await self._send(method, path, params, token=token, data=data)
        if resp.status_code == 401:
            token = await self._ensure_token(stale=token)
            resp = await self._send(method, path, params, token=token, data=data)
            if resp.status_code == 401:
                raise AuthError("Patasente refused the session after a fresh login",
                                provider=PROVIDER, http_status=401)
        return self._decode(resp)

    async def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """A request that moves no money: retried on unavailable / transient errors."""
        return await http.retrying(self._retry, lambda: self._authed_once("GET", path, params))

    async def _action(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                      data: Mapping[str, str] | None = None) -> str:
        """A card-service action (no money): ``{"success": msg}`` -> msg; 400 -> Declined.

        Retried only when nothing was sent: a lost answer raises Transient and
        the caller reads the card's status instead of repeating the change.
        """
        result = await http.retrying(
            self._retry, lambda: self._authed_once(method, path, params, data), idempotent=False
        )
        msg = _message(result, "success") or _message(result, "message")
        if msg is None:
            raise http.unexpected(PROVIDER, 200, "no success message")
        return msg

    # ---------------------------------------------------------------- queries
    async def company_details(self) -> CompanyDetails:
        return parse_company_details(await self._get("get-company-details"))

    async def wallet_balance(self) -> WalletBalance:
        return parse_wallet_balance(await self._get("get-wallet-balance"))

    async def get_card(self, card: CardRef) -> CardInfo:
        """What the issuer says about a scanned card (400 "Card doesn't exist." -> Declined)."""
        data = await self._get(f"get-patasente-card/{card.card_id}/{card.number}")
        return parse_card(data, card)

    async def prepaid_transactions(
        self,
        skip: int = 0,
        take: int = 10,
        search: str | None = None,
        from_date: str | None = None,
        to_date: str | None = None,
    ) -> list[PrepaidTransaction]:
        params = {"skip": skip, "take": take, "search": search,
                  "from_date": from_date, "to_date": to_date}
        try:
            data = await self._get("get-prepaid-transactions", params)
        except Declined as exc:
            if _NOTHING_FOUND.search(exc.message):
                return []
            raise
        return parse_prepaid_transactions(data, self.currency)

    async def find_by_ref(self, ref: str, *, kind: str | None = None) -> PrepaidTransaction | None:
        """The card debit / credit whose ``payment_reason`` carries ``ref:<ref>``, as
        ``get-prepaid-transactions?search=<ref>`` returns it (one signal among several:
        the document does not promise that search looks inside reasons).

        ``kind`` ("debit" / "credit") skips rows of the other type (a refund
        could quote the ref of the debit it reverses).
        """
        rows = await self.prepaid_transactions(skip=0, take=50, search=ref)
        for row in rows:
            if not ref_in_reason(row.payment_reason, ref):
                continue  # the search is free text: "12" also finds "ref:123"
            if kind and row.card_transaction_type not in (None, kind):
                continue
            return row
        return None

    async def history(self, since: dt.date, *, max_rows: int = 500,
                      page: int = 50) -> tuple[list[PrepaidTransaction], bool]:
        """Prepaid transactions from ``since`` on, newest first, WITHOUT a search term
        (independent of how search works): ``(rows, complete)``; ``complete`` is False
        when ``max_rows`` were read before reaching rows older than ``since``."""
        rows: list[PrepaidTransaction] = []
        skip = 0
        while len(rows) < max_rows:
            batch = await self.prepaid_transactions(skip=skip, take=page,
                                                    from_date=since.isoformat())
            rows.extend(batch)
            if len(batch) < page:
                return rows, True
            skip += page
        return rows, False

    async def company_products(self) -> list[Product]:
        return parse_products(await self._get("get-company-products"), self.currency)

    async def convert_currency(self, frm: str, to: str, amount: Money) -> Money:
        if amount.currency != frm.upper():
            raise InputError(f"Amount is in {amount.currency}, not {frm.upper()}")
        path = f"convert-currency/{frm.lower()}/{to.lower()}/{amount.wire()}"
        data = await self._get(path)
        result = data.get("result") if isinstance(data, dict) else None
        if result is None:
            raise http.unexpected(PROVIDER, 200, "conversion without a result")
        return _amount(result, to.upper(), "result")

    # ---------------------------------------------------------------- card services
    async def modify_card_status(
        self,
        card_id: int,
        status: str,
        pin: str | None = None,
        phone_number: str | None = None,
        card_names: str | None = None,
    ) -> str:
        """Activate (with the customer's PIN) / deactivate a gift card."""
        params = {"status": status, "pin": pin, "phone_number": phone_number,
                  "card_names": card_names}
        return await self._action("PUT", f"modify-patasente-card-status/{int(card_id)}", params)

    async def activate_sente_card(
        self,
        card_id: int,
        name: str,
        phone_number: str,
        email: str | None,
        pin: str,
        document_b64: str,
    ) -> SenteActivation:
        """KYC activation; a code is then sent to the holder's phone (verify_phone_code).

        The document sends ``document`` (base64 of an ID scan) in the query
        string like everything else, but a real scan is far larger than what
        servers accept in a URL (8 KB is common). Small documents follow the
        document; a large one goes as a form body field instead, which a
        Laravel-style server reads through the same ``input('document')``.
        """
        params: dict[str, Any] = {
            "name": name,
            "phone_number": phone_number,
            "card_id": int(card_id),
            "email": email or "",
            "pin": pin,
            "card_agreement": "true",
            "platform_agreement": "true",
        }
        form: dict[str, str] | None = None
        if len(document_b64) <= _QUERY_DOCUMENT_LIMIT:
            params["document"] = document_b64
        else:
            form = {"document": document_b64}
        # Not retried: a retry after a lost answer would send a second SMS code
        # and answer "Card is already assigned"; the cashier retries instead.
        data = await self._authed_once("POST", "activate-sente-card", params, form)
        d = _obj(data, "activation")
        user_id = as_int(d.get("user_id"))
        if user_id is None:
            raise http.unexpected(PROVIDER, 200, "activation without a user_id")
        return SenteActivation(
            user_id=user_id,
            phone_number=as_str(d.get("phone_number")) or phone_number,
            message=as_str(d.get("success")) or "",
        )

    async def verify_phone_code(self, user_id: int, phone_number: str, code: str) -> str:
        params = {"phone_number": phone_number, "user_id": int(user_id), "code": code}
        return await self._action("PUT", "phone-code-verification", params)

    async def lock_card(self, card_id: int) -> str:
        return await self._action("PUT", f"lock-sente-card/{int(card_id)}")

    async def unlock_card(self, card_id: int) -> str:
        return await self._action("PUT", f"unlock-sente-card/{int(card_id)}")

    # ---------------------------------------------------------------- money
    async def debit_card(
        self,
        card_id: int,
        amount: Money,
        reason: str,
        pin: str | None,
        wallet: str,
        ref: str,
    ) -> CardOpResult:
        """Debit a card. ``pin`` None for a card without a PIN (the parameter is omitted)."""
        params = {
            "amount": self._wire(amount),
            "payment_reason": reason_with_ref(reason, self._ref(ref)),
            "pin": pin,
            "wallet_account": wallet or self._settings.default_wallet,
        }
        return await self._money(f"debit-patasente-card/{int(card_id)}", params, ref, "debit")

    async def credit_card(self, card_id: int, amount: Money, reason: str, ref: str) -> CardOpResult:
        """Credit (top up / refund) a card from the prepaid float."""
        params = {
            "amount": self._wire(amount),
            "payment_reason": reason_with_ref(reason or "Refund", self._ref(ref)),
        }
        return await self._money(f"credit-patasente-card/{int(card_id)}", params, ref, "credit")

    @staticmethod
    def _ref(ref: str) -> str:
        if not is_digits(ref):
            raise InputError(f"A transaction reference is numeric, not {ref!r}")
        return ref

    def _wire(self, amount: Money) -> str:
        return http.wire_amount(amount, self.currency, "Card")

    async def _money(
        self, path: str, params: Mapping[str, Any], ref: str, kind: str
    ) -> CardOpResult:
        """Send once (:func:`pos.providers.http.send_money_once`)."""
        data = await http.send_money_once(lambda: self._authed_once("POST", path, params),
                                          provider=PROVIDER, ref=ref,
                                          what=f"Patasente card {kind}")
        return CardOpResult(
            status=CardOpStatus.APPROVED,
            ref=ref,
            message=(_message(data, "success") or "Approved")[:300],
        )
