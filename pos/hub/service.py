"""The hub as one object: settings, database, accounts, terminal store, dashboard
queries and the background work (KYB polling, Particeep forwarding).

Background work is claimed row by row with a lease in the database, so any number
of hub processes can run it side by side: each due item is worked on by one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pos.hub.accounts import Accounts
from pos.hub.clock import Clock, utcnow
from pos.hub.config import HubSettings
from pos.hub.dashboard import Dashboard
from pos.hub.db import Database
from pos.hub.store import HubStore

log = logging.getLogger(__name__)


class Hub:
    def __init__(self, settings: HubSettings, db: Database | None = None, *,
                 clock: Clock = utcnow, patascore_transport: Any = None,
                 particeep_transport: Any = None) -> None:
        self.settings = settings
        self.db = db or Database(settings.database_url())
        self.clock = clock
        self.accounts = Accounts(self.db, clock, session_hours=settings.session_hours,
                                 code_hours=settings.enrol_code_hours)
        self.store = HubStore(self.db, self.accounts, clock,
                              kyb_required=settings.patascore.enabled,
                              particeep=settings.particeep.enabled)
        self.dashboard = Dashboard(self.db, clock, settings.timezone)
        self._patascore_transport = patascore_transport
        self._particeep_transport = particeep_transport
        self._kyb: Any = None
        self._forwarder: Any = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, settings: HubSettings, **kw: Any) -> Hub:
        hub = cls(settings, **kw)
        hub.db.migrate()
        return hub

    # ------------------------------------------------------- background work
    @property
    def kyb(self) -> Any:
        if self._kyb is None:
            from pos.hub.kyb import KybWorker

            self._kyb = KybWorker(self.db, self.settings.patascore, self.clock,
                                  transport=self._patascore_transport)
        return self._kyb

    @property
    def forwarder(self) -> Any:
        if self._forwarder is None:
            from pos.hub.forward import ParticeepForwarder

            self._forwarder = ParticeepForwarder(self.db, self.settings.particeep, self.clock,
                                                 transport=self._particeep_transport)
        return self._forwarder

    async def work_once(self) -> dict[str, int]:
        """One pass of the background work; what it did."""
        done: dict[str, int] = {}
        if self.settings.patascore.enabled:
            done["kyb"] = await self.kyb.run_once()
        if self.settings.particeep.enabled:
            done["particeep"] = await self.forwarder.run_once()
        return done

    async def _loop(self) -> None:
        while True:
            try:
                await self.work_once()
            except Exception:  # one bad pass must not end the loop
                log.exception("hub background work")
            await asyncio.sleep(self.settings.worker_interval)

    def start_background(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for worker in (self._kyb, self._forwarder):
            if worker is not None:
                await worker.aclose()
        self.db.dispose()
