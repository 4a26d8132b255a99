"""The provider sandbox, driven with raw httpx over loopback: wire formats, rules, faults."""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from pos.cardqr import parse_card_qr
from pos.meter import luhn_check_digit, luhn_ok
from pos.sandbox import data
from pos.sandbox.server import SandboxServer, describe
from pos.sandbox.state import SandboxState
from tests.waiting import wait_until

# ----------------------------------------------------------------- helpers
#: One TLS context for every client: building one costs ~70 ms (httpx makes one per
#: client even for plain http).
TLS = ssl.create_default_context()
web = httpx.Client(verify=TLS, timeout=10)


class Pawa:
    """A bare PawaCard caller: JSON POST bodies with username + key."""

    def __init__(self, sb: SandboxServer) -> None:
        self.sb = sb
        self.http = httpx.Client(base_url=sb.pawacard_url, timeout=10, verify=TLS)
        self.key = self.login().json()["key"]

    def login(self, password: str = data.VENDOR_PASSWORD) -> httpx.Response:
        return self.http.post("login", json={"username": data.VENDOR_USERNAME,
                                             "password": password})

    def post(self, endpoint: str, **body: Any) -> httpx.Response:
        return self.http.post(endpoint, json={"username": data.VENDOR_USERNAME,
                                              "key": self.key, **body})

    def call(self, endpoint: str, **body: Any) -> dict[str, Any]:
        r = self.post(endpoint, **body)
        assert r.status_code == 200, r.text
        return json.loads(r.text, parse_float=Decimal)

    def vend(self, meter: str = data.METER_OK, amount: str = "50", ref: str = "370474587102",
             name: str = "Bilbo Baggins") -> dict[str, Any]:
        return self.call("vend", meter=meter, amount=amount, ref=ref, customerName=name)


class Pata:
    """A bare Patasente caller: query-string parameters, bearer token."""

    def __init__(self, sb: SandboxServer) -> None:
        self.sb = sb
        self.http = httpx.Client(base_url=sb.patasente_url, timeout=10, verify=TLS)
        r = self.http.post("login", params={"username": data.MERCHANT_CODE,
                                            "password": data.MERCHANT_PASSWORD})
        assert r.status_code == 200, r.text
        self.http.headers["Authorization"] = "Bearer " + r.json()["token"]

    def req(self, method: str, path: str, **params: Any) -> httpx.Response:
        return self.http.request(method, path, params=params)

    def debit(self, card: data.DemoCard = data.CARD_ACTIVE, amount: int | str = 3000,
              ref: str = "123456789012", wallet: str = data.CURRENT,
              pin: str | None = "1234") -> httpx.Response:
        params: dict[str, Any] = {"amount": str(amount), "payment_reason": f"Sale ref:{ref}",
                                  "wallet_account": wallet}
        if pin is not None:
            params["pin"] = pin
        return self.http.post(f"debit-patasente-card/{card.id}", params=params)

    def credit(self, card: data.DemoCard, amount: int, reason: str = "Refund ref:555") \
            -> httpx.Response:
        return self.http.post(f"credit-patasente-card/{card.id}",
                              params={"amount": str(amount), "payment_reason": reason})

    def card(self, card: data.DemoCard) -> dict[str, Any]:
        r = self.http.get(f"get-patasente-card/{card.id}/{card.card_no}")
        assert r.status_code == 200, r.text
        return r.json()

    def search(self, **params: Any) -> list[dict[str, Any]]:
        r = self.http.get("get-prepaid-transactions", params=params)
        assert r.status_code == 200, r.text
        return r.json()


def meter(n: int) -> str:
    body = f"{n:010d}"
    return body + luhn_check_digit(body)


@pytest.fixture
def pawa(sandbox: SandboxServer) -> Pawa:
    return Pawa(sandbox)


@pytest.fixture
def pata(sandbox: SandboxServer) -> Pata:
    return Pata(sandbox)


# -------------------------------------------------------------- demo data
def test_demo_data_is_consistent() -> None:
    for card in data.DEMO_CARDS:
        ref = parse_card_qr(card.payload)
        assert (ref.card_id, ref.number, ref.expiry, ref.currency) == (
            card.id, card.card_no, card.expiry, "UGX")
        assert ref.card_type == card.card_type
        expired = ref.is_expired()
        assert expired == (card is data.CARD_EXPIRED)
        assert card.pin is None or re.fullmatch(r"\d{4}", card.pin)
    assert len({c.id for c in data.DEMO_CARDS}) == len(data.DEMO_CARDS)
    scripted = [data.METER_OK, data.METER_PENDING, data.METER_FAIL, data.METER_FAIL_KPLC,
                data.METER_UNKNOWN, data.METER_DAILY_LIMIT, data.METER_TIMEOUT]
    assert all(luhn_ok(m) and len(m) == 11 for m in scripted)
    assert len(set(scripted)) == len(scripted)
    assert not luhn_ok(data.METER_BAD_LUHN)


def test_describe_and_env(sandbox: SandboxServer) -> None:
    text = describe(sandbox)
    assert sandbox.patasente_url in text and sandbox.pawacard_url in text
    for card in data.DEMO_CARDS:
        assert card.payload in text
    assert data.METER_PENDING in text and data.ACCOUNT_OK in text
    assert describe(sandbox.base_url) == text
    env = sandbox.env()
    assert env["SENTE_POS_PAWACARD__BASE_URL"] == sandbox.pawacard_url
    assert env["SENTE_POS_PATASENTE__BASE_URL"] == sandbox.patasente_url
    assert env["SENTE_POS_PATASENTE__USERNAME"] == data.MERCHANT_CODE
    assert env["SENTE_POS_PAWACARD__PASSWORD"] == data.VENDOR_PASSWORD
    assert sandbox.patasente_url.endswith("/patasente/phantom-api/")
    assert sandbox.pawacard_url.endswith("/pawacard/v3/")


