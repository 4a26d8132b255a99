"""Plumbing shared by the provider clients: one httpx client, failure classification,
retries, JSON.

Every failure is classified here, once (DESIGN.md invariant 9), into what may be
done next:

* :class:`~pos.errors.ProviderUnavailable` -- the request never left (connect
  refused, DNS, TLS handshake, pool full). Safe to send again.
* :class:`~pos.errors.NoAnswer` (and :class:`~pos.errors.RateLimited`) -- the
  request was or may have been sent and no usable answer came back: read
  timeout, reset, closed before an answer, a gateway's 5xx, 408/429, a redirect
  or a web page from a captive portal, an answer that never finishes (total
  deadline) or is too large (size cap). Both are :class:`~pos.errors.LinkDown`:
  for a request that moves no money, *offline for this sale*; a money request
  is never re-sent on one: the client raises OutcomeUnknown and the outcome is
  resolved by asking (pos.usecases.reconcile).
* a 4xx refusal -- the provider refused the request: a decline (the clients
  read the documented error field; a 4xx without one is still a decline).
* anything else (an answer we cannot read) is a ProviderError, which a money
  request also turns into OutcomeUnknown.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # httpx costs ~140 ms to import: loaded on the first request
    import httpx

from pos.errors import (
    AuthError,
    Declined,
    InputError,
    LinkDown,
    NoAnswer,
    OutcomeUnknown,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from pos.money import Money
from pos.text import printable

# httpx logs every request URL at INFO and Patasente carries the card PIN in the
# query string: keep both loggers quiet whatever the application's log level.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

T = TypeVar("T")

USER_AGENT = "sente-pos/0.1"

#: Kept for the callers' readability: a sent request without a usable answer.
Transient = NoAnswer

#: Default cap on an answer's size (decoded bytes). The documents' largest answers
#: (a page of 50 prepaid transactions, the product list) are a few tens of KiB.
DEFAULT_MAX_ANSWER_BYTES = 2_000_000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How requests that move no money are retried."""

    attempts: int = 3
    """Attempts in all (1 = no retry) for requests that move no money."""
    wait_initial: float = 0.3
    """First wait between attempts, in seconds; doubles each time."""
    wait_max: float = 2.0
    """Longest wait between attempts."""


#: Fast policy for tests and benchmarks.
FAST_RETRY = RetryPolicy(attempts=3, wait_initial=0.01, wait_max=0.02)


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


