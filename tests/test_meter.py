import pytest

from pos.errors import InputError
from pos.meter import luhn_check_digit, luhn_ok, validate_account, validate_meter


def test_document_meters() -> None:
    assert luhn_ok("01451174955")  # the document's successful verify
    assert not luhn_ok("12345678912")  # "did not pass the Luhn validation" in the document


def test_check_digit_round_trip() -> None:
    body = "0145117495"
    assert body + luhn_check_digit(body) == "01451174955"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Enter"),
        ("0145117495A", "digits only"),
        ("123", "11 to 13"),
        ("12345678912", "check digit"),
    ],
)
def test_validate_meter_messages(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        validate_meter(text)


def test_validate_meter_normalises() -> None:
    assert validate_meter(" 0145 1174 955 ") == "01451174955"


def test_account() -> None:
    assert validate_account(" 0203754-01") == "0203754-01"
    with pytest.raises(InputError):
        validate_account("abc")
