"""Money as integer minor units with an explicit currency. No floats, ever.

Providers send amounts in many forms: ``"184,285"``, ``"39"``, ``3000``,
``474561.0023449999`` (a JSON float: parse JSON with ``parse_float=Decimal``)
and ``"1,000"``. :func:`parse_amount` turns each into :class:`Money` exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from pos.errors import InputError

#: ISO 4217 minor-unit exponents of the currencies the terminal meets.
EXPONENTS: dict[str, int] = {"UGX": 0, "KES": 2, "USD": 2, "TZS": 2, "RWF": 0, "EUR": 2, "GBP": 2}

# re.ASCII: ``\d`` would otherwise match any Unicode digit ("²", Arabic-Indic digits).
_AMOUNT_RE = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d{1,30})(\.\d{1,30})?$", re.ASCII)

#: Largest amount the terminal handles, in minor units of any currency (10^15: a
#: quadrillion shillings). Anything larger is an odd answer or a typo, never money, and
#: would not fit the journal's 64-bit integers.
MAX_MINOR = 10**15


def exponent(currency: str) -> int:
    cur = currency.upper()
    if cur not in EXPONENTS:
        raise InputError(f"Unknown currency {currency!r}")
    return EXPONENTS[cur]


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An amount in minor units (``minor``) of ``currency`` (ISO 4217 code)."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise TypeError("Money.minor must be an int")
        exponent(self.currency)

    # -- arithmetic -------------------------------------------------------
    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency.upper())

    # -- conversions ------------------------------------------------------
    @property
    def major(self) -> Decimal:
        """The amount in major units as an exact Decimal."""
        return Decimal(self.minor).scaleb(-exponent(self.currency))

    def wire(self) -> str:
        """The amount as providers expect it: major units, no separators ("3000", "12.50")."""
        exp = exponent(self.currency)
        if exp == 0:
            return str(self.minor)
        q = self.major.quantize(Decimal(1).scaleb(-exp))
        if q == q.to_integral_value():
            return str(int(q))
        return format(q, "f")

    def format(self, *, symbol: bool = True) -> str:
        """Human form with thousands separators: ``UGX 1,500`` / ``KES 1,200.50``."""
        exp = exponent(self.currency)
        sign = "-" if self.minor < 0 else ""
        units, frac = divmod(abs(self.minor), 10**exp) if exp else (abs(self.minor), 0)
        body = f"{units:,}"
        if exp:
            body += f".{frac:0{exp}d}"
        return f"{sign}{self.currency} {body}" if symbol else f"{sign}{body}"

    def __str__(self) -> str:
        return self.format()

    def to_json(self) -> dict[str, Any]:
        return {"minor": self.minor, "currency": self.currency, "display": self.format()}


def parse_amount(value: object, currency: str, *, rounding: bool = True) -> Money:
    """Parse a provider or user amount into :class:`Money` without floats.

    Accepts ints, Decimals, strings with thousands commas (``"184,285"``) and
    JSON floats (converted through ``repr`` so no binary noise is added; use
    ``parse_float=Decimal`` when decoding JSON to avoid them at all). Digits
    beyond the currency's minor unit are rounded half-even when ``rounding``
    (provider balances such as ``474561.0023449999`` UGX) and rejected otherwise
    (amounts typed by a person).
    """
    cur = currency.upper()
    exp = exponent(cur)
    if isinstance(value, bool) or value is None:
        raise InputError(f"Not an amount: {value!r}")
    if isinstance(value, int):
        if abs(value) > MAX_MINOR:
            raise InputError(f"Amount out of range: {value!r}"[:80])
        return Money(value * 10**exp, cur)
    if isinstance(value, float):
        dec = Decimal(repr(value))
    elif isinstance(value, Decimal):
        dec = value
    elif isinstance(value, str):
        text = value.strip().replace(" ", "").replace("\u00a0", "")
        if text.upper().startswith(cur):
            text = text[len(cur):]
        if not text or not _AMOUNT_RE.match(text):
            raise InputError(f"Not an amount: {value!r}")
        try:
            dec = Decimal(text.replace(",", ""))
        except InvalidOperation as exc:  # pragma: no cover - regex guards this
            raise InputError(f"Not an amount: {value!r}") from exc
    else:
        raise InputError(f"Not an amount: {value!r}")
    if not dec.is_finite():
        raise InputError(f"Not an amount: {value!r}"[:80])
    try:
        if dec.adjusted() > 18:  # before any arithmetic: 1e999999 must not become an int
            raise InputError(f"Amount out of range: {value!r}"[:80])
        scaled = dec.scaleb(exp)
        integral = scaled.to_integral_value(rounding=ROUND_HALF_EVEN)
    except ArithmeticError:  # decimal.Overflow / InvalidOperation on absurd input
        raise InputError(f"Not an amount: {value!r}"[:80]) from None
    if integral != scaled and not rounding:
        raise InputError(f"{cur} amounts have at most {exp} decimal places: {value!r}")
    if abs(integral) > MAX_MINOR:
        raise InputError(f"Amount out of range: {value!r}"[:80])
    return Money(int(integral), cur)


def parse_user_amount(text: str, currency: str) -> Money:
    """An amount typed by a cashier: positive, exact, in major units."""
    money = parse_amount(text, currency, rounding=False)
    if money.minor <= 0:
        raise InputError("The amount must be greater than zero")
    return money
