"""The device itself fails (issue 10): a full disk, a journal locked by another process,
offline limits raced by several processes, the exit codes of every outcome.

Each answer that already moved money is recorded (a token issued, a card debited),
whatever the journal's state: through the storage reserve, or the fallback file that
the next start-up replays. A sale whose answer could not be recorded never starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pos.journal import JournalUnwritable, State
from pos.journal import fallback as fallback_mod
from pos.money import Money
from pos.sandbox import data
from pos.sandbox.server import SandboxServer
from pos.terminal import Terminal
from tests.screens_support import FAST_RETRY_ENV, sandbox_settings
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent


def meter(n: int) -> str:
    from pos.meter import luhn_check_digit

    body = f"0888{n:06d}"
    return body + luhn_check_digit(body)


def kes(n: int) -> Money:
    return Money(n * 100, "KES")


@pytest.fixture
def sb() -> Iterator[SandboxServer]:
    with SandboxServer(port=0, throttle_seconds=0, daily_limit=None) as server:
        yield server


@contextlib.contextmanager
def tmpfs(path: Path, size_kib: int) -> Iterator[Path]:
    """A small RAM file system at ``path`` (root only): a disk that really fills."""
    path.mkdir(parents=True, exist_ok=True)
    rc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0700",
                         "tmpfs", str(path)], capture_output=True).returncode
    if rc != 0:
        pytest.skip("needs root to mount a tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> Path:
    """Write until the file system is full; returns the filler file."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            chunk = b"\0" * size
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, chunk)
    finally:
        os.close(fd)
    return filler


async def open_terminal(sb: SandboxServer, home: Path, monkeypatch: pytest.MonkeyPatch,
                        **overrides: Any) -> Terminal:
    monkeypatch.setenv("SENTE_POS_HOME", str(home))
    return await Terminal.open(sandbox_settings(sb, terminal_id="T-LOCAL", **overrides),
                               operator="ann")


async def test_a_full_disk_still_records_the_token(sb: SandboxServer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills while a vend is on the wire: the token is still written down (the
    reserve beside the journal is released for it), and no new sale starts after."""
    with tmpfs(tmp_path / "sd", 12_000) as home:
        term = await open_terminal(sb, home, monkeypatch,
                                   storage={"min_free_mb": 0.5, "reserve_mb": 4.0})
        try:
            slow = sb.faults.add(provider="pawacard", endpoint="vend", mode="latency",
                                 seconds=0.6, count=1)
            sale = asyncio.create_task(term.sell_token(meter(10), kes(100), "Bilbo"))
            # The request is at the provider (its answer 0.6 s away); the SD card fills up.
            await eventually(lambda: slow.hits == 1, what="the vend request")
            assert term.journal.reserve_path.exists()
            filler = fill(home)
            res = await sale
            assert res.status == "approved" and res.token
            txn = term.journal.require(res.ref)
            assert txn.state == State.done and txn.token == res.token
            assert not term.journal.reserve_path.exists()  # spent on that answer
            with pytest.raises(JournalUnwritable, match="storage is nearly full"):
                await term.sell_token(meter(11), kes(100), "Bilbo")
            assert sb.state.pawacard.vends_performed == 1  # refused before anything left
            filler.unlink()
            again = await term.sell_token(meter(12), kes(50), "Bilbo")
            assert again.status == "approved"  # space is back: the reserve is remade
            assert term.journal.reserve_path.exists()
        finally:
            await term.aclose()


async def test_a_locked_journal_keeps_the_answer_in_the_fallback_file(
        sb: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holds journal.db locked past the busy timeout when the token
    comes: the cashier still gets the token (and "do not sell again"); the answer waits
    in the fallback file and the next start-up records it."""
    home = tmp_path / "home"
    term = await open_terminal(sb, home, monkeypatch, storage={"busy_timeout_ms": 300})
    blocker = sqlite3.connect(home / "journal.db", timeout=5, isolation_level=None)
    try:
        slow = sb.faults.add(provider="pawacard", endpoint="vend", mode="latency",
                             seconds=0.5, count=1)
        sale = asyncio.create_task(term.sell_token(data.METER_OK, kes(100), "Bilbo"))
        await eventually(lambda: slow.hits == 1, what="the vend request")  # on the wire
        blocker.execute("BEGIN EXCLUSIVE")  # held until the answer has come and gone
        res = await sale
        assert res.status == "approved" and res.token
        assert "do not sell again" in res.message.lower()
        pending = fallback_mod.read(home / fallback_mod.FILE_NAME)
        assert [p["ref"] for p in pending] == [res.ref]
        assert pending[0]["fields"]["token"] == res.token
        assert data.CARD_ACTIVE.pin not in (home / fallback_mod.FILE_NAME).read_text()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await term.aclose()
    again = await open_terminal(sb, home, monkeypatch)  # start-up replays the answer
    try:
        txn = again.journal.require(res.ref)
        assert txn.state == State.done and txn.token == res.token
        assert not (home / fallback_mod.FILE_NAME).exists()
    finally:
        await again.aclose()


async def test_a_torn_fallback_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / fallback_mod.FILE_NAME
    fallback_mod.append(path, "000100000001", State.done, note="n", error=None,
                        fields={"token": "1" * 20})
    with open(path, "a") as f:
        f.write('{"ref": "0001000')  # a power cut mid-line
    assert [p["ref"] for p in fallback_mod.read(path)] == ["000100000001"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


# ------------------------------------------------------------------ processes
def cli_env(sb: SandboxServer, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTE_POS_")}
    env.update(sb.env())
    env.update({"SENTE_POS_HOME": str(home), "PYTHONPATH": str(ROOT),
                "SENTE_POS_PATASENTE__CONNECT_TIMEOUT": "0.5",
                "SENTE_POS_PAWACARD__CONNECT_TIMEOUT": "0.5",
                "SENTE_POS_RECONCILE__CONFIRM_SECONDS": "0.3",
                "SENTE_POS_RECONCILE__CONFIRM_INTERVAL": "0.05", **FAST_RETRY_ENV, **extra})
    return env


def cli(env: dict[str, str], *args: str, stdin: str = "") -> tuple[int, dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "sente_pos.cli", *args, "--json"], env=env,
                          input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT)
    out = proc.stdout.strip().splitlines()
    return proc.returncode, (json.loads(out[-1]) if out else {})


def test_offline_limits_hold_across_processes(sb: SandboxServer, tmp_path: Path) -> None:
    """Eight `card debit` processes at once, Patasente down, max_count=1: one is accepted
    offline, the other seven refused (the limit is checked in the admitting write)."""
    home = tmp_path / "home"
    env = cli_env(sb, home, SENTE_POS_OFFLINE__MAX_COUNT="1")
    card = data.CARD_ACTIVE
    rc, _ = cli(env, "card", "show", card.payload)  # seen online once: cached
    assert rc == 0
    sb.stop()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "sente_pos.cli", "card", "debit", card.payload, "--amount", "100",
         "--wallet", data.CURRENT, "--reason", "race", "--json"],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT) for _ in range(8)]
    codes = []
    for p in procs:
        p.communicate(input=f"{card.pin}\n", timeout=60)
        codes.append(p.returncode)
    assert sorted(codes) == [2] * 7 + [3], codes


