"""Simulated Patascore business verification (documents 000 and 001).

``POST .../api/v1/business/verification`` with ``{"registration_number": ...}`` (the
submit endpoint is not in the documents; this path is the hub's default setting) and
``POST .../api/v1/business/results?batch_id=`` (document 001). Credentials:
``Authorization: Bearer demo-patascore-key``. A registration number searched again
within 2 minutes is refused (429); a submit while its search is still running is a
409; a poll of a running search is a 202 until the search completes.

Registry (registration number -> behaviour):

- ``PVT-FYUVQBQR`` Sodapop Inc: pending for one poll, then verified; its result has
  document 001's exact shape (JSON arrays pasted unescaped inside strings).
- ``PVT-INSTANT1`` Duka Letu Ltd: verified at once, arrays as escaped JSON strings.
- ``PVT-ARRAYS01`` Mama Mboga Traders: verified at once, real JSON arrays.
- ``PVT-REJECTED`` Closed Shop Ltd: ``verified: "false"``, status deregistered.
- ``PVT-DEMO0001`` Sente Demo Shop (the demo's merchant): verified at once.
- anything else: 404 "No data found for this business identifier".

Set ``wallet_credits`` to 0 (``state.extra['patascore'].wallet_credits``) for 403
"Insufficient wallet balance". Faults (``provider="patascore"``): ``http503`` (BRS
down), ``http429``, ``http409``, ``http403``, ``http500``, ``pending`` (``polls``
more 202s on ``verification``), and the usual transport faults.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from pos.sandbox.state import SandboxState
from pos.sandbox.wire import Reply, Req, reply

PROVIDER = "patascore"
API_KEY = "demo-patascore-key"
WINDOW = 120.0

#: Document 001's example data, as its ``partners`` etc. are written there.
_SODAPOP_PARTNERS = (
    '[{"type":"director_shareholder","name":"JANE DOE","idType":"citizen","idNumber":'
    '"67983412","shares":[{"shareCount":"100","nominalValue":null,"name":"ORDINARY"}]},'
    '{"type":"director_shareholder","name":"JOHN DOE","idType":"citizen","idNumber":'
    '"78653421","shares":[{"shareCount":"850","nominalValue":null,"name":"ORDINARY"}]},'
    '{"type":"director_shareholder","name":"kenya impact incubator limited","idType":'
    '"local_company","idNumber":"CPR/2015/652153","shares":[{"shareCount":"50",'
    '"nominalValue":null,"name":"ORDINARY"}]}]')
_SODAPOP_CAPITAL = '[{"shareCount":1000,"nominalValue":1000.0,"name":"ORDINARY"}]'


@dataclass(frozen=True)
class Business:
    registration_no: str
    name: str
    verified: bool
    status: str
    pending_polls: int
    style: str  # "unescaped" (document 001), "escaped" (JSON strings) or "arrays"
    registration_date: str = "9 April 1998"


REGISTRY = {b.registration_no: b for b in (
    Business("PVT-FYUVQBQR", "Sodapop Inc", True, "registered", 1, "unescaped"),
    Business("PVT-INSTANT1", "Duka Letu Ltd", True, "registered", 0, "escaped"),
    Business("PVT-ARRAYS01", "Mama Mboga Traders", True, "registered", 0, "arrays"),
    Business("PVT-REJECTED", "Closed Shop Ltd", False, "deregistered", 0, "escaped"),
    Business("PVT-DEMO0001", "Sente Demo Shop", True, "registered", 0, "escaped"),
)}


#: A search completes by itself after this long, polled or not (sandbox seconds).
SEARCH_SECONDS = 600.0


@dataclass
class Search:
    batch_id: str
    business: Business
    polls_left: int
    last_poll: float
    created: float = 0.0

    def done(self, now: float) -> bool:
        return self.polls_left <= 0 or now - self.created >= SEARCH_SECONDS


@dataclass
class PatascoreState:
    wallet_credits: int = 1000
    searches: dict[str, Search] = field(default_factory=dict)
    ongoing: dict[str, str] = field(default_factory=dict)  # registration no -> batch id
    last_submit: dict[str, float] = field(default_factory=dict)
    submits: int = 0
    polls: int = 0
    next_id: int = 26

    def to_json(self) -> dict[str, Any]:
        return {"wallet_credits": self.wallet_credits, "submits": self.submits,
                "polls": self.polls, "ongoing": dict(self.ongoing)}


def book(state: SandboxState) -> PatascoreState:
    found: PatascoreState | None = state.extra.get(PROVIDER)
    if found is None:
        found = state.extra[PROVIDER] = PatascoreState()
    return found


def _msg(status: int, message: str, **extra: Any) -> Reply:
    return reply({"status": status, "message": message, **extra}, status)


FAULT_BODIES = {
    503: (503, "BRS systems are experiencing a downtime."),
    429: (429, "Too many requests: Please wait before retrying."),
    409: (409, "Request ongoing for this registration number."),
    403: (403, "Insufficient wallet balance"),
    500: (500, "Internal server error: Contact support@pezesha.freshdesk.com"),
}


def fault_reply(status: int) -> Reply:
    code, message = FAULT_BODIES.get(status, (status, "Error"))
    return _msg(code, message)


def _result(ps: PatascoreState, b: Business) -> Reply:
    ps.next_id += 1
    head = {"id": ps.next_id, "verified": "true" if b.verified else "false",
            "status": b.status, "registrationDate": b.registration_date,
            "registrationNo": b.registration_no, "businessName": b.name, "branch": None}
    tail = {"email": "hello@example.com", "phoneNumber": "+254712345678",
            "postalAddress": "P O BOX 68999 - 00622",
            "physicalAddress": "Kindaruma Road, Fl: 5, Room/Door: 502, NAIROBI"}
    if b.style == "arrays":
        data = {**head, "partners": json.loads(_SODAPOP_PARTNERS), **tail,
                "shareCapital": json.loads(_SODAPOP_CAPITAL), "encumbrances": []}
        return reply({"status": 200, "message": "Business verification data fetched "
                      "successfully", "data": data})
    if b.style == "escaped":
        data = {**head, "partners": _SODAPOP_PARTNERS, **tail,
                "shareCapital": _SODAPOP_CAPITAL, "encumbrances": "[]"}
        return reply({"status": 200, "message": "Business verification data fetched "
                      "successfully", "data": data})
    # Document 001 verbatim in shape: the arrays pasted inside "..." without escaping.
    inner = json.dumps({**head, **tail})[1:-1]
    body = ('{"status":200,"message":"Business verification data fetched successfully",'
            '"data":{' + inner + f',"partners": "{_SODAPOP_PARTNERS}",'
            f'"shareCapital": "{_SODAPOP_CAPITAL}","encumbrances": "[]"' + '}}')
    return Reply(200, body.encode())


def handle(state: SandboxState, req: Req) -> Reply:
    ps = book(state)
    if req.headers.get("authorization", "") != f"Bearer {API_KEY}":
        return _msg(401, "Unauthenticated")
    if req.method != "POST":
        return _msg(400, "Bad request")
    now = state.clock.now()
    if req.endpoint == "verification":
        return _submit(state, ps, req, now)
    if req.endpoint == "results":
        return _poll(ps, req, now)
    return _msg(404, "No data found for the requested identifier")


def _submit(state: SandboxState, ps: PatascoreState, req: Req, now: float) -> Reply:
    try:
        body = req.json()
    except ValueError:
        body = None
    reg = str((body or {}).get("registration_number", "") if isinstance(body, dict)
              else "").strip().upper()
    if not reg:
        return _msg(400, "Validation failed for one or more arguments",
                    errors=["registration_number: Registration number is mandatory"])
    last = ps.last_submit.get(reg)
    if last is not None and now - last < WINDOW:
        return fault_reply(429)
    ps.last_submit[reg] = now
    running = ps.searches.get(ps.ongoing.get(reg, ""))
    if running is not None and not running.done(now):
        return fault_reply(409)
    if running is not None:  # finished meanwhile: its result, no new search
        ps.ongoing.pop(reg, None)
        return _result(ps, running.business)
    if ps.wallet_credits <= 0:
        return fault_reply(403)
    business = REGISTRY.get(reg)
    ps.submits += 1
    if business is None:
        return _msg(404, "No data found for this business identifier")
    ps.wallet_credits -= 1
    polls = req.pending_polls if req.pending_polls is not None else business.pending_polls
    if polls > 0:
        batch = f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-4814-b494-{secrets.token_hex(6)}"
        ps.searches[batch] = Search(batch, business, polls, now, created=now)
        ps.ongoing[reg] = batch
        return _msg(202, "Search in progress. Please try again later",
                    data={"batch_id": batch})
    return _result(ps, business)


def _poll(ps: PatascoreState, req: Req, now: float) -> Reply:
    batch = req.query.get("batch_id", "").strip()
    if not batch:
        return _msg(400, "Validation failed for one or more arguments",
                    errors=["batch_id: Batch id is mandatory"])
    search = ps.searches.get(batch)
    if search is None:
        return _msg(404, "No data found for the requested identifier")
    if now - search.last_poll < WINDOW:
        return fault_reply(429)
    search.last_poll = now
    ps.polls += 1
    if not search.done(now):
        search.polls_left -= 1
        return _msg(202, "Search in progress. Please try again later",
                    data={"batch_id": batch})
    ps.ongoing.pop(search.business.registration_no, None)
    return _result(ps, search.business)
