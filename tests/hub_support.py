"""Fixtures of the back office (hub) tests: a hub database on SQLite and on PostgreSQL.

``hub_url`` is parametrized: every test using it runs on a fresh SQLite file and, when
``SENTE_POS_TEST_PG_URL`` is set (CI always sets it: ``.ci/run`` starts a PostgreSQL),
on that PostgreSQL database, emptied first. Under pytest-xdist each worker has a database
of its own (``<name>_gw0``, ``<name>_gw1``, ..., created beside the given one, so the
role needs CREATEDB): workers never empty each other's database or wait on each other's
migration lock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_URL = os.environ.get("SENTE_POS_TEST_PG_URL", "")
OWNER = ("olivia", "owner-pass-1")
SUPERVISOR = ("sam", "super-pass-1")
MERCHANT = ("Sodapop Inc", "PVT-FYUVQBQR")


def _engine(url: str) -> Any:
    from sqlalchemy import create_engine, make_url

    u = make_url(url)
    if u.get_driver_name() in ("", "psycopg2"):
        u = u.set(drivername="postgresql+psycopg")
    return create_engine(u)


def reset_postgres(url: str) -> None:
    engine = _engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


def worker_database(url: str, worker: str) -> str:
    """``url`` for this xdist worker: its own database beside the given one (created on
    first use); ``url`` itself when not running under xdist."""
    from sqlalchemy import make_url

    if not worker or worker == "master":
        return url
    base = make_url(url)
    name = f"{base.database}_{worker}"
    engine = _engine(url).execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        exists = conn.exec_driver_sql(
            "SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": name}).first()
        if not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """This worker's PostgreSQL database (skips when SENTE_POS_TEST_PG_URL is unset)."""
    if not PG_URL:
        pytest.skip("SENTE_POS_TEST_PG_URL is not set (CI sets it)")
    return worker_database(PG_URL, os.environ.get("PYTEST_XDIST_WORKER", ""))


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    url: str = request.getfixturevalue("pg_url")
    reset_postgres(url)
    return url


def hub_settings(url: str, **kw: Any) -> Any:
    from pos.hub.config import HubSettings, ParticeepSettings, PatascoreSettings

    kw.setdefault("patascore", PatascoreSettings(enabled=False))
    kw.setdefault("particeep", ParticeepSettings(enabled=False))
    return HubSettings(db_url=url, worker_interval=0.05, **kw)


def verified(hub: Any, merchant_id: int) -> None:
    """Mark a merchant verified as a completed Patascore search would."""
    from sqlalchemy import update

    from pos.hub import schema as t

    with hub.db.write() as conn:
        conn.execute(update(t.merchants).where(t.merchants.c.id == merchant_id).values(
            kyb_status="verified", kyb_business_name=MERCHANT[0],
            kyb_registration_no=MERCHANT[1]))


def seeded_hub(url: str, **kw: Any) -> Any:
    """A migrated hub with one verified merchant, its owner and a shop supervisor."""
    from pos.hub.service import Hub

    hub = Hub.open(hub_settings(url, **kw))
    mid = hub.accounts.create_merchant(*MERCHANT, kyb=False)
    verified(hub, mid)
    hub.accounts.add_user(mid, *OWNER, "owner")
    second = hub.accounts.add_shop(mid, "Market stall")
    hub.accounts.add_user(mid, *SUPERVISOR, "supervisor", second)
    hub.merchant_id = mid
    hub.second_shop = second
    return hub


@pytest.fixture
def hub(hub_url: str) -> Iterator[Any]:
    import asyncio

    h = seeded_hub(hub_url)
    yield h
    asyncio.run(h.aclose())


@pytest.fixture
def hub_server(hub: Any) -> Iterator[Any]:
    from pos.hub.server import HubServer

    with HubServer(hub, background=False) as server:
        yield server


def enrol_terminal(hub: Any, name: str, shop_id: int | None = None) -> Any:
    """A terminal enrolled directly through the store; its authenticated handle."""
    shop = shop_id or hub.accounts.shop_id(hub.merchant_id, None)
    code = hub.accounts.create_code(hub.merchant_id, shop, name, "test")
    return hub.store.authenticate(hub.store.enrol(code, "test")["credential"])


