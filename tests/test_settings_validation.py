"""Odd settings (issue 10, item 9): each is a clear InputError naming the file or the
field, never a silent default or a traceback; what the settings screen saves reads back."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from pos.config import Settings, load_settings, save_settings
from pos.errors import InputError, PosError


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    h.mkdir(mode=0o700)
    monkeypatch.setenv("SENTE_POS_HOME", str(h))
    return h


def test_config_toml_as_a_directory_is_refused(home: Path) -> None:
    (home / "config.toml").mkdir()
    with pytest.raises(InputError, match=r"config\.toml is not a regular file"):
        load_settings()


def test_unreadable_config_toml_is_a_clear_error(home: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = home / "config.toml"
    path.write_text('terminal_id = "T1"\n')
    if os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads any file: make this one refuse as a non-root user's would
        real = Path.read_bytes

        def refuse(self: Path) -> bytes:
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(InputError, match=r"config\.toml cannot be read: Permission denied"):
        load_settings()


def test_invalid_toml_and_non_utf8_name_the_file(home: Path) -> None:
    (home / "config.toml").write_text("[offline\nmax_amount = 1\n")
    with pytest.raises(InputError, match=r"config\.toml is not valid TOML"):
        load_settings()
    (home / "config.toml").write_bytes(b'merchant_name = "\xff"\n')
    with pytest.raises(InputError, match=r"config\.toml is not UTF-8"):
        load_settings()


@pytest.mark.parametrize(("toml", "field", "why"), [
    ("[offline]\nmax_amount = -5\n", "offline.max_amount", "0 or more"),
    ("[offline]\nmax_count = -1\n", "offline.max_count", "0 or more"),
    ("[offline]\nmax_age_hours = 0\n", "offline.max_age_hours", "greater than 0"),
    ("[patasente]\nread_timeout = -1.0\n", "patasente.read_timeout", "greater than 0"),
    ("[pawacard]\nconnect_timeout = 0\n", "pawacard.connect_timeout", "greater than 0"),
    ("[pawacard]\npoll_interval = 0\n", "pawacard.poll_interval", "greater than 0"),
    ("[sync]\nconcurrency = 0\n", "sync.concurrency", "at least 1"),
    ("[sync]\nsending_lease_seconds = -300\n", "sync.sending_lease_seconds", "greater than 0"),
    ("[sync]\nbackoff_max = -1\n", "sync.backoff_max", "0 or more"),
    ('log_level = "NOPE"\n', "log_level", "one of DEBUG, INFO"),
    ('card_currency = "SHILLINGS"\n', "card_currency", "3-letter currency"),
    ('[pawacard]\ncurrency = "K3S"\n', "pawacard.currency", "3-letter currency"),
    ('[patasente]\nbase_url = "ftp://demo.patasente.com/"\n', "patasente.base_url", "http"),
    ('[pawacard]\nbase_url = "app.pawacard.co.ke:8586/v3/"\n', "pawacard.base_url", "http"),
    ("[printer]\ncolumns = 4\n", "printer.columns", "16 to 80"),
    ("[printer]\nport = 70000\n", "printer.port", "TCP port"),
    ("[kiosk]\nidle_lock_seconds = -1\n", "kiosk.idle_lock_seconds", "0 or more"),
    ("[camera]\nfps = 0\n", "camera.fps", "greater than 0"),
    ('terminal_id = ""\n', "terminal_id", "1 to 32"),
])
def test_out_of_range_values_name_the_field(home: Path, toml: str, field: str,
                                            why: str) -> None:
    (home / "config.toml").write_text(toml)
    with pytest.raises(InputError) as info:
        load_settings()
    assert f"{field}: " in info.value.message
    assert why in info.value.message
    assert "config.toml" in info.value.message


def test_env_values_are_checked_too(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTE_POS_SYNC__CONCURRENCY", "-2")
    with pytest.raises(InputError, match=r"sync\.concurrency: must be at least 1"):
        load_settings()


def test_zero_where_zero_means_off_is_accepted(home: Path) -> None:
    (home / "config.toml").write_text(
        'log_level = "debug"\ncard_currency = "ugx"\n[offline]\nmax_amount = 0\n'
        "max_count = 0\n[kiosk]\nidle_lock_seconds = 0\n[pawacard]\nmax_polls = 0\n"
        "[sync]\nmeter_throttle_seconds = 0\n")
    s = load_settings()
    assert (s.log_level, s.card_currency) == ("DEBUG", "UGX")
    assert (s.offline.max_amount, s.kiosk.idle_lock_seconds, s.pawacard.max_polls) == (0, 0, 0)


def test_password_is_not_echoed_in_errors(home: Path) -> None:
    (home / "config.toml").write_text('[patasente]\npassword = "hunter2"\nread_timeout = 0\n')
    with pytest.raises(InputError) as info:
        load_settings()
    assert "hunter2" not in info.value.message


ODD = "line one\nline two \x01 \"quoted\" back\\slash \t tab \u00e9 [table] = x"


def test_saved_settings_always_read_back(home: Path) -> None:
    s = Settings(merchant_name=ODD, terminal_id="T-1",
                 patasente={"password": SecretStr("p\x01w\nrd\"'"),  # type: ignore[arg-type]
                            "username": "M\x7f1"},
                 camera={"device": "/dev/video0\n"})  # type: ignore[arg-type]
    path = save_settings(s)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in home.iterdir()] == ["config.toml"]  # no temporary file left
    parsed = tomllib.loads(path.read_text())
    assert parsed["merchant_name"] == ODD
    again = load_settings()
    assert again.merchant_name == ODD
    assert again.patasente.password.get_secret_value() == "p\x01w\nrd\"'"
    assert again.patasente.username == "M\x7f1"
    assert again.camera.device == "/dev/video0\n"
    assert again == s


# ------------------------------------------------ read-only and full data directories
@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs (root only; skipped elsewhere)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs",
                           str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> None:
    """Fill the file system holding ``path`` to the last block."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def _cli(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SENTE_POS_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "sente_pos.cli", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=120)


def test_read_only_home_is_a_clear_message(small_fs: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    done = _cli(small_fs, "operator", "add", "boss", "--role", "supervisor", stdin="8642\n")
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr and "OSError" not in done.stderr
    assert "read-only" in done.stderr and str(small_fs) in done.stderr
    assert done.stdout == ""


def test_full_home_keeps_old_settings_and_says_so(small_fs: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTE_POS_HOME", str(small_fs))
    save_settings(Settings(terminal_id="OLD"))
    fill(small_fs / "filler")
    with pytest.raises(PosError, match=r"Settings not saved.*previous settings are kept"):
        save_settings(Settings(terminal_id="NEW", merchant_name="x" * 300_000))
    assert load_settings().terminal_id == "OLD"
    assert sorted(p.name for p in small_fs.iterdir()) == ["config.toml", "filler"]


def test_logging_falls_back_when_the_log_cannot_be_written(
        small_fs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    from sente_pos.cli import setup_logging

    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    monkeypatch.setenv("SENTE_POS_HOME", str(small_fs))
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        setup_logging(Settings())
        assert root.handlers and not any(
            isinstance(h, logging.FileHandler) or getattr(h, "stream", None) is sys.stderr
            for h in root.handlers)
        logging.getLogger("sente_pos").error("still running")
    finally:
        for h in root.handlers:
            h.close()
        root.handlers[:] = saved
    assert capsys.readouterr().err == ""
