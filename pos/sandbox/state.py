"""In-memory state of the sandbox: both providers' books, counters, the clock.

All mutation happens under ``SandboxState.lock`` (an ``RLock``): the server's
event-loop thread handles requests while tests read counters from theirs.
No PIN or password is kept in clear here: card PINs are salted hashes and the
request log holds method, path (never the query string) and status only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pos.sandbox import data
from pos.sandbox.faults import FaultRegistry

#: East Africa Time (Kampala, Nairobi): the providers' local time.
EAT = dt.timezone(dt.timedelta(hours=3), "EAT")
REQUEST_LOG_SIZE = 2000


class SandboxClock:
    """Wall-clock time plus an offset that tests move forward (throttle, day, expiry)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds since the epoch, as the sandbox sees it."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward (or back, with a negative value); returns :meth:`now`."""
        with self._lock:
            self._offset += float(seconds)
        return self.now()

    @property
    def offset(self) -> float:
        return self._offset

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0

    def local(self, at: float | None = None) -> dt.datetime:
        """The sandbox time (or ``at``) in East Africa Time."""
        return dt.datetime.fromtimestamp(self.now() if at is None else at, EAT)

    def today(self) -> dt.date:
        return self.local().date()


# ---------------------------------------------------------------- PawaCard
@dataclass
class PawaTxn:
    """One vend (``kind="prepaid"``) or bill payment (``kind="postpaid"``), keyed by ref."""

    ref: str
    kind: str
    target: str  # meter or account number
    amount: Decimal
    customer_name: str
    vendor: str
    transaction_id: int
    created: float
    date: str  # "11-4-2014 20:24:7"
    status: int  # transaction status: 0 / 5 pending, 1 complete, 2 failed
    code: str = ""
    msg: str = ""
    token: str | None = None
    receipt: str | None = None
    units: str | None = None
    pending_left: int = 0  # status queries still answering pending
    vend_calls: int = 1  # how many times /vend (or /postpaidbill) came with this ref
    status_queries: int = 0

    @property
    def meter(self) -> str | None:
        return self.target if self.kind == "prepaid" else None

    @property
    def account(self) -> str | None:
        return self.target if self.kind == "postpaid" else None

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref, "kind": self.kind, "meter": self.meter, "account": self.account,
            "amount": str(self.amount), "customer_name": self.customer_name,
            "transaction_id": self.transaction_id, "status": self.status, "code": self.code,
            "token": self.token, "receipt": self.receipt, "units": self.units,
            "vend_calls": self.vend_calls, "status_queries": self.status_queries,
            "pending_left": self.pending_left, "date": self.date,
        }


@dataclass
class PawaCardState:
    vendor_float: Decimal
    keys: dict[str, str] = field(default_factory=dict)  # key -> username
    transactions: dict[str, PawaTxn] = field(default_factory=dict)
    meter_times: dict[str, list[float]] = field(default_factory=dict)  # created vends
    next_transaction_id: int = 3219
    vends_performed: int = 0  # distinct prepaid transactions created (any outcome)
    bills_performed: int = 0  # distinct postpaid transactions created
    tokens_issued: int = 0
    logins: int = 0

    def vend_count(self, ref: str) -> int:
        """How many times /vend or /postpaidbill was called with ``ref`` (0 if never)."""
        txn = self.transactions.get(ref)
        return txn.vend_calls if txn else 0

    def to_json(self, *, transactions: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "vendor_float": str(self.vendor_float),
            "vends_performed": self.vends_performed,
            "bills_performed": self.bills_performed,
            "tokens_issued": self.tokens_issued,
            "logins": self.logins,
            "active_keys": len(self.keys),
            "transaction_count": len(self.transactions),
        }
        if transactions:
            out["transactions"] = {ref: t.to_json() for ref, t in self.transactions.items()}
        return out


# --------------------------------------------------------------- Patasente
@dataclass
class CardState:
    id: int
    card_no: str
    card_type: str
    expiry: str
    status: str
    pin_hash: str | None
    wallets: tuple[str, ...]
    balance: int
    credit_limit: int
    available_credit: int
    face_value: int
    sente: bool
    holder: str | None = None
    phone: str | None = None
    currency: str = "UGX"
    wrong_pins: int = 0
    created_at: str = "2020-09-07"
    updated_at: str = "2020-09-12"

    @property
    def has_pin(self) -> bool:
        return self.pin_hash is not None

    def expired(self, today: dt.date) -> bool:
        month, yy = (int(x) for x in self.expiry.split("/"))
        return (today.year, today.month) > (2000 + yy, month)

    def shown_status(self, today: dt.date) -> str:
        if self.status != "locked" and self.expired(today):
            return "expired"
        return self.status

    def to_json(self, today: dt.date) -> dict[str, Any]:
        return {
            "id": self.id, "card_no": self.card_no, "card_type": self.card_type,
            "status": self.shown_status(today), "has_pin": self.has_pin,
            "wallets": list(self.wallets), "balance": self.balance,
            "credit_limit": self.credit_limit, "available_credit": self.available_credit,
            "face_value": self.face_value, "wrong_pins": self.wrong_pins,
            "holder": self.holder, "phone": self.phone, "expiry": self.expiry,
        }


