"""The dashboard over real HTTP, and in a real headless Chromium (the distribution's,
driven by selenium through /usr/bin/chromedriver) at a phone's size. On SQLite and on
PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pos.hub.server import HubServer
from tests.hub_support import OWNER, SUPERVISOR, click_to, seed_sales, signed_in_client

pytestmark = pytest.mark.timeout(180)
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@contextlib.contextmanager
def signed_in(server: Any, who: tuple[str, str] = OWNER) -> Iterator[httpx.Client]:
    client = signed_in_client(server.url, who)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def seeded(hub: Any) -> dict[str, Any]:
    return seed_sales(hub)


def test_pages_need_a_session_and_show_the_fleet(hub: Any, seeded: Any,
                                                 hub_server: Any) -> None:
    with httpx.Client(base_url=hub_server.url) as anon:
        r = anon.get("/sales")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/sales"
        assert anon.get("/export.csv").status_code == 303
    with signed_in(hub_server) as c:
        home = c.get("/")
        assert home.status_code == 200
        assert home.headers["content-security-policy"].startswith("default-src 'self'")
        text = home.text
        assert 'data-terminal="POS-001"' in text and 'data-terminal="POS-002"' in text
        assert "KES 123,456.00" in text  # the float POS-001 reported
        assert "verified · PVT-FYUVQBQR" in text
        sales = c.get("/sales").text
        assert "4 sales" in sales and "KES 850.00, UGX 5,000" in sales
        assert 'data-key="card"' in sales and 'data-key="cash"' in sales
        assert "300000000004" in c.get("/flagged").text
        assert "300000000001" not in c.get("/flagged").text
        z = c.get("/z").text
        assert "POS-001" in z and "KES 100.00" in z


def test_search_by_ref_card_meter_account(hub: Any, seeded: Any, hub_server: Any) -> None:
    with signed_in(hub_server) as c:
        def refs(q: str) -> set[str]:
            page = c.get("/search", params={"q": q}).text
            return set(re.findall(r">(30000000\d{4})<", page))

        assert refs("300000000003") == {"300000000003"}
        assert refs("5219") == {"300000000002", "300000000004"}
        assert refs("1613*****65219") == {"300000000002", "300000000004"}
        assert refs("01451174955") == {"300000000001"}
        assert refs("2233445566") == {"300000000003"}
        assert refs("nothing") == set()
        detail = c.get("/t/POS-001/300000000001").text
        assert "1234 1234 1234 1234 1234" in detail


def test_csv_export(hub: Any, seeded: Any, hub_server: Any) -> None:
    import csv
    import io

    with signed_in(hub_server) as c:
        r = c.get("/export.csv")
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert {row["ref"] for row in rows} == {"300000000001", "300000000002",
                                                "300000000003", "300000000004",
                                                "300000000101"}
        vend = next(row for row in rows if row["ref"] == "300000000001")
        assert (vend["amount"], vend["currency"], vend["meter"]) == ("100.00", "KES",
                                                                     "01451174955")
        only = list(csv.DictReader(io.StringIO(c.get("/export.csv?q=5219").text)))
        assert {row["ref"] for row in only} == {"300000000002", "300000000004"}


def test_a_supervisor_sees_one_shop(hub: Any, seeded: Any, hub_server: Any) -> None:
    with signed_in(hub_server, SUPERVISOR) as c:
        home = c.get("/").text
        assert 'data-terminal="POS-002"' in home and 'data-terminal="POS-001"' not in home
        assert "Nothing here." in c.get("/search", params={"q": "300000000001"}).text
        assert c.get("/t/POS-001/300000000001").status_code == 404
        assert "POS-001" not in c.get("/export.csv").text
        assert "1 sales" in c.get("/sales").text


def test_sessions_live_in_the_database(hub: Any, seeded: Any, hub_url: str) -> None:
    """Signed in on one hub process, the next request lands on another: still signed in."""
    from pos.hub.service import Hub
    from tests.hub_support import hub_settings

    other = Hub(hub_settings(hub_url))
    with HubServer(hub, background=False) as a, HubServer(other, background=False) as b:
        with signed_in(a) as client:
            cookies = dict(client.cookies)
            with httpx.Client(base_url=b.url, cookies=cookies) as c2:
                assert c2.get("/").status_code == 200
            client.post("/logout", data={"csrf": _csrf(client)})
        with httpx.Client(base_url=b.url, cookies=cookies) as c2:
            assert c2.get("/").status_code == 303
    asyncio.run(other.aclose())


def _csrf(client: httpx.Client) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
    assert m is not None
    return m.group(1)


def test_forms_need_the_csrf_token_and_codes_are_made(hub: Any, hub_server: Any) -> None:
    with signed_in(hub_server) as c:
        shop = hub.accounts.shop_id(hub.merchant_id, None)
        r = c.post("/terminals", data={"terminal": "POS-009", "shop": str(shop),
                                       "csrf": "forged"})
        assert r.status_code == 403
        r = c.post("/terminals", data={"terminal": "POS-009", "shop": str(shop),
                                       "csrf": _csrf(c)})
        m = re.search(r"POS-009: ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})", r.text)
        assert m is not None
        out = hub.store.enrol(m.group(1), "test")
        assert out["terminal_id"] == "POS-009"


def test_sign_in_is_rate_limited_across_hubs(hub: Any, hub_server: Any) -> None:
    with httpx.Client(base_url=hub_server.url) as c:
        statuses = []
        for _ in range(12):
            page = c.get("/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf is not None
            r = c.post("/login", data={"username": OWNER[0], "password": "wrong-pass",
                                       "csrf": csrf.group(1)})
            statuses.append(("Too many attempts" in r.text, r.status_code))
        assert statuses[0] == (False, 401)
        assert statuses[-1] == (True, 401)
        # Even the right password waits out the window now.
        page = c.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        r = c.post("/login", data={"username": OWNER[0], "password": OWNER[1],
                                   "csrf": csrf.group(1)})
        assert r.status_code == 401


# ------------------------------------------------------------------ browser
@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("chromium / chromium-driver not installed (.ci/run installs them)")
    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium fetch a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=390,844"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def test_dashboard_in_headless_chromium_on_a_phone(hub: Any, seeded: Any, hub_server: Any,
                                                   browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    d = browser

    def go(element: Any, url_part: str) -> None:
        click_to(d, element.click, url_part)

    d.get(hub_server.url + "sales")  # not signed in: sent to the sign-in page
    assert d.current_url.startswith(hub_server.url + "login")
    d.find_element(By.ID, "username").send_keys(OWNER[0])
    d.find_element(By.ID, "password").send_keys("not-the-password")
    go(d.find_element(By.ID, "sign-in"), "login")
    assert "Wrong user name or password" in d.find_element(By.ID, "login-error").text
    d.find_element(By.ID, "username").send_keys(OWNER[0])
    d.find_element(By.ID, "password").send_keys(OWNER[1])
    go(d.find_element(By.ID, "sign-in"), "/sales")
    assert d.current_url == hub_server.url + "sales"  # back where we were going
    assert d.find_element(By.ID, "sales-total").text.startswith("4 sales")
    bars = d.find_elements(By.CSS_SELECTOR, "#hourly-chart rect")
    assert len(bars) == 24
    assert sum(int(b.get_attribute("data-count")) for b in bars) == 4
    tall = [b for b in bars if int(b.get_attribute("data-count"))]
    assert tall and all(b.size["height"] > 0 for b in tall)  # the SVG really draws
    # A phone: nothing wider than the screen but the scrolling tables.
    width = d.execute_script("return document.documentElement.clientWidth")
    assert d.execute_script("return document.body.scrollWidth") <= width
    assert d.find_element(By.ID, "merchant-name").text == "Sodapop Inc"
    go(d.find_element(By.LINK_TEXT, "Overview"), "/")
    rows = d.find_elements(By.CSS_SELECTOR, "#terminals tbody tr")
    assert [r.get_attribute("data-terminal") for r in rows] == ["POS-001", "POS-002"]
    assert "KES 123,456.00" in rows[0].text
    go(d.find_element(By.LINK_TEXT, "Search"), "/search")
    d.find_element(By.ID, "q").send_keys("5219")
    go(d.find_element(By.ID, "search-go"), "q=5219")
    found = d.find_elements(By.CSS_SELECTOR, "table.txns tbody tr")
    assert len(found) == 2
    go(found[0].find_element(By.TAG_NAME, "a"), "/t/POS-001/")
    assert "Event trail" in d.page_source
    go(d.find_element(By.LINK_TEXT, "Flagged"), "/flagged")
    assert "300000000004" in d.find_element(By.CSS_SELECTOR, "table.txns").text
    d.save_screenshot(str(tmp_path / "flagged.png"))
    go(d.find_element(By.CSS_SELECTOR, "form.who button"), "/login")
    d.get(hub_server.url)
    assert d.current_url.startswith(hub_server.url + "login")


@pytest.mark.parametrize("target", ["//evil.example/", "/\\evil.example/", "https://evil.example/"])
def test_sign_in_never_redirects_off_site(hub: Any, hub_server: Any, target: str) -> None:
    with httpx.Client(base_url=hub_server.url) as c:
        page = c.get("/login", params={"next": target})
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        r = c.post("/login", params={"next": target},
                   data={"username": OWNER[0], "password": OWNER[1], "csrf": csrf.group(1)})
        assert r.status_code == 303 and r.headers["location"] == "/"
