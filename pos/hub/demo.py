"""The demo's back office: a local hub (SQLite in the demo's data directory) beside the
sandbox, its merchant verified by the Patascore sandbox, the demo terminal enrolled,
sales forwarded to the Particeep sandbox.

:meth:`DemoHub.reserve` binds the port at once (the URL goes into the sign-in hint and
costs no import); :meth:`DemoHub.start` runs after the counter's first paint, in a
thread, like the sandbox: the web stack and SQLAlchemy load there, never before the
first frame.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OWNER = ("owner", "demo-owner")
REGISTRATION = "PVT-DEMO0001"


class DemoHub:
    def __init__(self, home: Path, sandbox: Any, terminal_id: str) -> None:
        self.home = Path(home)
        self.sandbox = sandbox
        self.terminal_id = terminal_id
        self._sock: socket.socket | None = None
        self._server: Any = None
        self.error: str | None = None

    def reserve(self) -> DemoHub:
        """Bind 127.0.0.1 on a free port now (socket only: nothing else is imported)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self._sock = sock
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/" if self._sock else ""

    def hint(self) -> str:
        return f"Back office: {self.url} (sign in {OWNER[0]} / {OWNER[1]})."

    def settings(self) -> Any:
        from pydantic import SecretStr

        from pos.hub.config import HubSettings, ParticeepSettings, PatascoreSettings
        from pos.sandbox import particeep, patascore

        sb = self.sandbox
        return HubSettings(
            db_url=f"sqlite:///{self.home / 'hub.db'}", worker_interval=1.0,
            patascore=PatascoreSettings(base_url=sb.patascore_url,
                                        api_key=SecretStr(patascore.API_KEY),
                                        connect_timeout=2.0, read_timeout=10.0),
            particeep=ParticeepSettings(enabled=True, base_url=sb.particeep_url,
                                        api_key=particeep.API_KEY,
                                        api_secret=SecretStr(particeep.API_SECRET),
                                        webhook_url=self.url + "webhooks/particeep"))

    def start(self) -> None:
        """Open (or reopen) the hub, verify the merchant, enrol the terminal, serve."""
        try:
            self._start()
        except Exception as exc:  # the counter works without its back office
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("demo hub did not start")

    def _start(self) -> None:
        from pos import hubsync
        from pos.hub.server import HubServer
        from pos.hub.service import Hub
        from pos.sandbox import data

        hub = Hub.open(self.settings())
        self._server = HubServer(hub, sock=self._sock)
        if not hub.accounts.merchants():
            mid = hub.accounts.create_merchant(data.MERCHANT_NAME, REGISTRATION)
            hub.accounts.add_user(mid, *OWNER, "owner")
        mid = int(hub.accounts.merchants()[0]["id"])
        asyncio.run(self._verify(hub))
        self._server.start()  # its first background pass registers the webhook URL
        if hubsync.load_credential(self.home) is None:
            shop = hub.accounts.shop_id(mid, None)
            code = hub.accounts.create_code(mid, shop, self.terminal_id, "demo")
            asyncio.run(hubsync.enrol(self.home, self.url, code))

    @staticmethod
    async def _verify(hub: Any) -> None:
        try:
            await hub.kyb.run_once()
        finally:
            await hub.kyb.aclose()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()  # closes the socket too
        elif self._sock is not None:
            self._sock.close()  # reserved, never served
        self._sock = None
