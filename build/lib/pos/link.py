"""Link state per provider: detect offline fast, come back online by itself.

The use cases ask :meth:`Link.should_try` before sending; while a provider is
known to be down, sales go straight to the offline path instead of waiting
for a connect timeout each time. A probe (a cheap, money-free request) is
allowed again after an exponentially growing delay; any success brings the
link back online at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Link:
    name: str
    probe_base: float = 5.0
    probe_max: float = 60.0
    clock: Callable[[], float] = time.monotonic
    online: bool = True
    failures: int = 0
    last_error: str | None = None
    changed_at: float = field(default=0.0)
    _next_probe: float = 0.0

    def record_success(self) -> None:
        if not self.online:
            self.changed_at = self.clock()
        self.online = True
        self.failures = 0
        self.last_error = None

    def record_failure(self, error: str) -> None:
        """A connect-level failure: the provider is unreachable."""
        now = self.clock()
        if self.online:
            self.changed_at = now
        self.online = False
        self.failures += 1
        self.last_error = error
        delay = min(self.probe_max, self.probe_base * 2 ** min(self.failures - 1, 10))
        self._next_probe = now + delay

    def probe_now(self) -> None:
        """A person asked ("sync now"): allow one attempt at once, whatever the back-off."""
        self._next_probe = 0.0

    def should_try(self) -> bool:
        """True when online, or when offline and a probe is due."""
        return self.online or self.clock() >= self._next_probe

    def seconds_to_probe(self) -> float:
        return 0.0 if self.online else max(0.0, self._next_probe - self.clock())


@dataclass
class LinkMonitor:
    """The two providers' links; the status bar shows ``online`` as both up."""

    patasente: Link = field(default_factory=lambda: Link("Patasente"))
    pawacard: Link = field(default_factory=lambda: Link("PawaCard"))

    @property
    def online(self) -> bool:
        return self.patasente.online and self.pawacard.online

    def probe_now(self) -> None:
        for link in (self.patasente, self.pawacard):
            if not link.online:
                link.probe_now()

    def describe(self) -> str:
        if self.online:
            return "online"
        down = [lk.name for lk in (self.patasente, self.pawacard) if not lk.online]
        return "offline: " + ", ".join(down)
