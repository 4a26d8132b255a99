"""Fault injection: make a provider endpoint slow, fail, lie or drop the connection.

Modes (``Fault.mode``):

- ``latency``: sleep ``seconds`` before handling (then handle normally; other faults
  may still apply).
- ``http500``: HTTP 500 before the effect (nothing done).
- ``http503``: HTTP 503 with ``Retry-After`` before the effect (nothing done).
- ``http429``: HTTP 429 with ``Retry-After`` before the effect (nothing done).
- ``drop_before``: close the connection without an answer; nothing done.
- ``drop_after_commit``: do the effect, then send the start of the answer (status,
  a ``Content-Length`` and part of the body) and close the connection: the client
  sees an incomplete response (httpx raises ``RemoteProtocolError``).
- ``html``: HTTP 200 with an HTML page (a proxy or captive portal answering).
- ``empty``: HTTP 200 with an empty body.
- ``badjson``: HTTP 200 with the truncated body ``{"status": 0,``.
- ``pending``: PawaCard ``vend`` / ``postpaidbill`` only: the transaction is
  created pending and answers pending for ``polls`` status queries (Patascore
  ``verification``: the search answers 202 for ``polls`` results polls).
- ``http403`` / ``http409``: Patascore's "Insufficient wallet balance" / "Request
  ongoing" before the effect (other providers: a bare 403 / 409).

For ``html``, ``empty`` and ``badjson`` the effect IS done by default (the provider
did the work, then answered garbage: the hardest case, where a client that simply
re-sends would pay twice); pass ``effect=False`` for an answer that never reached
the provider.

``count`` is how many requests a fault applies to (``None``: until cleared).
``provider`` and ``endpoint`` may be ``"*"``. The endpoint of PawaCard is the path
after ``/v3/`` (``vend``); of Patasente the first path segment after
``/phantom-api/`` (``debit-patasente-card``).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

MODES = frozenset({
    "latency", "http500", "http503", "http429", "drop_before", "drop_after_commit",
    "html", "empty", "badjson", "pending", "http403", "http409",
})
PROVIDERS = frozenset({"pawacard", "patasente", "patascore", "particeep", "*"})
#: Modes that skip the handler entirely (nothing is done at the provider).
BEFORE_EFFECT = frozenset({"http500", "http503", "http429", "drop_before", "http403",
                           "http409"})
#: Modes whose garbage answer follows the effect unless ``effect=False``.
GARBAGE = frozenset({"html", "empty", "badjson"})
PENDING_ENDPOINTS = frozenset({"vend", "postpaidbill", "verification"})

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"
    b"</body></html>\n"
)
BAD_JSON = b'{"status": 0,'

#: The transport of the connection being served; set by the sandbox's HTTP protocol
#: (see :mod:`pos.sandbox.server`) so a fault can cut the connection.
CURRENT_TRANSPORT: contextvars.ContextVar[asyncio.Transport | None] = contextvars.ContextVar(
    "sandbox_transport", default=None
)


class FaultError(ValueError):
    """A fault description that makes no sense."""


@dataclass
class Fault:
    provider: str
    endpoint: str
    mode: str
    count: int | None = None
    seconds: float = 0.0
    polls: int = 2
    effect: bool = True
    hits: int = 0
    id: int = 0

    def matches(self, provider: str, endpoint: str) -> bool:
        if self.provider not in ("*", provider) or self.endpoint not in ("*", endpoint):
            return False
        return self.mode != "pending" or endpoint in PENDING_ENDPOINTS

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FaultRegistry:
    """The active faults, in the order they were added. Thread-safe."""

    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _next_id: int = 1

    def add(self, provider: str = "*", endpoint: str = "*", mode: str = "http500",
            count: int | None = 1, seconds: float = 0.0, polls: int = 2,
            effect: bool = True) -> Fault:
        """Add a fault; ``count=None`` keeps it until :meth:`clear`."""
        provider = provider.lower()
        if provider not in PROVIDERS:
            raise FaultError(f"unknown provider {provider!r} "
                             "(pawacard, patasente, patascore, particeep or *)")
        if mode not in MODES:
            raise FaultError(f"unknown fault mode {mode!r}; one of {', '.join(sorted(MODES))}")
        if count is not None and count < 1:
            raise FaultError("count must be at least 1 (or null: until cleared)")
        if seconds < 0 or polls < 0:
            raise FaultError("seconds and polls must not be negative")
        endpoint = endpoint.strip("/") or "*"
        with self._lock:
            fault = Fault(provider, endpoint, mode, count, float(seconds), int(polls),
                          bool(effect), id=self._next_id)
            self._next_id += 1
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def __len__(self) -> int:
        return len(self._faults)

    def take(self, provider: str, endpoint: str) -> tuple[float, Fault | None]:
        """Consume the faults for one request: (total latency, the first other fault)."""
        if not self._faults:  # fast path: no lock when nothing is injected
            return 0.0, None
        delay = 0.0
        chosen: Fault | None = None
        with self._lock:
            for fault in list(self._faults):
                if not fault.matches(provider, endpoint):
                    continue
                if fault.mode == "latency":
                    delay += fault.seconds
                elif chosen is None:
                    chosen = fault
                else:
                    continue
                fault.hits += 1
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
        return delay, chosen

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.active()]


def retry_after(fault: Fault) -> str:
    """The ``Retry-After`` header value (whole seconds, at least 1)."""
    return str(max(1, int(fault.seconds + 0.999)))


async def cut_connection() -> bool:
    """Abort the current connection; True when it was possible.

    After the abort the event loop runs once so the HTTP protocol notices the
    disconnection and neither logs an error nor tries to answer.
    """
    transport = CURRENT_TRANSPORT.get()
    if transport is None:
        return False
    transport.abort()
    await asyncio.sleep(0)
    return True