# ---------------------------------------------------------------- PawaCard
def test_pawacard_login_and_balance(sandbox: SandboxServer, pawa: Pawa) -> None:
    wrong = pawa.login("nope")
    assert wrong.status_code == 200
    assert wrong.json() == {"status": 1, "msg": "Wrong Username or Password"}
    ok = pawa.login().json()
    assert ok["status"] == 0 and ok["msg"] == "success" and ok["balance"] == "500000"
    assert re.fullmatch(r"[A-Za-z0-9]{20,}", ok["key"])
    assert pawa.call("balance") == {"status": 0, "msg": "success", "balance": "500000"}


def test_pawacard_rejects_missing_or_expired_key(sandbox: SandboxServer, pawa: Pawa) -> None:
    r = pawa.http.post("balance", json={"username": data.VENDOR_USERNAME})
    assert r.status_code == 401
    assert r.json() == {"status": 1, "msg": "Invalid key, please login again"}
    assert pawa.post("balance").status_code == 200
    web.post(sandbox.control_url + "expire-tokens")
    assert pawa.post("balance").status_code == 401
    assert pawa.post("vend", meter=data.METER_OK, amount="50", ref="1").status_code == 401
    assert sandbox.state.pawacard.vends_performed == 0


def test_pawacard_verify(pawa: Pawa) -> None:
    assert pawa.call("verify", meter=data.METER_OK) == {
        "status": 0, "msg": "success", "customerName": "Bilbo Baggins"}
    bad = pawa.call("verify", meter=data.METER_BAD_LUHN)
    assert bad["status"] == 1 and bad["code"] == "elec100"
    assert "MSNO 12345678912 did not pass the Luhn validation" in bad["msg"]
    timeout = pawa.call("verify", meter=data.METER_TIMEOUT)
    assert timeout == {"status": 1, "code": "elec100",
                       "msg": "Request timed out. please fetch the response again"}
    unknown = pawa.call("verify", meter=data.METER_UNKNOWN)
    assert unknown["status"] == 1 and unknown["code"] == "elec100"
    assert "not registered" in unknown["msg"]
    other = pawa.call("verify", meter=meter(42))
    assert other["status"] == 0 and other["customerName"] in data.OTHER_NAMES


def test_vend_success_has_the_documented_shape(sandbox: SandboxServer, pawa: Pawa) -> None:
    v = pawa.vend(amount="200")
    assert v["status"] == 0 and v["msg"] == "success" and v["code"] == "elec000"
    assert re.fullmatch(r"\d{20}", v["token"])
    assert v["stdTokenRctNum"].startswith("RADIXOVS010VS")
    assert re.fullmatch(r"\d{1,2}-\d{1,2}-\d{4} \d{1,2}:\d{1,2}:\d{1,2}", v["date"])
    assert v["totalAmount"] == "200" and v["ref"] == "370474587102"
    assert v["customerName"] == "Bilbo Baggins"
    assert isinstance(v["transactionId"], int)
    assert re.fullmatch(r"\d+\.\d", v["units"])
    assert v["fixed"] and all(len(item) == 1 and isinstance(next(iter(item.values())), str)
                              for item in v["fixed"])
    assert [next(iter(i)) for i in v["fixed"]][:2] == ["REPCharge", "MonthlyFC"]
    assert pawa.call("balance")["balance"] == "499800"
    assert pawa.call("transaction", ref="370474587102") == v
    txn = sandbox.state.pawacard.transactions["370474587102"]
    assert (txn.meter, txn.amount, txn.status, txn.token, txn.vend_calls) == (
        data.METER_OK, Decimal(200), 1, v["token"], 1)
    assert sandbox.state.vends_performed == 1


def test_vend_is_idempotent_by_ref(sandbox: SandboxServer, pawa: Pawa) -> None:
    first = pawa.vend()
    again = pawa.vend()
    assert again == first
    pc = sandbox.state.pawacard
    assert pc.vends_performed == 1 and pc.vend_count("370474587102") == 2
    assert pc.vendor_float == Decimal(500_000 - 50)
    # the same ref for another meter or amount is a bad reference
    assert pawa.vend(meter=meter(7))["status"] == 103
    assert pawa.vend(amount="60")["status"] == 103
    assert pc.vends_performed == 1 and pc.vend_count("370474587102") == 4


@pytest.mark.parametrize("ref", ["", "abc", "12a4", "1" * 21, None, 12345])
def test_bad_reference_numbers(sandbox: SandboxServer, pawa: Pawa, ref: Any) -> None:
    body = {"meter": data.METER_OK, "amount": "50", "customerName": "B"}
    if ref is not None:
        body["ref"] = ref
    assert pawa.call("vend", **body) == {"status": 103, "msg": "Bad reference number"}
    assert pawa.call("transaction", ref=ref)["status"] == 103
    assert sandbox.state.vends_performed == 0


def test_vend_rejects_bad_amounts_and_meters(sandbox: SandboxServer, pawa: Pawa) -> None:
    for amount in (50, "0", "-5", "1,000", "abc", "1.234"):
        r = pawa.vend(amount=amount, ref="11")  # type: ignore[arg-type]
        assert r == {"status": 1, "msg": "Invalid amount"}, amount
    r = pawa.vend(meter=data.METER_BAD_LUHN, ref="12")
    assert r["status"] == 1 and r["code"] == "elec100"
    assert sandbox.state.vends_performed == 0
    assert pawa.call("transaction", ref="11")["status"] == 104


def test_transaction_not_found(pawa: Pawa) -> None:
    assert pawa.call("transaction", ref="999") == {"status": 104, "msg": "Transaction not found"}
    assert pawa.call("postpaidtransaction", ref="999")["status"] == 104


def test_meter_throttle_and_clock(sandbox: SandboxServer, pawa: Pawa) -> None:
    assert pawa.vend(ref="1")["status"] == 0
    too_soon = pawa.vend(ref="2")
    assert too_soon == {"status": 1, "msg": "This transaction has been done too soon from the "
                                            "last one. Please wait for a few minutes."}
    assert sandbox.state.vends_performed == 1
    assert pawa.call("transaction", ref="2")["status"] == 104  # nothing was created
    # another meter is not throttled; a repeated ref is not throttled either
    assert pawa.vend(meter=meter(5), ref="3")["status"] == 0
    assert pawa.vend(ref="1")["status"] == 0
    sandbox.clock.advance(299)
    assert pawa.vend(ref="4")["status"] == 1
    sandbox.clock.advance(2)
    assert pawa.vend(ref="5")["status"] == 0
    assert sandbox.state.vends_performed == 3


