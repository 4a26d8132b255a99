"""Patascore business verification (KYB): async client, exactly per documents 000 and 001.

Wire format. Every answer is the envelope ``{"status", "message", "data"}``
(document 000); errors come as ``{"status", "message", "errors": [...]}``
(document 000) or ``{"status": "error code", "message": ...}`` (document 001), so
``status`` may be a number or a string, and may differ from the HTTP status: the
body's code wins when it is a number (document 001 shows 202 "search in progress"
as a body; whether its HTTP status is 200 or 202 is not said), the HTTP status
otherwise.

Outcomes (document 001): 200 a result (``verified`` is the string ``"true"``, or
``"false"``; a JSON boolean is read too); 202 pending with a ``batch_id`` to poll
through ``POST /api/v1/business/results?batch_id=``; 409 a request is ongoing for
this registration number (keep polling, never resubmit); 404 no such business;
503 the BRS registry is down (retry later); 429 a duplicate within the 2-minute
window; 403 "Insufficient wallet balance" (a billing problem for the merchant's
Patascore account, not a login problem); 401 bad credentials; 400 a bad request.

``partners``, ``shareCapital`` and ``encumbrances`` arrive as JSON inside a string
(document 001's example, whose inner quotes are not even escaped) or as arrays:
all three forms are read.

Document 000 lists an "Authentication" page and document 001 a "Business
Verification" (submit) endpoint whose texts we do not have: the credential's
header and scheme and the submit path are settings (:mod:`pos.hub.config`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from pos.hub.config import PatascoreSettings

from pos.errors import ProviderError
from pos.providers import http
from pos.providers.http import as_int, as_str

PROVIDER = "Patascore"
#: Document 001: "The current setting prevents duplicate requests within a 2-minute window."
DUPLICATE_WINDOW = 120.0
JSON_IN_STRING = ("partners", "shareCapital", "encumbrances")
# Document 001's example: "partners": "[{"type":"director_shareholder",...}]" -- a JSON
# array pasted inside a string without escaping its quotes, which makes the whole body
# invalid JSON. Dropping the two surrounding quotes turns it back into the array.
_UNESCAPED = re.compile(
    r'"(?P<key>' + "|".join(JSON_IN_STRING) + r')"\s*:\s*"(?P<value>\[.*?\])"(?=\s*[,}])',
    re.S)


class KybStatus(StrEnum):
    verified = "verified"  # 200, verified "true"
    rejected = "rejected"  # 200, verified "false" (e.g. deregistered)
    pending = "pending"  # 202: poll results?batch_id=
    ongoing = "ongoing"  # 409: a request is ongoing for this number: keep polling
    not_found = "not_found"  # 404
    brs_down = "brs_down"  # 503: the registry is down, retry later
    duplicate = "duplicate"  # 429: inside the 2-minute window
    billing = "billing"  # 403: insufficient wallet balance
    auth = "auth"  # 401: credentials refused
    invalid = "invalid"  # 400: bad request
    server = "server"  # 500 or an answer we cannot read: retry later


@dataclass(frozen=True)
class BusinessVerification:
    status: KybStatus
    message: str
    http_status: int
    batch_id: str | None = None
    retry_after: float | None = None
    business_name: str | None = None
    registration_no: str | None = None
    registration_date: str | None = None
    company_status: str | None = None
    partners: list[Any] = field(default_factory=list)
    share_capital: list[Any] = field(default_factory=list)
    encumbrances: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        """No further request can change this answer."""
        return self.status in (KybStatus.verified, KybStatus.rejected, KybStatus.not_found,
                               KybStatus.invalid)

    def to_json(self) -> dict[str, Any]:
        return {"status": str(self.status), "message": self.message,
                "http_status": self.http_status, "batch_id": self.batch_id,
                "business_name": self.business_name, "registration_no": self.registration_no,
                "registration_date": self.registration_date,
                "company_status": self.company_status, "partners": self.partners,
                "share_capital": self.share_capital, "encumbrances": self.encumbrances,
                "errors": self.errors}


def loads_body(text: str) -> Any:
    """The body as JSON, tolerating document 001's unescaped JSON-in-a-string fields."""
    try:
        return http.loads_lenient(text)
    except ValueError:
        repaired = _UNESCAPED.sub(lambda m: f'"{m["key"]}": {m["value"]}', text)
        return http.loads_lenient(repaired)


