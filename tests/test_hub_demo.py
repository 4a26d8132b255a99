"""``sente-pos demo`` with its back office: a local hub starts after the first paint,
its merchant verified by the Patascore sandbox, the demo terminal enrolled, and a sale
made at the counter shows on the dashboard within seconds."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from pos.hub.demo import OWNER
from pos.money import Money
from pos.sandbox import particeep
from screens.home import HomeScreen
from screens.signin import SignInScreen
from sente_pos.launch import demo_app
from tests.hub_support import signed_in_client
from tests.screens_support import screen_text, type_text, wait_for, wait_screen

pytestmark = pytest.mark.timeout(120)


def test_demo_counter_sales_reach_its_dashboard(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    home = tmp_path / "demo"
    ref: dict[str, Any] = {}

    async def drive(app: Any) -> None:
        sandbox = app._after_first_paint[0].__self__
        hub = app._after_first_paint[1].__self__
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_screen(pilot, SignInScreen)
            assert hub.url in screen_text(app).replace("\n", "")  # shown to the person
            await type_text(pilot, "amina")
            await pilot.press("enter", *"1111", "enter")
            await wait_screen(pilot, HomeScreen)
            await wait_for(pilot, lambda: (home / "hub.json").exists(), timeout=30,
                           what="the demo terminal enrolled with its hub")
            assert hub.error is None
            res = await app.terminal.sell_token("01451174955", Money(10000, "KES"), "Jane")
            assert res.status == "approved"
            ref["ref"] = res.ref
            ref["receipt"] = app.terminal.receipt(res.ref)
            client = signed_in_client(hub.url, OWNER)
            try:
                def today() -> str:
                    app.kick_sync()  # what every finished flow and the 15 s tick do
                    m = re.search(r'id="today-total">([^<]*)<', client.get("/").text)
                    return m.group(1) if m else ""

                await wait_for(pilot, lambda: today() == "1 sales · KES 100.00", timeout=30,
                               what="the sale on the dashboard")
                # The hub forwards the settled sale to the Particeep sandbox, and its first
                # background pass registered its webhook there (signed, through the API).
                book = particeep.book(sandbox.state)
                await wait_for(pilot, lambda: book.creates >= 1, timeout=30,
                               what="the sale forwarded to Particeep")
                assert book.webhooks["transaction_paid"] == hub.url + "webhooks/particeep"
                [sent] = book.transactions.values()
                assert sent["custom"]["ref"] == res.ref and sent["custom"]["terminal"] == \
                    "DEMO-01"
                overview = client.get("/").text
                assert 'data-terminal="DEMO-01"' in overview
                assert "verified · PVT-DEMO0001" in overview
                assert res.ref in client.get("/search", params={"q": res.ref}).text
            finally:
                client.close()

    with demo_app(home) as app:
        asyncio.run(drive(app))
    receipt = ref["receipt"]
    assert receipt.merchant_name == "Sente Demo Shop"
    assert receipt.merchant_registration == "PVT-DEMO0001"
