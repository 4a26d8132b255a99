"""Link state per provider: detect offline fast, come back online by itself.

The use cases ask :meth:`Link.should_try` before sending; while a provider is
known to be down, sales go straight to the offline path instead of waiting
for a connect timeout each time.

Every answer a request gets is news about the link, but a quiet counter sends
nothing for minutes, so the link is also *probed* (a cheap, money-free request:
the float) on a cycle, see :meth:`Link.probe_due`:

* while online, when nothing reached the provider for ``heartbeat`` seconds:
  a provider that went down between sales (connection refused or dropped, a
  gateway's 503, a timeout) shows as offline within one heartbeat;
* while offline, after an exponentially growing delay (``probe_base`` doubling up
  to ``probe_max``); any success brings the link back online at once.

Without a probe cycle (a CLI command), the next request after the back-off is the
probe. Once a cycle runs (the counter's app, :meth:`LinkMonitor.probe_in_background`),
requests wait for its verdict instead: a debit is never the request that finds out
whether a dead link came back, so it queues offline rather than ending "outcome
unknown" on a link known to be down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: The first delay before probing a link that just went down, in seconds.
PROBE_BASE = 5.0


@dataclass
class Link:
    name: str
    probe_base: float = PROBE_BASE
    probe_max: float = 60.0
    clock: Callable[[], float] = time.monotonic
    #: Seconds without any contact after which an online link is probed.
    heartbeat: float = 15.0
    online: bool = True
    failures: int = 0
    last_error: str | None = None
    changed_at: float = field(default=0.0)
    #: A probe cycle runs (see the module's docstring): only an online link is tried.
    cycle: bool = False
    _next_probe: float = 0.0
    _last_contact: float | None = None

    def record_success(self) -> None:
        now = self.clock()
        if not self.online:
            self.changed_at = now
        self.online = True
        self.failures = 0
        self.last_error = None
        self._last_contact = now

    def record_failure(self, error: str) -> None:
        """A link-level failure: the provider is unreachable or gives no usable answer."""
        now = self.clock()
        if self.online:
            self.changed_at = now
        self.online = False
        self.failures += 1
        self.last_error = error
        self._last_contact = now
        delay = min(self.probe_max, self.probe_base * 2 ** min(self.failures - 1, 10))
        self._next_probe = now + delay

    def probe_now(self) -> None:
        """A person asked ("sync now"): allow one attempt at once, whatever the back-off."""
        self._next_probe = 0.0

    def should_try(self) -> bool:
        """Whether a request may go now: online, or (without a probe cycle) offline and
        past the back-off, the request being the probe."""
        return self.online or (not self.cycle and self.may_probe())

    def may_probe(self) -> bool:
        """Whether a probe (money-free) may go now: online, or past the back-off, or a
        person asked (:meth:`probe_now`)."""
        return self.online or self.clock() >= self._next_probe

    def probe_due(self) -> bool:
        """Whether the probe cycle should ask the provider now: online and quiet for a
        heartbeat (or never asked), or offline and past the back-off."""
        if not self.online:
            return self.clock() >= self._next_probe
        return self._last_contact is None or self.clock() - self._last_contact >= self.heartbeat

    def seconds_to_probe(self) -> float:
        return 0.0 if self.online else max(0.0, self._next_probe - self.clock())


@dataclass
class LinkMonitor:
    """The two providers' links; the status bar shows ``online`` as both up."""

    patasente: Link = field(default_factory=lambda: Link("Patasente"))
    pawacard: Link = field(default_factory=lambda: Link("PawaCard"))

    @classmethod
    def every(cls, probe_interval: float) -> LinkMonitor:
        """Links probed on ``probe_interval`` (``sync.probe_interval``): a quiet link is
        checked that often; a down one first after at most :data:`PROBE_BASE`, the delay
        doubling up to four intervals (60 s for the default 15 s)."""
        def link(name: str) -> Link:
            return Link(name, probe_base=min(PROBE_BASE, probe_interval),
                        probe_max=4 * probe_interval, heartbeat=probe_interval)

        return cls(link("Patasente"), link("PawaCard"))

    @property
    def links(self) -> dict[str, Link]:
        """The links by provider key (``"patasente"``, ``"pawacard"``)."""
        return {"patasente": self.patasente, "pawacard": self.pawacard}

    @property
    def online(self) -> bool:
        return self.patasente.online and self.pawacard.online

    def probe_in_background(self) -> None:
        """A probe cycle runs from now on (the app's): see the module's docstring."""
        for link in self.links.values():
            link.cycle = True

    def due(self) -> list[str]:
        """The providers (keys of :attr:`links`) whose probe is due now."""
        return [key for key, link in self.links.items() if link.probe_due()]

    def probe_now(self) -> None:
        for link in (self.patasente, self.pawacard):
            if not link.online:
                link.probe_now()

    def describe(self) -> str:
        if self.online:
            return "online"
        down = [lk.name for lk in (self.patasente, self.pawacard) if not lk.online]
        return "offline: " + ", ".join(down)
