"""Simulated PawaCard v3 API (document 003): JSON POST bodies, ``username`` + ``key``.

Every answer is HTTP 200 with a ``status`` field, except a missing or expired
key (HTTP 401). ``status`` 1 means "failed or pending": the real state of a vend
or a bill is in ``transaction.status`` (0 / 5 pending, 1 complete, 2 failed).
Vends and bills are idempotent by ``ref``: a known ref returns its transaction
and does nothing more.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pos.meter import luhn_ok
from pos.sandbox import data
from pos.sandbox.state import PawaTxn, SandboxState
from pos.sandbox.wire import Reply, Req, amount_text, reply

PROVIDER = "pawacard"

_AMOUNT_RE = re.compile(r"^\d{1,9}(\.\d{1,2})?$")
_REF_RE = re.compile(r"^\d{1,20}$")
_ACCOUNT_RE = re.compile(r"^[\d-]{1,32}$")
_KEY_ALPHABET = string.ascii_letters + string.digits

# Statuses of the document.
OK, FAILED, LOW_BALANCE, BAD_REF, NOT_FOUND, DAILY_LIMIT = 0, 1, 102, 103, 104, 105
# Transaction statuses.
T_PENDING, T_PENDING_5, T_COMPLETE, T_FAILED = 0, 5, 1, 2

MSG_THROTTLE = ("This transaction has been done too soon from the last one. "
                "Please wait for a few minutes.")
MSG_TIMEOUT = "Request timed out. please fetch the response again"
MSG_INVALID_KEY = "Invalid key, please login again"

Handler = Callable[[SandboxState, Req, dict[str, Any]], Reply]


def _luhn_msg(meter: str) -> str:
    return (f"The specified MSNO {meter} did not pass the Luhn validation. Please specify a "
            "valid MSNO. ALERT ID-010072 Contact the Support services for assistance if "
            "required.")


def _unknown_msg(meter: str) -> str:
    return (f"The specified MSNO {meter} is not registered at Kenya Power. Please specify a "
            "valid MSNO. ALERT ID-010071 Contact the Support services for assistance if "
            "required.")


def _date(state: SandboxState, at: float) -> str:
    """The document's date style, no zero padding: "11-4-2014 20:24:7"."""
    t = state.clock.local(at)
    return f"{t.day}-{t.month}-{t.year} {t.hour}:{t.minute}:{t.second}"


def _digits(seed: str, n: int) -> str:
    h = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    return f"{h % 10**n:0{n}d}"


def _parse_amount(value: object) -> Decimal | None:
    """Amounts are strings of shillings ("50", "12.50"); anything else is refused."""
    if not isinstance(value, str) or not _AMOUNT_RE.match(value.strip()):
        return None
    amount = Decimal(value.strip())
    return amount if amount > 0 else None


def _meter_ok(meter: str) -> bool:
    return meter.isascii() and meter.isdigit() and 11 <= len(meter) <= 13 and luhn_ok(meter)


def _units(amount: Decimal) -> str:
    return str((amount / Decimal(data.KWH_PRICE)).quantize(Decimal("0.1")))


