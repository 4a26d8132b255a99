"""The whole-file check runs when it can find something (issue 15, pos/journal/health.py):
once per boot and file, after a day, never trusting a stamp that is not exactly ours;
damage SQLite meets between checks still stops selling."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pos.journal import Journal, JournalDamaged, health
from tests.test_journal_damage import garble_page_of, sell


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every whole-file check run (they still run: the real quick_check is called)."""
    seen: list[Path] = []
    real = health.quick_check

    def counting(conn: Any, path: Path) -> None:
        seen.append(path)
        real(conn, path)

    monkeypatch.setattr(health, "quick_check", counting)
    return seen


@pytest.fixture
def verified(tmp_path: Path) -> Path:
    """A journal with sales, opened and checked once in this boot (its stamp written)."""
    path = tmp_path / "journal.db"
    with Journal.open(path) as j:
        sell(j, 30)
    with Journal.open(path):  # not created here: checked, and stamped
        pass
    return path


def _rewrite_stamp(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    stamp = health.stamp_path(path)
    data = json.loads(stamp.read_text())
    change(data)
    stamp.write_text(json.dumps(data))
    assert stamp.stat().st_mode & 0o777 == 0o600


def test_a_checked_journal_is_not_checked_again_in_the_same_boot(
        verified: Path, checks: list[Path]) -> None:
    stamp = health.stamp_path(verified)
    assert stamp.stat().st_mode & 0o777 == 0o600
    data = json.loads(stamp.read_text())
    assert data["boot_id"] == health.boot_id()
    assert (data["dev"], data["ino"]) == (verified.stat().st_dev, verified.stat().st_ino)
    with Journal.open(verified, check_inline_max_bytes=0) as j:
        sell(j)  # the first write does not wait for a check: none was started
        assert j.damage is None
    assert checks == []


def test_the_first_open_after_a_boot_refuses_a_damaged_journal(verified: Path) -> None:
    garble_page_of(verified, "txns")  # a power cut: the stamp of the last boot is gone
    with pytest.raises(JournalDamaged, match="integrity check"):
        Journal.open(verified)


@pytest.mark.parametrize("what", ["boot", "inode", "journal id", "mode", "malformed",
                                  "old", "ahead", "no boot id", "symlink"])
def test_a_stamp_that_does_not_match_is_not_trusted(
        verified: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    garble_page_of(verified, "events", new_boot=False)
    stamp = health.stamp_path(verified)
    if what == "boot":
        other = tmp_path / "boot_id"
        other.write_text("00000000-0000-4000-8000-000000000000\n")
        monkeypatch.setattr(health, "BOOT_ID_PATH", other)
    elif what == "inode":  # the same bytes in another file (a copy put in its place)
        copy = tmp_path / "copy.db"
        shutil.copy2(verified, copy)
        os.replace(copy, verified)
    elif what == "journal id":
        _rewrite_stamp(verified, lambda d: d.update(journal_id="f" * 32))
    elif what == "mode":
        stamp.chmod(0o644)
    elif what == "malformed":
        stamp.write_text('{"v": 1, "boot_id": ')
    elif what == "old":
        now = health.boot_clock()
        monkeypatch.setattr(health, "boot_clock",
                            lambda: now + health.STAMP_MAX_AGE_SECONDS + 1)
    elif what == "ahead":  # dated after now on the boot clock: not a check of this boot
        _rewrite_stamp(verified, lambda d: d.update(checked_at=health.boot_clock() + 3600))
    elif what == "no boot id":
        monkeypatch.setattr(health, "BOOT_ID_PATH", tmp_path / "absent")
    else:
        real = tmp_path / "elsewhere.verified"
        shutil.copy2(stamp, real)
        stamp.unlink()
        stamp.symlink_to(real)
    with pytest.raises(JournalDamaged, match="integrity check"):
        Journal.open(verified)


def test_the_unchanged_stamp_is_trusted(verified: Path) -> None:
    """The control for the test above: the same damage with the stamp as written opens
    (the damaged page is not read at open) and is found when a sale reads it."""
    garble_page_of(verified, "events", new_boot=False)
    j = Journal.open(verified)
    try:
        with pytest.raises(JournalDamaged, match="damaged page"):
            sell(j)
    finally:
        j.close()


def test_a_damaged_page_met_later_stops_every_write(verified: Path) -> None:
    garble_page_of(verified, "txns", new_boot=False)
    j = Journal.open(verified)
    try:
        with pytest.raises(JournalDamaged, match="damaged page"):
            sell(j)
        assert j.damage is not None  # the TUI's tick shows the blocking screen
        with pytest.raises(JournalDamaged):
            j.meta_set("other", "page")  # a write touching other pages is refused too
        assert not health.stamp_path(verified).exists()
    finally:
        j.close()
    with pytest.raises(JournalDamaged, match="integrity check"):
        Journal.open(verified)  # the next open checks the whole file


def test_the_long_running_counter_checks_again_after_a_day(
        verified: Path, checks: list[Path]) -> None:
    j = Journal.open(verified)
    try:
        assert checks == []
        assert not j.recheck_if_stale()  # checked less than a day ago
        garble_page_of(verified, "events", new_boot=False)
        assert j.recheck_if_stale(max_age=0.0)  # as if a day had passed
        assert j._checker is not None
        j._checker.join()
        assert checks == [verified]
        assert j.damage is not None and "integrity check" in j.damage.what
        with pytest.raises(JournalDamaged):
            sell(j)
        assert not health.stamp_path(verified).exists()
        assert not j.recheck_if_stale(max_age=0.0)  # damaged: nothing more to find
    finally:
        j.close()


def test_a_recheck_of_a_sound_journal_renews_its_stamp(verified: Path) -> None:
    before = json.loads(health.stamp_path(verified).read_text())["checked_at"]
    with Journal.open(verified) as j:
        assert j.recheck_if_stale(max_age=0.0)
        assert j._checker is not None
        j._checker.join()
        assert j.damage is None
        sell(j)
    assert json.loads(health.stamp_path(verified).read_text())["checked_at"] > before


def test_a_journal_opened_as_a_copy_leaves_no_stamp(verified: Path, tmp_path: Path) -> None:
    copy = tmp_path / "restore" / "journal.db"
    copy.parent.mkdir()
    shutil.copy2(verified, copy)
    with Journal.open(copy, marker=False):
        pass
    assert not health.stamp_path(copy).exists()
