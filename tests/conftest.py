"""Shared fixtures: the provider sandbox over real HTTP on 127.0.0.1.

- ``sandbox``: a fresh :class:`SandboxServer` per test (fresh state, no faults, clock
  at now; starting and stopping one takes about a millisecond). Server options come
  from a ``sandbox`` marker: ``pytest.mark.sandbox(throttle_seconds=0)``.
- ``sandbox_session``: one server for the whole session, for tests that only read;
  its state is whatever earlier tests left (call ``sb.reset()`` if that matters).
- ``sandbox_env``: ``sandbox`` plus the ``SENTE_POS_*`` environment pointing a terminal
  at it, with ``SENTE_POS_HOME`` in a temporary directory.
- ``term``: a counter terminal on ``sandbox`` with cashier ann (PIN 1111) signed in, and
  supervisor boss (PIN 8642) under ``pytest.mark.counter(supervisor=True)``. Modules
  with a terminal of their own define their own ``term``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pos.sandbox.server import SandboxServer
from tests.hub_support import hub, hub_server, hub_url, pg_url  # noqa: F401  (hub fixtures)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest tests first (``pytest.mark.slow``; the order is otherwise kept).

    pytest-xdist hands tests out in collection order, after the ``xdist_group`` units
    (largest first): a long test collected late starts late and the run waits for it
    alone at the end. Started first, the long ones overlap and the short tests fill the
    other workers around them. Every worker sorts the same way (a stable sort on the
    marker), so all collect the same list, as xdist requires."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _marker_options(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    marker = request.node.get_closest_marker(name)
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[SandboxServer]:
    with SandboxServer(port=0, **_marker_options(request, "sandbox")) as sb:
        yield sb


@pytest.fixture(scope="session")
def sandbox_session() -> Iterator[SandboxServer]:
    with SandboxServer(port=0) as sb:
        yield sb


@pytest.fixture
def sandbox_env(sandbox: SandboxServer, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    from tests.screens_support import FAST_RETRY_ENV

    env = {**sandbox.env(), **FAST_RETRY_ENV, "SENTE_POS_HOME": str(tmp_path / "home")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
async def term(request: pytest.FixtureRequest, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> AsyncIterator[Any]:
    from tests.screens_support import counter_terminal

    t = await counter_terminal(tmp_path, monkeypatch, sandbox,
                               **_marker_options(request, "counter"))
    yield t
    await t.aclose()