def txn_row(ref: str, at: str, *, kind: str = "vend", state: str = "done", minor: int = 10000,
            currency: str = "KES", tender: str = "cash", **extra: Any) -> dict[str, Any]:
    return {"ref": ref, "kind": kind, "state": state,
            "amount": {"minor": minor, "currency": currency}, "tender": tender,
            "operator": "ann", "created_at": at, "updated_at": at, **extra}


def seed_sales(hub: Any) -> dict[str, Any]:
    """Two terminals in two shops with sales today, a flagged debit and a Z report."""
    import datetime as dt

    from pos.hub.wire import UploadIn

    now = hub.clock().astimezone(dt.UTC).replace(microsecond=0)
    at = (now - dt.timedelta(minutes=5)).isoformat()
    t1 = enrol_terminal(hub, "POS-001")
    t2 = enrol_terminal(hub, "POS-002", hub.second_shop)
    rows1 = [
        txn_row("300000000001", at, meter="01451174955", token="1234" * 5),
        txn_row("300000000002", at, kind="card_debit", minor=5000, currency="UGX",
                tender="card", card_no="1613*****65219"),
        txn_row("300000000003", at, kind="postpaid", minor=25000, account="2233445566"),
        txn_row("300000000004", at, kind="card_debit", state="declined_offline", minor=7000,
                currency="UGX", tender="card", card_no="1613*****65219",
                last_error="Insufficient funds"),
    ]
    rows2 = [txn_row("300000000101", at, minor=50000, meter="37192345678")]
    z = {"number": 1, "created_at": at, "payload": {
        "by_kind": {"vend": {"count": 1, "totals": {"KES": 10000}}}, "closed_by": "boss",
        "override_by": None}}
    status = {"online": True, "link": "online", "unsynced_count": 1,
              "unsynced_totals": {"KES": 2500}, "flagged_count": 1,
              "floats": {"pawacard": {"minor": 12345600, "currency": "KES"}}, "receipt_no": 4}
    hub.store.ingest(t1, UploadIn.model_validate({"seq": 1, "txns": rows1, "z_reports": [z],
                                                  "status": status}), max_items=100)
    hub.store.ingest(t2, UploadIn.model_validate({"seq": 1, "txns": rows2}), max_items=100)
    return {"t1": t1, "t2": t2}


class StepClock:
    """A hub clock that tests move forward (the KYB worker's waits, the windows)."""

    def __init__(self) -> None:
        import datetime as dt

        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> Any:
        return self.now

    def advance(self, seconds: float) -> None:
        import datetime as dt

        self.now += dt.timedelta(seconds=seconds)


def signed_in_client(url: str, who: tuple[str, str] = OWNER) -> Any:
    """An httpx client signed in to the dashboard at ``url`` (close it when done)."""
    import re

    import httpx

    client = httpx.Client(base_url=url, timeout=30)
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    r = client.post("/login", data={"username": who[0], "password": who[1],
                                    "csrf": csrf.group(1)})
    assert r.status_code == 303, r.text
    return client


def click_to(driver: Any, click: Any, url_part: str, timeout: float = 20) -> None:
    """Click and wait for the page it leads to: a condition, not a sleep.

    The old page is marked with a flag on its ``window``; the new document has a new
    window object without it. Asking an element of the old page whether it is stale
    (selenium's ``staleness_of``) races the navigation: Chromium can answer "unhandled
    inspector error" (a 500) while the old execution context is being torn down, which
    failed CI once. Every WebDriver error during the wait is a "not yet" here.
    """
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.__sentePosOldPage = true;")
    click()

    def arrived(drv: Any) -> bool:
        state = drv.execute_script(
            "return window.__sentePosOldPage === true ? 'old' : document.readyState")
        return bool(state == "complete" and url_part in drv.current_url)

    WebDriverWait(driver, timeout, ignored_exceptions=(WebDriverException,)).until(arrived)
