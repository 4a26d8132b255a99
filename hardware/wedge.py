"""Tell a keyboard-wedge barcode scanner from a person at the keyboard.

A wedge scanner "types" its payload as a burst of keystrokes a few
milliseconds apart and ends it with Enter; a person, even a fast typist, leaves
50-300 ms between keys. The screen feeds every printable key and Enter here
with its arrival time (``time.monotonic()``); a completed burst comes back as
the scanned text.

Key events reach an application in clumps and with hiccups (terminal reads,
the event loop busy drawing), so single gaps are not judged alone: a run of
keys whose gaps never exceed ``max_gap`` is a scan when its *median* gap is at
most ``max_interval`` and it has at least ``min_length`` characters. Slow keys
typed just before a scan (a person's stray keystrokes, more than twice
``max_interval`` apart) are trimmed off its front.
"""

from __future__ import annotations

import itertools
import statistics

ENTER_KEYS = frozenset({"\r", "\n", "enter"})


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
        return self._median_gap(self._times) <= self.max_interval

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
        if not times or t - times[-1] > self.max_gap or t < times[-1]:
            return None
        times.append(t)  # the scanner's Enter is part of the burst
        start = self._fast_start(times)
        chars, times = chars[start:], times[start:]
        if len(chars) < self.min_length:
            return None
        if self._median_gap(times) > self.max_interval:
            return None
        return "".join(chars)

    def _fast_start(self, times: list[float]) -> int:
        """Index of the first key of the trailing burst: skip leading keys a person typed.

        Only gaps over twice ``max_interval`` count as human here, so one jittery
        gap at the start of a real scan does not cut off its first character.
        """
        start = 0
        while start < len(times) - 1 and times[start + 1] - times[start] > 2 * self.max_interval:
            start += 1
        return start

    @staticmethod
    def _median_gap(times: list[float]) -> float:
        gaps = [b - a for a, b in itertools.pairwise(times)]
        return statistics.median(gaps) if gaps else float("inf")
