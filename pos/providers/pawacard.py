"""PawaCard (Kenya Power vending): async client.

Wire format (document 003): every call is a JSON POST; the body carries
``username`` and the ``key`` returned by ``/login``; numbers are strings.
``status`` 0 means success, 1 "failed request, pending" with the real state in
``transaction.status`` (0/5 pending, 1 complete, 2 failed); 102-105 are
float, ref, not-found and daily-limit answers.

Money moves on ``/vend`` and ``/postpaidbill`` only. Each is sent ONCE by this
client: an answer lost on the way (any :class:`~pos.errors.LinkDown` after the
request may have left, or an answer we cannot read) raises
:class:`~pos.errors.OutcomeUnknown`. Whether and when to send again is decided by
reconciliation (pos.usecases.reconcile), by asking ``/transaction`` /
``/postpaidtransaction`` over a settle window: the document does not say whether a
vend is idempotent by ref, so nothing here relies on it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import httpx

from pos.config import PawaCardSettings
from pos.digits import is_digits
from pos.errors import (
    AuthError,
    Declined,
    InputError,
    NoAnswer,
    OutcomeUnknown,
    PosError,
)
from pos.meter import validate_account, validate_meter
from pos.money import Money, parse_amount
from pos.providers import http
from pos.providers.http import RetryPolicy, as_int, as_str
from pos.providers.models import (
    AccountInfo,
    Charge,
    MeterInfo,
    VendOutcome,
    VendStatus,
)

PROVIDER = "PawaCard"
_T = TypeVar("_T")

#: A ``status: 1`` message meaning the key was refused (re-login and repeat). Narrow on
#: purpose: a token-vending API's own failures talk about "tokens", and taking one of
#: those for a refused key would re-send a sale.
_KEY_REJECTED = re.compile(
    r"invalid (vendor )?key|(wrong|expired|bad|unknown) key|key (is )?(invalid|expired)"
    r"|login again|log in again|not logged in|unauthori[sz]ed|authenticat\w* (failed|required)",
    re.I,
)
#: The meter throttle: one transaction per meter every 5 minutes.
_THROTTLE = re.compile(r"too soon", re.I)
#: Document 003 uses ``elec100`` for two different things. Under /verify, "failed
#: request due to network connection issues": "Request timed out. please fetch the
#: response again" -- and, for a meter Kenya Power does not know, "The specified MSNO
#: ... did not pass the Luhn validation". The message decides which, never the code.
_UPSTREAM_TIMEOUT = re.compile(r"timed out|fetch the response again|connection error", re.I)
_UNKNOWN_METER = re.compile(r"luhn|not registered|does ?n[o']t exist|not exist|not found"
                            r"|invalid (msno|meter|account)|specify a valid", re.I)
#: A token as Kenya Power issues it: 20 digits (STS), shown in groups of four. Other
#: lengths are tolerated; anything that is not a short run of digits is no token.
_TOKEN_CHARS = re.compile(r"[\s-]")
_MAX_TOKEN_DIGITS = 40


def _status(data: dict[str, Any]) -> str | None:
    return as_str(data.get("status"))


def _msg(data: dict[str, Any]) -> str:
    return (as_str(data.get("msg")) or "")[:500]


def key_rejected(data: dict[str, Any]) -> bool:
    """``status`` 1, no transaction, no ``code``, and a message about the key / login."""
    return (
        _status(data) == "1"
        and not isinstance(data.get("transaction"), dict)
        and not data.get("code")
        and "token" not in data
        and bool(_KEY_REJECTED.search(_msg(data)))
        and not _THROTTLE.search(_msg(data))
    )


def check_ref(ref: str) -> str:
    ref = ref.strip()
    if not is_digits(ref) or len(ref) > 32:
        raise InputError(f"A PawaCard reference is numeric, not {ref!r}")
    return ref


def unknown_target(message: str) -> bool:
    """An ``elec100`` (or status 1) message saying Kenya Power does not know the meter."""
    return bool(_UNKNOWN_METER.search(message)) and not _UPSTREAM_TIMEOUT.search(message)


def upstream_timeout(message: str) -> bool:
    """A message saying PawaCard could not get an answer from Kenya Power (fetch again)."""
    return bool(_UPSTREAM_TIMEOUT.search(message))


# ------------------------------------------------------------------ parsing
def parse_charges(fixed: Any) -> tuple[Charge, ...]:
    """``"fixed": [{"REPCharge": "6486"}, ...]`` -> charges, as sent (not summed)."""
    out: list[Charge] = []
    if isinstance(fixed, dict):
        fixed = [fixed]
    if not isinstance(fixed, list):
        return ()
    for item in fixed[:50]:
        if isinstance(item, dict):
            for name, amount in list(item.items())[:50]:
                out.append(Charge(str(name)[:60], (as_str(amount) or "")[:40]))
    return tuple(out)


def _money(value: Any, currency: str) -> Money | None:
    if value is None or value == "":
        return None
    try:
        return parse_amount(value, currency)
    except PosError:
        return None  # shown on the receipt only: an odd total must not lose a token


def parse_token(value: Any) -> str | None:
    """The token digits, or None when the field is absent or is not a token."""
    text = as_str(value)
    if text is None:
        return None
    digits = _TOKEN_CHARS.sub("", text)
    if not is_digits(digits) or len(digits) > _MAX_TOKEN_DIGITS:
        return None
    return digits


def parse_vend(data: Any, ref: str, currency: str, *, postpaid: bool = False) -> VendOutcome:
    """Map a ``/vend``, ``/transaction``, ``/postpaidbill`` or ``/postpaidtransaction``
    answer onto a :class:`VendOutcome`.

    Raises :class:`~pos.errors.NoAnswer` where the answer says PawaCard has no answer
    from Kenya Power yet ("fetch the response again") and ProviderError for a shape we
    cannot read. Odd fields (an absurd ``totalAmount``, a 5,000-digit ``transactionId``)
    are dropped one by one: a token that came is never lost for them.
    """
    if not isinstance(data, dict):
        raise http.unexpected(PROVIDER, 200, f"a {type(data).__name__}, not an object")
    status = _status(data)
    code = as_str(data.get("code"))
    msg = _msg(data)
    txn = data.get("transaction") if isinstance(data.get("transaction"), dict) else None
    tstatus = as_str(txn.get("status")) if txn else None
    src: dict[str, Any] = {**data, **txn} if txn else data  # fields may sit at either level
    tmsg = ((as_str(txn.get("msg")) if txn else None) or msg)[:500]

    def outcome(st: VendStatus, message: str = "", **kw: Any) -> VendOutcome:
        target = as_str(src.get("accountNo")) if postpaid else as_str(src.get("meter"))
        return VendOutcome(
            status=st,
            ref=as_str(src.get("ref")) or ref,
            message=message,
            code=code,
            status_code=status,
            customer_name=(as_str(src.get("customerName")) or "")[:120] or None,
            transaction_id=as_int(src.get("transactionId")),
            date=(as_str(src.get("date")) or "")[:40] or None,
            target=target.strip()[:40] if target else None,
            amount=_money(src.get("amount"), currency),
            raw=data,
            **kw,
        )

    # Statuses of the document ("General Statuses"); each ends here deliberately.
    if status == "102":
        # "102 Insufficient balance": the vendor float cannot pay for it; nothing vended.
        # A sale waiting in the queue stays queued until the float is topped up (settle).
        return outcome(VendStatus.DECLINED, f"Vendor float too low: {msg}".rstrip(": "))
    if status == "103":
        # "103 Bad reference number": this ref was refused (malformed, or already used
        # by another sale): nothing was done under it. Never re-sent with the same ref.
        return outcome(VendStatus.DECLINED, f"Bad reference number: {msg}".rstrip(": "))
    if status == "104":
        return outcome(VendStatus.ABSENT, msg or "Transaction not found")
    if status == "105":
        return outcome(
            VendStatus.DECLINED, msg or "The meter has reached the maximum vends allowed per day"
        )

    token = parse_token(src.get("token"))
    receipt = (as_str(src.get("stdTokenRctNum")) or as_str(src.get("rctNum")) or "")[:60]
    details: dict[str, Any] = {
        "receipt_no": receipt or None,
        "units": (as_str(src.get("units")) or "")[:20] or None,
        "total_amount": _money(src.get("totalAmount", src.get("amount")), currency),
        "charges": parse_charges(src.get("fixed")),
    }
    ok_status = status in (None, "0")
    # With a ``transaction`` object its status is the real state (DESIGN.md): top-level
    # ``status`` 1 means "pending or failed" only until transaction.status says more.
    complete = tstatus == "1" or (tstatus is None and ok_status and code in (None, "elec000"))
    if not postpaid and token and complete:
        return outcome(VendStatus.VENDED, msg or "success", token=token, **details)
    if tstatus in ("0", "5"):
        return outcome(VendStatus.PENDING, tmsg or "transaction still pending")
    if tstatus == "2" or code in ("elec001", "elec003"):
        return outcome(VendStatus.DECLINED, tmsg or "Failed")
    if code == "elec100" or (status == "1" and txn is None and (
            upstream_timeout(tmsg) or unknown_target(tmsg))):
        if unknown_target(tmsg):
            # elec100 with "did not pass the Luhn validation" / "not registered": Kenya
            # Power does not know the meter (document 003, "Meter number doesn't exist").
            return outcome(VendStatus.DECLINED, tmsg, unknown_target=True)
        # elec100 "Request timed out. please fetch the response again": PawaCard lost
        # Kenya Power's answer; the sale may have happened. Never a decline.
        raise NoAnswer(f"PawaCard has no answer from Kenya Power yet ({tmsg or code})",
                       provider=PROVIDER, http_status=200, detail=code)
    if tstatus == "1":
        if postpaid:
            return outcome(VendStatus.VENDED, msg or "success", **details)
        if token:
            return outcome(VendStatus.VENDED, msg or "success", token=token, **details)
        raise http.unexpected(PROVIDER, 200, "complete prepaid transaction without a token")
    if ok_status and not postpaid and src.get("token") is not None and token is None:
        raise http.unexpected(PROVIDER, 200, "a token that is not a token")
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
        policy = retry or RetryPolicy(attempts=settings.retry_attempts,
                                      wait_initial=settings.retry_wait)
        super().__init__(settings, transport=transport, retry=policy,
                         headers={"Content-Type": "application/json"})
        self.currency = settings.currency.upper()
        self._key: str | None = None  # in memory only
        self._login_lock = asyncio.Lock()

    # ---------------------------------------------------------------- plumbing
    async def _post_once(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """One POST; the decoded object, or an error by kind (see :mod:`.http`)."""
        answer = await self._http_send("POST", endpoint, json=body)
        failure = http.link_failure(PROVIDER, answer)
        if failure is not None:
            raise failure
        if answer.status_code == 401:
            raise _KeyRefused()
        if 400 <= answer.status_code < 500:
            # The document defines no HTTP errors: any 4xx is a refusal of this request.
            data = http.decode_json_or_none(answer)
            msg = _msg(data) if isinstance(data, dict) else None
            raise http.refused(PROVIDER, answer.status_code, msg)
        data = http.decode_json(PROVIDER, answer)
        if not isinstance(data, dict):
            raise http.unexpected(
                PROVIDER, answer.status_code, f"a {type(data).__name__}, not an object"
            )
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
            except Declined as exc:
                raise AuthError(f"PawaCard refused the vendor login: {exc.message}",
                                provider=PROVIDER) from None

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
        """A request that moves no money: retried on every form of link failure."""
        return await http.retrying(self._retry, lambda: self._authed_once(endpoint, fields))

    async def _read(self, call: Callable[[], Any]) -> Any:
        return await http.retrying(self._retry, call)

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
        """The registered name of a prepaid meter. The Luhn check runs before any request.

        Raises :class:`~pos.errors.LinkDown` when PawaCard or Kenya Power cannot answer
        (offline for this sale) and Declined when the meter is unknown.
        """
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
            return self._customer(data, account, AccountInfo)

        return await http.retrying(self._retry, once)

    def _customer(self, data: dict[str, Any], number: str, kind: type[_T]) -> _T:
        msg = _msg(data)
        if _status(data) == "0":
            name = (as_str(data.get("customerName")) or "")[:120]
            if not name:
                raise http.unexpected(PROVIDER, 200, "no customerName")
            if kind is MeterInfo:
                return MeterInfo(meter=number, customer_name=name)  # type: ignore[return-value]
            return AccountInfo(  # type: ignore[return-value]
                account=number,
                customer_name=name,
                balance=_money(data.get("customer_balance"), self.currency),
            )
        if unknown_target(msg):
            raise Declined(msg, provider=PROVIDER, code=as_str(data.get("code")))
        if upstream_timeout(msg) or as_str(data.get("code")) == "elec100":
            # Kenya Power did not answer PawaCard ("fetch the response again", or
            # "Connection error" for postpaid): the link beyond PawaCard is down.
            raise NoAnswer(
                f"PawaCard could not reach Kenya Power: {msg or 'elec100'}",
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

    async def status(self, ref: str, *, postpaid: bool) -> VendOutcome:
        return await (self.postpaid_transaction(ref) if postpaid else self.transaction(ref))

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
        outcome = await self.status(ref, postpaid=postpaid)
        for _ in range(max(0, polls - 1)):
            if outcome.status is not VendStatus.PENDING:
                break
            await asyncio.sleep(interval)
            outcome = await self.status(ref, postpaid=postpaid)
        return outcome

    # ---------------------------------------------------------------- money
    async def vend(self, meter: str, amount: Money, customer_name: str, ref: str) -> VendOutcome:
        """Buy a prepaid token. Sent once (see the module docstring)."""
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
        """Pay a postpaid bill. Sent once (see the module docstring)."""
        fields = {
            "customerName": customer_name,
            "amount": self._wire(amount),
            "accountNo": validate_account(account),
            "ref": check_ref(ref),
        }
        return await self._money("postpaidbill", fields, ref, postpaid=True)

    def _wire(self, amount: Money) -> str:
        return http.wire_amount(amount, self.currency, "PawaCard")

    async def _money(
        self, endpoint: str, fields: dict[str, Any], ref: str, *, postpaid: bool
    ) -> VendOutcome:
        """Send once (:func:`pos.providers.http.send_money_once`)."""

        async def call() -> VendOutcome:
            data = await self._authed_once(endpoint, fields)
            return parse_vend(data, ref, self.currency, postpaid=postpaid)

        outcome = await http.send_money_once(call, provider=PROVIDER, ref=ref,
                                             what=f"PawaCard {endpoint}")
        if outcome.status is VendStatus.ABSENT:
            # 104 "Transaction not found" in answer to the vend itself is no answer to it.
            raise OutcomeUnknown(f"PawaCard {endpoint} answered 'transaction not found'",
                                 provider=PROVIDER, ref=ref)
        if not _bare_status_1(outcome):
            return outcome
        # A bare "status 1" (no transaction, no code, no known reason): the document
        # defines 1 as "Failed request, pending". The provider answered, so the request
        # was processed; ask by ref once before believing it failed (a card-paid sale
        # would be refunded while a token comes).
        try:
            found = await self.status(ref, postpaid=postpaid)
        except PosError:
            raise OutcomeUnknown(
                f"PawaCard {endpoint} answered status 1 "
                f"({outcome.message or 'no reason'}) and the status check failed",
                provider=PROVIDER, ref=ref,
            ) from None
        return outcome if found.status is VendStatus.ABSENT else found


def _bare_status_1(outcome: VendOutcome) -> bool:
    """A decline read from a bare ``status: 1`` (no transaction, no code, no throttle)."""
    raw = outcome.raw
    return (
        outcome.status is VendStatus.DECLINED
        and not outcome.throttled
        and not outcome.code
        and not outcome.unknown_target
        and as_str(raw.get("status")) == "1"
        and not isinstance(raw.get("transaction"), dict)
    )


class _KeyRefused(Exception):
    """HTTP 401 from PawaCard (internal signal: log in again)."""
