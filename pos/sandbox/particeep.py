"""Simulated Particeep API (document 004): signed requests, the envelope, pagination,
quota headers, custom fields, and webhooks it signs and delivers.

Credentials are document 004's public test key and secret. Every request must carry
``DateTime`` (within 15 minutes of the sandbox clock) and the ``Authorization`` that
document 004 describes; anything else is a 403 in the envelope. Paths (document 004
lists none; these are the hub's default settings): ``PUT transaction`` creates,
``GET transaction/<id>`` reads, ``GET transactions/search?limit=&offset=`` pages.

Webhooks: :func:`deliver` POSTs the queued events to the registered URL (``PUT
webhook`` with ``{"name", "url"}``, or :func:`register`), signed with the sandbox
clock. Its ``mode`` makes the faults: ``bad_signature``, ``replay`` (the same
request twice), ``stale`` (a ``DateTime`` an hour old), ``forged`` (valid headers
of a real delivery, a body naming another entity).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from pos.providers.particeep import authorization, iso_stamp, parse_stamp
from pos.sandbox.state import SandboxState
from pos.sandbox.wire import Reply, Req

PROVIDER = "particeep"
API_KEY = "d6a53e1a-fc8e-4251-9dda-fabbce5f2a2c"  # document 004's public test key
API_SECRET = "9bb3c122-0272-4bed-a632-19d5d52c7b5e"  # ... and its secret
MAX_SKEW = 900.0


@dataclass
class ParticeepState:
    quota_max: int = 10_000
    quota_used: int = 0
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, str] = field(default_factory=dict)  # event name -> url
    outbox: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    creates: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"quota": [self.quota_used, self.quota_max], "creates": self.creates,
                "transactions": len(self.transactions), "webhooks": dict(self.webhooks),
                "queued_webhooks": len(self.outbox)}


def book(state: SandboxState) -> ParticeepState:
    found: ParticeepState | None = state.extra.get(PROVIDER)
    if found is None:
        found = state.extra[PROVIDER] = ParticeepState()
    return found


def _envelope(result: Any = None, errors: list[tuple[str, str]] | None = None) -> bytes:
    return json.dumps({
        "error": {"hasError": bool(errors),
                  "errors": [{"technicalCode": c, "message": m} for c, m in errors or []]},
        "result": result, "meta": {"version": "1"}}, separators=(",", ":")).encode()


def _now(state: SandboxState) -> dt.datetime:
    return dt.datetime.fromtimestamp(state.clock.now(), dt.UTC)


def handle(state: SandboxState, req: Req) -> Reply:
    ps = book(state)
    endpoint = "/".join([req.endpoint, *req.args])
    headers = [("meta-version", "1"), ("meta-endpoint", "/v1/" + endpoint)]

    def out(status: int, result: Any = None, errors: list[tuple[str, str]] | None = None
            ) -> Reply:
        quota = [("request-quota", str(ps.quota_used)), ("request-quotamax",
                                                         str(ps.quota_max))]
        return Reply(status, _envelope(result, errors), headers=headers + quota)

    stamp = req.headers.get("datetime", "")
    when = parse_stamp(stamp)
    if (when is None or abs((_now(state) - when).total_seconds()) > MAX_SKEW
            or req.headers.get("authorization", "") != authorization(API_SECRET, API_KEY,
                                                                      stamp)):
        return out(403, errors=[("error.auth.invalid", "Forbidden")])
    ps.quota_used += 1
    if ps.quota_max and ps.quota_used > ps.quota_max:
        return out(403, errors=[("error.quota.exceeded", "Monthly quota exceeded")])
    try:
        body = req.json()
    except ValueError:
        return out(400, errors=[("error.json.invalid", "Body is not JSON")])
    if req.endpoint == "transaction" and req.method == "PUT" and not req.args:
        return _create(state, ps, body, out)
    if req.endpoint == "transaction" and req.method == "GET" and len(req.args) == 1:
        txn = ps.transactions.get(req.args[0])
        if txn is None:
            return out(404, errors=[("error.transaction.none", "error.transaction.none")])
        return out(200, txn)
    if endpoint == "transactions/search" and req.method == "GET":
        try:
            limit = max(1, min(int(req.query.get("limit", "30")), 1000))
            offset = max(0, int(req.query.get("offset", "0")))
        except ValueError:
            return out(400, errors=[("error.pagination", "limit and offset are numbers")])
        rows = sorted(ps.transactions.values(), key=lambda t: t["created_at"])
        return out(200, {"total_size": len(rows), "data": rows[offset:offset + limit]})
    if req.endpoint == "webhook" and req.method == "PUT":
        if not isinstance(body, dict) or not body.get("name") or not body.get("url"):
            return out(400, errors=[("error.webhook.invalid", "name and url are required")])
        ps.webhooks[str(body["name"])] = str(body["url"])
        return out(200, {"name": body["name"], "url": body["url"]})
    return out(404, errors=[("error.endpoint.none", f"No endpoint {req.method} /{endpoint}")])


def _create(state: SandboxState, ps: ParticeepState, body: Any, out: Any) -> Reply:
    if not isinstance(body, dict):
        return out(400, errors=[("error.transaction.invalid", "A JSON object is required")])
    amount, currency = body.get("amount"), body.get("currency")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0 or not currency:
        return out(400, errors=[("error.transaction.amount", "amount and currency required")])
    custom = body.get("custom", {})
    if not isinstance(custom, dict):  # document 004: a custom field is a JSON object
        return out(400, errors=[("error.custom.invalid", "custom must be a JSON object")])
    ps.creates += 1
    txn = {"id": str(uuid.uuid4()), "created_at": iso_stamp(_now(state)), "amount": amount,
           "currency": currency, "status": "pending",
           "description": str(body.get("description", "")), "custom": custom}
    ps.transactions[txn["id"]] = txn
    ps.outbox.append(("transaction_created", dict(txn)))
    return out(200, txn)


# ------------------------------------------------------------------ control
def register(state: SandboxState, event: str, url: str) -> None:
    book(state).webhooks[event] = url


def pay(state: SandboxState, entity_id: str) -> None:
    """The transaction is paid at Particeep: its status changes, a webhook is queued."""
    with state.lock:
        ps = book(state)
        txn = ps.transactions[entity_id]
        txn["status"] = "paid"
        ps.outbox.append(("transaction_paid", dict(txn)))


def deliver(state: SandboxState, *, mode: str = "normal", timeout: float = 10.0
            ) -> list[tuple[str, int, str]]:
    """POST the queued webhooks to their URLs; (event, HTTP status, answer) each.

    Runs in the caller's thread (never the sandbox's event loop)."""
    import httpx

    with state.lock:
        ps = book(state)
        queued, ps.outbox = ps.outbox, []
        hooks = dict(ps.webhooks)
    results: list[tuple[str, int, str]] = []
    with httpx.Client(timeout=timeout) as client:
        for event, entity in queued:
            url = hooks.get(event)
            if not url:
                continue
            stamp = iso_stamp(_now(state) - (dt.timedelta(hours=1) if mode == "stale"
                                             else dt.timedelta()))
            auth = authorization(API_SECRET, API_KEY, stamp)
            if mode == "bad_signature":
                auth = authorization("not-the-secret", API_KEY, stamp)
            headers = {"X-Particeep-Event": event, "DateTime": stamp, "Authorization": auth,
                       "Content-Type": "application/json"}
            body = json.dumps(entity)
            if mode == "forged":
                body = json.dumps({**entity, "id": str(uuid.uuid4()), "status": "paid"})
            sends = 2 if mode == "replay" else 1
            for _ in range(sends):
                r = client.post(url, content=body, headers=headers)
                results.append((event, r.status_code, r.text))
    return results
