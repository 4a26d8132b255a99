"""Card PINs: after ``security.card_pin_tries`` wrong PINs for one card (3, EMV's PIN
try counter) this terminal refuses the card for ``security.card_lockout_minutes``,
then allows one try at a time until a right PIN. The issuer keeps its own counter (the
Patasente sandbox locks a card after 3); ours stops a walk through 10,000 PINs at the
counter before the issuer sees it, and holds for cards whose issuer never locks.

The card debit path calls, around the request that carries the PIN::

    check_card_allowed(journal, card_id, now)          # before sending (raises Declined)
    ...
    record_card_pin(journal, card_id, wrong=is_wrong_pin_decline(exc.message), now=now)
    record_card_pin(journal, card_id, wrong=False, now=now)   # after the debit was taken
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING

from pos.errors import Declined
from pos.pinguard import PinGuard, PinLocked, Policy, at_wall, describe_wait

if TYPE_CHECKING:
    from pos.config import SecuritySettings
    from pos.journal import Journal

# Patasente's refusals of a wrong card PIN. The sandbox (pos/sandbox/patasente.py,
# debit_card) answers "Wrong PIN. N attempts left before the card is locked" and "Wrong
# PIN. The card has been locked after N wrong PIN attempts"; document 002 shows for the
# PIN endpoints "Your PIN doesn't match our records, ..." and never the card debit's own
# wording, so both readings are recognised, and the usual variants (incorrect / invalid
# PIN, PIN mismatch). Not a wrong PIN: "This card requires a PIN" (none was sent) and a
# format error ("The PIN must be 4 digits"): no try was used at the issuer.
_WRONG_PIN = re.compile(
    r"\b(?:wrong|incorrect|invalid|bad)\s+(?:card\s+)?pin\b"
    r"|\bpin\b[^.]{0,40}?\b(?:is\s+)?(?:wrong|incorrect|invalid)\b"
    r"|\bpin\s+(?:does\s*n[o']?t|did\s*n[o']?t|do\s*n[o']?t)\s+match"
    r"|\bpin\s+mismatch\b",
    re.IGNORECASE,
)
_NOT_A_TRY = re.compile(r"\bpin\b[^.]*\b(?:must|digits?|format|required|requires)\b"
                        r"|\brequires?\s+a\s+pin\b", re.IGNORECASE)


def _default_settings() -> SecuritySettings:
    from pos.config import SecuritySettings

    return SecuritySettings()


def _guard(journal: Journal, now: datetime, settings: SecuritySettings | None) -> PinGuard:
    return PinGuard(journal, Policy.cards(settings or _default_settings()), now=at_wall(now),
                    what="card PIN")


def _subject(card_id: int) -> str:
    return f"card:{int(card_id)}"


def is_wrong_pin_decline(message: str) -> bool:
    """Whether a provider's refusal says the card PIN was wrong (a try was used)."""
    if not message:
        return False
    return bool(_WRONG_PIN.search(message)) and not _NOT_A_TRY.search(message)


def check_card_allowed(journal: Journal, card_id: int, now: datetime, *,
                       settings: SecuritySettings | None = None) -> None:
    """Raise :class:`Declined` (nothing is sent) while this terminal refuses the card."""
    try:
        _guard(journal, now, settings).check(_subject(card_id))
    except PinLocked as exc:
        tries = (settings or _default_settings()).card_pin_tries
        raise Declined(f"This card is refused on this terminal after {tries} wrong PINs: "
                       f"try again in {describe_wait(exc.seconds)}, or pay another way",
                       provider="terminal", code="card_pin_tries") from None


def record_card_pin(journal: Journal, card_id: int, wrong: bool, now: datetime, *,
                    settings: SecuritySettings | None = None) -> None:
    """Count a wrong PIN for the card, or clear its count after a right one."""
    _guard(journal, now, settings).record(_subject(card_id), not wrong)