@dataclass(frozen=True, slots=True)
class Answer:
    """A provider's complete answer, read within the deadline and the size cap."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class _TooLarge(Exception):
    pass


async def send(
    client: httpx.AsyncClient, provider: str, method: str, path: str, *,
    deadline: float, max_bytes: int = DEFAULT_MAX_ANSWER_BYTES, **kwargs: Any,
) -> Answer:
    """Send one request and read the whole answer within ``deadline`` seconds and
    ``max_bytes``; map every transport failure onto our error tree.

    httpx's timeouts are per read: a provider trickling a byte a second would hold
    a sale for ever, hence the total deadline; a 300 MB answer would kill a Pi,
    hence the cap. The httpx exception is not chained (``from None``): its
    request carries the URL, and Patasente URLs carry PINs.
    """
    import httpx
    err: ProviderError
    try:
        async with asyncio.timeout(deadline):
            request = client.build_request(method, path, **kwargs)
            response = await client.send(request, stream=True)
            try:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise _TooLarge
                    chunks.append(chunk)
            finally:
                await response.aclose()
            return Answer(response.status_code, response.headers, b"".join(chunks))
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        err = ProviderUnavailable(
            f"{provider} cannot be reached (no connection)",
            provider=provider,
            detail=type(exc).__name__,
        )
    except TimeoutError:
        err = NoAnswer(f"{provider} did not finish answering within {deadline:g} s",
                       provider=provider, detail="deadline")
    except _TooLarge:
        err = NoAnswer(f"{provider} sent an answer larger than {max_bytes:,} bytes",
                       provider=provider, detail="too large")
    except httpx.TimeoutException as exc:  # read / write timeout: the request may be in
        err = NoAnswer(
            f"{provider} did not answer in time", provider=provider, detail=type(exc).__name__
        )
    except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.DecodingError) as exc:
        # reset / closed after send / a body that does not decode (gzip cut short)
        err = NoAnswer(
            f"{provider} dropped the connection before answering",
            provider=provider,
            detail=type(exc).__name__,
        )
    except httpx.TransportError as exc:  # proxy, local protocol, unsupported scheme...
        err = ProviderUnavailable(
            f"{provider} request could not be sent", provider=provider, detail=type(exc).__name__
        )
    raise err from None


def link_failure(provider: str, answer: Answer) -> LinkDown | None:
    """The HTTP statuses that mean "no usable answer" whatever the provider (else None).

    * 3xx: we never follow redirects; an API does not redirect, a captive portal does.
    * 407 (a proxy wants a login), 408 (timed out reading our request), 425.
    * 429 and 503: asked to slow down (RateLimited, with Retry-After).
    * any other 5xx: the provider or a gateway (502, 504) failed.
    """
    status = answer.status_code
    if status in (429, 503):
        return rate_limited(provider, answer)
    if 300 <= status < 400:
        return NoAnswer(f"{provider} answered with a redirect (HTTP {status}): a captive "
                        "portal or proxy is in the way", provider=provider, http_status=status)
    if status in (407, 408, 425):
        return NoAnswer(f"{provider} could not be reached properly (HTTP {status})",
                        provider=provider, http_status=status)
    if status >= 500:
        return server_error(provider, answer)
    return None


class ClientBase:
    """What both provider clients share: one pooled httpx client with explicit
    timeouts, a total deadline and a size cap per request, a retry policy, async
    context management, a repr without secrets."""

    provider = "provider"

    def __init__(self, settings: Any, *, transport: httpx.AsyncBaseTransport | None,
                 retry: RetryPolicy | None, headers: dict[str, str] | None = None) -> None:
        self._settings = settings
        self._retry = retry or RetryPolicy()
        self._transport = transport
        self._headers = headers
        self._http: httpx.AsyncClient | None = None
        #: Usable answers received (not a link failure): the sync tells the link monitor
        #: the provider is up only when it heard from it, not when it sent nothing.
        self.answers = 0

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

    @property
    def deadline(self) -> float:
        """Total seconds a request may take, connection to last byte."""
        configured = getattr(self._settings, "deadline", None)
        if configured:
            return float(configured)
        return float(self._settings.connect_timeout + self._settings.read_timeout + 5.0)

    @property
    def max_answer_bytes(self) -> int:
        return int(getattr(self._settings, "max_answer_bytes", None) or DEFAULT_MAX_ANSWER_BYTES)

    async def _http_send(self, method: str, path: str, **kwargs: Any) -> Answer:
        answer = await send(self._client, self.provider, method, path, deadline=self.deadline,
                            max_bytes=self.max_answer_bytes, **kwargs)
        if link_failure(self.provider, answer) is None:
            self.answers += 1
        return answer

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


async def send_money_once(call: Callable[[], Awaitable[T]], *, provider: str, ref: str,
                          what: str) -> T:
    """The one exactly-once rule both clients follow for a request that moves money:
    send it once and never again from here. Not sent: ProviderUnavailable (the caller
    may go offline). A refusal before any work: Declined / AuthError / InputError.
    Sent with no usable answer (link down, or an answer we cannot read): OutcomeUnknown,
    resolved later by asking (pos.usecases.reconcile), never by resending."""
    try:
        return await call()
    except ProviderUnavailable:
        raise  # nothing was sent
    except (AuthError, InputError, Declined):
        raise  # refused before any work: the cashier sees why
    except LinkDown as exc:
        raise OutcomeUnknown(f"{what}: no usable answer ({exc.message})",
                             provider=provider, ref=ref, link_down=True) from None
    except ProviderError as exc:  # an answer we cannot read
        raise OutcomeUnknown(f"{what}: {exc.message}", provider=provider, ref=ref) from None


def wire_amount(amount: Money, currency: str, who: str) -> str:
    """A money request's amount as sent: the provider's currency, more than zero."""
    if amount.currency != currency:
        raise InputError(f"{who} amounts are in {currency}, not {amount.currency}")
    if amount.minor <= 0:
        raise InputError("The amount must be greater than zero")
    return amount.wire()


def retry_after(answer: Answer) -> float | None:
    value = (answer.headers.get("Retry-After") or "").strip()
    try:
        return min(3600.0, max(0.0, float(value))) if value else None
    except ValueError:
        return None  # an HTTP date: rare enough to ignore


def rate_limited(provider: str, answer: Answer) -> RateLimited:
    return RateLimited(
        f"{provider} is busy: try again shortly (HTTP {answer.status_code})",
        provider=provider,
        retry_after=retry_after(answer),
        http_status=answer.status_code,
    )


def unexpected(provider: str, status: int | None, detail: str) -> ProviderError:
    return ProviderError(
        f"{provider} answered something unexpected (HTTP {status})",
        provider=provider,
        http_status=status,
        detail=detail[:200],
    )


def refused(provider: str, status: int, message: str | None) -> Declined:
    """A 4xx refusal; a 4xx without the documented error text is still a refusal."""
    return Declined(message or f"{provider} refused the request (HTTP {status})",
                    provider=provider, code=f"http{status}")


def server_error(provider: str, answer: Answer) -> NoAnswer:
    gateway = answer.status_code in (502, 504)
    what = "a gateway error" if gateway else "a server error"
    return NoAnswer(
        f"{provider} had {what} (HTTP {answer.status_code})",
        provider=provider,
        http_status=answer.status_code,
        detail=_snippet(answer.text),
    )


def _snippet(text: str, limit: int = 60) -> str:
    return " ".join(text.split())[:limit]


def decode_json(provider: str, answer: Answer) -> Any:
    """The body as JSON (floats as Decimal), tolerating the documents' quirks.

    An empty or non-JSON 2xx body (a captive portal's login page, a proxy's
    error page, a body cut short) is :class:`NoAnswer`: the link, not the
    provider, answered. Valid JSON too deep to read is a ProviderError (an
    answer we cannot use), never a crash.
    """
    text = answer.text
    if not text.strip():
        raise NoAnswer(f"{provider} answered with an empty body (HTTP {answer.status_code})",
                       provider=provider, http_status=answer.status_code, detail="empty body")
    try:
        return loads_lenient(text)
    except RecursionError:
        raise unexpected(provider, answer.status_code, "JSON nested too deeply") from None
    except ValueError:
        raise NoAnswer(
            f"{provider} answered with something that is not JSON (HTTP "
            f"{answer.status_code}): a captive portal or proxy?",
            provider=provider, http_status=answer.status_code,
            detail=f"not JSON: {_snippet(text)!r}",
        ) from None


def decode_json_or_none(answer: Answer) -> Any:
    """The body as JSON if it is some (for reading a 4xx's error text), else None."""
    try:
        return loads_lenient(answer.text) if answer.content.strip() else None
    except (ValueError, RecursionError):
        return None


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
        return json.loads(text, parse_float=Decimal, parse_int=_parse_int)
    except ValueError:
        pass
    return json.loads(_repair(text), parse_float=Decimal, parse_int=_parse_int)


def _parse_int(text: str) -> int | Decimal:
    """JSON integers; one too long for Python's int-from-text guard (4,300 digits) is kept
    as a Decimal, which the field readers then refuse as no sane number."""
    return int(text) if len(text) <= 100 else Decimal(text)


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
    :class:`ProviderUnavailable` and, when ``idempotent``, every other
    :class:`LinkDown`; re-raise the last error.

    A state change such as locking a card is not idempotent in its answers
    (a repeat says "Card is already locked"): it is retried only when nothing
    was sent, and a lost answer is left to the caller to check.
    """
    errors: tuple[type[Exception], ...] = (
        (LinkDown,) if idempotent else (ProviderUnavailable,)
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
    """A provider field as text (numbers arrive as strings or numbers); None if absent.

    Every provider string the terminal keeps passes here, so it is made printable here
    (pos.text.printable): an ESC sequence in a customer name, a wallet name or a decline
    message never reaches the console, the printer or the journal.
    """
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        s = printable(str(value)).strip()
    except ValueError:  # an int too long to print (Python's 4,300-digit guard)
        return None
    return s or None


#: Longest integer a provider field may carry (a 5,000-digit "transactionId" is no id).
MAX_INT_DIGITS = 18


def as_int(value: Any) -> int | None:
    """A provider field as an int (numbers arrive as strings or numbers); None when it is
    absent or not a sane integer (too long, fractional, not ASCII digits)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if abs(value) < 10**MAX_INT_DIGITS else None
    if isinstance(value, Decimal):
        try:
            if value.is_finite() and value == value.to_integral_value() and \
                    abs(value) < 10**MAX_INT_DIGITS:
                return int(value)
        except ArithmeticError:
            return None
        return None
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        if digits.isascii() and digits.isdigit() and len(digits) <= MAX_INT_DIGITS:
            return int(text)
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
