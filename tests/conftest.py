"""Shared fixtures: the provider sandbox over real HTTP on 127.0.0.1.

- ``sandbox``: a fresh :class:`SandboxServer` per test (fresh state, no faults, clock
  at now; starting and stopping one takes about a millisecond).
- ``sandbox_session``: one server for the whole session, for tests that only read;
  its state is whatever earlier tests left (call ``sb.reset()`` if that matters).
- ``sandbox_env``: ``sandbox`` plus the ``SENTE_POS_*`` environment pointing a terminal
  at it, with ``SENTE_POS_HOME`` in a temporary directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pos.sandbox.server import SandboxServer


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(port=0) as sb:
        yield sb


@pytest.fixture(scope="session")
def sandbox_session() -> Iterator[SandboxServer]:
    with SandboxServer(port=0) as sb:
        yield sb


@pytest.fixture
def sandbox_env(sandbox: SandboxServer, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {**sandbox.env(), "SENTE_POS_HOME": str(tmp_path / "home")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
