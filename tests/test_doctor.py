"""``sente-pos doctor`` against the sandbox and fake devices."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pos.config import Settings, ensure_home, write_secret_file
from pos.doctor import Check, check_journal, check_permissions, run_checks
from pos.journal import Journal
from pos.sandbox.server import SandboxServer


def settings_at(sb_url: str, pawa_url: str) -> Settings:
    return Settings(patasente={"base_url": sb_url, "connect_timeout": 0.5},  # type: ignore[arg-type]
                    pawacard={"base_url": pawa_url, "connect_timeout": 0.5})


def test_all_green_with_fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path / "home"))
    home = ensure_home()
    Journal.open(home / "journal.db").close()
    write_secret_file(home / "device.key", os.urandom(32))
    with SandboxServer(port=0) as sb:
        checks = run_checks(settings_at(sb.patasente_url, sb.pawacard_url),
                            camera=lambda: Check("camera", True, "fake camera decoded a QR"),
                            printer=lambda: Check("printer", True, "fake printer ready"))
    by = {c.name: c for c in checks}
    assert set(by) == {"camera", "printer", "patasente", "pawacard", "disk", "journal",
                       "storage", "clock", "backups", "secrets"}
    assert all(c.ok for c in checks), [c.line() for c in checks]
    assert "clock skew" in by["pawacard"].detail
    assert "integrity ok" in by["journal"].detail
    assert "0 rows" in by["storage"].detail and "auto_vacuum incremental" in by["storage"].detail


def test_failures_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path / "home"))
    home = ensure_home()
    (home / "config.toml").write_text("")
    (home / "config.toml").chmod(0o644)
    checks = run_checks(settings_at("http://127.0.0.1:9/p/", "http://127.0.0.1:9/w/"),
                        camera=lambda: Check("camera", False, "cannot open camera '0'"))
    by = {c.name: c for c in checks}
    assert not by["patasente"].ok and "unreachable" in by["patasente"].detail
    assert not by["camera"].ok
    assert not by["secrets"].ok and "config.toml" in by["secrets"].detail
    assert by["camera"].line().startswith("[FAIL]")


def test_corrupt_journal_fails_integrity(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    Journal.open(db).close()
    data = bytearray(db.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    db.write_bytes(bytes(data))
    assert not check_journal(db).ok


def test_permissions_ok(tmp_path: Path) -> None:
    home = ensure_home(tmp_path / "h")
    write_secret_file(home / "config.toml", b"")
    assert check_permissions(home).ok


def test_clock_skew_is_flagged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pos.doctor import check_link

    with SandboxServer(port=0) as sb:
        assert check_link("pawacard", sb.pawacard_url).ok
        sb.clock.advance(3600)  # the provider's clock is an hour ahead of ours
        far = check_link("pawacard", sb.pawacard_url)
    assert not far.ok
    assert "clock skew -3600 s" in far.detail or "clock skew -3599 s" in far.detail


def test_clock_check_says_when_the_clock_is_behind_the_journal(tmp_path: Path) -> None:
    """A Pi without RTC after a power cut: its clock is behind the last sale it made."""
    import datetime as dt

    from pos.doctor import check_clock
    from pos.journal import Kind
    from pos.money import Money

    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    j = Journal.open(tmp_path / "journal.db", clock=lambda: ahead)
    j.create(Kind.vend, Money(100, "KES"), operator="a", terminal_id="T")
    j.meta_set("clock.last_step", '{"seconds": -259200, "at": {"wall": "2026-01-01T00:00:00'
               '+00:00", "mono": 1, "boot": "b", "synced": true}}')
    j.close()
    check = check_clock(tmp_path / "journal.db")
    assert check.warning and "behind the journal" in check.detail
    assert "-259200 s" in check.detail
