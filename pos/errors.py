"""One tree of domain errors; each carries a message fit for a cashier.

CLI exit codes follow DESIGN.md: 2 for declined / rejected input, 3 for
accepted offline or pending, 1 for anything else.
"""

from __future__ import annotations


class PosError(Exception):
    """Base of every error the terminal shows to a person."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(PosError):
    """Bad input from the cashier, the customer or a scan; nothing was changed."""

    exit_code = 2


class QuoteExpired(PosError):
    """A currency conversion shown to the customer is too old to debit: fetch a new one
    and show it before the PIN again (never debit at a rate the customer did not see)."""

    exit_code = 2


class Declined(PosError):
    """The provider refused the operation; its reason is kept for the cashier."""

    exit_code = 2

    def __init__(self, message: str, *, provider: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.code = code


class ProviderError(PosError):
    """A provider answered in a way we cannot use (HTML, bad JSON, odd shape, 5xx)."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        http_status: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.http_status = http_status
        self.detail = detail


class LinkDown(ProviderError):
    """No usable answer because of the link, a gateway or a portal in the way.

    Every form a mobile link fails in ends here, classified once (pos.providers.http):
    connection refused, DNS, connect or TLS failure, reset, closed before an answer,
    a gateway's 5xx, a redirect or HTML page from a captive portal, a timeout, an
    answer that never finishes or is too large. For a request that moves no money
    it means *offline for this sale*; for a money request the client turns the
    sent forms into :class:`OutcomeUnknown` (resolved by asking, never by re-sending).
    """

    #: Whether the request may have reached the provider.
    sent: bool = True


class ProviderUnavailable(LinkDown):
    """The request never reached the provider (connect refused, DNS, link down).

    Safe to retry: nothing can have happened at the provider.
    """

    sent = False


class NoAnswer(LinkDown):
    """The request was (or may have been) sent and no usable answer came back:
    read timeout, reset, closed, a gateway's 5xx, a portal's page, over the deadline
    or the size cap."""


class OutcomeUnknown(ProviderError):
    """A money-moving request left the terminal and its outcome is not known.

    Must be resolved by querying by ``ref`` before anything is sent again.
    """

    exit_code = 3

    def __init__(self, message: str, *, provider: str, ref: str, link_down: bool = False,
                 **kw: object) -> None:
        super().__init__(message, provider=provider, **kw)  # type: ignore[arg-type]
        self.ref = ref
        #: The answer was lost to the link (not an answer we could not read).
        self.link_down = link_down


class AuthError(ProviderError):
    """Credentials were refused by the provider."""


class RateLimited(NoAnswer):
    """The provider (or a gateway) asked us to slow down: HTTP 429 or 503.

    A form of :class:`NoAnswer`: the request may have been received, so a money
    request is resolved by asking; ``retry_after`` schedules the next attempt.
    """

    def __init__(self, message: str, *, provider: str, retry_after: float | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(message, provider=provider, http_status=http_status)
        self.retry_after = retry_after
