import stat
from pathlib import Path

import pytest

from pos.config import ensure_home, load_settings, save_settings
from pos.errors import InputError


def test_env_overrides_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text(
        'terminal_id = "T9"\n[pawacard]\nbase_url = "http://file"\nusername = "v"\n'
    )
    monkeypatch.setenv("SENTE_POS_PAWACARD__BASE_URL", "http://env")
    monkeypatch.setenv("SENTE_POS_PATASENTE__PASSWORD", "s3cret")
    monkeypatch.setenv("SENTE_POS_OFFLINE__MAX_AMOUNT", "1234")
    s = load_settings()
    assert s.terminal_id == "T9"
    assert s.pawacard.base_url == "http://env"
    assert s.pawacard.username == "v"
    assert s.offline.max_amount == 1234
    assert s.patasente.password.get_secret_value() == "s3cret"
    shown = s.masked()
    assert shown["patasente"]["password"] == "********"
    assert "s3cret" not in repr(s) and "s3cret" not in str(shown)


def test_save_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("SENTE_POS_HOME", str(home))
    ensure_home()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    s = load_settings(terminal_id="T2")
    path = save_settings(s)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_settings()
    assert again.terminal_id == "T2"


def test_broken_toml_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text("terminal_id = \n")
    with pytest.raises(InputError, match=r"config\.toml"):
        load_settings()
