"""Operations: the log rotates on its size cap, follows rotations done by other
processes, goes to journald when stderr is the journal, lives in the platform's state
directory (or $SENTE_POS_HOME / logs.dir), and is scrubbed of PINs on every handler."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pos.config import Settings, load_settings
from pos.dirs import cache_dir, log_dir, log_file
from pos.errors import InputError
from pos.logredact import RedactingFilter
from sente_pos.logfile import SharedRotatingFileHandler
from sente_pos.logsetup import setup_logging, stderr_is_journal
from tests.test_settings_validation import fill, small_fs  # noqa: F401  (a real tmpfs)

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def bare_root() -> Iterator[logging.Logger]:
    """The root logger without pytest's handlers (which it adds around each test's
    body, so this runs inside the body), restored afterwards."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers.clear()
    yield root
    for h in root.handlers:
        h.close()
    root.handlers[:] = saved
    root.setLevel(level)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SENTE_POS_HOME", str(home))
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    return home


def _logs(directory: Path) -> list[Path]:
    return sorted(directory.glob("sente-pos.log*"))


def test_the_log_rotates_at_its_cap_keeps_its_backups_and_is_scrubbed(home: Path) -> None:
    cap = 10 * 1024
    with bare_root() as root:
        setup_logging(Settings(logs={"max_mb": cap / (1024 * 1024), "backups": 2}))
        log = logging.getLogger("sente_pos.test")
        for i in range(1000):  # ~90 KiB: far past (backups + 1) x cap
            log.info("sale %04d pin=%s url https://x/?password=hunter2 %s", i, "4321", "x" * 20)
        handlers = root.handlers[:]
    files = _logs(home)
    assert [p.name for p in files] == ["sente-pos.log", "sente-pos.log.1", "sente-pos.log.2"]
    for p in files:
        assert p.stat().st_size <= cap
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        text = p.read_text()
        assert "4321" not in text and "hunter2" not in text and "pin=***" in text
    assert "sale 0999" in (home / "sente-pos.log").read_text()
    assert handlers and all(any(isinstance(f, RedactingFilter) for f in h.filters)
                            for h in handlers)


def test_a_second_setup_changes_nothing(home: Path) -> None:
    with bare_root() as root:
        setup_logging(Settings())
        first = root.handlers[:]
        setup_logging(Settings(log_level="DEBUG"))
        assert root.handlers == first and len(first) == 1


def _pair(path: Path, backups: int) -> tuple[logging.Handler, logging.Handler]:
    a = SharedRotatingFileHandler(path, max_bytes=2000, backups=backups)
    b = SharedRotatingFileHandler(path, max_bytes=2000, backups=backups)
    for h in (a, b):
        h.setFormatter(logging.Formatter("%(message)s"))
    return a, b


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, __file__, 1, msg, None, None)


def test_a_writer_follows_a_rotation_made_by_another_process(tmp_path: Path) -> None:
    """Two writers of one log (the TUI and `sente-pos sync`). The standard handler kept
    writing into the file the other had rotated away; once that backup was deleted its
    records were lost (written to a file no directory names)."""
    path = tmp_path / "sente-pos.log"
    tui, sync = _pair(path, backups=1)
    try:
        tui.emit(_record("tui before"))
        for i in range(200):  # sync rotates several times: the TUI's old file is deleted
            sync.emit(_record(f"sync {i:03d} " + "y" * 40))
        tui.emit(_record("tui after the rotations"))
        tui.flush()
        sync.emit(_record("sync last"))
        sync.flush()
    finally:
        tui.close()
        sync.close()
    current = path.read_text()
    assert "tui after the rotations" in current and "sync last" in current
    assert current.index("tui after the rotations") < current.index("sync last")
    assert [p.name for p in _logs(tmp_path)] == ["sente-pos.log", "sente-pos.log.1"]


def test_processes_sharing_the_log_lose_and_double_nothing(tmp_path: Path) -> None:
    """Three real processes write one log with a small cap: every line once, none left in
    a deleted backup, each file within the cap (plus the records of the other writers
    that passed their size check at the same instant)."""
    writer = textwrap.dedent("""
        import logging, sys
        from pathlib import Path
        from sente_pos.logfile import SharedRotatingFileHandler
        h = SharedRotatingFileHandler(Path(sys.argv[1]), max_bytes=4096, backups=200)
        h.setFormatter(logging.Formatter("%(message)s"))
        for i in range(1500):
            h.emit(logging.LogRecord("t", 20, "", 1, f"{sys.argv[2]} {i:05d}", None, None))
        h.close()
    """)
    path = tmp_path / "sente-pos.log"
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(path), name], cwd=ROOT)
             for name in ("tui", "sync", "report")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    lines: list[str] = []
    for p in _logs(tmp_path):
        assert p.stat().st_size <= 4096 + 2 * len("report 00000\n"), p
        lines += p.read_text().splitlines()
    assert sorted(lines) == sorted(f"{n} {i:05d}" for n in ("tui", "sync", "report")
                                   for i in range(1500))


