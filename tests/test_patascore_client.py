"""The Patascore client (documents 000 / 001): every documented answer, parsed from the
documents' own examples and fetched from the sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from pos.hub.config import PatascoreSettings
from pos.providers.patascore import (
    KybStatus,
    PatascoreClient,
    json_list,
    loads_body,
    parse_answer,
)
from pos.sandbox import patascore as sandbox_patascore

# Document 001's 200 example, as printed (arrays pasted inside strings, quotes unescaped).
DOC_200 = '''{
    "status": 200,
    "message": "Business verification data fetched successfully",
    "data": {
        "id": 26,
        "verified": "true",
        "status": "registered",
        "registrationDate": "9 April 1998",
        "registrationNo": "PVT-FYUVQBQR",
        "businessName": "Sodapop Inc",
        "branch": null,
        "partners": "[
            {"type":"director_shareholder","name":"JANE DOE","idType":"citizen","idNumber":"67983412","shares":[{"shareCount":"100","nominalValue":null,"name":"ORDINARY"}]},
            {"type":"director_shareholder","name":"JOHN DOE","idType":"citizen","idNumber":"78653421","shares":[{"shareCount":"850","nominalValue":null,"name":"ORDINARY"}]},
            {"type":"director_shareholder","name":"kenya impact incubator limited","idType":"local_company","idNumber":"CPR/2015/652153","shares":[{"shareCount":"50","nominalValue":null,"name":"ORDINARY"}]}]",
        "email": "hello@sodapop.com",
        "phoneNumber": "+254712345678",
        "postalAddress": "P O BOX 68999 - 00622",
        "physicalAddress": "Sodapop Plaza, LR NO 312/17830 HSE NO 6 THOGOTO ROAD NAIROBI",
        "shareCapital": "[{"shareCount":1000,"nominalValue":1000.0,"name":"ORDINARY"}]",
        "encumbrances": "[]"
    }
}'''  # noqa: E501
DOC_202 = ('{"status": 202, "message": "Search in progress. Please try again later",'
           ' "data": {"batch_id": "afd91316-4132-4814-b494-b9361c8513r7"}}')


def test_document_200_example_is_read_despite_its_unescaped_arrays() -> None:
    a = parse_answer(200, loads_body(DOC_200))
    assert a.status == KybStatus.verified and a.final
    assert (a.business_name, a.registration_no) == ("Sodapop Inc", "PVT-FYUVQBQR")
    assert [p["name"] for p in a.partners] == ["JANE DOE", "JOHN DOE",
                                                "kenya impact incubator limited"]
    assert a.share_capital == [{"shareCount": 1000, "nominalValue": Decimal("1000.0"),
                                "name": "ORDINARY"}]
    assert a.encumbrances == []


def test_document_202_example_is_pending_with_its_batch() -> None:
    a = parse_answer(202, loads_body(DOC_202))
    assert a.status == KybStatus.pending and a.batch_id == "afd91316-4132-4814-b494-b9361c8513r7"
    # The same body under HTTP 200: the body's code decides.
    assert parse_answer(200, loads_body(DOC_202)).status == KybStatus.pending


@pytest.mark.parametrize(("http_status", "body", "status", "text"), [
    (400, {"status": 400, "message": "Validation failed for one or more arguments",
           "errors": ["channel: Channel is mandatory"]}, KybStatus.invalid,
     "channel: Channel is mandatory"),
    (400, {"status": 400, "message": "Bad request"}, KybStatus.invalid, "Bad request"),
    (401, {"status": 401, "message": "Unauthenticated"}, KybStatus.auth, "Unauthenticated"),
    (403, {"status": 403, "message": "Insufficient wallet balance"}, KybStatus.billing,
     "Insufficient wallet balance"),
    (404, {"status": 404, "message": "No data found for this business identifier"},
     KybStatus.not_found, "No data found"),
    (409, {"status": 409, "message": "Request ongoing for this registration number."},
     KybStatus.ongoing, "Request ongoing"),
    (429, {"status": 429, "message": "Too many requests: Please wait before retrying."},
     KybStatus.duplicate, "Too many requests"),
    (500, {"status": 500, "message": "Internal server error: Contact support@pezesha."
           "freshdesk.com"}, KybStatus.server, "Internal server error"),
    (503, {"status": 503, "message": "BRS systems are experiencing a downtime."},
     KybStatus.brs_down, "BRS systems"),
    # Document 001's generic shape: "status" as a string ("error code", or a code as text).
    (503, {"status": "error code", "message": "BRS systems are down."}, KybStatus.brs_down,
     "BRS"),
    (200, {"status": "404", "message": "No data found"}, KybStatus.not_found, "No data"),
])
def test_every_documented_error(http_status: int, body: dict[str, Any], status: KybStatus,
                                text: str) -> None:
    a = parse_answer(http_status, body)
    assert a.status == status
    assert text in a.message


def test_duplicate_window_defaults_to_two_minutes() -> None:
    assert parse_answer(429, {"status": 429}).retry_after == 120.0
    assert parse_answer(429, {"status": 429}, retry_after=30.0).retry_after == 30.0


@pytest.mark.parametrize("value", [
    '[{"name": "A"}]', [{"name": "A"}], {"name": "A"},
])
def test_json_lists_in_every_form(value: Any) -> None:
    assert json_list(value) == [{"name": "A"}]
    assert json_list("[]") == [] and json_list(None) == [] and json_list("") == []


@pytest.mark.parametrize("verified", ["true", True, "True"])
def test_verified_as_string_or_boolean(verified: Any) -> None:
    body = {"status": 200, "data": {"verified": verified, "businessName": "X"}}
    assert parse_answer(200, body).status == KybStatus.verified
    body["data"]["verified"] = "false"
    assert parse_answer(200, body).status == KybStatus.rejected


# ------------------------------------------------------------- over real HTTP
def settings(sb: Any, key: str = sandbox_patascore.API_KEY) -> PatascoreSettings:
    return PatascoreSettings(base_url=sb.patascore_url, api_key=SecretStr(key),
                             connect_timeout=1.0, read_timeout=5.0)


def ask(sb: Any, *calls: tuple[str, str], key: str = sandbox_patascore.API_KEY) -> list[Any]:
    async def go() -> list[Any]:
        async with PatascoreClient(settings(sb, key)) as client:
            out = []
            for method, arg in calls:
                out.append(await getattr(client, method)(arg))
            return out

    return asyncio.run(go())


def test_sandbox_verifies_at_once_in_both_string_and_array_forms(sandbox: Any) -> None:
    escaped, arrays = ask(sandbox, ("submit", "PVT-INSTANT1"), ("submit", "PVT-ARRAYS01"))
    for a, name in ((escaped, "Duka Letu Ltd"), (arrays, "Mama Mboga Traders")):
        assert a.status == KybStatus.verified and a.business_name == name
        assert len(a.partners) == 3 and a.partners[0]["shares"][0]["shareCount"] == "100"


def test_sandbox_pending_search_polled_past_the_duplicate_window(sandbox: Any) -> None:
    (first,) = ask(sandbox, ("submit", "PVT-FYUVQBQR"))
    assert first.status == KybStatus.pending and first.batch_id
    again, poll_now = ask(sandbox, ("submit", "PVT-FYUVQBQR"), ("results", first.batch_id))
    assert again.status == KybStatus.duplicate and again.retry_after is not None
    assert poll_now.status == KybStatus.duplicate  # a poll inside the window too
    sandbox.clock.advance(125)
    (still,) = ask(sandbox, ("submit", "PVT-FYUVQBQR"))
    assert still.status == KybStatus.ongoing  # never a second search
    sandbox.clock.advance(125)
    pending_poll, = ask(sandbox, ("results", first.batch_id))
    assert pending_poll.status == KybStatus.pending
    sandbox.clock.advance(125)
    (done,) = ask(sandbox, ("results", first.batch_id))
    assert done.status == KybStatus.verified  # document 001's exact shape, repaired
    assert done.registration_no == "PVT-FYUVQBQR" and len(done.partners) == 3
    assert sandbox_patascore.book(sandbox.state).submits == 1


def test_sandbox_refusals(sandbox: Any) -> None:
    rejected, missing, blank = ask(sandbox, ("submit", "PVT-REJECTED"),
                                   ("submit", "PVT-NOSUCH99"), ("submit", " "))
    assert rejected.status == KybStatus.rejected and rejected.company_status == "deregistered"
    assert missing.status == KybStatus.not_found
    assert blank.status == KybStatus.invalid and "mandatory" in blank.message
    (auth,) = ask(sandbox, ("submit", "PVT-INSTANT1"), key="wrong")
    assert auth.status == KybStatus.auth
    sandbox_patascore.book(sandbox.state).wallet_credits = 0
    (billing,) = ask(sandbox, ("submit", "PVT-ARRAYS01"))
    assert billing.status == KybStatus.billing and "wallet balance" in billing.message


@pytest.mark.parametrize(("mode", "status"), [
    ("http503", KybStatus.brs_down), ("http403", KybStatus.billing),
    ("http409", KybStatus.ongoing), ("http429", KybStatus.duplicate),
    ("http500", KybStatus.server), ("drop_before", KybStatus.server),
    ("html", KybStatus.server),
])
def test_sandbox_faults(sandbox: Any, mode: str, status: KybStatus) -> None:
    sandbox.faults.add(provider="patascore", endpoint="verification", mode=mode,
                       effect=False)
    (a,) = ask(sandbox, ("submit", "PVT-INSTANT1"))
    assert a.status == status
    assert not a.final
    (b,) = ask(sandbox, ("submit", "PVT-INSTANT1"))  # the fault is gone
    assert b.status in (KybStatus.verified, KybStatus.duplicate)


def test_the_api_key_never_shows(sandbox: Any) -> None:
    client = PatascoreClient(settings(sandbox))
    assert sandbox_patascore.API_KEY not in repr(client)