def test_every_outcome_has_its_exit_code(sb: SandboxServer, tmp_path: Path) -> None:
    """DESIGN.md: 0 done; 2 declined or rejected input; 3 accepted offline or pending;
    1 anything else -- walked through the CLI for every outcome a sale can have."""
    home = tmp_path / "home"
    env = cli_env(sb, home)
    card = data.CARD_ACTIVE
    assert cli(env, "vend", data.METER_OK, "--amount", "100")[0] == 0  # approved
    assert cli(env, "vend", data.METER_FAIL, "--amount", "100")[0] == 2  # declined
    assert cli(env, "vend", data.METER_UNKNOWN, "--amount", "100")[0] == 2  # not registered
    assert cli(env, "vend", data.METER_BAD_LUHN, "--amount", "100")[0] == 2  # bad input
    assert cli(env, "vend", data.METER_OK, "--amount", "99999999999999999999")[0] == 2
    assert cli(env, "vend", "²1451174955", "--amount", "100")[0] == 2  # not ASCII digits
    rc, doc = cli(env, "vend", data.METER_FAIL, "--amount", "10", "--card", card.payload,
                  "--wallet", data.CURRENT, stdin=f"{card.pin}\n")
    assert (rc, doc["status"]) == (2, "refunded")  # declined, the card credited back
    rc, doc = cli(env, "vend", data.METER_PENDING, "--amount", "100", "--no-wait")
    assert (rc, doc["status"]) == (3, "pending")
    sb.faults.add(provider="pawacard", endpoint="vend", mode="drop", when="after", count=1)
    sb.faults.add(provider="pawacard", endpoint="transaction", mode="http503", count=None)
    rc, doc = cli(env, "vend", meter(1), "--amount", "100", "--no-wait")
    assert (rc, doc["status"]) == (3, "pending")  # the answer was lost: asked about later
    sb.faults.clear()
    sb.stop()
    rc, doc = cli(env, "vend", meter(2), "--amount", "100")
    assert (rc, doc["status"]) == (3, "offline")  # queued: TOKEN PENDING
    (home / "journal.db").write_bytes(b"")  # SD-card damage
    assert cli(env, "vend", data.METER_OK, "--amount", "100")[0] == 1  # anything else
