"""PawaCard (Kenya Power vending): async client.

Wire format (document 003): every call is a JSON POST; the body carries
``username`` and the ``key`` returned by ``/login``; numbers are strings.
``status`` 0 means success, 1 "failed or pending" with the real state in
``transaction.status`` (0/5 pending, 1 complete, 2 failed); 102-105 are
float, ref, not-found and daily-limit answers.

Money moves on ``/vend`` and ``/postpaidbill`` only. Those are sent once; an
unknown outcome is resolved through ``/transaction`` / ``/postpaidtransaction``
by ``ref``, and sent again (same ref, once) only when the provider says it has
no such transaction (104).
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

from pos.config import PawaCardSettings
from pos.errors import (
    AuthError,
    Declined,
    InputError,
    OutcomeUnknown,
    PosError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from pos.meter import validate_account, validate_meter
from pos.money import Money, parse_amount
from pos.providers import http
from pos.providers.http import RetryPolicy, Transient, as_int, as_str
from pos.providers.models import (
    AccountInfo,
    Charge,
    MeterInfo,
    VendOutcome,
    VendStatus,
)

PROVIDER = "PawaCard"

#: A ``status: 1`` message meaning the key was refused (re-login and repeat).
_KEY_REJECTED = re.compile(r"\b(key|login|token|unauthori[sz]ed|authenticat\w*|session)\b", re.I)
#: The meter throttle: one transaction per meter every 5 minutes.
_THROTTLE = re.compile(r"too soon", re.I)
# elec100 "Request timed out. please fetch the response again": PawaCard lost its
# answer from Kenya Power; the sale may have happened. Never a decline.
_FETCH_AGAIN = re.compile(r"timed out|fetch the response again", re.I)
#: ``elec100`` / "Connection error": Kenya Power could not be reached; fetch again.
_UPSTREAM_TIMEOUT = re.compile(r"timed out|fetch the response again|connection error", re.I)


def _status(data: dict[str, Any]) -> str | None:
    return as_str(data.get("status"))


def _msg(data: dict[str, Any]) -> str:
    return as_str(data.get("msg")) or ""


def key_rejected(data: dict[str, Any]) -> bool:
    """``status`` 1, no transaction, and a message about the key / login."""
    return (
        _status(data) == "1"
        and not isinstance(data.get("transaction"), dict)
        and bool(_KEY_REJECTED.search(_msg(data)))
        and not _THROTTLE.search(_msg(data))
    )


def check_ref(ref: str) -> str:
    ref = ref.strip()
    if not ref.isdigit() or len(ref) > 32:
        raise InputError(f"A PawaCard reference is numeric, not {ref!r}")
    return ref


# ------------------------------------------------------------------ parsing
def parse_charges(fixed: Any) -> tuple[Charge, ...]:
    """``"fixed": [{"REPCharge": "6486"}, ...]`` -> charges, as sent (not summed)."""
    out: list[Charge] = []
    if isinstance(fixed, dict):
        fixed = [fixed]
    if not isinstance(fixed, list):
        return ()
    for item in fixed:
        if isinstance(item, dict):
            for name, amount in item.items():
                out.append(Charge(str(name), as_str(amount) or ""))
    return tuple(out)


def _money(value: Any, currency: str) -> Money | None:
    if value is None or value == "":
        return None
    try:
        return parse_amount(value, currency)
    except PosError:
        return None  # shown on the receipt only: an odd total must not lose a token


def parse_vend(data: Any, ref: str, currency: str, *, postpaid: bool = False) -> VendOutcome:
    """Map a ``/vend``, ``/transaction``, ``/postpaidbill`` or ``/postpaidtransaction``
    answer onto a :class:`VendOutcome`. Raises ProviderError for a shape we cannot read.
    """
    if not isinstance(data, dict):
        raise http.unexpected(PROVIDER, 200, f"a {type(data).__name__}, not an object")
    status = _status(data)
    code = as_str(data.get("code"))
    msg = _msg(data)
    txn = data.get("transaction") if isinstance(data.get("transaction"), dict) else None
    tstatus = as_str(txn.get("status")) if txn else None
    src: dict[str, Any] = {**data, **txn} if txn else data  # fields may sit at either level
    tmsg = (as_str(txn.get("msg")) if txn else None) or msg

    def outcome(st: VendStatus, message: str = "", **kw: Any) -> VendOutcome:
        return VendOutcome(
            status=st,
            ref=as_str(src.get("ref")) or ref,
            message=message,
            code=code,
            customer_name=as_str(src.get("customerName")),
            transaction_id=as_int(src.get("transactionId")),
            date=as_str(src.get("date")),
            raw=data,
            **kw,
        )

    if status == "102":
        return outcome(VendStatus.DECLINED, f"Vendor float too low: {msg}".rstrip(": "))
    if status == "103":
        return outcome(VendStatus.DECLINED, f"Bad reference number: {msg}".rstrip(": "))
    if status == "104":
        return outcome(VendStatus.ABSENT, msg or "Transaction not found")
    if status == "105":
        return outcome(
            VendStatus.DECLINED, msg or "The meter has reached the maximum vends allowed per day"
        )

    token = as_str(src.get("token"))
    receipt = as_str(src.get("stdTokenRctNum")) or as_str(src.get("rctNum"))
    total = _money(src.get("totalAmount", src.get("amount")), currency)
    details: dict[str, Any] = {
        "receipt_no": receipt,
        "units": as_str(src.get("units")),
        "total_amount": total,
        "charges": parse_charges(src.get("fixed")),
    }
    ok_status = status in (None, "0")
    complete = ok_status and code in (None, "elec000") and tstatus in (None, "1")
    if not postpaid and token and complete:
        return outcome(VendStatus.VENDED, msg or "success", token=token, **details)
    if tstatus in ("0", "5"):
        return outcome(VendStatus.PENDING, tmsg or "transaction still pending")
    if code == "elec100" or _FETCH_AGAIN.search(tmsg or ""):
        # Outcome unknown: the caller queries by ref before anything is sent again.
        raise http.Transient(
            f"PawaCard has no answer from Kenya Power yet ({tmsg or code})",
            provider=PROVIDER, http_status=200,
        )
    if tstatus == "2" or code in ("elec001", "elec003"):
        return outcome(VendStatus.DECLINED, tmsg or "Failed")
    if tstatus == "1" and ok_status:
        if postpaid:
            return outcome(VendStatus.VENDED, msg or "success", **details)
        if token:
            return outcome(VendStatus.VENDED, msg or "success", token=token, **details)
        raise http.unexpected(PROVIDER, 200, "complete prepaid transaction without a token")
    if status == "1":
        if _THROTTLE.search(msg):
            return outcome(VendStatus.DECLINED, msg, throttled=True)
        if txn is None:
            return outcome(VendStatus.DECLINED, msg or "Failed")
    raise http.unexpected(
        PROVIDER, 200, f"status={status} transaction.status={tstatus} code={code}"
    )


class PawaCardClient(http.ClientBase):
    """Async client of the PawaCard vending API (see module docstring)."""

    provider = PROVIDER

    def __init__(
        self,
        settings: PawaCardSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(settings, transport=transport, retry=retry,
                         headers={"Content-Type": "application/json"})
        self.currency = settings.currency.upper()
        self._key: str | None = None  # in memory only
        self._login_lock = asyncio.Lock()

    # ---------------------------------------------------------------- plumbing
    async def _post_once(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """One POST; the decoded object, or an error by kind (see :mod:`.http`)."""
        resp = await http.send(self._client, PROVIDER, "POST", endpoint, json=body)
        if resp.status_code in (429, 503):
            raise http.rate_limited(PROVIDER, resp)
        if resp.status_code >= 500:
            raise http.server_error(PROVIDER, resp)
        if resp.status_code == 401:
            raise _KeyRefused()
        data = http.decode_json(PROVIDER, resp)
        if not isinstance(data, dict):
            raise http.unexpected(
                PROVIDER, resp.status_code, f"a {type(data).__name__}, not an object"
            )
        if resp.status_code != 200:
            raise http.unexpected(PROVIDER, resp.status_code, _msg(data) or "HTTP error")
        return data

    async def login(self) -> None:
        """Log in and keep the key in memory (it is never returned, logged or shown)."""

        async def once() -> dict[str, Any]:
            body = {
                "username": self._settings.username,
                "password": self._settings.password.get_secret_value(),
            }
            try:
                return await self._post_once("login", body)
            except _KeyRefused:
                raise AuthError("PawaCard refused the vendor login", provider=PROVIDER) from None

        data = await http.retrying(self._retry, once)
        key = as_str(data.get("key"))
        if _status(data) != "0" or not key:
            raise AuthError(
                f"PawaCard refused the vendor login: {_msg(data) or 'no key'}", provider=PROVIDER
            )
        self._key = "".join(key.split())  # the document wraps the key over two lines

    async def _ensure_key(self, stale: str | None = None) -> str:
        async with self._login_lock:
            if self._key is None or self._key == stale:
                self._key = None
                await self.login()
            assert self._key is not None
            return self._key

    async def _authed_once(self, endpoint: str, fields: dict[str, Any]) -> dict[str, Any]:
        """POST with username + key; on a refused key log in again once and repeat.

        A refused key means nothing was done, so repeating is safe even for a vend.
        """
        key = await self._ensure_key()
        for attempt in (1, 2):
            body = {"username": self._settings.username, "key": key, **fields}
            try:
                data = await self._post_once(endpoint, body)
            except _KeyRefused:
                data = None
            if data is not None and not key_rejected(data):
                return data
            if attempt == 2:
                raise AuthError("PawaCard refused the vendor key after a fresh login",
                                provider=PROVIDER)
            key = await self._ensure_key(stale=key)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _query(self, endpoint: str, fields: dict[str, Any]) -> dict[str, Any]:
        """A request that moves no money: retried on unavailable / transient errors."""
        return await http.retrying(self._retry, lambda: self._authed_once(endpoint, fields))

    # ---------------------------------------------------------------- queries
    async def balance(self) -> Money:
        """The vendor float."""
        data = await self._query("balance", {})
        if _status(data) != "0":
            raise Declined(_msg(data) or "Balance refused", provider=PROVIDER)
        try:
            return parse_amount(data.get("balance"), self.currency)
        except PosError:
            raise http.unexpected(PROVIDER, 200, "balance is not an amount") from None

    async def verify_meter(self, meter: str) -> MeterInfo:
        """The registered name of a prepaid meter. The Luhn check runs before any request."""
        meter = validate_meter(meter)

        async def once() -> MeterInfo:
            data = await self._authed_once("verify", {"meter": meter})
            return self._customer(data, meter, MeterInfo)

        return await http.retrying(self._retry, once)

    async def postpaid_verify(self, account: str) -> AccountInfo:
        """The name and balance of a postpaid account."""
        account = validate_account(account)

        async def once() -> AccountInfo:
            data = await self._authed_once("postpaidverify", {"accountNo": account})
            info = self._customer(data, account, AccountInfo)
            return info

        return await http.retrying(self._retry, once)

    def _customer(self, data: dict[str, Any], number: str, kind: type) -> Any:
        msg = _msg(data)
        if _status(data) == "0":
            name = as_str(data.get("customerName"))
            if not name:
                raise http.unexpected(PROVIDER, 200, "no customerName")
            if kind is MeterInfo:
                return MeterInfo(meter=number, customer_name=name)
            return AccountInfo(
                account=number,
                customer_name=name,
                balance=_money(data.get("customer_balance"), self.currency),
            )
        if _UPSTREAM_TIMEOUT.search(msg):
            # Kenya Power did not answer PawaCard: the document says "fetch again".
            raise Transient(
                f"PawaCard could not reach Kenya Power: {msg}",
                provider=PROVIDER,
                http_status=200,
                detail=as_str(data.get("code")),
            )
        raise Declined(msg or "Not found at Kenya Power", provider=PROVIDER,
                       code=as_str(data.get("code")))

    async def transaction(self, ref: str) -> VendOutcome:
        """State of a prepaid vend by ref (same answers as ``/vend``)."""
        ref = check_ref(ref)
        data = await self._query("transaction", {"ref": ref})
        return parse_vend(data, ref, self.currency)

    async def postpaid_transaction(self, ref: str) -> VendOutcome:
        """State of a postpaid bill payment by ref."""
        ref = check_ref(ref)
        data = await self._query("postpaidtransaction", {"ref": ref})
        return parse_vend(data, ref, self.currency, postpaid=True)

    async def poll(
        self,
        ref: str,
        *,
        postpaid: bool = False,
        interval: float | None = None,
        max_polls: int | None = None,
    ) -> VendOutcome:
        """Query by ref every ``interval`` seconds while PENDING, at most ``max_polls`` times.

        Returns the last outcome (still PENDING if it never settled: the sync
        worker keeps polling across restarts).
        """
        interval = self._settings.poll_interval if interval is None else interval
        polls = self._settings.max_polls if max_polls is None else max_polls
        query = self.postpaid_transaction if postpaid else self.transaction
        outcome = await query(ref)
        for _ in range(max(0, polls - 1)):
            if outcome.status is not VendStatus.PENDING:
                break
            await asyncio.sleep(interval)
            outcome = await query(ref)
        return outcome

    # ---------------------------------------------------------------- money
    async def vend(self, meter: str, amount: Money, customer_name: str, ref: str) -> VendOutcome:
        """Buy a prepaid token. Sent once; a lost answer is resolved by ref."""
        meter = validate_meter(meter)
        fields = {
            "amount": self._wire(amount),
            "meter": meter,
            "customerName": customer_name,
            "ref": check_ref(ref),
        }
        return await self._money("vend", fields, ref, postpaid=False)

    async def postpaid_bill(
        self, account: str, amount: Money, customer_name: str, ref: str
    ) -> VendOutcome:
        """Pay a postpaid bill. Sent once; a lost answer is resolved by ref."""
        fields = {
            "customerName": customer_name,
            "amount": self._wire(amount),
            "accountNo": validate_account(account),
            "ref": check_ref(ref),
        }
        return await self._money("postpaidbill", fields, ref, postpaid=True)

    def _wire(self, amount: Money) -> str:
        if amount.currency != self.currency:
            raise InputError(f"PawaCard amounts are in {self.currency}, not {amount.currency}")
        if amount.minor <= 0:
            raise InputError("The amount must be greater than zero")
        return amount.wire()

    async def _money(
        self, endpoint: str, fields: dict[str, Any], ref: str, *, postpaid: bool
    ) -> VendOutcome:
        query = self.postpaid_transaction if postpaid else self.transaction
        for sends in (1, 2):
            try:
                data = await self._authed_once(endpoint, fields)
                return parse_vend(data, ref, self.currency, postpaid=postpaid)
            except (ProviderUnavailable, AuthError, InputError, Declined):
                raise  # nothing was sent (or it was refused): safe as is
            except RateLimited as exc:
                if exc.http_status == 429:
                    raise  # refused before any work
                lost: ProviderError = exc  # a 503 after sending: resolve like any other
            except ProviderError as exc:  # Transient, unparsable answer
                lost = exc
            await asyncio.sleep(self._retry.settle_delay)
            try:
                found = await query(ref)
            except PosError:
                raise OutcomeUnknown(
                    f"PawaCard {endpoint} outcome unknown ({lost.message}); "
                    "the status check also failed",
                    provider=PROVIDER,
                    ref=ref,
                ) from None
            if found.status is not VendStatus.ABSENT:
                return found
            if sends == 2:
                break
        raise OutcomeUnknown(
            f"PawaCard {endpoint} outcome unknown after a second attempt",
            provider=PROVIDER,
            ref=ref,
        )


class _KeyRefused(Exception):
    """HTTP 401 from PawaCard (internal signal: log in again)."""
