"""ASCII digits only: ``str.isdigit`` also accepts "²", "٣" and other Unicode digits.

Meters, accounts, amounts, refs and PINs go to providers and into Luhn checks,
which only know 0-9; a look-alike digit must be refused, not sent.
"""

from __future__ import annotations


def is_digits(text: str) -> bool:
    """True when ``text`` is one or more of the characters 0-9 and nothing else."""
    return text.isascii() and text.isdigit()
