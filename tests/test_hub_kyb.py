"""Merchant verification (KYB) in the hub against the Patascore sandbox over real HTTP,
on SQLite and on PostgreSQL: pending across a restart, every documented refusal,
several hubs at once."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from pydantic import SecretStr

from pos.hub.config import PatascoreSettings
from pos.hub.service import Hub
from pos.sandbox import patascore as sandbox_patascore
from tests.hub_support import StepClock, hub_settings

pytestmark = pytest.mark.timeout(120)


def make_hub(url: str, sb: Any, clock: StepClock, **kw: Any) -> Hub:
    ps = PatascoreSettings(base_url=sb.patascore_url,
                           api_key=SecretStr(sandbox_patascore.API_KEY), connect_timeout=1.0,
                           read_timeout=5.0, **kw)
    return Hub.open(hub_settings(url, patascore=ps), clock=clock)


def step(hub: Hub, sb: Any, clock: StepClock, seconds: float) -> int:
    """Let ``seconds`` pass on both clocks, then one pass of the hub's background work."""
    clock.advance(seconds)
    sb.clock.advance(seconds)
    return asyncio.run(once(hub))


async def once(hub: Hub) -> int:
    try:
        return int(await hub.kyb.run_once())
    finally:
        await hub.kyb.aclose()  # each asyncio.run has its own loop: a fresh client


def merchant(hub: Hub, mid: int = 1) -> dict[str, Any]:
    return hub.accounts.merchant(mid)


def test_pending_search_survives_a_restart_and_verifies(hub_url: str, sandbox: Any) -> None:
    clock = StepClock()
    hub = make_hub(hub_url, sandbox, clock)
    mid = hub.accounts.create_merchant("Sodapop", "pvt-fyuvqbqr")
    assert merchant(hub, mid)["kyb_status"] == "queued"
    assert step(hub, sandbox, clock, 0) == 1
    m = merchant(hub, mid)
    assert m["kyb_status"] == "pending" and m["kyb_batch_id"]
    batch = m["kyb_batch_id"]
    asyncio.run(hub.aclose())

    hub = make_hub(hub_url, sandbox, clock)  # the hub restarts: state is in the database
    assert step(hub, sandbox, clock, 30) == 0  # not due: inside the poll interval
    assert step(hub, sandbox, clock, 125) == 1  # polled once the window has passed
    assert merchant(hub, mid)["kyb_status"] == "pending"  # still searching
    assert step(hub, sandbox, clock, 150) == 1
    m = merchant(hub, mid)
    assert m["kyb_status"] == "verified" and m["kyb_batch_id"] is None
    assert (m["kyb_business_name"], m["kyb_registration_no"]) == ("Sodapop Inc",
                                                                  "PVT-FYUVQBQR")
    ps = sandbox_patascore.book(sandbox.state)
    assert ps.submits == 1 and ps.polls == 2 and batch not in ps.ongoing.values()
    # Enrolment is open now, and the terminal gets the verified header.
    shop = hub.accounts.shop_id(mid, None)
    out = hub.store.enrol(hub.accounts.create_code(mid, shop, "POS-001", "t"), "t")
    assert out["merchant"] == {"name": "Sodapop Inc", "registration_no": "PVT-FYUVQBQR",
                               "verified": True}
    asyncio.run(hub.aclose())


def test_a_lost_submit_answer_never_becomes_a_duplicate(hub_url: str, sandbox: Any) -> None:
    clock = StepClock()
    hub = make_hub(hub_url, sandbox, clock, retry_later=60)
    mid = hub.accounts.create_merchant("Sodapop", "PVT-FYUVQBQR")
    sandbox.faults.add(provider="patascore", endpoint="verification",
                       mode="drop_after_commit")  # the search starts, the answer is lost
    step(hub, sandbox, clock, 0)
    assert merchant(hub, mid)["kyb_status"] == "retry"
    step(hub, sandbox, clock, 61)  # due again, but still inside the 2-minute window
    ps = sandbox_patascore.book(sandbox.state)
    assert ps.submits == 1 and merchant(hub, mid)["kyb_status"] == "retry"
    step(hub, sandbox, clock, 65)  # past the window: asked again -> 409, keeps waiting
    m = merchant(hub, mid)
    assert m["kyb_status"] == "pending" and "ongoing" in m["kyb_message"].lower()
    for _ in range(6):  # the search completes at Patascore; asked again, its result
        step(hub, sandbox, clock, 130)
    m = merchant(hub, mid)
    assert m["kyb_status"] == "verified"
    assert ps.submits == 1  # one search in all: never a second one started
    asyncio.run(hub.aclose())