def test_daily_limit() -> None:
    with SandboxServer(port=0, throttle_seconds=0, daily_limit=2) as sb:
        pawa = Pawa(sb)
        assert pawa.vend(ref="1")["status"] == 0
        assert pawa.vend(ref="2")["status"] == 0
        assert pawa.vend(ref="3") == {"status": 105,
                                      "msg": "Meter has reached maximum vends allowed per day"}
        assert pawa.vend(meter=meter(9), ref="4")["status"] == 0
        sb.clock.advance(86_400)
        assert pawa.vend(ref="5")["status"] == 0
        assert pawa.vend(meter=data.METER_DAILY_LIMIT, ref="6")["status"] == 105
        assert sb.state.vends_performed == 4


def test_pending_vend_completes_after_two_polls(sandbox: SandboxServer, pawa: Pawa) -> None:
    first = pawa.vend(meter=data.METER_PENDING, ref="777")
    pending = {"status": 1, "msg": "", "transaction": {
        "status": 5, "msg": "transaction still pending",
        "transactionId": first["transaction"]["transactionId"], "ref": "777"}}
    assert first == pending
    assert pawa.call("transaction", ref="777") == pending
    assert pawa.vend(meter=data.METER_PENDING, ref="777") == pending  # not a poll
    assert pawa.call("transaction", ref="777") == pending
    done = pawa.call("transaction", ref="777")
    assert done["status"] == 0 and re.fullmatch(r"\d{20}", done["token"])
    assert pawa.call("transaction", ref="777") == done
    assert sandbox.state.vends_performed == 1 and sandbox.state.pawacard.tokens_issued == 1


@pytest.mark.parametrize(("the_meter", "code"), [(data.METER_FAIL, "elec001"),
                                                 (data.METER_FAIL_KPLC, "elec003")])
def test_failed_vend(sandbox: SandboxServer, pawa: Pawa, the_meter: str, code: str) -> None:
    r = pawa.vend(meter=the_meter, ref="55")
    assert r["status"] == 1 and r["code"] == code and r["msg"]
    assert "token" not in r and "transaction" not in r
    later = pawa.call("transaction", ref="55")
    assert later["status"] == 1 and later["transaction"]["status"] == 2
    assert later["transaction"]["ref"] == "55"
    assert sandbox.state.pawacard.vendor_float == data.VENDOR_FLOAT
    assert sandbox.state.pawacard.transactions["55"].token is None


def test_vendor_float_too_low() -> None:
    with SandboxServer(port=0, state=SandboxState(vendor_float=100)) as sb:
        pawa = Pawa(sb)
        assert pawa.vend(amount="101", ref="1") == {"status": 102, "msg": "Insufficient balance"}
        assert pawa.vend(amount="100", ref="2")["status"] == 0
        assert pawa.call("balance")["balance"] == "0"
        assert sb.state.vends_performed == 1


def test_postpaid_verify(pawa: Pawa) -> None:
    ok = {"status": 0, "msg": "", "customerName": "Bilbo Baggins", "customer_balance": "10"}
    assert pawa.call("postpaidverify", accountNo=data.ACCOUNT_OK) == ok
    assert pawa.call("postpaidverify", accountNo=" 0203754-01") == ok  # the doc's leading space
    assert pawa.call("postpaidverify", accountNo=data.ACCOUNT_UNREACHABLE) == {
        "status": 1, "msg": "Connection error"}
    other = pawa.call("postpaidverify", accountNo="0999999-01")
    assert other["status"] == 0 and other["customerName"] in data.OTHER_NAMES
    assert pawa.call("postpaidverify", accountNo="abc")["status"] == 1


def test_postpaid_bill_success_pending_failed(sandbox: SandboxServer, pawa: Pawa) -> None:
    ok = pawa.call("postpaidbill", accountNo=data.ACCOUNT_OK, amount="1000",
                   customerName="Bilbo Baggins", ref="015117215614")
    assert ok["status"] == 0 and ok["msg"] == "success"
    t = ok["transaction"]
    assert list(t) == ["status", "rctNum", "vendor", "accountNo", "amount", "date",
                       "transactionId", "ref", "customerName"]
    assert t["status"] == 1 and re.fullmatch(r"\d{18}", t["rctNum"])
    assert (t["vendor"], t["accountNo"], t["amount"], t["ref"]) == (
        "testvendor", data.ACCOUNT_OK, "1000", "015117215614")
    assert pawa.call("postpaidtransaction", ref="015117215614") == ok
    assert pawa.call("transaction", ref="015117215614")["status"] == 104  # not a vend

    pend = pawa.call("postpaidbill", accountNo=data.ACCOUNT_PENDING, amount="500",
                     customerName="F", ref="2")
    assert pend["status"] == 1 and pend["msg"] == "success"
    assert pend["transaction"]["status"] == 0
    assert pend["transaction"]["msg"] == "transaction still pending"
    assert pawa.call("postpaidtransaction", ref="2")["transaction"]["status"] == 0
    assert pawa.call("postpaidtransaction", ref="2")["transaction"]["status"] == 0
    assert pawa.call("postpaidtransaction", ref="2")["status"] == 0

    failed = pawa.call("postpaidbill", accountNo=data.ACCOUNT_FAIL, amount="300",
                       customerName="S", ref="3")
    assert failed["status"] == 1 and failed["transaction"]["status"] == 2
    assert failed["transaction"]["msg"] == "Failed, please try again"

    again = pawa.call("postpaidbill", accountNo=data.ACCOUNT_OK, amount="1000",
                      customerName="Bilbo Baggins", ref="015117215614")
    assert again == ok
    pc = sandbox.state.pawacard
    assert pc.bills_performed == 3 and pc.vend_count("015117215614") == 2
    assert pc.vendor_float == Decimal(500_000 - 1000 - 500)
    assert pawa.call("postpaidbill", accountNo=data.ACCOUNT_UNREACHABLE, amount="10",
                     customerName="x", ref="4") == {"status": 1, "msg": "Connection error"}
    assert pc.bills_performed == 3


