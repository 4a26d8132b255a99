"""The provider documents' example payloads, parsed by the clients' parsing functions.

Patasente examples are literal copies (with their defects: ``"expiry_date":
04/22`` unquoted, members without commas, trailing commas). The PawaCard
document lost some braces in its rendering (``"status": 0, ... }`` with no
opening brace; a ``fixed`` array never closed): those examples are copied with
only the missing brackets restored, marked ``# restored``.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from pos.errors import ProviderError
from pos.money import Money
from pos.providers import http
from pos.providers.models import CardOpStatus, VendStatus
from pos.providers.patasente import (
    parse_card,
    parse_company_details,
    parse_prepaid_transactions,
    parse_products,
    parse_wallet_balance,
    ref_in_reason,
)
from pos.providers.pawacard import key_rejected, parse_vend


def doc(text: str) -> object:
    return http.loads_lenient(text)


# ------------------------------------------------------------------ Patasente
GET_CARD = """{ "id": 24, "company_id": 2621, "currency": "UGX", "currency_id": 1, "card_no": "1616*****52241141888", "credit_account_limit": "10000", "available_credit": "1200", "current_account_wallet_balance": 0, "total_monetary_points_value": 0, "total_points": 0, "status": "active", "has_pin": true, "expiry_date": 04/22, "wallets": [ { "name": "Current Account" }, { "name": "Credit Account" } ] }"""  # noqa: E501

WALLET_BALANCE = """{ "id": 3, "company_id": 3, "currency": "UGX", "currency_id": 1, "formated_amount": "474,561", "formated_commission_amount": "0", "commission_amount": 0, "formated_reseller_float": "60,000", "reseller_float": 60000, "formated_prepaid_account_balance" : "50,000" "formated_credit_account_balance" : "150,000" "prepaid_account_balance" : "50000" "credit_account_balance" : "150000" "amount": 474561.0023449999, "account_no": "PATA20183" }"""  # noqa: E501

PREPAID_TRANSACTIONS = """[ { "id": 14566, "currency_format": "UGX", "charge_currency_format": "UGX", "amount": "5000", "transaction_id": "00014566", "transaction_id_from_callback": null, "reference_id_from_callback": null, "financial_instrument_id": "", "financial_instrument_no": "", "names": "Gift Card", "phone": null, "bill_account_no": null, "bank_account": null, "bank_name": null, "bank_branch": null, "balance": "0", "charge": "0", "transaction_status": "Processed", "payment_reason": "Funds transferred to card", "paid_to": "", "paid_by": "Ssekalegga Brian", "paid_to_merchant_code": "", "paid_by_merchant_code": "M000001", "charge_bearer": null, "exchange_rate": null, "send_receipt": true, "transaction_type": "wallet payment", "type": "wallet", "created_at": "2020-09-13 03:51:07", "wallet_balance": "91,000", "card_transaction_type": "credit", "patasente_card_no": "1663********46561440" }, { "id": 14562, "currency_format": "UGX", "charge_currency_format": "", "amount": "150", "transaction_id": "00014562", "transaction_id_from_callback": null, "reference_id_from_callback": null, "financial_instrument_id": "", "financial_instrument_no": "", "names": "Gift Card", "phone": null, "bill_account_no": null, "bank_account": null, "bank_name": null, "bank_branch": null, "balance": "0", "charge": "500", "transaction_status": "Processed", "payment_reason": "Orm.s", "paid_to": "Ssekalegga Brian", "paid_by": "", "paid_to_merchant_code": "M000001", "paid_by_merchant_code": "", "charge_bearer": null, "exchange_rate": null, "send_receipt": true, "transaction_type": "wallet payment", "type": "wallet", "created_at": "2020-09-12 03:46:26", "wallet_balance": "348,038", "card_transaction_type": "debit", "patasente_card_no": "1663********13455034" }, ]"""  # noqa: E501

COMPANY_DETAILS = """{ "id": 6, "user_id": 6, "business_name": "Senior Developer", "business_email": "dev@develope", "business_website": "patasente.com", "business_description": "Building software", "address": "Najjanankumbi", "business_billing_address": null, "business_shipping_address": null, "nature_of_business": "ICT", "duration_of_business": null, "business_monthly_turnover": null, "PoB": null, "tin": null, "registration_date": "2016", "business_partner_names": null, "business_partner_phone": null, "business_phone": "+25678000000", "wallet_balance": 4011217, "currency": "UGX", "currency_id": 1, "local_currency": true, "merchant_code": "M20723163", "region": "Kampala", "country": "UG", "account": 3, "account_type": "Individual Account", "user_type": "Business", "status": "active", "verified": "verified", "email_phone_verification": "verified", "ip": "127.0.0.1", "pin": "set", "has_products": 0, "has_services": 0, "updated_at": "2020-03-23 12:48:12", "created_at": "2018-08-07 01:48:59", "reseller_account": true, "agent_account": "active", "prepaid_account": "active", "notifiable_email": "dev@developer.com", "notifiable_phone": null, "notifiable_channel": "email", "registered_with": "email", "registered_using": "Web", "timezone": "Africa/Kampala" }"""  # noqa: E501

PRODUCTS = """[ { "id": 18, "product_name": "DeskTop Pro HDD Brand New", "unit_price_formatted": "300,000", "unit_price": 300000, "unit_measure": 6, "units": "Pieces", "currency_id": 1, "currency_format": "UGX", "optimum_stock": "10", "optimum_stock_1": "10", "current_stock_1": "5", "current_stock": "5", "stockup": "5", "stock_out_date": "", "previous_stock_date": "2019-02-28", "deleted": 0, "created_at": { "date": "2019-03-07 23:26:53.000000", "timezone_type": 3, "timezone": "UTC" }, "updated_at": { "date": "2019-03-07 23:26:53.000000", "timezone_type": 3, "timezone": "UTC" }, "qualities":[{"id":3,"name":"Clean","company_product_id":809,"deleted":0,"ip":"127.0.0.1","created_at":"2021-11-27T00:57:10.000000Z","updated_at":"2021-11-27T00:57:10.000000Z"}]} ]"""  # noqa: E501

ISSUED_CARD = """{ "id": 8, "company_id": 6, "card_names": null, "card_request_names": "Gift Card", "card_request_id": 8, "card_type_id": 2, "currency": "UGX", "currency_id": 1, "card_type": "Gift Card", "card_no": "1663********13455034", "amount": 5000, "balance": 2550, "card_limit": 5000, "new_owner_company_id": null, "new_owner_business_name": null, "new_owner_merchant_code": null, "status_modified_by": 6, "status_modified_by_business_name": "Ssekalegga Brian", "status_modified_by_merchant_code": "M000001", "expiry_date": "09/21", "status": "active", "deleted": null, "has_pin": true, "created_at": "2020-09-07", "updated_at": "2020-09-12" }"""  # noqa: E501


def test_get_patasente_card_example_with_unquoted_expiry() -> None:
    card = parse_card(doc(GET_CARD))
    assert card.card_id == 24
    assert card.card_no == "1616*****52241141888"
    assert card.expiry == "04/22"
    assert card.has_pin is True
    assert card.status == "active"
    assert card.wallets == ("Current Account", "Credit Account")
    assert card.current_balance == Money(0, "UGX")
    assert card.credit_limit == Money(10_000, "UGX")  # "10000" as a string
    assert card.available_credit == Money(1_200, "UGX")
    assert card.available_in("Credit Account") == Money(1_200, "UGX")
    assert card.company_id == 2621


def test_issued_card_shape_reads_balance_when_no_wallet_fields() -> None:
    card = parse_card(doc(ISSUED_CARD))
    assert card.current_balance == Money(2_550, "UGX")
    assert card.wallets == ("Current Account",)


def test_card_with_missing_fields_and_strings() -> None:
    card = parse_card({"id": "7", "has_pin": "false", "current_account_wallet_balance": "1,500"})
    assert card.card_id == 7 and card.has_pin is False
    assert card.current_balance == Money(1_500, "UGX")
    assert card.status == "unknown" and card.expiry is None


def test_card_without_id_is_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="Patasente answered something unexpected"):
        parse_card({"status": "active"})


def test_wallet_balance_example_without_commas() -> None:
    wb = parse_wallet_balance(doc(WALLET_BALANCE))
    assert wb.amount == Money(474_561, "UGX")  # 474561.0023449999 rounded, no float
    assert wb.prepaid_float == Money(50_000, "UGX")
    assert wb.credit_balance == Money(150_000, "UGX")
    assert wb.reseller_float == Money(60_000, "UGX")
    assert wb.account_no == "PATA20183"


def test_wallet_balance_only_formatted_prepaid() -> None:
    wb = parse_wallet_balance(
        {"currency": "UGX", "amount": 10, "formated_prepaid_account_balance": "1,234,567"}
    )
    assert wb.prepaid_float == Money(1_234_567, "UGX")
    assert wb.credit_balance is None


def test_prepaid_transactions_example_with_trailing_comma() -> None:
    rows = parse_prepaid_transactions(doc(PREPAID_TRANSACTIONS))
    assert [r.id for r in rows] == [14566, 14562]
    assert rows[0].amount == Money(5_000, "UGX")
    assert rows[0].card_transaction_type == "credit"
    assert rows[1].card_no == "1663********13455034"
    assert rows[1].status == "Processed"
    assert rows[1].transaction_id == "00014562"
    assert rows[0].created_at == "2020-09-13 03:51:07"


def test_company_details_and_products_examples() -> None:
    cd = parse_company_details(doc(COMPANY_DETAILS))
    assert (cd.id, cd.merchant_code, cd.prepaid_account) == (6, "M20723163", "active")
    assert cd.wallet_balance == Money(4_011_217, "UGX")
    (p,) = parse_products(doc(PRODUCTS))
    assert (p.id, p.name, p.unit_price, p.units) == (
        18, "DeskTop Pro HDD Brand New", Money(300_000, "UGX"), "Pieces"
    )


@pytest.mark.parametrize(
    ("reason", "ref", "found"),
    [
        ("Sale ref:123456789012", "123456789012", True),
        ("Sale ref:1234567890123", "123456789012", False),  # a longer ref
        ("Sale ref:123456789012 x", "123456789012", True),
        ("Sale xref:123456789012", "123456789012", False),
        ("Sale 123456789012", "123456789012", False),  # the number without the tag
    ],
)
def test_ref_in_reason(reason: str, ref: str, found: bool) -> None:
    assert ref_in_reason(reason, ref) is found


def test_card_op_status_values() -> None:
    assert CardOpStatus("approved") is CardOpStatus.APPROVED


# ------------------------------------------------------------------ PawaCard
VEND_OK = """{
"token": "66430474307561657038",
  "stdTokenRctNum": "RADIXOVS010VS224392",
  "date": "11-4-2014 20:24:7",
  "totalAmount": "200",
  "transactionId": 252,
  "fixed": [
            {"REPCharge": "6486"},
            {"MonthlyFC": "12000"},
            {"ERCCharge": "593"},
            {"TotalTax": "1440"},
            {"FuelIndexCharge": "92770"},
            {"ForexCharge": "31055"},
            {"InflationAdjustment": "5934"}
  ],
  "ref": "370474587102",
  "customerName": "Bilbo Baggins"
}"""  # restored: the opening brace and the "]" closing "fixed"

VEND_PENDING = """{
    "status": 1,
    "msg": "",
    "transaction": {
        "status": 5,
"msg": "transaction still pending",
                    "transactionId": 3218,
                    "ref": "370474587102"
}}"""  # restored: the closing brace of the outer object

THROTTLE = """{
  "status": 1,
  "msg": "This transaction has been done too soon from the last one. Please wait for a few minutes."
}"""

POSTPAID_OK = """{
    "status": 0,
    "msg": "success",
    "transaction": {
        "status": 1,
"rctNum": "151172056109030422",

"vendor": "test",

"accountNo": "0203755-01",

"amount": "1000",

"date": "27-4-2015 21:56:11",

"transactionId": 3,

"ref": "015117215614",

"customerName": "Bilbo Baggins"
}
}"""

POSTPAID_PENDING = """{
    "status": 1,
    "msg": "success",
    "transaction": {
        "status": 0,
        "vendor": "test",
        "accountNo": "0203754-01",
        "msg": "transaction still pending",
        "amount": "1000",
        "date": "27-4-2015 21:49:14",
        "transactionId": 2,
        "ref": "370474587102",
        "customerName": "Bilbo Baggins"
}

}"""

POSTPAID_FAILED = """{
   "status": 1,
   "msg": "",
   "transaction": {
       "status": 2,
       "vendor": "test",
       "accountNo": "0203754-01",
       "msg": "Failed, please try again",
       "amount": "1000",
       "date": "27-4-2015 21:49:14",
       "transactionId": 2,
       "ref": "370474587102",
       "customerName": "Bilbo Baggins"
}}"""  # restored: the two closing braces

POSTPAID_TXN = """{
    "status": 0,
    "msg": "success",
    "transaction": {
        "status": 1,
        "rctNum": "151172056109030422",
        "vendor": "testvendor",
        "accountNo": "0203755-01",
        "amount": "1000",
        "date": "27-4-2015 21:56:11",
        "transactionId": 3,
        "ref": "370474587102",
        "customerName": "Bilbo Baggins"
}}"""  # restored: the closing brace of the outer object

REF = "370474587102"


def test_vend_success_example() -> None:
    out = parse_vend(doc(VEND_OK), REF, "KES")
    assert out.status is VendStatus.VENDED
    assert out.token == "66430474307561657038"
    assert out.token_groups == "6643 0474 3075 6165 7038"
    assert out.receipt_no == "RADIXOVS010VS224392"
    assert out.total_amount == Money(20_000, "KES")
    assert out.transaction_id == 252
    assert out.date == "11-4-2014 20:24:7"
    assert out.customer_name == "Bilbo Baggins"
    assert [c.name for c in out.charges][:2] == ["REPCharge", "MonthlyFC"]
    assert out.charges[0].amount == "6486" and len(out.charges) == 7


def test_vend_pending_example() -> None:
    out = parse_vend(doc(VEND_PENDING), REF, "KES")
    assert out.status is VendStatus.PENDING
    assert out.transaction_id == 3218 and out.token is None


def test_throttle_example_is_declined_and_flagged() -> None:
    out = parse_vend(doc(THROTTLE), REF, "KES")
    assert out.status is VendStatus.DECLINED and out.throttled is True
    assert "too soon" in out.message


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        ({"status": 1, "msg": "Threshold", "code": "elec001"}, VendStatus.DECLINED, "Threshold"),
        ({"status": 1, "msg": "KPLC down", "code": "elec003"}, VendStatus.DECLINED, "KPLC"),
        ({"status": 102, "msg": "Insufficient balance"}, VendStatus.DECLINED, "float too low"),
        ({"status": "103", "msg": "Bad reference number"}, VendStatus.DECLINED, "reference"),
        ({"status": 104, "msg": "Transaction not found"}, VendStatus.ABSENT, "not found"),
        ({"status": 105, "msg": "Meter max"}, VendStatus.DECLINED, "Meter max"),
        ({"status": 1, "msg": "Something broke"}, VendStatus.DECLINED, "Something broke"),
    ],
)
def test_vend_status_mapping(payload: dict, status: VendStatus, needle: str) -> None:
    out = parse_vend(payload, REF, "KES")
    assert out.status is status
    assert needle in out.message
    assert out.throttled is False


def test_vend_token_with_failure_code_is_not_vended() -> None:
    out = parse_vend({"status": 1, "code": "elec001", "token": "1" * 20, "msg": "x"}, REF, "KES")
    assert out.status is VendStatus.DECLINED


def test_vend_odd_shapes_are_provider_errors() -> None:
    for payload in ([1, 2], {"status": 0, "msg": "success"}, {"status": 7}):
        with pytest.raises(ProviderError, match="PawaCard answered something unexpected"):
            parse_vend(payload, REF, "KES")


def test_postpaid_examples() -> None:
    ok = parse_vend(doc(POSTPAID_OK), REF, "KES", postpaid=True)
    assert ok.status is VendStatus.VENDED
    assert ok.receipt_no == "151172056109030422" and ok.token is None
    assert ok.total_amount == Money(100_000, "KES")
    assert ok.ref == "015117215614"  # as the provider sends it
    pending = parse_vend(doc(POSTPAID_PENDING), REF, "KES", postpaid=True)
    assert pending.status is VendStatus.PENDING
    failed = parse_vend(doc(POSTPAID_FAILED), REF, "KES", postpaid=True)
    assert failed.status is VendStatus.DECLINED
    assert failed.message == "Failed, please try again"
    txn = parse_vend(doc(POSTPAID_TXN), REF, "KES", postpaid=True)
    assert txn.status is VendStatus.VENDED and txn.transaction_id == 3


def test_key_rejected_detection() -> None:
    assert key_rejected({"status": 1, "msg": "Invalid key"})
    assert key_rejected({"status": "1", "msg": "Unauthorised"})
    assert not key_rejected({"status": 1, "msg": "Wrong meter"})
    assert not key_rejected(doc(THROTTLE))  # type: ignore[arg-type]
    assert not key_rejected({"status": 0, "msg": "key ok"})


# ------------------------------------------------------------------ lenient JSON
def test_lenient_json_keeps_decimals_and_rejects_garbage() -> None:
    assert doc('{"a": 1.10}') == {"a": Decimal("1.10")}
    for bad in ("<html><body>502</body></html>", '{"status": 0,', "", "not json", '{"a": "x}'):
        with pytest.raises(ValueError):
            http.loads_lenient(bad)


def test_decode_json_names_provider_and_status() -> None:
    """A web page where JSON was expected is the link (a portal, a proxy), not the provider."""
    from pos.errors import NoAnswer

    resp = http.Answer(200, {}, b"<html>oops</html>")
    with pytest.raises(NoAnswer) as info:
        http.decode_json("PawaCard", resp)
    assert "not JSON (HTTP 200)" in str(info.value)
    assert info.value.http_status == 200 and info.value.provider == "PawaCard"


def test_deeply_nested_json_is_an_odd_answer_not_a_crash() -> None:
    resp = http.Answer(200, {}, b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ProviderError) as info:
        http.decode_json("PawaCard", resp)
    assert "nested" in (info.value.detail or "")


def test_elec100_for_an_unknown_meter_is_a_decline() -> None:
    """Document 003 uses elec100 for a meter Kenya Power does not know, too."""
    from pos.providers.models import VendStatus
    from pos.providers.pawacard import parse_vend

    doc = {"status": 1, "code": "elec100",
           "msg": "The specified MSNO 12345678912 did not pass the Luhn validation. Please "
                  "specify a valid MSNO. ALERT ID-010072 Contact the Support services."}
    out = parse_vend(doc, "370474587102", "KES")
    assert out.status is VendStatus.DECLINED and out.unknown_target


def test_vend_timeout_elec100_is_never_a_decline() -> None:
    """The document's "Request timed out. please fetch the response again" (elec100):
    the vend may have happened, so it is an unknown outcome (query by ref), not a decline."""
    from pos.errors import ProviderError
    from pos.providers.pawacard import parse_vend

    doc = {"status": 1, "msg": "Request timed out. please fetch the response again",
           "code": "elec100"}
    with pytest.raises(ProviderError):
        parse_vend(doc, "370474587102", "KES")
