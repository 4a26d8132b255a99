"""kiosk.service directives, ``systemd-analyze verify``, and sd_notify over a real socket."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pos import sdnotify

UNIT = Path(__file__).resolve().parent.parent / "kiosk.service"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's INI dialect: repeated keys accumulate; ``#``/``;`` lines are comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text())


def words(values: list[str]) -> list[str]:
    return [w for v in values for w in v.split()]


def test_sections(unit: dict[str, dict[str, list[str]]]) -> None:
    assert set(unit) == {"Unit", "Service", "Install"}
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_console_like_getty(unit: dict[str, dict[str, list[str]]]) -> None:
    s, u = unit["Service"], unit["Unit"]
    assert s["TTYPath"] == ["/dev/tty1"]
    assert s["StandardInput"] == ["tty"] and s["StandardOutput"] == ["tty"]
    # Textual renders on stderr: with stderr elsewhere the console would stay blank.
    assert s["StandardError"] == ["tty"]
    for key in ("TTYReset", "TTYVHangup", "TTYVTDisallocate"):
        assert s[key] == ["yes"], key
    assert "getty@tty1.service" in words(u["Conflicts"])
    assert u["OnFailure"] == ["getty@tty1.service"]
    after = words(u["After"])
    assert "systemd-user-sessions.service" in after and "getty-pre.target" in after


def test_supervision(unit: dict[str, dict[str, list[str]]]) -> None:
    s, u = unit["Service"], unit["Unit"]
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["WatchdogSec"] == ["30"]
    assert s["Restart"] == ["always"]
    # Start limits live in [Unit] (in [Service] systemd ignores them with a warning).
    assert int(u["StartLimitBurst"][0]) >= 2
    assert int(u["StartLimitIntervalSec"][0]) > 0
    assert s["ExecStart"] == ["/opt/sente-pos/bin/sente-pos run"]


def test_user_and_state(unit: dict[str, dict[str, list[str]]]) -> None:
    s = unit["Service"]
    assert s["User"] == ["sentepos"]
    assert set(words(s["SupplementaryGroups"])) == {"video", "lp", "dialout"}
    assert "SENTE_POS_HOME=/var/lib/sente-pos" in s["Environment"]
    assert s["StateDirectory"] == ["sente-pos"]


def test_hardening(unit: dict[str, dict[str, list[str]]]) -> None:
    s = unit["Service"]
    for key in (
        "NoNewPrivileges",
        "PrivateTmp",
        "ProtectHome",
        "ProtectKernelTunables",
        "ProtectControlGroups",
        "LockPersonality",
    ):
        assert s[key] == ["yes"], key
    assert s["ProtectSystem"] == ["strict"]
    assert s["ReadWritePaths"] == ["/var/lib/sente-pos"]
    assert set(words(s["RestrictAddressFamilies"])) == {
        "AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"
    }


def test_devices(unit: dict[str, dict[str, list[str]]]) -> None:
    s = unit["Service"]
    assert s["DevicePolicy"] == ["closed"]
    allowed = dict(v.split() for v in s["DeviceAllow"])
    assert allowed == {
        "/dev/tty1": "rw",
        "char-video4linux": "rw",  # /dev/video*
        "char-usb_device": "rw",  # libusb
        "char-usb": "rw",  # /dev/usb/lp*
        "char-ttyUSB": "rw",
        "char-ttyACM": "rw",
    }
    # systemd takes globs only in device groups; a /dev/... glob would silently match nothing.
    assert not any("*" in spec for spec in allowed if spec.startswith("/dev/"))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # The app is not installed here: point ExecStart at a stand-in, change nothing else.
    exe = tmp_path / "sente-pos"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    text = UNIT.read_text()
    assert text.count("/opt/sente-pos/bin/sente-pos") == 1
    copy = tmp_path / "kiosk.service"
    copy.write_text(text.replace("/opt/sente-pos/bin/sente-pos", str(exe)))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    # Unknown keys and bad values are only warnings (exit 0): any output is a failure.
    unit_lines = [line for line in proc.stderr.splitlines() if "kiosk.service" in line]
    assert proc.returncode == 0, proc.stderr
    assert unit_lines == []


# -- sd_notify ---------------------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def test_notify_messages_reach_the_socket(
    notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert sdnotify.ready("Serving\non tty1")
    assert sock.recv(4096) == b"READY=1\nSTATUS=Serving on tty1"
    assert sdnotify.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert sdnotify.status("Syncing 3 queued")
    assert sock.recv(4096) == b"STATUS=Syncing 3 queued"
    assert sdnotify.stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_notify_abstract_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"sente-pos-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.ready()
        assert sock.recv(4096) == b"READY=1"


def test_notify_is_a_noop_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False
    assert sdnotify.notify("WATCHDOG=1", env={"NOTIFY_SOCKET": "vsock:2:1234"}) is False


def test_notify_failure_never_raises(tmp_path: Path) -> None:
    assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


def test_watchdog_interval() -> None:
    usec = {"WATCHDOG_USEC": "30000000"}
    assert sdnotify.watchdog_interval(usec) == 15.0
    assert sdnotify.watchdog_interval({**usec, "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert sdnotify.watchdog_interval({**usec, "WATCHDOG_PID": "999999999"}) is None
    assert sdnotify.watchdog_interval({}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


def test_ready_once_the_app_answers_then_watchdog_while_it_does(tmp_path, monkeypatch):
    """READY=1 only when the event loop answers; WATCHDOG=1 stops when it no longer does."""
    import socket
    import threading

    from sente_pos.launch import _notifier

    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(3)
    monkeypatch.setenv("NOTIFY_SOCKET", path)

    class FakeApp:
        def __init__(self) -> None:
            self.calls = 0

        def call_from_thread(self, fn):  # not running for 2 calls, then 3 answers, then stuck
            self.calls += 1
            if self.calls <= 2 or self.calls > 5:
                raise RuntimeError("App is not running")
            return fn()

    stop = threading.Event()
    t = threading.Thread(target=_notifier, args=(FakeApp(), stop, 0.05), daemon=True)
    t.start()
    got = [sock.recv(1000).decode() for _ in range(3)]
    t.join(timeout=3)
    stop.set()
    assert got[0].startswith("READY=1")
    assert got[1:] == ["WATCHDOG=1", "WATCHDOG=1"]
    assert not t.is_alive()  # the loop stopped answering: no more pings
    sock.close()
