"""What the hub's background workers share: the database, their provider's settings, the
clock, and a provider client built on first use (each pass may run on a new event loop
in tests, so :meth:`aclose` lets the next pass build a fresh one)."""

from __future__ import annotations

from typing import Any

from pos.hub.clock import Clock
from pos.hub.db import Database


class ProviderWorker:
    def __init__(self, db: Database, settings: Any, clock: Clock, *,
                 transport: Any = None) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self._transport = transport
        self._client: Any = None

    def make_client(self) -> Any:  # pragma: no cover - each worker builds its own
        raise NotImplementedError

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.make_client()
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
