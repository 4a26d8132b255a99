"""A damaged journal is never silently replaced; backups and restore (issue 10, item 5)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pos import pinguard
from pos.backup import backup_due, backups, make_backup
from pos.doctor import check_journal
from pos.errors import PosError
from pos.journal import Journal, JournalDamaged, Kind, State, Tender, health
from pos.money import Money

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)


def sell(j: Journal, n: int = 1, reason: str = "sale") -> list[str]:
    refs = []
    for _ in range(n):
        t = j.create(Kind.vend, Money(2000, "KES"), tender=Tender.cash, operator="ann",
                     terminal_id="T1", meter="04040404040", reason=reason)
        j.transition(t.ref, State.sending)
        j.transition(t.ref, State.done, token="1" * 20, receipt_number=j.next_receipt_no())
        refs.append(t.ref)
    return refs


def garble_page_of(path: Path, table: str, *, new_boot: bool = True) -> None:
    """Overwrite the root page of ``table`` with garbage (an SD card's lost block).
    ``new_boot``: as a card loses blocks, in a power cut: the verified stamp of this
    boot no longer applies (pos/journal/health.py), here by removing it; False keeps it
    (damage within a boot, found when SQLite reads the page)."""
    if new_boot:
        health.forget_stamp(path)
    raw = sqlite3.connect(path)
    page_size = raw.execute("PRAGMA page_size").fetchone()[0]
    root = raw.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                       (table,)).fetchone()[0]
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    assert root > 1
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(os.urandom(page_size))


@pytest.fixture
def traded(tmp_path: Path) -> Path:
    """A data directory whose journal has sales in it."""
    path = tmp_path / "journal.db"
    with Journal.open(path) as j:
        sell(j, 30)
    return path


# ------------------------------------------------------------------ refusals
def test_a_zero_length_journal_stops_selling(traded: Path) -> None:
    traded.write_bytes(b"")
    with pytest.raises(JournalDamaged, match="is empty") as info:
        Journal.open(traded)
    assert info.value.exit_code == 1 and "journal restore" in info.value.message
    assert traded.stat().st_size == 0  # left as it was, not re-created


def test_a_file_that_is_not_sqlite_stops_selling(traded: Path) -> None:
    traded.write_bytes(b"\0" * 8192)
    with pytest.raises(JournalDamaged, match="not a SQLite database"):
        Journal.open(traded)


def test_a_garbage_page_stops_selling(traded: Path) -> None:
    garble_page_of(traded, "txns")
    with pytest.raises(JournalDamaged, match="integrity check"):
        Journal.open(traded)
    assert not check_journal(traded).ok


def test_a_large_journal_is_checked_in_the_background_before_the_first_sale(
        traded: Path) -> None:
    garble_page_of(traded, "events")
    j = Journal.open(traded, check_inline_max_bytes=0)  # as if it were over the bound
    try:
        with pytest.raises(JournalDamaged, match="integrity check"):
            sell(j)  # the first write waits for the verdict, and refuses
        assert j.damage is not None
    finally:
        j.close()
    with Journal.open(traded.parent / "other" / "journal.db", check_inline_max_bytes=0) as ok:
        sell(ok)  # a sound journal sells after its check
        assert ok.damage is None


def test_a_missing_journal_after_trading_stops_selling(traded: Path, tmp_path: Path) -> None:
    traded.unlink()
    with pytest.raises(JournalDamaged, match=r"is missing, but this terminal has a journal "
                                             r"\(its marker journal.id is there\)"):
        Journal.open(traded)
    assert not traded.exists()
    # Evidence without the marker: a backup of it.
    home = tmp_path / "h2"
    with Journal.open(home / "journal.db") as j:
        make_backup(j)
    (home / "journal.db").unlink()
    (home / "journal.id").unlink()
    with pytest.raises(JournalDamaged, match="there are backups"):
        Journal.open(home / "journal.db")


def test_only_an_empty_data_directory_gets_a_new_journal(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    with Journal.open(home / "journal.db") as j:
        assert j.list() == []
    assert stat.S_IMODE((home / "journal.db").stat().st_mode) == 0o600
    assert (home / "journal.id").read_text().strip() == _meta(home / "journal.db")
    assert not [p for p in home.iterdir() if p.name.endswith(".new")]


def _meta(path: Path, key: str = "journal_id") -> str:
    raw = sqlite3.connect(path)
    try:
        return str(raw.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])
    finally:
        raw.close()


def test_a_journal_from_before_markers_gets_one(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal.open(path) as j:
        sell(j)
    (tmp_path / "journal.id").unlink()
    with Journal.open(path):
        pass
    assert (tmp_path / "journal.id").exists()


def test_cli_and_doctor_explain(traded: Path) -> None:
    home = traded.parent
    traded.write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTE_POS_")}
    env["SENTE_POS_HOME"] = str(home)
    done = subprocess.run([sys.executable, "-m", "sente_pos.cli", "vend", "04040404040",
                           "--amount", "500", "--name", "X"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1, done
    assert "is empty (0 bytes)" in done.stderr and "Traceback" not in done.stderr
    assert traded.stat().st_size == 0
    check = check_journal(traded)
    assert not check.ok and "journal restore" in check.detail and "is empty" in check.detail


# ------------------------------------------------------------------ backups
def test_backups_are_private_checked_and_rotate(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "journal.db") as j:
        sell(j, 3)
        # Clock steps: names carry a sequence number, rotation keeps the highest.
        for i, when in enumerate([T0, T0 - timedelta(days=400), T0 + timedelta(days=1),
                                  T0 - timedelta(days=9000), T0]):
            sell(j)
            make_backup(j, keep=3, now=when, reason="z" if i == 4 else "")
    found = backups(tmp_path)
    assert [b.seq for b in found] == [3, 4, 5]
    assert found[-1].reason == "z"
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700
    for b in found:
        assert stat.S_IMODE(b.path.stat().st_mode) == 0o600
        health.verify_file(b.path)
    raw = sqlite3.connect(found[-1].path)
    assert raw.execute("SELECT COUNT(*) FROM txns").fetchone()[0] == 8
    raw.close()
    assert not [p for p in (tmp_path / "backups").iterdir() if p.name.endswith(".tmp")]


def test_scheduled_backup_counts_hours_of_trading(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"t": 100.0}
    monkeypatch.setattr(pinguard, "_boot_clock", lambda: clock["t"])
    monkeypatch.setattr(pinguard, "_BOOT_ID", "boot-1")
    with Journal.open(tmp_path / "journal.db") as j:
        assert backup_due(j, 4)  # never backed up
        make_backup(j)
        clock["t"] += 5 * 3600
        assert not backup_due(j, 4)  # hours passed, but nothing was journaled
        sell(j)
        assert backup_due(j, 4)
        make_backup(j)
        sell(j)
        monkeypatch.setattr(pinguard, "_wall_clock",
                            lambda: datetime.now(UTC) + timedelta(days=30))
        assert not backup_due(j, 4)  # a wall clock step is not four hours of trading
        assert not backup_due(j, 0)  # 0: only at day close


async def test_day_close_makes_a_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pos.terminal import Terminal
    from tests.screens_support import make_settings

    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    term = await Terminal.open(make_settings(tmp_path, backup={"keep": 2}))
    try:
        z = term.close_day(allow_empty=True)  # an empty day, closed on purpose
        assert z.payload["backup"] == backups(tmp_path)[-1].name
        assert z.payload["backup"].endswith("-z1.db")
    finally:
        await term.aclose()


# ------------------------------------------------------------------ restore
def _cli(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTE_POS_")}
    env["SENTE_POS_HOME"] = str(home)
    exe = shutil.which("sente-pos", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "sente_pos.cli"]
    return subprocess.run([*cmd, *args], input=stdin, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("damage", ["zero", "garbage", "missing"])
def test_restore_round_trip(tmp_path: Path, damage: str) -> None:
    home = tmp_path / "home"
    assert _cli(home, "operator", "add", "boss", "--role", "supervisor",
                stdin="8642\n").returncode == 0
    live = home / "journal.db"
    from pos.vault import Vault

    with Journal.open(live, vault=Vault.open(home / "device.key")) as j:
        kept = sell(j, 20, "before")
        make_backup(j)
        sell(j, 5, "after")
        receipts_issued = int(j.meta_get("receipt_no") or 0)
    if damage == "zero":
        live.write_bytes(b"")
    elif damage == "garbage":
        garble_page_of(live, "txns")
    else:
        live.unlink()
    assert _cli(home, "journal").returncode == 1  # stopped

    listing = _cli(home, "journal", "restore")
    assert listing.returncode == 0 and "DAMAGED" in listing.stdout
    assert "journal-000001-" in listing.stdout
    wrong = _cli(home, "journal", "restore", "1", stdin="1111\n")
    assert wrong.returncode == 2 and "Supervisor PIN not accepted" in wrong.stderr
    assert _cli(home, "journal").returncode == 1  # still stopped: nothing replaced

    done = _cli(home, "journal", "restore", "1", "--json", stdin="8642\n")
    assert done.returncode == 0, done.stderr
    import json

    out = json.loads(done.stdout)
    assert out["supervisor"] == "boss"
    damaged = [Path(p) for p in out["damaged_kept"]]
    if damage == "missing":
        assert damaged == []
    else:
        assert damaged and damaged[0].parent == home / "damaged" and damaged[0].exists()
    assert not (home / "journal.db.restore").exists()
    assert not (home / "journal.db.id").exists()

    with Journal.open(live) as j:
        refs = {t.ref for t in j.list(limit=1000)}
        assert set(kept) <= refs
        # Receipt numbers issued after the backup are never issued again.
        assert j.next_receipt_no() > receipts_issued
        events = pinguard.security_events(j, kinds=["journal_restored"])
        assert [e.operator for e in events] == ["boss"]
    assert _cli(home, "journal").returncode == 0
    again = _cli(home, "journal", "restore", "1", stdin="8642\n")
    assert again.returncode == 2 and "not damaged" in again.stderr


def test_restore_refuses_a_backup_of_another_journal(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _cli(home, "operator", "add", "boss", "--role", "supervisor",
                stdin="8642\n").returncode == 0
    other = tmp_path / "other"
    with Journal.open(other / "journal.db") as j:
        sell(j)
        theirs = make_backup(j)
    (home / "backups").mkdir(exist_ok=True)
    shutil.copy(theirs.path, home / "backups" / theirs.name)
    (home / "journal.db").write_bytes(b"")
    refused = _cli(home, "journal", "restore", "1", stdin="8642\n")
    assert refused.returncode == 2 and "another journal" in refused.stderr
    assert (home / "journal.db").stat().st_size == 0


# ------------------------------------------------------------------ the TUI
async def test_the_counter_shows_a_blocking_screen(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from pos.terminal import Terminal
    from screens.blocked import BlockedApp, BlockedScreen
    from screens.home import HomeScreen
    from tests.screens_support import app_for, make_settings, screen_text, wait_for

    app: Any = BlockedApp(JournalDamaged(tmp_path / "journal.db", "is empty (0 bytes)").message)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, BlockedScreen))
        text = await wait_for(pilot, lambda: "SELLING IS STOPPED" in screen_text(app)
                              and screen_text(app), what="the blocking message")
        assert "is empty" in text
        await pilot.press("escape", "1", "enter")
        assert isinstance(app.screen, BlockedScreen)

    # Damage found by the background check after start-up replaces the counter.
    home = tmp_path / "h"
    home.mkdir()
    monkeypatch.setenv("SENTE_POS_HOME", str(home))
    term = await Terminal.open(make_settings(home))
    boss = term.add_operator("boss", "supervisor", "8642")
    term.add_operator("ann", "cashier", "1111", approved_by=boss)
    sell(term.journal, 30)
    await term.aclose()
    garble_page_of(home / "journal.db", "events")
    monkeypatch.setattr(health, "INLINE_CHECK_MAX_BYTES", 0)  # as if it were large
    term = await Terminal.open(make_settings(home))
    try:
        with pytest.raises(JournalDamaged):
            term.journal.verified()
        counter = app_for(term.settings, term)
        async with counter.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: isinstance(counter.screen, BlockedScreen),
                           what="the blocking screen")
            await wait_for(pilot, lambda: "integrity check" in screen_text(counter),
                           what="why selling stopped")
            await pilot.press("escape", "1")
            assert not isinstance(counter.screen, HomeScreen)
            assert term.operator is None
    finally:
        await term.aclose()
    monkeypatch.setattr(health, "INLINE_CHECK_MAX_BYTES", 64 << 20)
    with pytest.raises(PosError):
        Journal.open(home / "journal.db")


async def test_the_z_is_committed_and_shown_before_its_backup(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pos.terminal import Terminal
    from tests.screens_support import make_settings

    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    term = await Terminal.open(make_settings(tmp_path))
    try:
        sell(term.journal, 3)
        z = term.close_day(allow_empty=True, finish=False)
        last = term.journal.last_z()
        assert last is not None and last.number == z.number == 1  # committed
        assert z.payload["backup"] is None and backups(tmp_path) == []
        term.finish_day_close(z)
        made = backups(tmp_path)
        assert [b.name for b in made] == [z.payload["backup"]]
        health.verify_file(made[0].path)  # a whole, checked journal with the Z in it
        copy = sqlite3.connect(made[0].path)
        try:
            assert copy.execute("SELECT COUNT(*) FROM z_reports").fetchone()[0] == 1
        finally:
            copy.close()
    finally:
        await term.aclose()


def test_cli_day_close_backs_up_in_the_background(tmp_path: Path) -> None:
    """``report z`` exits once the Z is shown; the backup (seconds at 1 GiB) is made by a
    ``journal backup --after-z`` process in its own session, one backup at a time."""
    import json

    from tests.waiting import wait_until

    home = tmp_path / "home"
    with Journal.open(home / "journal.db") as j:
        sell(j, 2)
    done = _cli(home, "report", "z", "--allow-empty")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert "Z REPORT #1" in lines[0] and lines[-1].startswith("Backup: being made")
    made = wait_until(lambda: backups(home), what="the Z #1 backup")
    assert [b.reason for b in made] == ["z1"]
    again = _cli(home, "report", "z", "--allow-empty", "--json")
    doc = json.loads(again.stdout)
    assert doc["number"] == 2 and doc["backup"] is None
    pid = doc["backup_process"]
    assert isinstance(pid, int) and pid != os.getpid()
    made = wait_until(lambda: len(backups(home)) == 2 and backups(home), what="Z #2's")
    assert [b.reason for b in made] == ["z1", "z2"]
    assert not any(p.name.endswith(".tmp") for p in (home / "backups").iterdir())


def test_cli_day_close_whose_backup_cannot_start_still_closes(tmp_path, monkeypatch,
                                                               capsys) -> None:
    """The Z is committed before the backup process starts: if it cannot start (no
    processes left, say), the Z stands, the command says so and exits 0."""
    import subprocess as sp

    from sente_pos import cli

    home = tmp_path / "home"
    with Journal.open(home / "journal.db") as j:
        sell(j, 2)
    for k in [k for k in os.environ if k.startswith("SENTE_POS_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("SENTE_POS_HOME", str(home))

    def refused(*_a: Any, **_k: Any) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(sp, "Popen", refused)
    assert cli.main(["report", "z", "--allow-empty"]) == 0
    out = capsys.readouterr().out
    assert "Z REPORT #1" in out and "Backup: not started" in out
    with Journal.open(home / "journal.db") as j:
        assert [z.number for z in j.z_reports()] == [1]
    assert backups(home) == []


def test_cli_backup_waits_for_a_backup_under_way(tmp_path: Path) -> None:
    """Two backups at once (the TUI's scheduled one, a day close's) would both number
    their file after the same last one: the second waits on the backups' lock."""
    import fcntl
    import json

    from tests.waiting import wait_until

    home = tmp_path / "home"
    with Journal.open(home / "journal.db") as j:
        sell(j, 2)
        make_backup(j, home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTE_POS_")}
    env["SENTE_POS_HOME"] = str(home)
    fd = os.open(home / "backups" / ".lock", os.O_WRONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a backup under way
    try:
        proc = subprocess.Popen([sys.executable, "-m", "sente_pos.cli", "journal", "backup",
                                 "--json"], env=env, stdout=subprocess.PIPE, text=True)
        wait_until(lambda: f"-> FLOCK  ADVISORY  WRITE {proc.pid} " in
                   Path("/proc/locks").read_text(), what="the backup waiting on the lock")
        assert proc.poll() is None and len(backups(home)) == 1
    finally:
        os.close(fd)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and json.loads(out)["seq"] == 2
    assert [(b.seq, b.reason) for b in backups(home)] == [(1, ""), (2, "manual")]


def test_cli_day_close_waits_for_its_backup_when_asked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Journal.open(home / "journal.db") as j:
        sell(j, 2)
    done = _cli(home, "report", "z", "--allow-empty", "--wait")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert "Z REPORT #1" in lines[0]
    made = backups(home)
    assert len(made) == 1 and lines[-1] == f"Backup: {made[0].name}"
    assert lines.index(f"Backup: {made[0].name}") > max(
        i for i, line in enumerate(lines) if line and set(line) == {"-"})  # after the Z
