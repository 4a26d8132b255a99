"""Cashiers and supervisors. Operator PINs are stored as scrypt hashes, never in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import secrets
from dataclasses import dataclass
from typing import Literal

from pos.digits import is_digits
from pos.errors import InputError

Role = Literal["cashier", "supervisor"]

# scrypt cost (16 MiB): ~50 ms on an x86 laptop core, a few times that on a Raspberry
# Pi 4; it slows offline guessing of a 4-8 digit PIN while sign-in stays quick for a
# person. A 4-digit PIN falls to 10,000 scrypts all the same, hence the device key in
# the hash (below) and the attempt limits of pos/pinguard.py.
_N, _R, _P = 2**14, 8, 1


@dataclass(frozen=True, slots=True)
class Operator:
    name: str
    role: Role

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"


def validate_operator_name(name: str, role: str) -> str:
    """A name for the sign-in screen: printable, 1 to 32 characters, spaces folded."""
    from pos.text import validate_free_text

    name = " ".join(validate_free_text(name, "operator name", 64).split())
    if not name or len(name) > 32:
        raise InputError("An operator name has 1 to 32 characters")
    if role not in ("cashier", "supervisor"):
        raise InputError("Role is cashier or supervisor")
    return name


def validate_operator_pin(pin: str) -> str:
    if not is_digits(pin) or not 4 <= len(pin) <= 8:
        raise InputError("An operator PIN has 4 to 8 digits")
    return pin


#: Sequences a supervisor PIN may not be (with repeated digits: see
#: :func:`validate_supervisor_pin`); the first guesses of anyone walking PINs.
_COMMON_PINS = frozenset({"1212", "1122", "2580", "0852", "1004", "2000", "6969", "1313",
                          "4545", "7777", "1010"})


def is_trivial_pin(pin: str) -> bool:
    """The PINs tried first by anyone walking PINs: repeated digits, ascending or
    descending runs (0 follows 9: 7890, 8901), repeated pairs, the usual favourites."""
    digits = [int(c) for c in pin]
    steps = {(b - a) % 10 for a, b in itertools.pairwise(digits)}
    return (
        len(set(pin)) == 1                                   # 0000, 1111
        or steps in ({1}, {9})                               # 1234, 4321, 56789, 7890
        or (len(pin) % 2 == 0 and pin == pin[:2] * (len(pin) // 2))  # 1212, 2323
        or pin in _COMMON_PINS
        or len(set(pin)) <= len(pin) // 3                    # 110011: two digits in six
    )


def validate_supervisor_pin(pin: str) -> str:
    """A supervisor approves money going out, card unlocks and operator changes: refuse
    the trivial PINs (:func:`is_trivial_pin`)."""
    validate_operator_pin(pin)
    if is_trivial_pin(pin):
        raise InputError("That PIN is too easy to guess for a supervisor (repeated digits, "
                         "a run like 1234, or a common PIN): choose another")
    return pin


def validate_new_pin(pin: str, role: Role, *, previous_hash: str | None = None,
                     key: bytes | None = None) -> str:
    """A PIN an operator is about to get: 4 to 8 digits; for a supervisor not trivial;
    for anyone not the PIN they had (``previous_hash``: one scrypt, ~50 ms).

    Cashiers may keep a simple PIN: it opens only their own till session, every act of
    which is journaled under their name; what a cashier cannot do alone (refunds, voids,
    top-ups, unlocks, balances, settings, operators) waits for a supervisor's PIN."""
    validate_operator_pin(pin)
    if role == "supervisor":
        validate_supervisor_pin(pin)
    if previous_hash is not None and verify_pin(pin, previous_hash, key):
        raise InputError("That is the PIN this operator already has: choose a new one")
    return pin


# Hash schemes. ``scrypt$N$r$p$salt$digest``: scrypt of the PIN (the first scheme; the
# demo's precomputed hashes). ``scrypt-hmac$...``: the same scrypt output, then
# HMAC-SHA256 under a key derived from the device key (0600, outside journal.db), so a
# copied journal.db alone cannot be brute-forced offline; old hashes still verify and
# are rewritten in the new scheme at the next right PIN.
SCHEME, KEYED_SCHEME = "scrypt", "scrypt-hmac"
PIN_KEY_PURPOSE = b"operator-pin-hash-v1"


def hash_pin(pin: str, key: bytes | None = None) -> str:
    """A PIN hash: keyed with ``key`` (from :meth:`pos.vault.Vault.derive_key`) when given."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    scheme = SCHEME
    if key is not None:
        digest = hmac.new(key, digest, hashlib.sha256).digest()
        scheme = KEYED_SCHEME
    enc = base64.b64encode
    return f"{scheme}${_N}${_R}${_P}${enc(salt).decode()}${enc(digest).decode()}"


def is_pin_hash(stored: str) -> bool:
    """Whether ``stored`` has the shape :func:`hash_pin` writes (it is not checked
    against any PIN: that is what costs)."""
    parts = stored.split("$")
    return (len(parts) == 6 and parts[0] in (SCHEME, KEYED_SCHEME)
            and all(p.isdigit() for p in parts[1:4]) and all(parts[4:]))


def needs_rehash(stored: str, key: bytes | None) -> bool:
    """An old-scheme hash, to be rewritten keyed once the PIN is known to be right."""
    return key is not None and stored.split("$", 1)[0] == SCHEME


def verify_pin(pin: str, stored: str, key: bytes | None = None) -> bool:
    """Whether ``pin`` matches ``stored``; a keyed hash needs the same device key."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme not in (SCHEME, KEYED_SCHEME) or (scheme == KEYED_SCHEME and key is None):
            return False
        salt = base64.b64decode(salt_b64)
        want = base64.b64decode(digest_b64)
        got = hashlib.scrypt(pin.encode(), salt=salt, n=int(n), r=int(r), p=int(p),
                             dklen=32 if scheme == KEYED_SCHEME else len(want))
    except (ValueError, TypeError):
        return False
    if scheme == KEYED_SCHEME:
        assert key is not None
        got = hmac.new(key, got, hashlib.sha256).digest()
    return hmac.compare_digest(got, want)
