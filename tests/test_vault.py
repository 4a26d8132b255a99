"""The device key, AES-GCM sealing, and PINs of offline debits never left on disk."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pos.errors import InputError, PosError
from pos.journal import Journal, Kind, State
from pos.money import Money
from pos.vault import Vault, VaultError

PIN = "7391"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)  # no "7391" in any timestamp


def test_key_created_private_and_reused(tmp_path: Path) -> None:
    key = tmp_path / "home" / "device.key"
    v1 = Vault.open(key)
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(key.read_bytes()) == 32
    blob = v1.encrypt(b"secret", b"ref-1")
    assert Vault.open(key).decrypt(blob, b"ref-1") == b"secret"
    assert "device.key" in repr(v1) and key.read_bytes().hex() not in repr(v1)
    assert not list(key.parent.glob(".*.new"))  # no temporary key left behind


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    key = tmp_path / "device.key"
    Vault.open(key)
    key.chmod(mode)
    with pytest.raises(PosError, match="readable by other users"):
        Vault.open(key)


def test_damaged_key_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "device.key"
    key.write_bytes(b"short")
    key.chmod(0o600)
    with pytest.raises(VaultError, match="damaged"):
        Vault.open(key)


def test_sealing_is_authenticated(tmp_path: Path) -> None:
    v = Vault.open(tmp_path / "device.key")
    blob = v.encrypt(PIN.encode(), b"000000000001")
    assert PIN.encode() not in blob
    assert v.encrypt(PIN.encode(), b"000000000001") != blob  # fresh nonce each time
    with pytest.raises(VaultError):
        v.decrypt(blob, b"000000000002")  # bound to its ref
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(VaultError):
        v.decrypt(tampered, b"000000000001")
    other = Vault.open(tmp_path / "other.key")
    with pytest.raises(VaultError, match="device key"):
        other.decrypt(blob, b"000000000001")


_OPEN_KEY = "import sys; from pathlib import Path; from pos.vault import Vault; " \
            "v = Vault.open(Path(sys.argv[1])); print(v.encrypt(b'x', b'a').hex())"


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    key = tmp_path / "device.key"
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_KEY, str(key)],
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    blobs = [bytes.fromhex(p.communicate(timeout=60)[0].strip()) for p in procs]
    vault = Vault.open(key)
    assert all(vault.decrypt(b, b"a") == b"x" for b in blobs)


# ------------------------------------------------------------ PIN in the journal
def _disk_bytes(home: Path) -> bytes:
    """Everything SQLite and logging may have written next to the journal (not the key)."""
    return b"".join(p.read_bytes() for p in sorted(home.iterdir())
                    if p.is_file() and p.name != "device.key")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


def _queued_debit(j: Journal, ref: str) -> None:
    j.create(Kind.card_debit, Money(2500, "UGX"), ref=ref, operator="alice", terminal_id="POS-1",
             card_id=108, card_no="1613*****65219", wallet="Current Account",
             state=State.queued, offline=True)


def test_pin_roundtrip_and_no_vault(home: Path) -> None:
    with Journal.open(home / "journal.db", clock=lambda: T0) as j:
        _queued_debit(j, "000000000001")
        with pytest.raises(VaultError):
            j.store_pin("000000000001", PIN)
    with Journal.open(home / "journal.db", vault=Vault.open(home / "device.key"),
                      clock=lambda: T0) as j:
        assert j.load_pin("000000000001") is None
        j.store_pin("000000000001", PIN)
        assert j.load_pin("000000000001") == PIN
        with pytest.raises(InputError):
            j.store_pin("000000000001", "12a4")
        with pytest.raises(PosError):
            j.store_pin("000000000099", PIN)  # no such transaction
    # a journal opened without the key cannot open the PIN
    with Journal.open(home / "journal.db", clock=lambda: T0) as j, pytest.raises(VaultError):
        j.load_pin("000000000001")


def test_pin_not_on_disk_after_erase(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log_file = home / "sente-pos.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    try:
        vault = Vault.open(home / "device.key")
        ref = "000000000001"
        with Journal.open(home / "journal.db", vault=vault, clock=lambda: T0) as j:
            for i in range(2, 6):  # neighbours on the same page, kept
                _queued_debit(j, f"00000000000{i}")
                j.store_pin(f"00000000000{i}", "2468")
            _queued_debit(j, ref)
            j.store_pin(ref, PIN)
            blob = bytes(j.db.conn.execute("SELECT blob FROM pins WHERE ref = ?", (ref,))
                         .fetchone()[0])
            disk = _disk_bytes(home)
            assert blob in disk  # the search below can see the sealed PIN when it is there
            assert PIN.encode() not in disk  # never in clear, even before erasing
            j.erase_pin(ref)
            assert j.load_pin(ref) is None
            assert j.load_pin("000000000002") == "2468"
            disk = _disk_bytes(home)
            assert blob not in disk
            assert blob[12:28] not in disk  # not even a fragment of the ciphertext
            assert PIN.encode() not in disk
        handler.flush()
        assert PIN not in log_file.read_text()
        assert PIN not in caplog.text
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def test_settling_the_debit_erases_its_pin(home: Path) -> None:
    vault = Vault.open(home / "device.key")
    ref = "000000000001"
    with Journal.open(home / "journal.db", vault=vault, clock=lambda: T0) as j:
        _queued_debit(j, ref)
        j.store_pin(ref, PIN)
        j.transition(ref, State.sending)
        assert j.load_pin(ref) == PIN  # still needed while the outcome is open
        j.transition(ref, State.unknown)
        assert j.load_pin(ref) == PIN
        blob = bytes(j.db.conn.execute("SELECT blob FROM pins").fetchone()[0])
        j.transition(ref, State.declined_offline, error="Wrong PIN")
        assert j.load_pin(ref) is None
        assert blob not in _disk_bytes(home)


def test_erase_blocked_by_a_reader_finishes_at_close(home: Path) -> None:
    import sqlite3

    vault = Vault.open(home / "device.key")
    ref = "000000000001"
    j = Journal.open(home / "journal.db", vault=vault, clock=lambda: T0, busy_timeout_ms=100)
    _queued_debit(j, ref)
    j.store_pin(ref, PIN)
    blob = bytes(j.db.conn.execute("SELECT blob FROM pins").fetchone()[0])
    reader = sqlite3.connect(home / "journal.db", isolation_level=None)  # e.g. `sente-pos sync`
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM txns").fetchone()  # holds a read snapshot
    j.erase_pin(ref)  # the WAL cannot be truncated while the reader is on it
    assert j.load_pin(ref) is None
    assert blob in _disk_bytes(home)  # still in the WAL for now
    reader.execute("COMMIT")  # the reader stays connected, so closing `j` is not the last close
    j.close()
    assert blob not in _disk_bytes(home)
    reader.close()