@dataclass(frozen=True)
class AppliedOp:
    """A card debit or credit the sandbox actually applied."""

    kind: str  # "debit" | "credit"
    card_id: int
    card_no: str
    amount: int
    wallet: str | None
    payment_reason: str
    ref: str | None  # the text after "ref:" in payment_reason
    transaction_id: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "card_id": self.card_id, "card_no": self.card_no,
            "amount": self.amount, "wallet": self.wallet,
            "payment_reason": self.payment_reason, "ref": self.ref,
            "transaction_id": self.transaction_id,
        }


@dataclass
class Verification:
    """A Sente card activation waiting for its phone code."""

    user_id: int
    card_id: int
    phone_number: str  # digits, no '+'
    name: str
    email: str | None
    pin_hash: str
    code: str
    verified: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "card_id": self.card_id,
                "phone_number": self.phone_number, "name": self.name, "code": self.code,
                "verified": self.verified}


@dataclass
class PatasenteState:
    cards: dict[int, CardState]
    wallet: Decimal
    prepaid_float: int
    salt: bytes
    tokens: set[str] = field(default_factory=set)
    transactions: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    #: Lower-case "reason / card no / transaction id" of each row, for a fast search.
    search_keys: list[str] = field(default_factory=list)
    #: Sandbox clock time each row was recorded (for a search index that lags).
    row_times: list[float] = field(default_factory=list)
    applied: list[AppliedOp] = field(default_factory=list)
    verifications: dict[int, Verification] = field(default_factory=dict)
    next_transaction_id: int = 14567
    next_user_id: int = 34
    logins: int = 0

    def add_transaction(self, row: dict[str, Any], at: float = 0.0) -> None:
        self.transactions.append(row)
        self.row_times.append(at)
        self.search_keys.append("\x00".join(
            (row["payment_reason"], row["patasente_card_no"], row["transaction_id"])).lower())

    def hash_pin(self, pin: str) -> str:
        return hashlib.sha256(self.salt + pin.encode()).hexdigest()

    def pin_ok(self, card: CardState, pin: str) -> bool:
        return card.pin_hash is not None and secrets.compare_digest(
            card.pin_hash, self.hash_pin(pin))

    def applied_count(self, ref: str, kind: str | None = None) -> int:
        """How many debits / credits carrying ``ref`` were applied (``kind`` to filter)."""
        return sum(1 for op in self.applied if op.ref == ref and kind in (None, op.kind))

    def card(self, card: int | data.DemoCard) -> CardState:
        return self.cards[card if isinstance(card, int) else card.id]

    def balance(self, card: int | data.DemoCard) -> int:
        """Current Account balance of a card."""
        return self.card(card).balance

    def to_json(self, today: dt.date, *, transactions: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "wallet": str(self.wallet),
            "prepaid_float": self.prepaid_float,
            "active_tokens": len(self.tokens),
            "logins": self.logins,
            "cards": {str(i): c.to_json(today) for i, c in self.cards.items()},
            "applied_count": len(self.applied),
            "verifications": [v.to_json() for v in self.verifications.values()],
            "sms_code": data.SMS_CODE,
        }
        if transactions:
            out["applied"] = [op.to_json() for op in self.applied]
        return out


def _seed_transactions() -> list[dict[str, Any]]:
    """Two historical rows from the document, so the history is not empty."""
    common = {
        "currency_format": "UGX", "transaction_id_from_callback": None,
        "reference_id_from_callback": None, "financial_instrument_id": "",
        "financial_instrument_no": "", "names": "Gift Card", "phone": None,
        "bill_account_no": None, "bank_account": None, "bank_name": None, "bank_branch": None,
        "balance": "0", "transaction_status": "Processed", "charge_bearer": None,
        "exchange_rate": None, "send_receipt": True, "transaction_type": "wallet payment",
        "type": "wallet",
    }
    return [
        {"id": 14562, **common, "charge_currency_format": "", "amount": "150",
         "transaction_id": "00014562", "charge": "500", "payment_reason": "Orm.s",
         "paid_to": data.MERCHANT_NAME, "paid_by": "", "paid_to_merchant_code": data.MERCHANT_CODE,
         "paid_by_merchant_code": "", "created_at": "2020-09-12 03:46:26",
         "wallet_balance": "348,038", "card_transaction_type": "debit",
         "patasente_card_no": "1663********13455034"},
        {"id": 14566, **common, "charge_currency_format": "UGX", "amount": "5000",
         "transaction_id": "00014566", "charge": "0",
         "payment_reason": "Funds transferred to card", "paid_to": "",
         "paid_by": data.MERCHANT_NAME, "paid_to_merchant_code": "",
         "paid_by_merchant_code": data.MERCHANT_CODE, "created_at": "2020-09-13 03:51:07",
         "wallet_balance": "91,000", "card_transaction_type": "credit",
         "patasente_card_no": "1663********46561440"},
    ]


