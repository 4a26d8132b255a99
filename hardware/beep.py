"""The beep when a card is read, through the output the merchant configured.

``camera.beep`` (see ``pos.config.CameraSettings``):

- ``"none"``: silent;
- ``"bell"``: the terminal's bell (the UI rings it: the TUI owns the terminal);
- ``"alsa:DEVICE"``: a short tone played with ``aplay -D DEVICE`` (e.g. ``alsa:default``,
  ``alsa:plughw:1,0``), the tone made here as a WAV file on aplay's standard input;
- anything else: a command line run as is, without a shell (``paplay /usr/share/sounds/
  beep.oga``, ``beep -f 2000 -l 80``).

A beep never blocks or fails the scan: the command runs in the background, a
missing program is logged once and the beeper goes quiet.
"""

from __future__ import annotations

import io
import logging
import math
import shlex
import struct
import subprocess
import threading

log = logging.getLogger(__name__)

TONE_HZ = 2000
TONE_MS = 80
RATE = 16_000


def tone_wav(hz: int = TONE_HZ, ms: int = TONE_MS, rate: int = RATE) -> bytes:
    """A mono 16-bit WAV of a sine tone with 5 ms fades (no click)."""
    n = rate * ms // 1000
    fade = max(1, rate * 5 // 1000)
    frames = bytearray()
    for i in range(n):
        env = min(1.0, i / fade, (n - 1 - i) / fade)
        frames += struct.pack("<h", int(12_000 * env * math.sin(2 * math.pi * hz * i / rate)))
    import wave  # only for an ALSA beep: off the start-up path

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return out.getvalue()


class Beeper:
    """Plays the configured beep; ``terminal_bell`` says the UI should ring its own."""

    def __init__(self, spec: str = "bell", timeout: float = 5.0) -> None:
        self.spec = spec.strip() or "none"
        self.timeout = timeout
        self.terminal_bell = self.spec == "bell"
        self.argv: list[str] = []
        self.stdin: bytes | None = None
        if self.spec.startswith("alsa:"):
            self.argv = ["aplay", "-q", "-D", self.spec.removeprefix("alsa:"), "-"]
            self.stdin = tone_wav()
        elif self.spec not in ("none", "bell"):
            self.argv = shlex.split(self.spec)
        self._broken = False
        self._busy = threading.Lock()

    @property
    def silent(self) -> bool:
        return not self.terminal_bell and not self.argv

    def beep(self) -> threading.Thread | None:
        """Start the beep's command in the background (the thread, for tests to join).
        A beep still playing is not doubled."""
        if not self.argv or self._broken or not self._busy.acquire(blocking=False):
            return None
        t = threading.Thread(target=self._play, name="beep", daemon=True)
        t.start()
        return t

    def _play(self) -> None:
        try:
            subprocess.run(self.argv, input=self.stdin, timeout=self.timeout, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except FileNotFoundError:
            self._broken = True
            log.warning("camera.beep: %s not found; the read beep is off", self.argv[0])
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("camera.beep failed: %s", exc)
        finally:
            self._busy.release()
