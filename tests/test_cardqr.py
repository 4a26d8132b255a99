import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pos.cardqr import CardQRError, parse_card_qr

DOC_PAYLOAD = "1613*****65219&11/23&UGX&0&Debit Card&108"


def test_document_example_parses() -> None:
    card = parse_card_qr(DOC_PAYLOAD)
    assert card.number == "1613*****65219"
    assert card.expiry == "11/23"
    assert (card.expiry_month, card.expiry_year) == (11, 2023)
    assert card.currency == "UGX"
    assert card.digit == 0
    assert card.card_type == "Debit Card"
    assert card.card_id == 108
    assert card.raw == DOC_PAYLOAD


def test_id_second_last_reading_is_handled() -> None:
    # "Get A Patasente Card" says the id is the second last argument.
    card = parse_card_qr("1613*****65219&11/23&UGX&0&108&Debit Card")
    assert card.card_id == 108 and card.digit == 0 and card.card_type == "Debit Card"


def test_gift_card_and_trailing_separator() -> None:
    card = parse_card_qr("1663********06916067&09/29&ugx&1&Gift Card&4&")
    assert card.card_id == 4 and card.currency == "UGX" and card.is_gift


def test_expiry_and_problems() -> None:
    card = parse_card_qr(DOC_PAYLOAD)
    assert card.is_expired(dt.date(2026, 11, 23))
    assert not card.is_expired(dt.date(2023, 11, 30))
    assert card.problems(dt.date(2023, 11, 1)) == []
    weird = parse_card_qr("1613*****65219&11/29&UGX&0&Loyalty Card&108")
    assert any("Unknown card type" in p for p in weird.problems(dt.date(2026, 1, 1)))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("", "empty"),
        ("hello world", "6 fields"),
        ("1613*****65219&13/23&UGX&0&Debit Card&108", "not a month"),
        ("1613*****65219&11/23&UGX&00&Debit Card&108", "one digit"),
        ("1613*****65219&11/23&UGX&0&Debit Card&0", "invalid card id"),
        ("161365219&11/23&UGX&0&Debit Card&108", "masked card number"),
        ("1613*****65219&11/23&UGX&0&Debit Card&Gift Card", "unexpected field"),
        ("1613*****65219&1123&UGX&0&Debit Card&108", "expiry"),
        ("https://example.com/pay?x=1&y=2", "6 fields"),
        ("1613*****65219&11/23&UGX&0&Debit\x00Card&108", "control"),
    ],
)
def test_rejects_with_message(payload: str, message: str) -> None:
    with pytest.raises(CardQRError) as err:
        parse_card_qr(payload)
    assert message in str(err.value)


@given(st.text(max_size=300))
def test_arbitrary_text_never_raises_unexpectedly(text: str) -> None:
    try:
        parse_card_qr(text)
    except CardQRError as exc:
        assert str(exc)


@given(
    st.lists(
        st.one_of(st.text(alphabet="0123456789*&/ AaBbUGX", max_size=12), st.just("")),
        min_size=1,
        max_size=8,
    )
)
def test_fieldlike_text_never_raises_unexpectedly(parts: list[str]) -> None:
    with contextlib.suppress(CardQRError):
        parse_card_qr("&".join(parts))


def test_non_string_input() -> None:
    with pytest.raises(CardQRError):
        parse_card_qr(b"1613*****65219&11/23&UGX&0&Debit Card&108")