def test_pawacard_wrong_method_and_path(sandbox: SandboxServer) -> None:
    assert web.get(sandbox.pawacard_url + "balance").status_code == 405
    assert web.post(sandbox.pawacard_url + "nothing", json={}).status_code == 404
    r = web.post(sandbox.pawacard_url + "balance", content=b"not json")
    assert r.status_code == 200 and r.json()["status"] == 1


# --------------------------------------------------------------- Patasente
@pytest.mark.parametrize("username", [data.MERCHANT_CODE, data.MERCHANT_EMAIL,
                                      data.MERCHANT_PHONE])
def test_patasente_login(sandbox: SandboxServer, username: str) -> None:
    r = web.post(sandbox.patasente_url + "login",
                   params={"username": username, "password": data.MERCHANT_PASSWORD})
    assert r.status_code == 200 and set(r.json()) == {"token"}


def test_patasente_login_failures(sandbox: SandboxServer) -> None:
    url = sandbox.patasente_url + "login"
    r = web.post(url, params={"username": "hward@gmail.com", "password": "x"})
    assert r.status_code == 404
    assert r.json() == {"error": "Account with hward@gmail.com doesn't exist !!"}
    r = web.post(url, params={"username": data.MERCHANT_CODE, "password": "wrong"})
    assert r.status_code == 401 and "error" in r.json()
    # parameters belong in the query string, not a JSON body
    r = web.post(url, json={"username": data.MERCHANT_CODE,
                              "password": data.MERCHANT_PASSWORD})
    assert r.status_code == 400


