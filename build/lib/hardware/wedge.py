"""Tell a keyboard-wedge barcode scanner from a person at the keyboard.

A wedge scanner "types" its payload as a burst of keystrokes a few
milliseconds apart and ends it with Enter; a person, even a fast typist, leaves
50-300 ms between keys. The screen feeds every printable key and Enter here
with its arrival time (``time.monotonic()``); a completed burst comes back as
the scanned text.

Key events reach an application in clumps and with hiccups (terminal reads,
the event loop busy drawing), so single gaps are not judged alone: the keys
since the last gap longer than ``max_gap`` are a scan when they are at least
``min_length`` characters, end in Enter, and at least ``FAST_SHARE`` of their
gaps (Enter included) are at most ``max_interval``. A person, even one rolling
two keys together now and then, stays far below that share.

Keys a person typed less than ``max_gap`` before a scan stay in front of it:
the payload then fails validation and the cashier scans again. Trimming them
instead would risk cutting a real scan's first character after one slow gap,
and a meter number that lost a leading ``0`` still passes its Luhn check.
"""

from __future__ import annotations

import itertools

ENTER_KEYS = frozenset({"\r", "\n", "enter"})
FAST_SHARE = 0.6
"""Share of a scan's key gaps that must be at most ``max_interval``."""


class WedgeDetector:
    """Feed keys with timestamps (seconds); get the payload when a scan completes."""

    def __init__(
        self,
        max_interval: float = 0.03,
        min_length: int = 8,
        max_gap: float | None = None,
    ) -> None:
        if max_interval <= 0 or min_length < 1:
            raise ValueError("max_interval must be > 0 and min_length >= 1")
        self.max_interval = max_interval
        self.min_length = min_length
        self.max_gap = max_gap if max_gap is not None else 4 * max_interval
        """Any gap longer than this ends a burst (a scanner never pauses that long)."""
        self._chars: list[str] = []
        self._times: list[float] = []

    @property
    def pending(self) -> str:
        """Characters of the burst in progress (may turn out to be human typing)."""
        return "".join(self._chars)

    def in_burst(self, t: float) -> bool:
        """True while a fast burst is under way at time ``t`` (the screen may hold its keys)."""
        if len(self._times) < 2 or t - self._times[-1] > self.max_gap:
            return False
        return self._fast_share(self._times) >= FAST_SHARE

    def reset(self) -> None:
        self._chars.clear()
        self._times.clear()

    def feed(self, char: str, t: float) -> str | None:
        """One key at time ``t``; returns the scan when ``char`` is the Enter that ends one."""
        if char in ENTER_KEYS:
            return self.feed_enter(t)
        if len(char) != 1:
            # Tab, arrows, function keys: no scanner payload contains them.
            self.reset()
            return None
        if self._times and (t - self._times[-1] > self.max_gap or t < self._times[-1]):
            self.reset()
        self._chars.append(char)
        self._times.append(t)
        return None

    def feed_enter(self, t: float) -> str | None:
        """Enter at time ``t``: the burst so far is a scan or it is forgotten."""
        chars, times = self._chars[:], self._times[:]
        self.reset()
        if len(chars) < self.min_length or t - times[-1] > self.max_gap or t < times[-1]:
            return None
        if self._fast_share([*times, t]) < FAST_SHARE:
            return None
        return "".join(chars)

    def _fast_share(self, times: list[float]) -> float:
        gaps = [b - a for a, b in itertools.pairwise(times)]
        return sum(gap <= self.max_interval for gap in gaps) / len(gaps) if gaps else 0.0
