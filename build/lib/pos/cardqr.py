"""The card QR payload: ``1613*****65219&11/23&UGX&0&Debit Card&108``.

Fields: masked card number, expiry MM/YY, currency, a digit, card type, card id.

The Patasente document is inconsistent about where the id is: "Activate a
sente card" says the card_id is "in the last index position", while "Get A
Patasente Card" says "the id is the second last argument". We therefore parse
by meaning, not position: the masked number, the expiry, the currency and
the type are recognised by their form, and of the two purely numeric fields
the first (nearest the currency) is the digit and the second is the id.
That reads both ``...&0&Debit Card&108`` and ``...&0&108&Debit Card``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from pos.errors import InputError

MAX_PAYLOAD = 256

_NUMBER_RE = re.compile(r"^\d{4,8}\*{2,}\d{2,}$")
_EXPIRY_RE = re.compile(r"^(\d{2})/(\d{2})$")
_CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")
_NUMERIC_RE = re.compile(r"^\d{1,12}$")
_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z .'-]{1,39}$")

KNOWN_TYPES = frozenset(
    {"debit card", "credit card", "gift card", "sente card", "prepaid card", "shopping card"}
)


class CardQRError(InputError):
    """The scanned text is not a card QR payload."""


@dataclass(frozen=True, slots=True)
class CardRef:
    """What a card's QR code says about it. The number is masked by the issuer."""

    number: str
    expiry_month: int
    expiry_year: int  # four digits
    currency: str
    digit: int
    card_type: str
    card_id: int
    raw: str

    @property
    def expiry(self) -> str:
        return f"{self.expiry_month:02d}/{self.expiry_year % 100:02d}"

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def is_gift(self) -> bool:
        return self.card_type.lower() == "gift card"

    def is_expired(self, today: dt.date | None = None) -> bool:
        """A card is valid through the last day of its expiry month."""
        today = today or dt.date.today()
        return (today.year, today.month) > (self.expiry_year, self.expiry_month)

    def problems(self, today: dt.date | None = None) -> list[str]:
        """Reasons the card cannot be used, although the payload parsed."""
        out: list[str] = []
        if self.is_expired(today):
            out.append(f"Card expired at the end of {self.expiry}")
        if self.card_type.lower() not in KNOWN_TYPES:
            out.append(f"Unknown card type {self.card_type!r}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "expiry": self.expiry,
            "currency": self.currency,
            "digit": self.digit,
            "card_type": self.card_type,
            "card_id": self.card_id,
        }


def parse_card_qr(text: object) -> CardRef:
    """Parse a card payload; raise :class:`CardQRError` saying what is wrong.

    Never raises anything else, whatever ``text`` is.
    """
    if not isinstance(text, str):
        raise CardQRError("The scan is not text")
    raw = text.strip()
    if not raw:
        raise CardQRError("The scan is empty")
    if len(raw) > MAX_PAYLOAD:
        raise CardQRError("The scan is too long to be a card QR code")
    if not raw.isprintable():
        raise CardQRError("The scan has control characters: not a card QR code")
    fields = [f.strip() for f in raw.split("&")]
    if fields and fields[-1] == "":
        fields.pop()  # a trailing '&'
    if len(fields) != 6:
        raise CardQRError(
            f"Not a card QR code: expected 6 fields separated by '&', found {len(fields)}"
        )

    number = expiry = currency = ctype = None
    numerics: list[str] = []
    for f in fields:
        if number is None and _NUMBER_RE.match(f):
            number = f
        elif expiry is None and _EXPIRY_RE.match(f):
            expiry = f
        elif _NUMERIC_RE.match(f):
            numerics.append(f)
        elif currency is None and _CURRENCY_RE.match(f):
            currency = f.upper()
        elif ctype is None and _TYPE_RE.match(f):
            ctype = " ".join(f.split())
        else:
            raise CardQRError(f"Not a card QR code: unexpected field {f[:24]!r}")

    if number is None:
        raise CardQRError("Card QR code has no masked card number (e.g. 1613*****65219)")
    if expiry is None:
        raise CardQRError("Card QR code has no expiry date (MM/YY)")
    if currency is None:
        raise CardQRError("Card QR code has no currency")
    if ctype is None:
        raise CardQRError("Card QR code has no card type")
    if len(numerics) != 2:
        raise CardQRError("Card QR code must carry a digit and a card id")
    digit_s, id_s = numerics
    if len(digit_s) != 1:
        raise CardQRError(f"Card QR code digit must be one digit, not {digit_s!r}")
    card_id = int(id_s)
    if card_id <= 0:
        raise CardQRError("Card QR code has an invalid card id")

    m = _EXPIRY_RE.match(expiry)
    assert m is not None
    month, yy = int(m.group(1)), int(m.group(2))
    if not 1 <= month <= 12:
        raise CardQRError(f"Card expiry month {m.group(1)} is not a month")
    return CardRef(
        number=number,
        expiry_month=month,
        expiry_year=2000 + yy,
        currency=currency,
        digit=int(digit_s),
        card_type=ctype,
        card_id=card_id,
        raw=raw,
    )


def make_payload(number: str, expiry: str, currency: str, digit: int, card_type: str,
                 card_id: int) -> str:
    """The payload in the document's field order (id last); used by the sandbox."""
    return f"{number}&{expiry}&{currency}&{digit}&{card_type}&{card_id}"