def test_patasente_needs_a_bearer_token(sandbox: SandboxServer, pata: Pata) -> None:
    r = web.get(sandbox.patasente_url + "get-wallet-balance")
    assert r.status_code == 401 and r.json() == {"error": "Unauthenticated."}
    r = web.get(sandbox.patasente_url + "get-wallet-balance",
                  headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401
    assert pata.req("GET", "get-wallet-balance").status_code == 200
    assert web.post(sandbox.control_url + "expire-tokens").json() == {"ok": True}
    assert pata.req("GET", "get-wallet-balance").status_code == 401


def test_company_details_and_wallet_balance(pata: Pata) -> None:
    d = pata.req("GET", "get-company-details").json()
    assert d["business_name"] == data.MERCHANT_NAME and d["merchant_code"] == data.MERCHANT_CODE
    assert d["created_at"] == {"date": "2020-04-04 14:40:18"}
    assert d["prepaid_account"] == "active" and d["currency"] == "UGX"
    r = pata.req("GET", "get-wallet-balance")
    w = json.loads(r.text, parse_float=Decimal)
    assert w["amount"] == Decimal("474561.0023449999")
    assert w["formated_amount"] == "474,561"
    assert w["prepaid_account_balance"] == "500000"
    assert w["formated_prepaid_account_balance"] == "500,000"
    assert w["credit_account_balance"] == "150000" and w["reseller_float"] == 60000


def test_get_card(pata: Pata) -> None:
    c = pata.card(data.CARD_ACTIVE)
    assert c == {
        "id": 108, "company_id": data.MERCHANT_COMPANY_ID, "currency": "UGX", "currency_id": 1,
        "card_no": "1613*****65219", "credit_account_limit": "100000",
        "available_credit": "60000", "current_account_wallet_balance": 150000,
        "total_monetary_points_value": 0, "total_points": 0, "status": "active",
        "has_pin": True, "expiry_date": "11/29",
        "wallets": [{"name": "Current Account"}, {"name": "Credit Account"}],
    }
    assert pata.card(data.CARD_EXPIRED)["status"] == "expired"
    assert pata.card(data.CARD_LOCKED)["status"] == "locked"
    assert pata.card(data.CARD_GIFT_INACTIVE)["status"] == "inactive"
    assert pata.card(data.CARD_NO_PIN)["has_pin"] is False
    r = pata.req("GET", f"get-patasente-card/{data.CARD_ACTIVE.id}/1613*****00000")
    assert r.status_code == 400 and r.json() == {"error": "Card doesn't exist."}
    assert pata.req("GET", "get-patasente-card/999/1613*****65219").status_code == 400


def test_debit_applies_each_time(sandbox: SandboxServer, pata: Pata) -> None:
    r = pata.debit(amount=3000, ref="111")
    assert r.status_code == 200
    assert r.json() == {"success": "Funds have been debited from card 1613*****65219"}
    ps = sandbox.state.patasente
    assert ps.balance(data.CARD_ACTIVE) == 147_000 and ps.applied_count("111") == 1
    # Not idempotent, like the real API: the terminal must search before re-sending.
    assert pata.debit(amount=3000, ref="111").status_code == 200
    assert ps.applied_count("111") == 2 and ps.balance(data.CARD_ACTIVE) == 144_000
    op = ps.applied[0]
    assert (op.kind, op.card_id, op.amount, op.wallet, op.payment_reason, op.ref) == (
        "debit", 108, 3000, data.CURRENT, "Sale ref:111", "111")
    assert ps.wallet == Decimal("474561.0023449999") + 6000
    assert pata.card(data.CARD_ACTIVE)["current_account_wallet_balance"] == 144_000


def test_debit_from_credit_account(sandbox: SandboxServer, pata: Pata) -> None:
    r = pata.debit(amount=60_001, wallet=data.CREDIT)
    assert r.status_code == 400 and "credit" in r.json()["error"].lower()
    assert pata.debit(amount=60_000, wallet=data.CREDIT).status_code == 200
    c = pata.card(data.CARD_ACTIVE)
    assert c["available_credit"] == "0" and c["current_account_wallet_balance"] == 150_000
    r = pata.debit(data.CARD_CREDIT, amount=100, wallet=data.CURRENT, pin="1357")
    assert r.status_code == 400 and r.json() == {"error": "This card has no Current Account wallet"}
    assert pata.debit(data.CARD_CREDIT, amount=100, wallet=data.CREDIT,
                      pin="1357").status_code == 200


@pytest.mark.parametrize(("card", "pin", "amount", "wallet", "error"), [
    (data.CARD_ACTIVE, None, 100, data.CURRENT,
     "This card requires a PIN to complete this transaction"),
    (data.CARD_ACTIVE, "1234", 150_001, data.CURRENT,
     "Insufficient balance on card. Balance is UGX 150,000"),
    (data.CARD_ACTIVE, "1234", 0, data.CURRENT,
     "The amount must be a whole number greater than 0."),
    (data.CARD_ACTIVE, "1234", "12.5", data.CURRENT,
     "The amount must be a whole number greater than 0."),
    (data.CARD_ACTIVE, "1234", 100, "Savings", "This card has no Savings wallet"),
    (data.CARD_GIFT_INACTIVE, None, 100, data.CURRENT, "Card is inactive"),
    (data.CARD_LOCKED, "5678", 100, data.CURRENT, "Card is locked"),
    (data.CARD_EXPIRED, "2468", 100, data.CURRENT, "Card has expired"),
    (data.CARD_LOW, "0000", 501, data.CURRENT, "Insufficient balance on card. Balance is UGX 500"),
])
def test_debit_rules(sandbox: SandboxServer, pata: Pata, card: data.DemoCard, pin: str | None,
                     amount: Any, wallet: str, error: str) -> None:
    before = sandbox.state.patasente.balance(card)
    r = pata.debit(card, amount=amount, pin=pin, wallet=wallet)
    assert r.status_code == 400 and r.json() == {"error": error}
    assert sandbox.state.patasente.balance(card) == before
    assert sandbox.state.patasente.applied == []


def test_debit_without_pin_on_a_no_pin_card(sandbox: SandboxServer, pata: Pata) -> None:
    assert pata.debit(data.CARD_NO_PIN, amount=20_000, pin=None).status_code == 200
    assert sandbox.state.patasente.balance(data.CARD_NO_PIN) == 0


def test_wrong_pins_lock_the_card(sandbox: SandboxServer, pata: Pata) -> None:
    errors = [pata.debit(pin="9999").json()["error"] for _ in range(3)]
    assert errors[0].startswith("Wrong PIN") and "2 attempts left" in errors[0]
    assert "1 attempt left" in errors[1]
    assert "locked" in errors[2]
    assert pata.debit(pin="1234").json() == {"error": "Card is locked"}
    assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == 150_000
    assert pata.req("PUT", f"unlock-sente-card/{data.CARD_ACTIVE.id}").json() == {
        "success": "Card is active"}
    assert pata.debit(pin="1234").status_code == 200


def test_a_right_pin_resets_the_wrong_pin_count(pata: Pata) -> None:
    pata.debit(pin="9999")
    pata.debit(pin="9999")
    assert pata.debit(pin="1234").status_code == 200
    assert "2 attempts left" in pata.debit(pin="9999").json()["error"]


def test_credit_rules(sandbox: SandboxServer, pata: Pata) -> None:
    r = pata.credit(data.CARD_LOW, 4_501)
    assert r.status_code == 400
    assert r.json() == {"error": "You can't add more than UGX 5,000 on this card.Current "
                                 "balance on this card is UGX 500"}
    r = pata.credit(data.CARD_LOW, 4_500, "Top-up ref:4242")
    assert r.json() == {"success": "Funds have been transferred to card."}
    ps = sandbox.state.patasente
    assert ps.balance(data.CARD_LOW) == 5_000 and ps.prepaid_float == 495_500
    assert ps.applied_count("4242", "credit") == 1 and ps.applied_count("4242", "debit") == 0
    assert pata.credit(data.CARD_EXPIRED, 10).json() == {"error": "Card has expired"}
    assert pata.credit(data.CARD_ACTIVE, 0).status_code == 400


def test_credit_limited_by_prepaid_float() -> None:
    with SandboxServer(port=0, state=SandboxState(prepaid_float=1_000)) as sb:
        pata = Pata(sb)
        r = pata.credit(data.CARD_ACTIVE, 1_001)
        assert r.status_code == 400
        assert r.json() == {"error": "Your prepaid account balance is too low to complete "
                                     "this action"}
        assert pata.credit(data.CARD_ACTIVE, 1_000).status_code == 200
        assert sb.state.patasente.prepaid_float == 0


def test_prepaid_transactions_search(sandbox: SandboxServer, pata: Pata) -> None:
    pata.debit(amount=100, ref="100000000001")
    pata.debit(amount=200, ref="100000000002")
    pata.credit(data.CARD_LOW, 300, "Refund ref:100000000003")
    rows = pata.search(take=50)
    assert [r["amount"] for r in rows[:3]] == ["300", "200", "100"]  # newest first
    assert len(rows) == 5  # and the two historical rows of the document
    found = pata.search(search="100000000002")
    assert len(found) == 1
    row = found[0]
    assert row["payment_reason"] == "Sale ref:100000000002"
    assert row["card_transaction_type"] == "debit" and row["amount"] == "200"
    assert row["patasente_card_no"] == data.CARD_ACTIVE.card_no
    assert row["transaction_status"] == "Processed"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", row["created_at"])
    by_id = pata.search(search=row["transaction_id"])
    assert [r["id"] for r in by_id] == [row["id"]]
    by_card = pata.search(search=data.CARD_LOW.card_no)
    assert [r["card_transaction_type"] for r in by_card] == ["credit"]
    assert pata.search(search="ref:999") == []
    assert [r["amount"] for r in pata.search(skip=1, take=1)] == ["200"]
    assert len(pata.search(take=50, from_date="2021-01-01")) == 3
    assert len(pata.search(take=50, to_date="2020-12-31")) == 2
    assert len(pata.search(take=50, from_date="2020-09-13", to_date="2020-09-13")) == 1
    assert len(pata.search()) == 5  # default take is 10


def test_gift_card_activation_with_pin(sandbox: SandboxServer, pata: Pata) -> None:
    card = data.CARD_GIFT_INACTIVE
    path = f"modify-patasente-card-status/{card.id}"
    assert pata.req("PUT", path, status="active", pin="12").json() == {
        "error": "The PIN must be 4 digits"}
    assert pata.req("POST", path, status="active", pin="2580").status_code == 405
    r = pata.req("PUT", path, status="active", pin="2580", phone_number="256772123456",
                 card_names="Grace A")
    assert r.status_code == 200 and r.json() == {"success": "Card is active"}
    info = pata.card(card)
    assert info["status"] == "active" and info["has_pin"] is True
    assert pata.req("PUT", path, status="active").json() == {"error": "Card is already active"}
    assert pata.debit(card, amount=1000, pin="0000").status_code == 400
    assert pata.debit(card, amount=1000, pin="2580").status_code == 200
    assert pata.req("PUT", path, status="bogus").status_code == 400
    assert pata.req("PUT", path, status="inactive").json() == {"success": "Card is inactive"}


def test_sente_card_activation_kyc(sandbox: SandboxServer, pata: Pata) -> None:
    card = data.CARD_SENTE_NEW
    good = {"name": "Ivan Yiga", "phone_number": "256783159235", "card_id": str(card.id),
            "email": "", "pin": "2123", "document": "base64:aGVsbG8gd29ybGQ=",
            "card_agreement": "true", "platform_agreement": "true"}
    for key, bad in [("card_agreement", "True"), ("platform_agreement", "false"),
                     ("document", ""), ("pin", "12345"), ("phone_number", "0783159235"),
                     ("name", " ")]:
        r = pata.req("POST", "activate-sente-card", **{**good, key: bad})
        assert r.status_code == 400, (key, r.text)
    r = pata.req("POST", "activate-sente-card", **{**good, "card_id": str(data.CARD_ACTIVE.id)})
    assert r.json() == {"error": "Card is already assigned to an account"}

    r = pata.req("POST", "activate-sente-card", **good)
    assert r.status_code == 200
    body = r.json()
    assert body["success"] == ("A 4 digit verification code has been sent to Ivan Yiga's phone "
                               "or email.")
    assert body["phone_number"] == "+256783159235" and isinstance(body["user_id"], int)
    assert pata.card(card)["status"] == "inactive"  # not before the phone is verified

    control = web.get(sandbox.control_url + "state").json()
    codes = [v["code"] for v in control["patasente"]["verifications"]
             if v["user_id"] == body["user_id"]]
    assert codes == [data.SMS_CODE]
    verify = {"phone_number": "256783159235", "user_id": str(body["user_id"])}
    r = pata.req("PUT", "phone-code-verification", **verify, code="0000")
    assert r.status_code == 400 and r.json() == {"error": "Verification code doesn't match"}
    r = pata.req("PUT", "phone-code-verification", **verify, code=data.SMS_CODE)
    assert r.json() == {"success": "Phone number has been verified"}
    info = pata.card(card)
    assert info["status"] == "active" and info["has_pin"] is True
    assert pata.credit(card, 5_000).status_code == 200
    assert pata.debit(card, amount=2_000, pin="2123").status_code == 200
    assert sandbox.state.patasente.balance(card) == 3_000
    listed = pata.req("GET", "get-company-sente-cards").json()
    assert {"id": card.id, "card_no": card.card_no, "status": "active",
            "expiry_date": card.expiry} in listed


def test_lock_and_unlock(pata: Pata) -> None:
    cid = data.CARD_ACTIVE.id
    assert pata.req("PUT", f"lock-sente-card/{cid}").json() == {
        "success": "Card is has been locked, no transactions can be done with this card."}
    assert pata.req("PUT", f"lock-sente-card/{cid}").json() == {"error": "Card is already locked"}
    assert pata.debit().json() == {"error": "Card is locked"}
    assert pata.req("PUT", f"unlock-sente-card/{cid}").json() == {"success": "Card is active"}
    assert pata.req("PUT", f"unlock-sente-card/{cid}").json() == {"error": "Card is already active"}
    assert pata.req("PUT", "lock-sente-card/4040").status_code == 400


def test_products_conversion_and_lists(pata: Pata) -> None:
    products = pata.req("GET", "get-company-products").json()
    assert products and {"id", "product_name", "unit_price", "unit_price_formatted",
                         "currency_format", "created_at"} <= set(products[0])
    assert isinstance(products[0]["created_at"], dict)
    r = pata.req("GET", "convert-currency/ugx/usd/13000")
    assert json.loads(r.text, parse_float=Decimal) == {"result": Decimal("3.523")}
    assert pata.req("GET", "convert-currency/ugx/xyz/1").status_code == 400
    issued = pata.req("GET", "get-issued-patasente-cards", skip=0, take=50).json()
    by_no = {c["card_no"]: c for c in issued}
    assert by_no[data.CARD_LOW.card_no]["amount"] == 5_000
    assert by_no[data.CARD_LOW.card_no]["balance"] == 500
    assert pata.req("GET", "get-support-issued-card-statuses").json() == [
        "active", "inactive", "expired"]


def test_patasente_routing_errors(sandbox: SandboxServer, pata: Pata) -> None:
    assert pata.req("GET", "debit-patasente-card/108").status_code == 405
    assert pata.req("GET", "no-such-endpoint").status_code == 404
    assert pata.req("GET", "get-patasente-card/108").status_code == 404
    assert web.get(sandbox.base_url + "/elsewhere").status_code == 404


# ------------------------------------------------------------------ faults
def test_fault_http500_before_effect(sandbox: SandboxServer, pawa: Pawa) -> None:
    sandbox.faults.add(provider="pawacard", endpoint="vend", mode="http500", count=1)
    r = pawa.post("vend", meter=data.METER_OK, amount="50", ref="1", customerName="B")
    assert r.status_code == 500
    assert sandbox.state.vends_performed == 0 and len(sandbox.faults) == 0
    assert pawa.vend(ref="1")["status"] == 0


@pytest.mark.parametrize("mode", ["http503", "http429"])
def test_fault_retry_after(sandbox: SandboxServer, pata: Pata, mode: str) -> None:
    sandbox.faults.add(provider="patasente", endpoint="debit-patasente-card", mode=mode,
                       count=1, seconds=7)
    r = pata.debit()
    assert r.status_code == (503 if mode == "http503" else 429)
    assert r.headers["retry-after"] == "7"
    assert sandbox.state.patasente.applied == []
    assert pata.debit().status_code == 200


def test_fault_drop_before(sandbox: SandboxServer, pawa: Pawa) -> None:
    sandbox.faults.add(provider="pawacard", endpoint="vend", mode="drop_before", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        pawa.vend(ref="1")
    assert sandbox.state.vends_performed == 0
    assert pawa.call("transaction", ref="1")["status"] == 104
    assert pawa.vend(ref="1")["status"] == 0


def test_fault_drop_after_commit_vend(sandbox: SandboxServer, pawa: Pawa) -> None:
    sandbox.faults.add(provider="pawacard", endpoint="vend", mode="drop_after_commit", count=1)
    with pytest.raises(httpx.TransportError):
        pawa.vend(ref="1")
    assert sandbox.state.vends_performed == 1
    found = pawa.call("transaction", ref="1")
    assert found["status"] == 0 and found["token"] == sandbox.state.pawacard.transactions[
        "1"].token
    assert pawa.vend(ref="1") == found  # resending the same ref does nothing more
    assert sandbox.state.vends_performed == 1


def test_fault_drop_after_commit_debit(sandbox: SandboxServer, pata: Pata) -> None:
    sandbox.faults.add(provider="patasente", endpoint="debit-patasente-card",
                       mode="drop_after_commit")
    with pytest.raises(httpx.TransportError):
        pata.debit(ref="424242424242")
    ps = sandbox.state.patasente
    assert ps.applied_count("424242424242") == 1 and ps.balance(data.CARD_ACTIVE) == 147_000
    assert len(pata.search(search="424242424242")) == 1


@pytest.mark.parametrize(("mode", "body", "content_type"), [
    ("html", b"<!DOCTYPE html>", "text/html"),
    ("empty", b"", "application/json"),
    ("badjson", b'{"status": 0,', "application/json"),
])
def test_fault_garbage_answers_after_the_effect(sandbox: SandboxServer, pawa: Pawa, mode: str,
                                                body: bytes, content_type: str) -> None:
    sandbox.faults.add(provider="pawacard", endpoint="vend", mode=mode)
    r = pawa.post("vend", meter=data.METER_OK, amount="50", ref="9", customerName="B")
    assert r.status_code == 200 and r.content.startswith(body)
    assert r.headers["content-type"].startswith(content_type)
    if mode != "html":
        assert r.content == body
    assert sandbox.state.vends_performed == 1
    assert pawa.call("transaction", ref="9")["status"] == 0


def test_fault_garbage_without_effect(sandbox: SandboxServer, pawa: Pawa) -> None:
    sandbox.faults.add(provider="pawacard", endpoint="vend", mode="html", effect=False)
    r = pawa.post("vend", meter=data.METER_OK, amount="50", ref="9", customerName="B")
    assert r.status_code == 200 and b"<html>" in r.content
    assert sandbox.state.vends_performed == 0


def test_fault_latency(sandbox: SandboxServer, pawa: Pawa) -> None:
    sandbox.faults.add(provider="pawacard", endpoint="balance", mode="latency", seconds=0.3,
                       count=1)
    start = time.monotonic()
    assert pawa.call("balance")["status"] == 0
    assert time.monotonic() - start >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        sandbox.faults.add(provider="pawacard", endpoint="vend", mode="latency", seconds=0.5)
        pawa.http.post("vend", timeout=0.1, json={
            "username": data.VENDOR_USERNAME, "key": pawa.key, "meter": data.METER_OK,
            "amount": "50", "ref": "31", "customerName": "B"})
    # the request arrived: the provider does the vend after the client gave up
    deadline = time.monotonic() + 5
    while sandbox.state.vends_performed == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sandbox.state.vends_performed == 1


def test_fault_pending_vend_and_bill(sandbox: SandboxServer, pawa: Pawa) -> None:
    sandbox.faults.add(provider="pawacard", endpoint="*", mode="pending", polls=1, count=2)
    # a pending fault ignores endpoints that create nothing
    assert pawa.call("balance")["status"] == 0
    assert pawa.vend(ref="1")["transaction"]["status"] == 5
    assert pawa.call("transaction", ref="1")["status"] == 1
    assert pawa.call("transaction", ref="1")["status"] == 0
    bill = pawa.call("postpaidbill", accountNo=data.ACCOUNT_OK, amount="100",
                     customerName="B", ref="2")
    assert bill["status"] == 1 and bill["transaction"]["status"] == 0
    assert pawa.call("postpaidtransaction", ref="2")["transaction"]["status"] == 0
    assert pawa.call("postpaidtransaction", ref="2")["status"] == 0
    assert pawa.vend(meter=meter(3), ref="3")["status"] == 0  # count used up


def test_fault_count_and_wildcards(sandbox: SandboxServer, pawa: Pawa, pata: Pata) -> None:
    sandbox.faults.add(provider="*", endpoint="*", mode="http500", count=3)
    assert pawa.post("balance").status_code == 500
    assert pata.req("GET", "get-wallet-balance").status_code == 500
    assert pawa.post("balance").status_code == 500
    assert pawa.post("balance").status_code == 200
    sandbox.faults.add(provider="patasente", endpoint="get-wallet-balance", mode="http500",
                       count=None)
    for _ in range(3):
        assert pata.req("GET", "get-wallet-balance").status_code == 500
    assert pawa.post("balance").status_code == 200
    sandbox.faults.clear()
    assert pata.req("GET", "get-wallet-balance").status_code == 200


def test_control_endpoints(sandbox: SandboxServer, pawa: Pawa) -> None:
    ctl = httpx.Client(base_url=sandbox.control_url, verify=TLS)
    r = ctl.post("faults", json={"provider": "pawacard", "endpoint": "vend",
                                 "mode": "drop_after_commit", "count": 1})
    assert r.status_code == 200 and r.json()["fault"]["mode"] == "drop_after_commit"
    assert ctl.post("faults", json={"mode": "explode"}).status_code == 400
    assert ctl.post("faults", json={"provider": "bank", "mode": "http500"}).status_code == 400
    with pytest.raises(httpx.TransportError):
        pawa.vend(ref="1")
    state = ctl.get("state").json()
    assert state["pawacard"]["vends_performed"] == 1
    assert state["pawacard"]["transactions"]["1"]["vend_calls"] == 1
    assert state["pawacard"]["vendor_float"] == "499950"
    assert state["requests"]["by_endpoint"]["pawacard/vend"] == 1

    ctl.post("faults", json={"provider": "pawacard", "endpoint": "vend", "mode": "http500",
                             "count": None})
    assert len(sandbox.faults) == 1
    assert ctl.delete("faults").json() == {"ok": True, "faults": []}
    assert len(sandbox.faults) == 0

    assert pawa.vend(ref="2")["status"] == 1  # throttled
    assert ctl.post("clock", json={"advance": 301}).json()["offset"] == 301
    assert pawa.vend(ref="2")["status"] == 0

    assert ctl.post("reset").json() == {"ok": True}
    assert sandbox.state.vends_performed == 0 and sandbox.clock.offset == 0
    assert pawa.post("balance").status_code == 401  # keys are gone with the reset
    assert ctl.get("nothing").status_code == 404


def test_no_pin_or_password_in_state_or_log(sandbox: SandboxServer, pawa: Pawa,
                                            pata: Pata) -> None:
    pata.debit(pin="1234")
    pata.debit(data.CARD_LOW, pin="0000", amount=100)
    pata.req("PUT", f"modify-patasente-card-status/{data.CARD_GIFT_INACTIVE.id}",
             status="active", pin="8642")
    text = web.get(sandbox.control_url + "state").text
    for secret in ("1234", "0000", "8642", data.MERCHANT_PASSWORD, data.VENDOR_PASSWORD):
        assert f"pin={secret}" not in text and f'"{secret}"' not in text
    assert "password" not in text and "pin_hash" not in text
    assert all("?" not in r.path for r in sandbox.state.request_log)
    assert "8642" not in repr(sandbox.state.patasente.cards)


def test_stop_and_start_keep_port_and_state(sandbox: SandboxServer, pawa: Pawa) -> None:
    pawa.vend(ref="1")
    port = sandbox.port
    sandbox.stop()
    with pytest.raises(httpx.ConnectError):
        pawa.post("balance")
    sandbox.start()
    assert sandbox.port == port
    assert pawa.call("transaction", ref="1")["status"] == 0  # same state, key still valid
    assert sandbox.state.vends_performed == 1
    sandbox.stop()
    sandbox.stop()  # idempotent
    sandbox.start()
    assert pawa.call("balance")["status"] == 0


def test_a_stopped_sandbox_refuses_and_holds_its_port(sandbox: SandboxServer) -> None:
    """Down: connections are refused, and no other server (a parallel test's) can take
    the port before the provider comes back; leaving the ``with`` releases it."""
    import socket

    port = sandbox.port
    sandbox.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))
    sandbox.start()
    assert sandbox.port == port
    sandbox.close()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))


