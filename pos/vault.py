"""The device key and AES-GCM sealing of PINs kept for queued offline debits.

The key is 32 random bytes in a file of mode 0600 in the data directory,
created on first use. A key file readable by group or others is refused
rather than used: a PIN sealed with a key anyone can read is a PIN in clear.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from pos.config import fsync_dir, write_secret_file
from pos.errors import PosError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12


class VaultError(PosError):
    """The device key is missing, unsafe or does not open a sealed PIN."""


class Vault:
    """Seals small secrets with the device key. ``repr`` never shows the key.

    The cipher (and the cryptography library behind it) is loaded on the first seal or
    open: most start-ups never touch a sealed PIN, and the import costs ~20 ms."""

    __slots__ = ("_aead", "_key", "path")

    def __init__(self, key: bytes, path: Path | None = None) -> None:
        if len(key) != KEY_BYTES:
            raise VaultError(f"The device key must be {KEY_BYTES} bytes")
        self._key = key
        self._aead: AESGCM | None = None
        self.path = path

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._aead = AESGCM(self._key)
        return self._aead

    def __repr__(self) -> str:
        return f"Vault(path={str(self.path)!r})"

    @classmethod
    def open(cls, path: Path) -> Vault:
        """Load the key at ``path``, creating it (mode 0600) if it does not exist."""
        path = Path(path)
        if not path.exists():
            _create_key(path)
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise VaultError(f"Device key {path} is not a regular file")
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise VaultError(
                f"Device key {path} is readable by other users "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); refusing to use it. "
                f"Run: chmod 600 {path}"
            )
        key = path.read_bytes()
        if len(key) != KEY_BYTES:
            raise VaultError(f"Device key {path} is damaged (expected {KEY_BYTES} bytes)")
        return cls(key, path)

    def derive_key(self, purpose: bytes) -> bytes:
        """A 32-byte key for one ``purpose`` (HMAC-SHA256 of it under the device key), so
        the device key itself serves one job and a derived key reveals nothing of it."""
        import hashlib
        import hmac

        return hmac.new(self._key, b"sente-pos:" + purpose, hashlib.sha256).digest()

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """``nonce || ciphertext+tag``; ``aad`` binds the blob to its owner (the ref)."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._cipher().encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        if len(blob) < NONCE_BYTES + 16:
            raise VaultError("Sealed data is too short")
        from cryptography.exceptions import InvalidTag

        try:
            return self._cipher().decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise VaultError(
                "Sealed data does not open with this device key (wrong key or tampered)"
            ) from exc


def _create_key(path: Path) -> None:
    """Create the key atomically; if another process wins the race, keep its key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    write_secret_file(tmp, os.urandom(KEY_BYTES))
    try:
        os.link(tmp, path)  # fails if the key appeared meanwhile: never replace a key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
