"""Client references: numeric, 12 digits like the PawaCard document's examples, and
carrying the terminal, so a fleet of terminals on one vendor account never collides.

A ref is the terminal number (4 digits, ``terminal_number`` in the settings; unique
within a merchant's fleet, assigned at enrolment or by hand) followed by 8 random
digits. Uniqueness within the terminal is enforced by the journal (``ref`` is a
unique key; a clash draws again). No time goes into a ref: a clock that jumps or a
journal restored from a backup cannot make an old ref come back.

Document 003 gives only examples ("370474587102", "015117215614": 12 digits, a
leading zero allowed) and "103 Bad reference number"; it states no length rule, so
the refs keep the examples' length.
"""

from __future__ import annotations

import secrets

REF_DIGITS = 12
TERMINAL_DIGITS = 4
MAX_TERMINAL_NUMBER = 10**TERMINAL_DIGITS - 1


def new_ref(terminal_number: int = 0) -> str:
    """A 12-digit ref: ``TTTT`` (the terminal) + 8 random digits."""
    if not 0 <= terminal_number <= MAX_TERMINAL_NUMBER:
        raise ValueError(f"terminal number {terminal_number} is not 0-{MAX_TERMINAL_NUMBER}")
    width = REF_DIGITS - TERMINAL_DIGITS
    return f"{terminal_number:0{TERMINAL_DIGITS}d}{secrets.randbelow(10**width):0{width}d}"


def terminal_of(ref: str) -> int | None:
    """The terminal number a ref carries (None for a ref of another shape)."""
    if len(ref) != REF_DIGITS or not (ref.isascii() and ref.isdigit()):
        return None
    return int(ref[:TERMINAL_DIGITS])


REF_TAG = "ref:"


def reason_with_ref(reason: str, ref: str) -> str:
    """Embed the ref in a Patasente ``payment_reason`` so reconciliation can search for it."""
    reason = reason.strip() or "POS sale"
    return f"{reason} {REF_TAG}{ref}"
