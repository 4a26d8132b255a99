"""Serve the hub: in the foreground (``sente-pos hub``) or from a thread (tests, the demo)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

from pos.hub.config import HubSettings
from pos.nodelay import nodelay_protocol

START_TIMEOUT = 30.0


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def _uvicorn_config(app: Any, host: str, port: int) -> Any:
    import uvicorn

    logging.getLogger("uvicorn.access").disabled = True
    return uvicorn.Config(app, host=host, port=port, lifespan="on", log_config=None,
                          http=nodelay_protocol(),
                          access_log=False, server_header=False, proxy_headers=False,
                          ws="none", timeout_keep_alive=120, timeout_graceful_shutdown=2)


class HubServer:
    """The hub's web app on ``host:port`` from a daemon thread; ``port=0`` picks one."""

    def __init__(self, hub: Any, *, host: str = "127.0.0.1", port: int = 0,
                 background: bool = True, sock: socket.socket | None = None) -> None:
        """``sock``: a socket already bound and listening (the demo binds one before its
        first paint, without importing this module)."""
        self.hub = hub
        self.host = host
        self.port = sock.getsockname()[1] if sock is not None else port
        self.background = background
        self._sock: socket.socket | None = sock
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def reserve(self) -> HubServer:
        """Bind now (the URL is known; connections wait in the backlog until start())."""
        if self._sock is None:
            self._sock = _bind(self.host, self.port)
            self.port = self._sock.getsockname()[1]
        return self

    def start(self) -> HubServer:
        import uvicorn

        from pos.hub.web import create_app

        self.reserve()
        app = create_app(self.hub, background=self.background)
        server = uvicorn.Server(_uvicorn_config(app, self.host, self.port))
        self._server = server
        sock = self._sock
        assert sock is not None

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(server.serve(sockets=[sock]))
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"hub:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)  # uvicorn sets ``started`` from its own thread
        if not server.started:
            raise RuntimeError(f"the hub did not start on port {self.port}")
        return self

    def stop(self) -> None:
        """Stop serving (or release a port reserved and never served)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(settings: HubSettings) -> None:
    """``sente-pos hub``: migrate, then serve until Ctrl-C / SIGTERM."""
    import uvicorn

    from pos.hub.service import Hub
    from pos.hub.web import create_app

    hub = Hub.open(settings)
    sock = _bind(settings.host, settings.port)
    print(f"Sente POS hub on http://{settings.host}:{sock.getsockname()[1]}/ "
          f"(database {hub.db!r})", flush=True)
    server = uvicorn.Server(_uvicorn_config(create_app(hub), settings.host, settings.port))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
