"""Fault injection: every form a provider or a mobile link fails in, and the odd but
documented behaviours of the providers, as switches settable at run time.

Link failures (``when``: ``before`` the provider does anything, or ``after`` it
committed the request; each mode has a default, shown first):

- ``drop`` (before | after): close the connection without an answer.
  ``drop_before`` / ``drop_after_commit`` are the fixed-moment spellings; after a
  commit the start of the answer is sent first (status, ``Content-Length``, part
  of the body), so the client sees a response cut short.
- ``reset`` (before | after): abort with a TCP RST (``SO_LINGER`` 0).
- ``http500``, ``http502``, ``http503``, ``http504`` (before | after): a server or
  gateway error page; 503 carries ``Retry-After``. ``http429`` (before): too many
  requests.
- ``redirect`` (before): a captive portal's ``302`` to its login page.
- ``html`` (after | before): HTTP 200 with an HTML page (a portal or proxy).
  ``empty`` and ``badjson`` (after | before): 200 with no body / a truncated one.
- ``trickle`` (after | before): the status and headers, then the body one byte
  every ``seconds`` (default 1): it never finishes in any sane deadline.
- ``huge`` (after | before): 200 with a body of ``size`` bytes (default 300 MB)
  produced as it is sent.
- ``hang`` (before): read the request and never answer (the client's read
  timeout, or the connection it gives up).
- ``http4xx`` (before): a 404 whose body has no documented error field.
- ``http403`` / ``http409`` (before): Patascore's "Insufficient wallet balance" /
  "Request ongoing" (other providers: a bare 403 / 409).

Provider behaviours:

- ``latency``: sleep ``seconds`` before handling (combines with the others).
- ``slow`` : the provider takes ``seconds`` to do the work, then answers: past a
  client's read timeout, the effect lands after the client gave up.
- ``pending``: PawaCard ``vend`` / ``postpaidbill``: created pending, answering
  pending for ``polls`` status queries (Patascore ``verification``: the search answers
  202 for ``polls`` results polls).
- ``elec100`` (PawaCard ``vend``/``postpaidbill``): the sale is done but the answer
  is ``elec100`` "Request timed out. please fetch the response again"
  (``effect=False``: nothing done). For a meter Kenya Power does not know, the
  sandbox answers ``elec100`` "did not pass the Luhn validation" by itself.
- ``odd_total``, ``odd_id``, ``nested`` (PawaCard money / status answers): the
  answer carries ``"totalAmount": 1e999999``, a 5,000-digit ``transactionId``, or
  is wrapped 100,000 levels deep.
- ``search_lag`` (Patasente ``get-prepaid-transactions``, count None): rows younger
  than ``seconds`` are not found by a ``search`` (a search index that lags).
- ``search_blind`` (Patasente ``get-prepaid-transactions``, count None): ``search``
  does not look inside payment reasons (the document only says "search query").
- ``rewrite_reason`` (Patasente ``credit-patasente-card`` / ``debit-...``, count
  None): the server records "Funds transferred to card" instead of the reason
  sent, as the document's own credit example shows.

``count`` is how many requests a fault applies to (``None``: until cleared).
``provider`` and ``endpoint`` may be ``"*"``. The endpoint of PawaCard is the path
after ``/v3/`` (``vend``); of Patasente the first path segment after
``/phantom-api/`` (``debit-patasente-card``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import socket
import struct
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

#: Failure modes and their default moment ("before" the effect or "after" it).
FAILURES: dict[str, str] = {
    "drop": "before", "drop_before": "before", "drop_after_commit": "after",
    "reset": "before", "http500": "before", "http502": "before", "http503": "before",
    "http504": "before", "http429": "before", "redirect": "before", "html": "after",
    "empty": "after", "badjson": "after", "trickle": "after", "huge": "after",
    "hang": "before", "http4xx": "before",
    "pending": "after", "elec100": "after", "odd_total": "after", "odd_id": "after",
    "nested": "after", "slow": "after", "http403": "before", "http409": "before",
}
#: Modes that may only happen at one moment.
FIXED_MOMENT = frozenset({"drop_before", "drop_after_commit", "http429", "redirect", "hang",
                          "http4xx", "pending", "odd_total", "odd_id", "nested", "slow",
                          "http403", "http409"})
#: Modes that change how the provider behaves and combine with a failure.
MODIFIERS = frozenset({"latency", "search_lag", "search_blind", "rewrite_reason"})
MODES = frozenset(FAILURES) | MODIFIERS
PROVIDERS = frozenset({"pawacard", "patasente", "patascore", "particeep", "*"})
PENDING_ENDPOINTS = frozenset({"vend", "postpaidbill", "verification"})
#: Answers rewritten after the effect: PawaCard money and status endpoints only.
PAWA_ANSWER_MODES = frozenset({"elec100", "odd_total", "odd_id", "nested"})

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"
    b"</body></html>\n"
)
PORTAL_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in to continue</title></head><body>"
    b"<h1>Welcome to FreeWiFi</h1><form action='/login'><input name='voucher'>"
    b"<button>Connect</button></form></body></html>"
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
    when: str = "before"
    size: int = 300_000_000
    hits: int = 0
    id: int = 0

    @property
    def after_commit(self) -> bool:
        """Whether the provider does the work before this fault strikes."""
        return self.when == "after"

    def matches(self, provider: str, endpoint: str) -> bool:
        if self.provider not in ("*", provider) or self.endpoint not in ("*", endpoint):
            return False
        return self.mode != "pending" or endpoint in PENDING_ENDPOINTS

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Taken:
    """The faults one request meets: added latency, at most one failure, modifiers."""

    delay: float = 0.0
    failure: Fault | None = None
    modifiers: dict[str, Fault] = field(default_factory=dict)


@dataclass
class FaultRegistry:
    """The active faults, in the order they were added. Thread-safe."""

    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _next_id: int = 1

    def add(self, provider: str = "*", endpoint: str = "*", mode: str = "http500",
            count: int | None = 1, seconds: float = 0.0, polls: int = 2,
            effect: bool | None = None, when: str | None = None,
            size: int = 300_000_000) -> Fault:
        """Add a fault; ``count=None`` keeps it until :meth:`clear`.

        ``when`` is ``"before"`` (nothing done at the provider) or ``"after"`` (the
        provider committed, then the fault struck); ``effect`` is the older spelling
        of the same choice (``effect=False`` = before).
        """
        provider = provider.lower()
        if provider not in PROVIDERS:
            raise FaultError(f"unknown provider {provider!r} "
                             "(pawacard, patasente, patascore, particeep or *)")
        if mode not in MODES:
            raise FaultError(f"unknown fault mode {mode!r}; one of {', '.join(sorted(MODES))}")
        if count is not None and count < 1:
            raise FaultError("count must be at least 1 (or null: until cleared)")
        if seconds < 0 or polls < 0 or size < 0:
            raise FaultError("seconds, polls and size must not be negative")
        default = FAILURES.get(mode, "before")
        if when is None:
            when = default if effect is None else ("after" if effect else "before")
        if when not in ("before", "after"):
            raise FaultError("when is 'before' (nothing done) or 'after' (committed)")
        if mode in FIXED_MOMENT and when != default:
            raise FaultError(f"{mode} only happens {default} the provider's work")
        if mode == "trickle" and not seconds:
            seconds = 1.0
        endpoint = endpoint.strip("/") or "*"
        with self._lock:
            fault = Fault(provider, endpoint, mode, count, float(seconds), int(polls),
                          when == "after", when, int(size), id=self._next_id)
            self._next_id += 1
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def remove(self, fault_id: int) -> bool:
        """Clear one fault by its ``id``; False when it is gone already (used up)."""
        with self._lock:
            for fault in self._faults:
                if fault.id == fault_id:
                    self._faults.remove(fault)
                    return True
        return False

    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def __len__(self) -> int:
        return len(self._faults)

    def take(self, provider: str, endpoint: str) -> Taken:
        """Consume the faults for one request: latency, the first failure, the modifiers."""
        taken = Taken()
        if not self._faults:  # fast path: no lock when nothing is injected
            return taken
        with self._lock:
            for fault in list(self._faults):
                if not fault.matches(provider, endpoint):
                    continue
                if fault.mode == "latency":
                    taken.delay += fault.seconds
                elif fault.mode in MODIFIERS:
                    if fault.mode in taken.modifiers:
                        continue
                    taken.modifiers[fault.mode] = fault
                elif taken.failure is None:
                    taken.failure = fault
                else:
                    continue
                fault.hits += 1
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
        return taken

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.active()]


def retry_after(fault: Fault) -> str:
    """The ``Retry-After`` header value (whole seconds, at least 1)."""
    return str(max(1, int(fault.seconds + 0.999)))


async def cut_connection(*, reset: bool = False) -> bool:
    """Abort the current connection; True when it was possible.

    ``reset``: with ``SO_LINGER`` 0, so the peer gets a TCP RST ("connection reset
    by peer") instead of an orderly close. After the abort the event loop runs once
    so the HTTP protocol notices the disconnection and neither logs an error nor
    tries to answer.
    """
    transport = CURRENT_TRANSPORT.get()
    if transport is None:
        return False
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await asyncio.sleep(0)
    return True
