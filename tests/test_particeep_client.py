"""Particeep (document 004): the signature, the envelope, pagination, quota headers and
custom fields against the sandbox over real HTTP on 127.0.0.1; the hub forwarding
settled sales and verifying webhooks (forged, replayed, stale refused), on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import threading
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from pos.errors import AuthError, RateLimited
from pos.hub import schema as t
from pos.hub.config import ParticeepSettings
from pos.hub.server import HubServer
from pos.hub.service import Hub
from pos.hub.wire import UploadIn
from pos.providers import http
from pos.providers.particeep import (
    ParticeepClient,
    ParticeepError,
    authorization,
    check_webhook,
    parse_stamp,
    signature,
    unwrap,
)
from pos.sandbox import particeep as sbp
from tests.hub_support import enrol_terminal, hub_settings, seeded_hub, txn_row

pytestmark = pytest.mark.timeout(120)
# Document 004's worked example: key, secret, DateTime; expected header computed by
# following its Java steps by hand (HMAC-SHA1, hex, lower case, base 64).
DOC_KEY, DOC_SECRET, DOC_STAMP = "1234567890", "0987654321", "2015-10-19T11:04:18Z"
DOC_HEX = "c80ea2b2c9f8e6e509783ee67b3eca0aa06acdd0"


def test_signature_follows_document_004() -> None:
    assert signature(DOC_SECRET, DOC_KEY, DOC_STAMP) == base64.b64encode(
        DOC_HEX.encode()).decode()
    assert authorization(DOC_SECRET, DOC_KEY, DOC_STAMP) == (
        "PTP:1234567890:YzgwZWEyYjJjOWY4ZTZlNTA5NzgzZWU2N2IzZWNhMGFhMDZhY2RkMA==")


def test_datetime_in_any_zone() -> None:
    utc = dt.datetime(2015, 8, 10, 8, 50, tzinfo=dt.UTC)
    assert parse_stamp("2015-08-10T08:50:00Z") == utc
    assert parse_stamp("2015-08-10T09:50:00+01") == utc  # document 004's "+01" form
    assert parse_stamp("2015-08-10T08:50:00") is None  # no zone: refused
    assert parse_stamp("yesterday") is None


@pytest.mark.parametrize("body", [
    {"error": {"hasError": True, "errors": [{"technicalCode": "error.user.none",
                                             "message": "error.user.none"}]}},
    {"hasError": True, "errors": [{"technicalCode": "error.user.none",
                                   "message": "error.user.none"}]},  # "Error format"
])
def test_both_error_shapes(body: dict[str, Any]) -> None:
    with pytest.raises(ParticeepError) as err:
        unwrap(400, body)
    assert err.value.codes == ["error.user.none"] and "error.user.none" in err.value.message


def test_result_with_or_without_the_envelope() -> None:
    entity = {"id": "06a4dc77", "custom": {"a": 1}}
    assert unwrap(200, {"error": {"hasError": False, "errors": []}, "result": entity,
                        "meta": {"version": "1"}}) == entity
    assert unwrap(200, entity) == entity  # document 004's by-id example has no envelope
    with pytest.raises(AuthError):
        unwrap(403, {"error": {"hasError": True, "errors": []}})


def psettings(sb: Any, secret: str = sbp.API_SECRET, **kw: Any) -> ParticeepSettings:
    return ParticeepSettings(enabled=True, base_url=sb.particeep_url, api_key=sbp.API_KEY,
                             api_secret=SecretStr(secret), connect_timeout=1.0,
                             read_timeout=5.0, **kw)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_signed_requests_custom_fields_pages_and_quota(sandbox: Any) -> None:
    async def go() -> None:
        async with ParticeepClient(psettings(sandbox)) as c:
            created = await c.create_transaction({"amount": 150050, "currency": "KES",
                                                  "custom": {"terminal": "POS-001",
                                                             "ref": "1", "token": "9" * 20}})
            back = await c.get_transaction(created["id"])
            assert back is not None and back["custom"] == {"terminal": "POS-001", "ref": "1",
                                                           "token": "9" * 20}
            assert c.quota is not None and c.quota.used == 2 and c.quota.limit == 10_000
            assert c.quota.endpoint == f"/v1/transaction/{created['id']}"
            for i in range(2, 76):
                await c.create_transaction({"amount": i, "currency": "KES",
                                            "custom": {"terminal": "POS-001", "ref": str(i)}})
            seen = [x async for x in c.pages("transactions/search", limit=30)]
            assert len(seen) == 75 and len({x["id"] for x in seen}) == 75
            assert (await c.find_transaction("POS-001", "74"))["amount"] == 74
            assert await c.find_transaction("POS-002", "74") is None
            assert await c.get_transaction("no-such-id") is None
            with pytest.raises(ParticeepError, match="custom must be a JSON object"):
                await c.create_transaction({"amount": 1, "currency": "KES", "custom": [1]})

    run(go())


def test_wrong_secret_is_403_and_a_quota_stops_requests(sandbox: Any) -> None:
    async def go() -> None:
        async with ParticeepClient(psettings(sandbox, secret="wrong")) as c:
            with pytest.raises(AuthError):
                await c.get_transaction("x")
        sbp.book(sandbox.state).quota_max = 3
        async with ParticeepClient(psettings(sandbox)) as c:
            await c.get_transaction("a")
            await c.get_transaction("b")
            await c.get_transaction("c")
            with pytest.raises(RateLimited, match="quota"):
                await c.get_transaction("d")  # refused here, nothing sent
        assert sbp.book(sandbox.state).quota_used == 3

    run(go())


def test_server_errors_are_transient(sandbox: Any) -> None:
    sandbox.faults.add(provider="particeep", endpoint="transaction", mode="http503")

    async def go() -> None:
        async with ParticeepClient(psettings(sandbox)) as c:
            with pytest.raises(http.Transient):
                await c.get_transaction("x")

    run(go())


def test_webhook_check_is_constant_time_and_bounded() -> None:
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    stamp = "2026-01-01T12:00:30Z"
    good = {"X-Particeep-Event": "transaction_paid", "DateTime": stamp,
            "Authorization": authorization(DOC_SECRET, DOC_KEY, stamp)}
    ok = check_webhook(good, b'{"id": "e1"}', key=DOC_KEY, secret=DOC_SECRET, now=now,
                       skew_seconds=300)
    assert ok.ok and ok.entity_id == "e1"
    forged = {**good, "Authorization": authorization("guess", DOC_KEY, stamp)}
    assert check_webhook(forged, b"{}", key=DOC_KEY, secret=DOC_SECRET, now=now,
                         skew_seconds=300).status == 401
    late = check_webhook(good, b"{}", key=DOC_KEY, secret=DOC_SECRET,
                         now=now + dt.timedelta(hours=1), skew_seconds=300)
    assert late.status == 400 and "too far" in late.reason
    assert check_webhook({}, b"{}", key=DOC_KEY, secret=DOC_SECRET, now=now,
                         skew_seconds=300).status == 400


# ------------------------------------------------------------- the hub's side
def particeep_hub(url: str, sb: Any) -> Any:
    return seeded_hub(url, particeep=psettings(sb))


def settle(hub: Any, terminal: Any, refs: list[str], seq: int = 1) -> None:
    at = hub.clock().astimezone(dt.UTC).isoformat()
    rows = [txn_row(ref, at, meter="01451174955", token="5" * 20) for ref in refs]
    rows.append(txn_row("999999999999", at, state="queued"))  # not settled: not forwarded
    hub.store.ingest(terminal, UploadIn.model_validate({"seq": seq, "txns": rows}),
                     max_items=100)


def outbox(hub: Any) -> dict[str, tuple[str, str | None]]:
    with hub.db.read() as conn:
        rows = conn.execute(select(t.particeep_outbox)).all()
    return {r.ref: (r.status, r.particeep_id) for r in rows}


def forward(hub: Any) -> int:
    async def go() -> int:
        try:
            return int(await hub.forwarder.run_once())
        finally:
            await hub.forwarder.aclose()

    return int(run(go()))


def test_settled_sales_are_forwarded_once_even_after_a_lost_answer(hub_url: str,
                                                                  sandbox: Any) -> None:
    hub = particeep_hub(hub_url, sandbox)
    term = enrol_terminal(hub, "POS-001")
    settle(hub, term, ["400000000001", "400000000002"])
    assert set(outbox(hub)) == {"400000000001", "400000000002"}
    sandbox.faults.add(provider="particeep", endpoint="transaction", mode="drop_after_commit")
    assert forward(hub) == 1  # one created and its answer lost; the other sent
    ps = sbp.book(sandbox.state)
    assert ps.creates == 2
    # The lost one is due later; force it due now.
    with hub.db.write() as conn:
        conn.execute(t.particeep_outbox.update().values(next_at="2000-01-01T00:00:00+00:00"))
    assert forward(hub) == 1  # found by its custom fields: not created again
    assert ps.creates == 2
    states = outbox(hub)
    assert {s for s, _ in states.values()} == {"sent"}
    entity = ps.transactions[states["400000000001"][1]]  # type: ignore[index]
    assert entity["custom"]["terminal"] == "POS-001" and entity["custom"]["ref"] == \
        "400000000001" and entity["custom"]["token"] == "5" * 20
    assert entity["amount"] == 10000 and entity["currency"] == "KES"
    settle(hub, term, ["400000000001"], seq=2)  # uploaded again: still once
    assert forward(hub) == 0 and ps.creates == 2
    asyncio.run(hub.aclose())


def test_a_basket_sale_is_forwarded_once_as_one_sale(hub_url: str, sandbox: Any) -> None:
    """A basket paid part by card, part in cash reaches Particeep as one sale with its
    lines and total; its card part (a card debit naming the sale) is not sent apart."""
    hub = particeep_hub(hub_url, sandbox)
    term = enrol_terminal(hub, "POS-001")
    at = hub.clock().astimezone(dt.UTC).isoformat()
    debit = txn_row("400000000010", at, kind="card_debit", minor=5000, currency="UGX",
                    tender="card", details={"sale_id": "S0001"})
    alone = txn_row("400000000011", at, kind="card_debit", minor=3000, currency="UGX",
                    tender="card")
    sale = {"id": "S0001", "shift_id": 1, "state": "done", "operator": "ann",
            "currency": "UGX", "subtotal_minor": 7000, "discount_minor": 0,
            "total_minor": 7000, "reason": "Sale: Sugar 1kg, Milk 500ml",
            "receipt_number": 12, "created_at": at, "completed_at": at,
            "lines": [{"line_no": 1, "name": "Sugar 1kg", "qty": 1, "unit_minor": 4500,
                       "discount_minor": 0},
                      {"line_no": 2, "name": "Milk 500ml", "qty": 1, "unit_minor": 2500,
                       "discount_minor": 0}],
            "tenders": [{"id": 1, "shift_id": 1, "tender": "card", "state": "paid",
                         "amount_minor": 5000, "tendered_minor": 5000, "change_minor": 0,
                         "txn_ref": "400000000010", "operator": "ann", "at": at},
                        {"id": 2, "shift_id": 1, "tender": "cash", "state": "paid",
                         "amount_minor": 2000, "tendered_minor": 2000, "change_minor": 0,
                         "operator": "ann", "at": at}]}
    hub.store.ingest(term, UploadIn.model_validate(
        {"seq": 1, "txns": [debit, alone], "sales": [sale]}), max_items=100)
    assert set(outbox(hub)) == {"S0001", "400000000011"}
    assert forward(hub) == 2
    ps = sbp.book(sandbox.state)
    (entity,) = [e for e in ps.transactions.values() if e["custom"]["ref"] == "S0001"]
    assert entity["amount"] == 7000 and entity["currency"] == "UGX"
    assert entity["custom"]["kind"] == "basket" and entity["custom"]["tender"] == "split"
    assert [ln["name"] for ln in entity["custom"]["lines"]] == ["Sugar 1kg", "Milk 500ml"]
    hub.store.ingest(term, UploadIn.model_validate(
        {"seq": 2, "txns": [debit], "sales": [sale]}), max_items=100)  # again: still once
    assert forward(hub) == 0 and ps.creates == 2
    asyncio.run(hub.aclose())


def test_webhooks_verified_re_read_and_replays_refused(hub_url: str, sandbox: Any) -> None:
    hub = particeep_hub(hub_url, sandbox)
    term = enrol_terminal(hub, "POS-001")
    settle(hub, term, ["400000000003"])
    forward(hub)
    ref_id = outbox(hub)["400000000003"][1]
    assert ref_id
    with HubServer(hub, background=False) as server:
        hub.forwarder.settings = hub.forwarder.settings.model_copy(
            update={"webhook_url": server.url + "webhooks/particeep"})
        assert run(register(hub)) == ["transaction_paid"]  # through the API, signed
        assert sbp.book(sandbox.state).webhooks == {
            "transaction_paid": server.url + "webhooks/particeep"}
        sbp.pay(sandbox.state, ref_id)
        [(event, status, text)] = sbp.deliver(sandbox.state, mode="bad_signature")
        assert (event, status) == ("transaction_paid", 401) and "bad signature" in text
        assert outbox(hub)["400000000003"][0] == "sent"
        sbp.pay(sandbox.state, ref_id)
        [(_, status, text)] = sbp.deliver(sandbox.state, mode="stale")
        assert status == 400 and "too far" in text
        sbp.pay(sandbox.state, ref_id)
        first, again = sbp.deliver(sandbox.state, mode="replay")
        assert first[1] == 200 and "400000000003 is paid" in first[2]
        assert again[1] == 409 and "replayed" in again[2]
        assert outbox(hub)["400000000003"][0] == "confirmed"
        # Valid headers, a body naming another entity: re-read, not ours, nothing done.
        sbp.pay(sandbox.state, ref_id)
        [(_, status, text)] = sbp.deliver(sandbox.state, mode="forged")
        assert status == 404 and "no such entity" in text
    with hub.db.read() as conn:
        outcomes = [r.outcome for r in conn.execute(select(t.webhook_seen))]
    assert any("is paid" in o for o in outcomes)
    asyncio.run(hub.aclose())


async def register(hub: Any) -> list[str]:
    try:
        return list(await hub.forwarder.ensure_webhooks())
    finally:
        await hub.forwarder.aclose()


def test_two_hubs_forward_each_sale_once(hub_url: str, sandbox: Any) -> None:
    hub = particeep_hub(hub_url, sandbox)
    other = Hub(hub_settings(hub_url, particeep=psettings(sandbox)))
    term = enrol_terminal(hub, "POS-001")
    settle(hub, term, [f"5000000000{i:02d}" for i in range(20)])
    barrier = threading.Barrier(2)

    def go(h: Any) -> None:
        barrier.wait()
        forward(h)

    threads = [threading.Thread(target=go, args=(h,)) for h in (hub, other)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sbp.book(sandbox.state).creates == 20
    assert {s for s, _ in outbox(hub).values()} == {"sent"}
    asyncio.run(other.aclose())
    asyncio.run(hub.aclose())