def new_patasente_state() -> PatasenteState:
    salt = secrets.token_bytes(16)
    state = PatasenteState(cards={}, wallet=Decimal(data.MERCHANT_WALLET),
                           prepaid_float=data.MERCHANT_PREPAID_FLOAT, salt=salt)
    for row in _seed_transactions():
        state.add_transaction(row)
    for c in data.DEMO_CARDS:
        state.cards[c.id] = CardState(
            id=c.id, card_no=c.card_no, card_type=c.card_type, expiry=c.expiry,
            status=c.status, pin_hash=state.hash_pin(c.pin) if c.pin else None,
            wallets=c.wallets, balance=c.balance, credit_limit=c.credit_limit,
            available_credit=c.available_credit, face_value=c.face_value, sente=c.sente,
            holder=c.holder, phone=c.phone, currency=c.currency)
    return state


# ------------------------------------------------------------------- whole
@dataclass
class RequestRecord:
    method: str
    path: str  # never the query string: Patasente puts PINs there
    status: int
    fault: str | None = None


class SandboxState:
    """Everything the sandbox knows. Build a fresh one per test, or :meth:`reset`."""

    def __init__(self, *, throttle_seconds: float = 300.0, daily_limit: int | None = 5,
                 vendor_float: int | Decimal = data.VENDOR_FLOAT,
                 prepaid_float: int = data.MERCHANT_PREPAID_FLOAT) -> None:
        self.lock = threading.RLock()
        self.clock = SandboxClock()
        self.faults = FaultRegistry()
        #: A meter may vend once in this many seconds (0: no throttle).
        self.throttle_seconds = float(throttle_seconds)
        #: Vends per meter per (sandbox) day; None or 0: no limit.
        self.daily_limit = daily_limit
        self.initial_vendor_float = Decimal(vendor_float)
        self.initial_prepaid_float = int(prepaid_float)
        self.request_log: deque[RequestRecord] = deque(maxlen=REQUEST_LOG_SIZE)
        self.request_counts: Counter[str] = Counter()
        #: Provider requests the sandbox is handling now (a slow one sleeps before it
        #: acts and is counted in ``request_counts`` only then).
        self.in_flight = 0
        #: Provider requests by endpoint as they arrive (before any fault or delay).
        self.received_counts: Counter[str] = Counter()
        self.pawacard = PawaCardState(vendor_float=self.initial_vendor_float)
        self.patasente = new_patasente_state()
        self.patasente.prepaid_float = self.initial_prepaid_float
        #: The back office's simulators (Patascore, Particeep) keep their books here.
        self.extra: dict[str, Any] = {}

    def reset(self) -> None:
        """Back to the demo data: books, tokens, counters, faults and clock."""
        with self.lock:
            self.clock.reset()
            self.faults.clear()
            self.request_log.clear()
            self.request_counts.clear()
            self.received_counts.clear()
            self.pawacard = PawaCardState(vendor_float=self.initial_vendor_float)
            self.patasente = new_patasente_state()
            self.patasente.prepaid_float = self.initial_prepaid_float
            self.extra.clear()

    def expire_tokens(self) -> None:
        """Forget every PawaCard key and Patasente token: clients must log in again."""
        with self.lock:
            self.pawacard.keys.clear()
            self.patasente.tokens.clear()

    def log_request(self, method: str, provider: str, endpoint: str, path: str, status: int,
                    fault: str | None = None) -> None:
        self.request_log.append(RequestRecord(method, path, status, fault))
        self.request_counts[f"{provider}/{endpoint}"] += 1

    # convenience for tests ------------------------------------------------
    @property
    def vends_performed(self) -> int:
        return self.pawacard.vends_performed

    def snapshot(self, *, transactions: bool = True) -> dict[str, Any]:
        """A JSON-able picture of the state (``GET /_control/state``)."""
        with self.lock:
            return {
                "clock": {"now": self.clock.local().isoformat(timespec="seconds"),
                          "offset": self.clock.offset},
                "config": {"throttle_seconds": self.throttle_seconds,
                           "daily_limit": self.daily_limit},
                "pawacard": self.pawacard.to_json(transactions=transactions),
                "patasente": self.patasente.to_json(self.clock.today(),
                                                    transactions=transactions),
                "faults": self.faults.to_json(),
                "requests": {"total": sum(self.request_counts.values()),
                             "by_endpoint": dict(self.request_counts),
                             "recent": [vars(r) for r in list(self.request_log)[-50:]]},
            }
