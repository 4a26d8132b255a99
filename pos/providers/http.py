"""Plumbing shared by the provider clients: one httpx client, error mapping, retries, JSON.

The clients sort every failure into one of three kinds, because what may be
done next depends on it:

* :class:`~pos.errors.ProviderUnavailable` -- the request never left (connect
  refused, DNS, TLS handshake, pool full). Always safe to send again.
* :class:`Transient` -- the request was (or may have been) sent and no usable
  answer came back (read timeout, reset, server closed, 5xx). Safe to retry
  for a request that moves no money; a money request must be resolved by
  querying by ref instead.
* anything else (a decline, an odd answer) is final.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # httpx costs ~140 ms to import: loaded on the first request
    import httpx

from pos.errors import ProviderError, ProviderUnavailable, RateLimited

# httpx logs every request URL at INFO and Patasente carries the card PIN in the
# query string: keep both loggers quiet whatever the application's log level.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

T = TypeVar("T")

USER_AGENT = "sente-pos/0.1"


class Transient(ProviderError):
    """Sent (or maybe sent) and no usable answer: read timeout, reset, 5xx.

    Retried automatically for requests that move no money; for a money request
    the client resolves it by querying by ref and never lets it escape as is.
    """


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How requests that move no money are retried, and how unknown outcomes settle."""

    attempts: int = 3
    """Attempts in all (1 = no retry) for requests that move no money."""
    wait_initial: float = 0.3
    """First wait between attempts, in seconds; doubles each time."""
    wait_max: float = 2.0
    """Longest wait between attempts."""
    settle_delay: float = 1.0
    """Seconds to wait after a lost money answer before querying by ref, so a
    request still being processed at the provider has time to be recorded."""


#: Fast policy for tests and benchmarks.
FAST_RETRY = RetryPolicy(attempts=3, wait_initial=0.01, wait_max=0.02, settle_delay=0.0)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for the process (certificate and host name checked).

    Building one costs ~70 ms (loading the CA bundle); httpx would build one per
    client, at start-up.
    """
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def make_client(
    base_url: str,
    *,
    connect_timeout: float,
    read_timeout: float,
    transport: httpx.AsyncBaseTransport | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    """One keep-alive client per provider; TLS verification is always on."""
    import httpx
    if not base_url.endswith("/"):
        base_url += "/"  # so relative paths join below the API root
    timeout = httpx.Timeout(
        connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
    )
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        verify=tls_context(),
        transport=transport,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
        limits=httpx.Limits(max_connections=10, max_keepalive_connections=5, keepalive_expiry=30),
        follow_redirects=False,
    )


async def send(
    client: httpx.AsyncClient, provider: str, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """Send one request; map transport failures onto our error tree.

    The httpx exception is not chained (``from None``): its request carries the
    URL, and Patasente URLs carry PINs.
    """
    import httpx
    try:
        return await client.request(method, path, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        err: ProviderError = ProviderUnavailable(
            f"{provider} cannot be reached (no connection)",
            provider=provider,
            detail=type(exc).__name__,
        )
    except httpx.TimeoutException as exc:  # read / write timeout: the request may be in
        err = Transient(
            f"{provider} did not answer in time", provider=provider, detail=type(exc).__name__
        )
    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:  # reset / closed after send
        err = Transient(
            f"{provider} dropped the connection before answering",
            provider=provider,
            detail=type(exc).__name__,
        )
    except httpx.TransportError as exc:  # proxy, local protocol, unsupported scheme...
        err = ProviderUnavailable(
            f"{provider} request could not be sent", provider=provider, detail=type(exc).__name__
        )
    raise err from None


class ClientBase:
    """What both provider clients share: one pooled httpx client with explicit
    timeouts, a retry policy, async context management, a repr without secrets."""

    provider = "provider"

    def __init__(self, settings: Any, *, transport: httpx.AsyncBaseTransport | None,
                 retry: RetryPolicy | None, headers: dict[str, str] | None = None) -> None:
        self._settings = settings
        self._retry = retry or RetryPolicy()
        self._transport = transport
        self._headers = headers
        self._http: httpx.AsyncClient | None = None

    @property
    def _client(self) -> httpx.AsyncClient:
        """Created on first use, so building a terminal costs no TLS set-up at start-up."""
        if self._http is None:
            self._http = make_client(
                self._settings.base_url,
                connect_timeout=self._settings.connect_timeout,
                read_timeout=self._settings.read_timeout,
                transport=self._transport,
                headers=self._headers,
            )
        return self._http

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self._settings.base_url!r}, "
                f"user={self._settings.username!r})")

    async def __aenter__(self: _C) -> _C:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


_C = TypeVar("_C", bound=ClientBase)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: rare enough to ignore


def rate_limited(provider: str, response: httpx.Response) -> RateLimited:
    return RateLimited(
        f"{provider} is busy: try again shortly (HTTP {response.status_code})",
        provider=provider,
        retry_after=retry_after(response),
        http_status=response.status_code,
    )


def unexpected(provider: str, status: int | None, detail: str) -> ProviderError:
    return ProviderError(
        f"{provider} answered something unexpected (HTTP {status})",
        provider=provider,
        http_status=status,
        detail=detail[:200],
    )


def server_error(provider: str, response: httpx.Response) -> Transient:
    return Transient(
        f"{provider} had a server error (HTTP {response.status_code})",
        provider=provider,
        http_status=response.status_code,
        detail=_snippet(response.text),
    )


def _snippet(text: str, limit: int = 60) -> str:
    return " ".join(text.split())[:limit]


def decode_json(provider: str, response: httpx.Response) -> Any:
    """The body as JSON (floats as Decimal), tolerating the documents' quirks.

    Anything that is not JSON (HTML, empty, truncated) becomes a ProviderError
    naming the provider and the HTTP status.
    """
    text = response.text
    if not text.strip():
        raise unexpected(provider, response.status_code, "empty body")
    try:
        return loads_lenient(text)
    except ValueError:
        raise unexpected(
            provider, response.status_code, f"not JSON: {_snippet(text)!r}"
        ) from None


# ------------------------------------------------------------------ lenient JSON
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<punct>[{}\[\]:,])
  | (?P<bare>[^\s{}\[\]:,"]+)
    """,
    re.VERBOSE | re.DOTALL,
)
_NUMBER_RE = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
_VALUE_END = {"str", "bare", "}", "]"}
_VALUE_START = {"str", "bare", "{", "["}


