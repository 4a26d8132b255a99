"""Particeep: async client of the signed API (document 004), and webhook verification.

Signing (document 004, "How to build the Authorization's header"): every request
carries ``DateTime`` (ISO 8601, e.g. ``2015-10-19T11:04:18Z``) and
``Authorization: PTP:<key>:<signature>`` where the signature is the base 64 of the
*lowercase hexadecimal text* of HMAC-SHA1(key = secret, message = secret + key +
DateTime), all UTF-8. A webhook carries the same two headers (plus
``X-Particeep-Event``): we rebuild the header from the webhook's own ``DateTime``
and compare in constant time. The signature covers no body, so a webhook's body is
never trusted: the entity it names is read back from the API first.

Envelope (document 004, "Response Format"): ``{"error": {"hasError", "errors": [
{"technicalCode", "message"}]}, "result": ..., "meta": {"version"}}``; its "Error
format" section shows ``{"hasError", "errors"}`` at the top level instead. Both are
read. The custom-field example shows an entity without any envelope: a body with
neither ``result`` nor ``error`` is taken as the result itself.

Pagination: ``limit`` (default 30) and ``offset``; the answer holds ``total_size``
and ``data``. Quota headers: ``request-quota`` (used this month) and
``request-quotamax`` (0: no limit), ``meta-version``, ``meta-endpoint``.
Resource paths are settings: the document lists none.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from pos.hub.config import ParticeepSettings

from pos.errors import AuthError, ProviderError, RateLimited
from pos.providers import http
from pos.providers.http import as_int, as_str

PROVIDER = "Particeep"
DEFAULT_LIMIT = 30


def signature(secret: str, key: str, stamp: str) -> str:
    """Document 004: base64(lowercase hex(HMAC-SHA1(secret, secret + key + DateTime)))."""
    mac = hmac.new(secret.encode("utf-8"), (secret + key + stamp).encode("utf-8"),
                   hashlib.sha1).hexdigest().lower()
    return base64.b64encode(mac.encode("utf-8")).decode("ascii")


def authorization(secret: str, key: str, stamp: str) -> str:
    return f"PTP:{key}:{signature(secret, key, stamp)}"


def iso_stamp(when: dt.datetime) -> str:
    """``2015-10-19T11:04:18Z``: UTC, whole seconds, as document 004's example."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stamp(text: str) -> dt.datetime | None:
    """A ``DateTime`` header in any ISO 8601 zone (document 004: "free to use the timezone
    you want as long as it's specified"); None when unreadable or without a zone."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    if len(value) >= 3 and value[-3] in "+-" and value[-2:].isdigit():
        value += ":00"  # "+01", as in the document's example
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else None


@dataclass(frozen=True, slots=True)
class Quota:
    used: int | None
    limit: int | None  # 0: no limit
    version: str | None
    endpoint: str | None

    @property
    def exhausted(self) -> bool:
        return bool(self.limit) and self.used is not None and self.used >= (self.limit or 0)


class ParticeepError(ProviderError):
    """Particeep refused the request; ``codes`` are its ``technicalCode`` values."""

    def __init__(self, message: str, *, http_status: int | None, codes: list[str]) -> None:
        super().__init__(message, provider=PROVIDER, http_status=http_status)
        self.codes = codes


def unwrap(status: int, body: Any) -> Any:
    """The ``result`` of an answer, or the error it carries (both envelope shapes)."""
    if not isinstance(body, dict):
        raise http.unexpected(PROVIDER, status, "not a JSON object")
    err = body.get("error") if isinstance(body.get("error"), dict) else body
    has_error = http.as_bool(err.get("hasError"), default=False) if isinstance(err, dict) \
        else False
    errors = err.get("errors") if isinstance(err, dict) else None
    if has_error or status >= 400:
        items = errors if isinstance(errors, list) else []
        codes = [str(e.get("technicalCode", "")) for e in items if isinstance(e, dict)]
        texts = [str(e.get("message") or e.get("technicalCode") or "") for e in items
                 if isinstance(e, dict)]
        message = "; ".join(t for t in texts if t) or f"HTTP {status}"
        if status in (401, 403):
            raise AuthError(f"Particeep refused the hub's credentials ({message})",
                            provider=PROVIDER, http_status=status)
        raise ParticeepError(f"Particeep: {message}", http_status=status, codes=codes)
    if "result" in body:
        return body["result"]
    if "error" in body or "hasError" in body:
        return None
    return body  # an entity without the envelope (document 004's custom-field example)


class ParticeepClient(http.ClientBase):
    """Signed requests; the last quota headers are in :attr:`quota`."""

    provider = PROVIDER

    def __init__(self, settings: ParticeepSettings, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 clock: Any = None) -> None:
        super().__init__(settings, transport=transport, retry=None,
                         headers={"Content-Type": "application/json"})
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.quota: Quota | None = None

    def __repr__(self) -> str:
        return f"ParticeepClient({self._settings.base_url!r}, key={self._settings.api_key!r})"

    def signed_headers(self) -> dict[str, str]:
        s = self._settings
        stamp = iso_stamp(self._clock())
        return {"DateTime": stamp,
                "Authorization": authorization(s.api_secret.get_secret_value(), s.api_key,
                                               stamp)}

    async def request(self, method: str, path: str, *, body: Any = None,
                      params: dict[str, Any] | None = None) -> Any:
        """One signed request; its ``result``. Not retried here: the caller decides
        (a lost answer to a creation is resolved by looking the entity up)."""
        if self.quota is not None and self.quota.exhausted:
            raise RateLimited("Particeep monthly request quota used up", provider=PROVIDER)
        content = json.dumps(body, separators=(",", ":"), default=str) if body is not None \
            else None
        resp = await self._http_send(method, path.lstrip("/"), content=content, params=params,
                                     headers=self.signed_headers())
        h = resp.headers
        self.quota = Quota(as_int(h.get("request-quota")), as_int(h.get("request-quotamax")),
                           h.get("meta-version"), h.get("meta-endpoint"))
        if resp.status_code == 429:
            raise http.rate_limited(PROVIDER, resp)
        if resp.status_code >= 500:
            raise http.server_error(PROVIDER, resp)
        return unwrap(resp.status_code, http.decode_json(PROVIDER, resp))

    async def pages(self, path: str, *, limit: int = DEFAULT_LIMIT,
                    params: dict[str, Any] | None = None,
                    max_items: int = 10_000) -> AsyncIterator[dict[str, Any]]:
        """Every element of a paged listing, following ``limit`` / ``offset`` /
        ``total_size`` (document 004, "Pagination")."""
        offset = 0
        while offset < max_items:
            page = await self.request("GET", path, params={**(params or {}), "limit": limit,
                                                           "offset": offset})
            if not isinstance(page, dict):
                raise http.unexpected(PROVIDER, 200, "a page without total_size / data")
            data = page.get("data")
            items: list[Any] = data if isinstance(data, list) else []
            total = as_int(page.get("total_size"))
            for item in items:
                if isinstance(item, dict):
                    yield item
            offset += limit
            if not items or total is None or offset >= total:
                return

    # ------------------------------------------------------------ entities
    async def create_transaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        result = await self.request("PUT", self._settings.transaction_path, body=payload)
        if not isinstance(result, dict) or not as_str(result.get("id")):
            raise http.unexpected(PROVIDER, 200, "a created transaction without an id")
        return result

    async def get_transaction(self, entity_id: str) -> dict[str, Any] | None:
        """The transaction as Particeep holds it now; None if it does not exist."""
        if not entity_id or "/" in entity_id or len(entity_id) > 64:
            return None
        try:
            result = await self.request("GET", f"{self._settings.transaction_path}/{entity_id}")
        except ParticeepError as exc:
            if exc.http_status == 404:
                return None
            raise
        return result if isinstance(result, dict) else None

    async def register_webhook(self, event: str, url: str) -> Any:
        """Document 004: a webhook is a name (an event) and a URL, one URL per event."""
        return await self.request("PUT", self._settings.webhook_path,
                                  body={"name": event, "url": url})

    async def find_transaction(self, terminal: str, ref: str) -> dict[str, Any] | None:
        """A sale already sent (its answer lost): found by our ``custom`` fields."""
        async for item in self.pages(self._settings.transaction_search_path, limit=100):
            found = item.get("custom")
            custom: dict[str, Any] = found if isinstance(found, dict) else {}
            if custom.get("ref") == ref and custom.get("terminal") == terminal:
                return item
        return None


# ------------------------------------------------------------------ webhooks
@dataclass(frozen=True, slots=True)
class WebhookCheck:
    ok: bool
    status: int
    reason: str
    event: str = ""
    stamp: str = ""
    entity_id: str | None = None


def check_webhook(headers: dict[str, str], body: bytes, *, key: str, secret: str,
                  now: dt.datetime, skew_seconds: float) -> WebhookCheck:
    """Document 004, webhook "Security": rebuild ``Authorization`` from the webhook's
    ``DateTime`` and compare in constant time; refuse a ``DateTime`` further than
    ``skew_seconds`` from ``now``. Replays are the caller's to refuse (it keeps the
    cache); the entity id is only a hint of what to re-read."""
    low = {k.lower(): v for k, v in headers.items()}
    event = low.get("x-particeep-event", "").strip()
    stamp = low.get("datetime", "").strip()
    got = low.get("authorization", "").strip()
    if not event or not stamp or not got:
        return WebhookCheck(False, 400, "missing X-Particeep-Event, DateTime or Authorization")
    want = authorization(secret, key, stamp)
    if not hmac.compare_digest(want.encode(), got.encode()):
        return WebhookCheck(False, 401, "bad signature", event, stamp)
    when = parse_stamp(stamp)
    if when is None:
        return WebhookCheck(False, 400, "DateTime is not ISO 8601 with a zone", event, stamp)
    if abs((now - when).total_seconds()) > skew_seconds:
        return WebhookCheck(False, 400, "DateTime too far from our clock (stale or replayed)",
                            event, stamp)
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return WebhookCheck(False, 400, "body is not JSON", event, stamp)
    entity = payload.get("result", payload) if isinstance(payload, dict) else None
    entity_id = as_str(entity.get("id")) if isinstance(entity, dict) else None
    return WebhookCheck(True, 200, "signature ok", event, stamp, entity_id)


__all__ = ["ParticeepClient", "ParticeepError", "Quota", "WebhookCheck",
           "authorization", "check_webhook", "signature", "unwrap"]