def json_list(value: Any) -> list[Any]:
    """``partners`` & co.: an array, a string holding one, null or empty."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        try:
            parsed = http.loads_lenient(value)
        except ValueError:
            return []
        return parsed if isinstance(parsed, list) else [parsed]
    return [value] if isinstance(value, dict) else []


def _verified(value: Any) -> bool | None:
    """``"true"`` (document 001), ``true``, ``"false"``...; None when absent or odd."""
    if value is None:
        return None
    return http.as_bool(value, default=False) if isinstance(value, bool | str | int) else None


def parse_answer(http_status: int, body: Any, retry_after: float | None = None
                 ) -> BusinessVerification:
    """Map one answer (either endpoint) onto a :class:`BusinessVerification`."""
    if not isinstance(body, dict):
        return BusinessVerification(KybStatus.server, "Patascore answered something unreadable",
                                    http_status)
    code = as_int(body.get("status"))
    # A body code that is a number wins; "error code" (document 001's literal) or
    # nothing falls back to the HTTP status.
    code = code if code is not None and 100 <= code <= 599 else http_status
    message = as_str(body.get("message")) or ""
    errors = [str(e) for e in body.get("errors") or [] if e is not None] \
        if isinstance(body.get("errors"), list) else []
    raw = body.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    batch = as_str(data.get("batch_id"))

    def out(status: KybStatus, msg: str = message, **kw: Any) -> BusinessVerification:
        return BusinessVerification(status, msg, http_status, batch_id=batch, errors=errors,
                                    data=data, retry_after=retry_after, **kw)

    if code == 202 or (code == 200 and batch and "verified" not in data):
        return out(KybStatus.pending, message or "Search in progress")
    if code == 200:
        verified = _verified(data.get("verified"))
        if verified is None:
            return out(KybStatus.server, "Patascore answered 200 without a verification result")
        fields = {
            "business_name": as_str(data.get("businessName")),
            "registration_no": as_str(data.get("registrationNo")),
            "registration_date": as_str(data.get("registrationDate")),
            "company_status": as_str(data.get("status")),
            "partners": json_list(data.get("partners")),
            "share_capital": json_list(data.get("shareCapital")),
            "encumbrances": json_list(data.get("encumbrances")),
        }
        if verified:
            return out(KybStatus.verified, message or "Verified", **fields)
        return out(KybStatus.rejected, message or f"Not verified ({fields['company_status']})",
                   **fields)
    status = {
        409: KybStatus.ongoing, 404: KybStatus.not_found, 503: KybStatus.brs_down,
        429: KybStatus.duplicate, 403: KybStatus.billing, 401: KybStatus.auth,
        400: KybStatus.invalid, 422: KybStatus.invalid,
    }.get(code, KybStatus.server)
    if status == KybStatus.duplicate and retry_after is None:
        retry_after = DUPLICATE_WINDOW
    text = message or {
        KybStatus.ongoing: "Request ongoing for this registration number",
        KybStatus.not_found: "No data found for this business identifier",
        KybStatus.brs_down: "BRS systems are down",
        KybStatus.billing: "Insufficient wallet balance",
    }.get(status, f"HTTP {code}")
    if errors:
        text = f"{text}: {'; '.join(errors)}"
    return BusinessVerification(status, text, http_status, batch_id=batch, errors=errors,
                                data=data, retry_after=retry_after)


class PatascoreClient(http.ClientBase):
    """Submit a business registration number; poll a pending search by ``batch_id``.

    Requests are sent once (no automatic retry): a retry inside the 2-minute window
    is a 429 and a resubmission while one is ongoing a 409; the caller (the hub's KYB
    worker) schedules the next attempt and keeps the batch id across restarts."""

    provider = PROVIDER

    def __init__(self, settings: PatascoreSettings, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        key = settings.api_key.get_secret_value()
        value = f"{settings.auth_scheme} {key}".strip() if settings.auth_scheme else key
        super().__init__(settings, transport=transport, retry=None,
                         headers={settings.auth_header: value} if key else {})

    def __repr__(self) -> str:
        return f"PatascoreClient({self._settings.base_url!r})"

    async def _post(self, path: str, **kw: Any) -> BusinessVerification:
        try:
            resp = await self._http_send("POST", path, **kw)
        except ProviderError as exc:  # unreachable, timeout, reset: try again later
            return BusinessVerification(KybStatus.server, exc.message, 0)
        try:
            body = loads_body(resp.text) if resp.text.strip() else None
        except ValueError:
            body = None
        return parse_answer(resp.status_code, body, http.retry_after(resp))

    async def submit(self, registration_no: str) -> BusinessVerification:
        """Start (or get) the verification of ``registration_no``."""
        s = self._settings
        payload = json.dumps({s.submit_field: registration_no.strip()})
        return await self._post(s.submit_path, content=payload,
                                headers={"Content-Type": "application/json"})

    async def results(self, batch_id: str) -> BusinessVerification:
        """Document 001: ``POST {{BASE_URL}}/api/v1/business/results?batch_id=batchId``."""
        return await self._post(self._settings.results_path, params={"batch_id": batch_id})