def loads_lenient(text: str) -> Any:
    """``json.loads(text, parse_float=Decimal)``, repairing what the documents show.

    Patasente's examples (and perhaps its server) emit ``"expiry_date": 04/22``
    (an unquoted value), objects with missing commas between members and
    trailing commas before ``}`` / ``]``. Strict JSON is tried first; only if it
    fails are those three defects repaired. Truncated or unbalanced input
    (including HTML) still fails: nothing is invented.
    """
    try:
        return json.loads(text, parse_float=Decimal)
    except ValueError:
        pass
    return json.loads(_repair(text), parse_float=Decimal)


def _repair(text: str) -> str:
    out: list[str] = []
    prev: str | None = None  # kind of the last significant token emitted
    pos = 0
    depth = 0
    for m in _TOKEN_RE.finditer(text):
        if m.start() != pos:  # an unterminated string or similar: give up
            raise ValueError("cannot repair")
        pos = m.end()
        kind = m.lastgroup
        tok = m.group()
        if kind == "ws":
            continue
        if kind == "punct":
            kind = tok
        if kind == "bare" and not (
            _NUMBER_RE.fullmatch(tok) or tok in ("true", "false", "null")
        ):
            if depth == 0:
                raise ValueError("bare text outside any object")
            tok = json.dumps(tok)
        if kind in ("}", "]"):
            depth -= 1
            if prev == ",":
                out.pop()  # trailing comma
        elif kind in ("{", "["):
            depth += 1
        if kind in _VALUE_START and prev in _VALUE_END and depth > 0:
            out.append(",")  # missing comma between members
        out.append(tok)
        prev = kind
    if pos != len(text):
        raise ValueError("cannot repair")
    return "".join(out)


# ------------------------------------------------------------------ retries
async def retrying(
    policy: RetryPolicy, call: Callable[[], Awaitable[T]], *, idempotent: bool = True
) -> T:
    """Run ``call`` (a request that moves no money) with retries on
    :class:`ProviderUnavailable` and, when ``idempotent``, :class:`Transient`;
    re-raise the last error.

    A state change such as locking a card is not idempotent in its answers
    (a repeat says "Card is already locked"): it is retried only when nothing
    was sent, and a lost answer is left to the caller to check.
    """
    errors: tuple[type[Exception], ...] = (
        (ProviderUnavailable, Transient) if idempotent else (ProviderUnavailable,)
    )
    from tenacity import (  # loaded with the first request, like httpx
        AsyncRetrying,
        retry_if_exception_type,
        stop_after_attempt,
        wait_exponential,
    )

    retryer = AsyncRetrying(
        stop=stop_after_attempt(max(1, policy.attempts)),
        wait=wait_exponential(multiplier=policy.wait_initial, max=policy.wait_max),
        retry=retry_if_exception_type(errors),
        reraise=True,
    )
    async for attempt in retryer:
        with attempt:
            return await call()
    raise AssertionError("unreachable")  # pragma: no cover


# ------------------------------------------------------------------ field helpers
def as_str(value: Any) -> str | None:
    """A provider field as text (numbers arrive as strings or numbers); None if absent."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    s = str(value).strip()
    return s or None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def as_bool(value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("true", "1", "yes", "set"):
            return True
        if v in ("false", "0", "no", ""):
            return False
    return default
