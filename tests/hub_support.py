"""Fixtures of the back office (hub) tests: a hub database on SQLite and on PostgreSQL.

``hub_url`` is parametrized: every test using it runs on a fresh SQLite file and, when
``SENTE_POS_TEST_PG_URL`` is set (CI always sets it: ``.ci/run`` starts a PostgreSQL),
on that PostgreSQL database, emptied first.
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


def reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    if not PG_URL:
        pytest.skip("SENTE_POS_TEST_PG_URL is not set (CI sets it)")
    reset_postgres(PG_URL)
    return PG_URL


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
