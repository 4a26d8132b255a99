"""Cashiers and supervisors. Operator PINs are stored as scrypt hashes, never in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from pos.digits import is_digits
from pos.errors import InputError

Role = Literal["cashier", "supervisor"]

# scrypt cost (16 MiB): ~50 ms on an x86 laptop core, a few times that on a Raspberry
# Pi 4; it slows offline guessing of a 4-8 digit PIN while sign-in stays quick for a
# person. The first line of defence is the journal's 0600 mode.
_N, _R, _P = 2**14, 8, 1


@dataclass(frozen=True, slots=True)
class Operator:
    name: str
    role: Role

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"


def validate_operator_pin(pin: str) -> str:
    if not is_digits(pin) or not 4 <= len(pin) <= 8:
        raise InputError("An operator PIN has 4 to 8 digits")
    return pin


def hash_pin(pin: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    enc = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${enc(salt).decode()}${enc(digest).decode()}"


def is_pin_hash(stored: str) -> bool:
    """Whether ``stored`` has the shape :func:`hash_pin` writes (it is not checked
    against any PIN: that is what costs)."""
    parts = stored.split("$")
    return (len(parts) == 6 and parts[0] == "scrypt" and all(p.isdigit() for p in parts[1:4])
            and all(parts[4:]))


def verify_pin(pin: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        want = base64.b64decode(digest_b64)
        got = hashlib.scrypt(pin.encode(), salt=salt, n=int(n), r=int(r), p=int(p),
                             dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)
