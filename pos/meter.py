"""Kenya Power meter numbers: digits only, Luhn-checked before any request."""

from __future__ import annotations

from pos.digits import is_digits
from pos.errors import InputError


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` (all decimal) passes the Luhn mod-10 check."""
    if not is_digits(digits):
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body + digit`` pass Luhn (used by the sandbox and tests)."""
    for d in "0123456789":
        if luhn_ok(body + d):
            return d
    raise AssertionError("unreachable")


def validate_meter(text: str) -> str:
    """Return the normalised meter number or raise :class:`InputError` saying why."""
    meter = text.strip().replace(" ", "").replace("-", "")
    if not meter:
        raise InputError("Enter the meter number")
    if not is_digits(meter):
        raise InputError("A meter number has digits only")
    if not 11 <= len(meter) <= 13:
        raise InputError(f"A meter number has 11 to 13 digits, not {len(meter)}")
    if not luhn_ok(meter):
        raise InputError(f"Meter number {meter} is not valid (check digit): please re-type it")
    return meter


def validate_account(text: str) -> str:
    """A postpaid account number such as ``0203754-01``."""
    acc = text.strip()
    if not acc:
        raise InputError("Enter the account number")
    if len(acc) > 32 or not all(is_digits(c) or c == "-" for c in acc) or not any(
        is_digits(c) for c in acc
    ):
        raise InputError("An account number has digits and dashes only, e.g. 0203754-01")
    return acc


def format_token(token: str) -> str:
    """``66430474307561657038`` -> ``6643 0474 3075 6165 7038``."""
    digits = "".join(ch for ch in token if ch.isdigit())
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
