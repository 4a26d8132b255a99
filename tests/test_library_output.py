"""Library output never reaches the counter's screen (issue 13: "OpenCV's warnings are
drawn over the TUI when no camera is present").

Two layers: OpenCV's own log is off (a camera that is missing prints nothing, even
headless), and while the TUI runs, whatever a C library writes to fds 1 and 2 goes to
the log while Textual still draws on the terminal. Both run in subprocesses, the second
on a real pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def child_env(**extra: str) -> dict[str, str]:
    # COLUMNS / LINES would override the terminal's size (pytest-xdist's workers set them).
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OPENCV_") and k not in ("COLUMNS", "LINES")}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color", **extra)
    return env


@pytest.mark.skipif(os.path.exists("/dev/video0"), reason="a camera is plugged in here")
def test_a_missing_camera_prints_nothing():
    code = textwrap.dedent("""
        import threading
        from hardware.camera import CameraScanner

        seen = threading.Event()
        states = []

        def status(s):
            states.append(s.state)
            if s.state in ("no-camera", "error"):
                seen.set()

        cam = CameraScanner(0, on_scan=lambda text: None, on_status=status)
        cam.start()
        assert seen.wait(30), states
        cam.stop()
        import sys
        sys.exit(0 if "no-camera" in states else 3)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, env=child_env(),
                         cwd=ROOT, timeout=120, check=False)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stderr == b"", run.stderr.decode()
    assert run.stdout == b"", run.stdout.decode()


def run_on_a_pty(code: str, log: Path, cols: int = 60, rows: int = 20) -> str:
    """Run ``code`` with stdin, stdout and stderr on a pseudo-terminal of ``cols`` x
    ``rows``; what the terminal received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave,
                            stderr=slave, env=child_env(LOG=str(log)), cwd=ROOT,
                            close_fds=True)
    os.close(slave)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child has gone and closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        proc.wait(60)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


def test_library_output_goes_to_the_log_and_the_terminal_stays_the_tuis(tmp_path):
    log = tmp_path / "sente-pos.log"
    code = textwrap.dedent("""
        import logging, os, shutil, sys
        logging.basicConfig(filename=os.environ["LOG"], level=logging.INFO)
        from sente_pos.quiet import library_output_to_log

        with library_output_to_log():
            os.write(2, b"NATIVE-ON-FD2 cap_v4l.cpp can't open camera\\n")
            os.write(1, b"NATIVE-ON-FD1\\n")
            print("TUI-FRAME", file=sys.__stderr__, flush=True)
            print("SIZE", tuple(shutil.get_terminal_size()), file=sys.__stderr__, flush=True)
        os.write(2, b"AFTER-ON-FD2\\n")
    """)
    screen = run_on_a_pty(code, log)
    assert "TUI-FRAME" in screen and "AFTER-ON-FD2" in screen
    assert "SIZE (60, 20)" in screen  # Textual still sizes itself from the terminal
    assert "NATIVE" not in screen
    text = log.read_text()
    assert "NATIVE-ON-FD2 cap_v4l.cpp" in text and "NATIVE-ON-FD1" in text


def test_a_textual_app_draws_while_a_library_writes_to_fd2(tmp_path):
    """The real thing: Textual draws on the terminal; the library's line is in the log."""
    log = tmp_path / "sente-pos.log"
    code = textwrap.dedent("""
        import logging, os
        logging.basicConfig(filename=os.environ["LOG"], level=logging.INFO)
        from textual.app import App
        from textual.widgets import Label
        from sente_pos.quiet import library_output_to_log

        class Tiny(App):
            def compose(self):
                yield Label("COUNTER-SCREEN")

            def on_mount(self):
                os.write(2, b"[ WARN:0@0.1] global cap_v4l.cpp:915 NATIVE-WARNING\\n")
                self.call_after_refresh(self.exit)

        with library_output_to_log():
            Tiny().run()
    """)
    screen = run_on_a_pty(code, log, cols=60, rows=20)
    assert "COUNTER-SCREEN" in screen
    assert "NATIVE-WARNING" not in screen
    assert "NATIVE-WARNING" in log.read_text()


def test_headless_output_is_left_alone(capfd):
    """Not a terminal (a headless command, the journal): nothing is redirected."""
    from sente_pos.quiet import library_output_to_log

    with library_output_to_log():
        os.write(2, b"plain stderr\n")
    assert "plain stderr" in capfd.readouterr().err
