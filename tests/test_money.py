from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pos.errors import InputError
from pos.money import Money, parse_amount, parse_user_amount


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        ("184,285", "UGX", 184285),
        ("39", "KES", 3900),
        ("1,000", "UGX", 1000),
        (474561.0023449999, "UGX", 474561),
        (Decimal("474561.0023449999"), "UGX", 474561),
        (3000, "UGX", 3000),
        ("12.50", "KES", 1250),
        ("UGX 5,000", "UGX", 5000),
        ("0", "UGX", 0),
        (3.523, "USD", 352),
    ],
)
def test_provider_amount_forms(value: object, currency: str, minor: int) -> None:
    assert parse_amount(value, currency) == Money(minor, currency)


@pytest.mark.parametrize("bad", ["", "abc", "1,00", "12,3456", "1.2.3", None, True, "NaN", "--5"])
def test_rejects_non_amounts(bad: object) -> None:
    with pytest.raises(InputError):
        parse_amount(bad, "UGX")


def test_user_amount_is_exact_and_positive() -> None:
    assert parse_user_amount("5,000", "UGX") == Money(5000, "UGX")
    with pytest.raises(InputError, match="decimal places"):
        parse_user_amount("10.5", "UGX")
    with pytest.raises(InputError, match="greater than zero"):
        parse_user_amount("0", "UGX")


def test_format_and_wire() -> None:
    assert Money(1500, "UGX").format() == "UGX 1,500"
    assert Money(120050, "KES").format() == "KES 1,200.50"
    assert Money(-500, "UGX").format() == "-UGX 500"
    assert Money(5000, "KES").wire() == "50"
    assert Money(5050, "KES").wire() == "50.50"
    assert Money(3000, "UGX").wire() == "3000"


def test_no_mixing_currencies() -> None:
    with pytest.raises(ValueError):
        _ = Money(1, "UGX") + Money(1, "KES")
    with pytest.raises(TypeError):
        Money(1.5, "UGX")  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=10**12))
def test_format_round_trips(minor: int) -> None:
    m = Money(minor, "UGX")
    assert parse_amount(m.format(symbol=False), "UGX") == m
    k = Money(minor, "KES")
    assert parse_amount(k.format(symbol=False), "KES") == k