def _charges(amount: Decimal) -> list[dict[str, str]]:
    """The ``fixed`` list: one-key objects, amounts as strings (cents, like the document)."""
    cents = int(amount * 100)
    shares = (("REPCharge", 32), ("MonthlyFC", 60), ("ERCCharge", 3), ("TotalTax", 72),
              ("FuelIndexCharge", 464), ("ForexCharge", 155), ("InflationAdjustment", 30))
    return [{name: str(cents * per_mille // 1000)} for name, per_mille in shares]


# ------------------------------------------------------------------ answers
def _prepaid_answer(txn: PawaTxn) -> dict[str, Any]:
    if txn.status == T_COMPLETE:
        return {
            "status": OK, "msg": "success", "code": "elec000", "token": txn.token,
            "stdTokenRctNum": txn.receipt, "date": txn.date,
            "totalAmount": amount_text(txn.amount), "units": txn.units,
            "transactionId": txn.transaction_id, "fixed": _charges(txn.amount),
            "ref": txn.ref, "customerName": txn.customer_name,
        }
    if txn.status == T_FAILED:
        return {"status": FAILED, "msg": txn.msg, "code": txn.code,
                "transaction": {"status": T_FAILED, "msg": txn.msg,
                                "transactionId": txn.transaction_id, "ref": txn.ref}}
    return {"status": FAILED, "msg": "",
            "transaction": {"status": txn.status, "msg": "transaction still pending",
                            "transactionId": txn.transaction_id, "ref": txn.ref}}


def _postpaid_answer(txn: PawaTxn) -> dict[str, Any]:
    t: dict[str, Any] = {"status": txn.status}
    if txn.status == T_COMPLETE:
        t["rctNum"] = txn.receipt
    t["vendor"] = txn.vendor
    t["accountNo"] = txn.target
    if txn.status != T_COMPLETE:
        t["msg"] = txn.msg
    t.update({"amount": amount_text(txn.amount), "date": txn.date,
              "transactionId": txn.transaction_id, "ref": txn.ref,
              "customerName": txn.customer_name})
    if txn.status == T_COMPLETE:
        return {"status": OK, "msg": "success", "transaction": t}
    if txn.status == T_FAILED:
        return {"status": FAILED, "msg": "", "transaction": t}
    return {"status": FAILED, "msg": "success", "transaction": t}


def _answer(txn: PawaTxn) -> dict[str, Any]:
    return _prepaid_answer(txn) if txn.kind == "prepaid" else _postpaid_answer(txn)


def _complete(state: SandboxState, txn: PawaTxn) -> None:
    txn.status = T_COMPLETE
    txn.msg = "success"
    if txn.kind == "prepaid":
        txn.code = "elec000"
        state.pawacard.tokens_issued += 1


def _poll(state: SandboxState, txn: PawaTxn) -> None:
    """A status query: a pending transaction moves one step towards completion."""
    txn.status_queries += 1
    if txn.status in (T_PENDING, T_PENDING_5):
        if txn.pending_left > 0:
            txn.pending_left -= 1
        else:
            _complete(state, txn)


# ----------------------------------------------------------------- handlers
def login(state: SandboxState, req: Req, body: dict[str, Any]) -> Reply:
    user, password = body.get("username"), body.get("password")
    if user == data.VENDOR_USERNAME and password == data.VENDOR_PASSWORD:
        key = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(43))
        pc = state.pawacard
        pc.keys[key] = data.VENDOR_USERNAME
        pc.logins += 1
        return reply({"status": OK, "msg": "success", "balance": amount_text(pc.vendor_float),
                      "key": key})
    return reply({"status": FAILED, "msg": "Wrong Username or Password"})


def balance(state: SandboxState, req: Req, body: dict[str, Any]) -> Reply:
    return reply({"status": OK, "msg": "success",
                  "balance": amount_text(state.pawacard.vendor_float)})


def verify(state: SandboxState, req: Req, body: dict[str, Any]) -> Reply:
    meter = body.get("meter")
    meter = meter.strip() if isinstance(meter, str) else ""
    if not _meter_ok(meter):
        return reply({"status": FAILED, "msg": _luhn_msg(meter), "code": "elec100"})
    if meter == data.METER_TIMEOUT:
        return reply({"status": FAILED, "msg": MSG_TIMEOUT, "code": "elec100"})
    if meter == data.METER_UNKNOWN:
        return reply({"status": FAILED, "msg": _unknown_msg(meter), "code": "elec100"})
    name = data.METER_NAMES.get(meter) or data.other_name(meter)
    return reply({"status": OK, "msg": "success", "customerName": name})


def _ref(body: dict[str, Any]) -> str | None:
    ref = body.get("ref")
    return ref if isinstance(ref, str) and _REF_RE.match(ref) else None


def _bad_ref(msg: str = "Bad reference number") -> Reply:
    return reply({"status": BAD_REF, "msg": msg})


def _repeat(txn: PawaTxn, kind: str, target: str, amount: Decimal | None) -> Reply:
    """A vend or bill with a known ref: its current state, nothing done."""
    txn.vend_calls += 1
    if txn.kind != kind or txn.target != target or txn.amount != amount:
        return _bad_ref("Bad reference number: the ref belongs to another transaction")
    return reply(_answer(txn))


def _new_txn(state: SandboxState, kind: str, ref: str, target: str, amount: Decimal,
             name: str, username: str) -> PawaTxn:
    pc = state.pawacard
    now = state.clock.now()
    tid = pc.next_transaction_id
    pc.next_transaction_id += 1
    txn = PawaTxn(ref=ref, kind=kind, target=target, amount=amount, customer_name=name,
                  vendor=username, transaction_id=tid, created=now, date=_date(state, now),
                  status=T_COMPLETE)
    pc.transactions[ref] = txn
    return txn


def vend(state: SandboxState, req: Req, body: dict[str, Any]) -> Reply:
    pc = state.pawacard
    ref = _ref(body)
    if ref is None:
        return _bad_ref()
    meter = body.get("meter")
    meter = meter.strip() if isinstance(meter, str) else ""
    amount = _parse_amount(body.get("amount"))
    known = pc.transactions.get(ref)
    if known is not None:
        return _repeat(known, "prepaid", meter, amount)
    if not _meter_ok(meter):
        return reply({"status": FAILED, "msg": _luhn_msg(meter), "code": "elec100"})
    if meter == data.METER_UNKNOWN:  # Kenya Power does not know it: the document's elec100
        return reply({"status": FAILED, "msg": _unknown_msg(meter), "code": "elec100"})
    if amount is None:
        return reply({"status": FAILED, "msg": "Invalid amount"})
    now = state.clock.now()
    times = pc.meter_times.setdefault(meter, [])
    today = state.clock.today()
    limit = state.daily_limit
    if meter == data.METER_DAILY_LIMIT or (
        limit and sum(1 for t in times if state.clock.local(t).date() == today) >= limit
    ):
        return reply({"status": DAILY_LIMIT,
                      "msg": "Meter has reached maximum vends allowed per day"})
    if times and state.throttle_seconds and now - times[-1] < state.throttle_seconds:
        return reply({"status": FAILED, "msg": MSG_THROTTLE})
    if amount > pc.vendor_float:
        return reply({"status": LOW_BALANCE, "msg": "Insufficient balance"})

    customer = body.get("customerName")
    name = (customer.strip() if isinstance(customer, str) and customer.strip() else
            data.METER_NAMES.get(meter) or data.other_name(meter))
    txn = _new_txn(state, "prepaid", ref, meter, amount, name,
                   str(body.get("username", "")))
    times.append(now)
    pc.vends_performed += 1
    txn.token = _digits(f"token:{ref}:{meter}", 20)
    txn.receipt = f"RADIXOVS010VS{txn.transaction_id:06d}"
    txn.units = _units(amount)
    first: dict[str, Any]
    if meter == data.METER_FAIL:
        txn.status, txn.code = T_FAILED, "elec001"
        txn.msg = "Vend failed, the token could not be generated. Please try again later."
        first = {"status": FAILED, "msg": txn.msg, "code": txn.code}
    elif meter == data.METER_FAIL_KPLC:
        txn.status, txn.code = T_FAILED, "elec003"
        txn.msg = "Transaction failed on the way to Kenya Power. Please try again later."
        first = {"status": FAILED, "msg": txn.msg, "code": txn.code}
    else:
        pc.vendor_float -= amount
        polls = data.METER_PENDING_POLLS if meter == data.METER_PENDING else req.pending_polls
        if polls is not None:
            txn.status, txn.pending_left = T_PENDING_5, polls
            txn.msg = "transaction still pending"
        else:
            _complete(state, txn)
        first = _prepaid_answer(txn)
    if txn.status == T_FAILED:
        txn.token = None
    return reply(first)


def transaction(state: SandboxState, req: Req, body: dict[str, Any]) -> Reply:
    return _status_query(state, body, "prepaid")


def postpaid_transaction(state: SandboxState, req: Req, body: dict[str, Any]) -> Reply:
    return _status_query(state, body, "postpaid")


def _status_query(state: SandboxState, body: dict[str, Any], kind: str) -> Reply:
    ref = _ref(body)
    if ref is None:
        return _bad_ref()
    txn = state.pawacard.transactions.get(ref)
    if txn is None or txn.kind != kind:
        return reply({"status": NOT_FOUND, "msg": "Transaction not found"})
    _poll(state, txn)
    return reply(_answer(txn))


def _account(body: dict[str, Any]) -> str | None:
    # The document's own examples send " 0203754-01" with a leading space: strip it.
    acc = body.get("accountNo")
    acc = acc.strip() if isinstance(acc, str) else ""
    return acc if _ACCOUNT_RE.match(acc) and any(c.isdigit() for c in acc) else None


def postpaid_verify(state: SandboxState, req: Req, body: dict[str, Any]) -> Reply:
    acc = _account(body)
    if acc is None:
        return reply({"status": FAILED, "msg": "Invalid account number"})
    if acc == data.ACCOUNT_UNREACHABLE:
        return reply({"status": FAILED, "msg": "Connection error"})
    name, bal = data.ACCOUNTS.get(acc) or (data.other_name(acc), str(int(_digits(acc, 4))))
    return reply({"status": OK, "msg": "", "customerName": name, "customer_balance": bal})


def postpaid_bill(state: SandboxState, req: Req, body: dict[str, Any]) -> Reply:
    pc = state.pawacard
    ref = _ref(body)
    if ref is None:
        return _bad_ref()
    acc = _account(body) or ""
    amount = _parse_amount(body.get("amount"))
    known = pc.transactions.get(ref)
    if known is not None:
        return _repeat(known, "postpaid", acc, amount)
    if not acc:
        return reply({"status": FAILED, "msg": "Invalid account number"})
    if amount is None:
        return reply({"status": FAILED, "msg": "Invalid amount"})
    if acc == data.ACCOUNT_UNREACHABLE:
        return reply({"status": FAILED, "msg": "Connection error"})
    if amount > pc.vendor_float:
        return reply({"status": LOW_BALANCE, "msg": "Insufficient balance"})
    customer = body.get("customerName")
    name = (customer.strip() if isinstance(customer, str) and customer.strip() else
            (data.ACCOUNTS.get(acc) or (data.other_name(acc), ""))[0])
    txn = _new_txn(state, "postpaid", ref, acc, amount, name, str(body.get("username", "")))
    pc.bills_performed += 1
    txn.receipt = _digits(f"rct:{ref}:{acc}", 18)
    if acc == data.ACCOUNT_FAIL:
        txn.status, txn.msg = T_FAILED, "Failed, please try again"
    else:
        pc.vendor_float -= amount
        polls = data.METER_PENDING_POLLS if acc == data.ACCOUNT_PENDING else req.pending_polls
        if polls is not None:
            txn.status, txn.pending_left = T_PENDING, polls
            txn.msg = "transaction still pending"
        else:
            _complete(state, txn)
    return reply(_postpaid_answer(txn))


ROUTES: dict[str, Handler] = {
    "login": login,
    "balance": balance,
    "verify": verify,
    "vend": vend,
    "transaction": transaction,
    "postpaidverify": postpaid_verify,
    "postpaidbill": postpaid_bill,
    "postpaidtransaction": postpaid_transaction,
}


def handle(state: SandboxState, req: Req) -> Reply:
    """Answer one PawaCard request (the caller holds ``state.lock``)."""
    handler = ROUTES.get(req.endpoint)
    if handler is None or req.args:
        return reply({"status": FAILED, "msg": "Not found"}, 404)
    if req.method != "POST":
        return reply({"status": FAILED, "msg": "Method not allowed"}, 405)
    try:
        body = req.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return reply({"status": FAILED, "msg": "Invalid request: a JSON object is expected"})
    if handler is not login:
        key = body.get("key")
        if not isinstance(key, str) or state.pawacard.keys.get(key) != body.get("username"):
            return reply({"status": FAILED, "msg": MSG_INVALID_KEY}, 401)
    return handler(state, req, body)