def test_brs_down_retries_later(hub_url: str, sandbox: Any) -> None:
    clock = StepClock()
    hub = make_hub(hub_url, sandbox, clock, retry_later=300)
    mid = hub.accounts.create_merchant("Duka Letu", "PVT-INSTANT1")
    sandbox.faults.add(provider="patascore", endpoint="verification", mode="http503")
    step(hub, sandbox, clock, 0)
    m = merchant(hub, mid)
    assert m["kyb_status"] == "retry" and "BRS" in m["kyb_message"]
    assert step(hub, sandbox, clock, 100) == 0
    step(hub, sandbox, clock, 250)
    assert merchant(hub, mid)["kyb_status"] == "verified"
    asyncio.run(hub.aclose())


def test_billing_and_final_refusals_wait_for_the_owner(hub_url: str, sandbox: Any) -> None:
    clock = StepClock()
    hub = make_hub(hub_url, sandbox, clock)
    ps = sandbox_patascore.book(sandbox.state)
    ps.wallet_credits = 0
    billing = hub.accounts.create_merchant("Duka Letu", "PVT-INSTANT1")
    gone = hub.accounts.create_merchant("Nowhere", "PVT-NOSUCH99")
    closed = hub.accounts.create_merchant("Closed", "PVT-REJECTED")
    step(hub, sandbox, clock, 0)
    m = merchant(hub, billing)
    assert m["kyb_status"] == "billing" and "billing problem" in m["kyb_message"]
    assert merchant(hub, gone)["kyb_status"] == "billing"
    ps.wallet_credits = 10  # topped up
    assert step(hub, sandbox, clock, 3600) == 0  # nothing retried by itself
    for mid in (billing, gone, closed):
        hub.kyb.requeue(mid)
    step(hub, sandbox, clock, 200)
    assert merchant(hub, billing)["kyb_status"] == "verified"
    assert merchant(hub, gone)["kyb_status"] == "not_found"
    assert merchant(hub, closed)["kyb_status"] == "rejected"
    asyncio.run(hub.aclose())


def test_a_wrong_api_key_is_an_error_not_a_retry(hub_url: str, sandbox: Any) -> None:
    clock = StepClock()
    ps = PatascoreSettings(base_url=sandbox.patascore_url, api_key=SecretStr("nope"))
    hub = Hub.open(hub_settings(hub_url, patascore=ps), clock=clock)
    mid = hub.accounts.create_merchant("Duka Letu", "PVT-INSTANT1")
    step(hub, sandbox, clock, 0)
    m = merchant(hub, mid)
    assert m["kyb_status"] == "error" and "API key" in m["kyb_message"]
    assert "nope" not in m["kyb_message"]
    asyncio.run(hub.aclose())


def test_two_hubs_submit_once(hub_url: str, sandbox: Any) -> None:
    clock = StepClock()
    hubs = [make_hub(hub_url, sandbox, clock), make_hub(hub_url, sandbox, clock)]
    hubs[0].accounts.create_merchant("Duka Letu", "PVT-INSTANT1")
    barrier = threading.Barrier(2)

    def run(h: Hub) -> None:
        barrier.wait()
        asyncio.run(once(h))

    threads = [threading.Thread(target=run, args=(h,)) for h in hubs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sandbox_patascore.book(sandbox.state).submits == 1
    assert merchant(hubs[0])["kyb_status"] == "verified"
    for h in hubs:
        asyncio.run(h.aclose())