def _journal_probe(tmp_path: Path, *, stream: str | None, target: str = "auto",
                   ) -> tuple[str, Path]:
    """Run setup_logging in a process whose stderr is a file, with JOURNAL_STREAM naming
    that file (as systemd names the journal's socket) or something else."""
    err = tmp_path / "stderr.txt"
    err.touch()
    st = err.stat()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTE_POS_", "JOURNAL"))}
    env["SENTE_POS_HOME"] = str(tmp_path / "home")
    env["SENTE_POS_LOGS__TARGET"] = target
    if stream == "ours":
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    elif stream is not None:
        env["JOURNAL_STREAM"] = stream
    code = textwrap.dedent("""
        import logging
        from pos.config import load_settings
        from sente_pos.logsetup import setup_logging
        setup_logging(load_settings())
        logging.getLogger("sente_pos.sync").warning("sent with pin=%s", "2468")
        logging.getLogger("sente_pos.sync").error("gave up")
        logging.getLogger("sente_pos.sync").info("drained")
        logging.getLogger("sente_pos.sync").debug("not at INFO")
    """)
    with err.open("w") as f:
        subprocess.run([sys.executable, "-c", code], env=env, stderr=f, check=True, cwd=ROOT)
    return err.read_text(), tmp_path / "home" / "sente-pos.log"


def test_under_systemd_the_log_goes_to_the_journal_with_priorities(tmp_path: Path) -> None:
    err, file = _journal_probe(tmp_path, stream="ours")
    assert err.splitlines() == ["<4>sente_pos.sync: sent with pin=***",
                                "<3>sente_pos.sync: gave up", "<6>sente_pos.sync: drained"]
    assert not file.exists()


@pytest.mark.parametrize("stream", [None, "1:2", "garbage"])
def test_an_inherited_or_absent_journal_stream_means_the_file(tmp_path: Path,
                                                              stream: str | None) -> None:
    err, file = _journal_probe(tmp_path, stream=stream)
    assert err == ""
    text = file.read_text()
    assert "WARNING sente_pos.sync: sent with pin=***" in text and "2468" not in text


def test_logs_target_file_keeps_the_file_under_systemd(tmp_path: Path) -> None:
    err, file = _journal_probe(tmp_path, stream="ours", target="file")
    assert err == "" and "gave up" in file.read_text()


def test_stderr_is_journal_needs_a_real_matching_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:1")
    assert not stderr_is_journal()  # pytest captures stderr: no file behind it


# -------------------------------------------------------------- where things live
def test_without_sente_pos_home_log_and_cache_follow_xdg(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTE_POS_HOME", raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    settings = load_settings()
    assert log_file(settings) == tmp_path / "state" / "sente-pos" / "log" / "sente-pos.log"
    assert cache_dir(settings) == tmp_path / "cache" / "sente-pos"
    assert settings.journal_path == tmp_path / "data" / "sente-pos" / "journal.db"  # unmoved
    with bare_root():
        setup_logging(settings)
        logging.getLogger("sente_pos").warning("hello")
    assert "hello" in log_file(settings).read_text()
    assert stat.S_IMODE(log_dir(settings).stat().st_mode) == 0o700


def test_sente_pos_home_keeps_everything_in_one_directory(home: Path) -> None:
    settings = load_settings()
    assert log_file(settings) == home / "sente-pos.log"  # the kiosk's documented place
    assert cache_dir(settings) == home / "cache"
    shown = settings.masked()
    assert shown["log_file"] == str(home / "sente-pos.log")
    assert shown["cache_dir"] == str(home / "cache")


def test_settings_override_both(home: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    home.mkdir()
    (home / "config.toml").write_text(f'cache_dir = "{tmp_path / "c"}"\n'
                                      f'[logs]\ndir = "{tmp_path / "l"}"\n')
    settings = load_settings()
    assert log_file(settings) == tmp_path / "l" / "sente-pos.log"
    assert cache_dir(settings) == tmp_path / "c"
    monkeypatch.setenv("SENTE_POS_LOGS__DIR", str(tmp_path / "env"))
    assert log_dir(load_settings()) == tmp_path / "env"


@pytest.mark.parametrize(("var", "value"), [("SENTE_POS_LOGS__MAX_MB", "0"),
                                            ("SENTE_POS_LOGS__BACKUPS", "0"),
                                            ("SENTE_POS_LOGS__TARGET", "syslog")])
def test_bad_log_settings_are_a_clear_error(home: Path, monkeypatch: pytest.MonkeyPatch,
                                            var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(InputError, match=r"logs\."):
        load_settings()


def test_a_full_disk_loses_records_quietly_and_logging_recovers(
        small_fs: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811  (the fixture)
        capsys: pytest.CaptureFixture[str]) -> None:
    """The stdlib prints a traceback to stderr for every record it cannot write: on the
    kiosk that is the cashier's screen."""
    monkeypatch.setenv("SENTE_POS_HOME", str(small_fs))
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    log = logging.getLogger("sente_pos.test")
    with bare_root():
        setup_logging(Settings(logs={"max_mb": 8 / 1024, "backups": 2}))
        fill(small_fs / "filler")
        for i in range(300):  # writes and rotations both fail
            log.warning("record %03d %s", i, "z" * 60)
        (small_fs / "filler").unlink()
        log.warning("after the disk was freed")
    assert capsys.readouterr().err == ""
    assert "after the disk was freed" in (small_fs / "sente-pos.log").read_text()
