"""Client references: unique, numeric, 12 digits like the PawaCard document's examples."""

from __future__ import annotations

import secrets
import time


def new_ref() -> str:
    """A 12-digit numeric ref: 7 digits of time (seconds, wraps every ~115 days) + 5 random.

    Uniqueness is enforced by the journal (``ref`` is a unique key); a clash
    simply draws again there.
    """
    t = int(time.time()) % 10_000_000
    return f"{t:07d}{secrets.randbelow(100_000):05d}"


REF_TAG = "ref:"


def reason_with_ref(reason: str, ref: str) -> str:
    """Embed the ref in a Patasente ``payment_reason`` so reconciliation can search for it."""
    reason = reason.strip() or "POS sale"
    return f"{reason} {REF_TAG}{ref}"