def test_stop_cuts_requests_in_flight(sandbox: SandboxServer, pawa: Pawa) -> None:
    # An hour's latency: the answer can only end early by being cut.
    slow = sandbox.faults.add(provider="pawacard", endpoint="balance", mode="latency",
                              seconds=3600)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            pawa.post("balance")
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    wait_until(lambda: slow.hits == 1, what="the request")  # in the provider, waiting
    sandbox.stop()
    t.join(60)  # a failure bound, not a speed claim: uncut, it would take an hour
    assert not t.is_alive()
    assert errors and isinstance(errors[0], httpx.TransportError)


def test_server_wide_latency() -> None:
    with SandboxServer(port=0, latency=0.2) as sb:
        start = time.monotonic()
        web.post(sb.pawacard_url + "login", json={"username": "x", "password": "y"})
        assert time.monotonic() - start >= 0.2


def test_concurrent_vends_are_counted_once_each() -> None:
    """Many clients at once: every ref vends exactly once, the float adds up."""
    import concurrent.futures as cf

    with SandboxServer(port=0, throttle_seconds=0, daily_limit=None) as sb:
        key = Pawa(sb).key

        def work(start: int) -> list[int]:
            with httpx.Client(base_url=sb.pawacard_url, verify=TLS) as c:
                out = []
                for i in range(start, start + 25):
                    body = {"username": data.VENDOR_USERNAME, "key": key, "meter": meter(i),
                            "amount": "10", "ref": str(1000 + i), "customerName": "X"}
                    out.append(c.post("vend", json=body).json()["status"])
                    out.append(c.post("vend", json=body).json()["status"])  # a retry
                return out

        with cf.ThreadPoolExecutor(8) as pool:
            statuses = [s for chunk in pool.map(work, range(0, 200, 25)) for s in chunk]
        assert statuses == [0] * 400
        pc = sb.state.pawacard
        assert pc.vends_performed == 200
        assert pc.vendor_float == Decimal(data.VENDOR_FLOAT - 2000)
        assert all(t.vend_calls == 2 for t in pc.transactions.values())


def test_serve_forever_in_a_subprocess(tmp_path: Any) -> None:
    """The standalone sandbox prints its URLs, answers, and stops on SIGTERM."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "pos.sandbox.server", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = ""
        deadline = time.monotonic() + 20
        while not url and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if "PawaCard  :" in line:
                url = line.split(":", 1)[1].strip()
        assert url.endswith("/pawacard/v3/")
        r = web.post(url + "login", json={"username": data.VENDOR_USERNAME,
                                          "password": data.VENDOR_PASSWORD})
        assert r.json()["status"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert proc.returncode in (0, -signal.SIGTERM)


@pytest.mark.sandbox(throttle_seconds=0, daily_limit=None)
def test_the_sandbox_marker_sets_the_fixtures_server_options(sandbox):
    assert sandbox.state.throttle_seconds == 0 and sandbox.state.daily_limit is None


def test_the_sandbox_fixture_without_a_marker_keeps_the_defaults(sandbox):
    assert sandbox.state.throttle_seconds == 300 and sandbox.state.daily_limit == 5
