"""Run the sandbox: in a background thread for tests and the demo, or in the foreground.

    with SandboxServer(port=0) as sb:
        sb.pawacard_url, sb.patasente_url, sb.state, sb.faults, sb.clock, sb.env()

``stop()`` then ``start()`` rebinds the same port with the same state: the
provider went down, then came back. While it is down the port stays bound but does not
listen (connections are refused, as by a host whose service is down), so no other
server on the machine -- a parallel test's -- can take it in between; leaving the
``with`` block releases it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pos.sandbox import data
from pos.sandbox.urls import PARTICEEP_PREFIX, PATASCORE_ROOT, PATASENTE_PREFIX, PAWACARD_PREFIX

# The web stack (uvicorn, starlette) and the simulators' state are imported when a
# server starts, not with this module: the demo binds its port and paints its first
# screen before serving.
if TYPE_CHECKING:
    import uvicorn

    from pos.sandbox.faults import FaultRegistry
    from pos.sandbox.state import SandboxClock, SandboxState

HOST = "127.0.0.1"
START_TIMEOUT = 10.0


@functools.cache
def sandbox_protocol() -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, subclassed so a fault can reach the connection's transport.

    Request tasks are created from ``data_received`` and copy the current
    context, so the transport set here is the one of the request's connection.
    """
    from pos.nodelay import nodelay_protocol
    from pos.sandbox.faults import CURRENT_TRANSPORT

    class SandboxProtocol(nodelay_protocol()):  # type: ignore[misc]
        def data_received(self, data: bytes) -> None:
            CURRENT_TRANSPORT.set(self.transport)
            super().data_received(data)

    return SandboxProtocol


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)  # connections queue from now on, before the loop serves them
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _hold(host: str, port: int) -> socket.socket | None:
    """The port bound without listening (a connection to it is refused); None if
    something else took it meanwhile (``start`` will then say so)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        return None
    return sock


class _QuietFaults(logging.Filter):
    """Drop uvicorn's error records for connections the sandbox cut on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, asyncio.CancelledError | ConnectionAbortedError)


def _config(app: Any, host: str, port: int) -> uvicorn.Config:
    import uvicorn

    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.WARNING)
    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietFaults) for f in error_log.filters):
        error_log.addFilter(_QuietFaults())
    logging.getLogger("uvicorn.access").disabled = True
    return uvicorn.Config(
        app, host=host, port=port, http=sandbox_protocol(), ws="none", lifespan="off",
        loop="asyncio", log_config=None, access_log=False, server_header=False,
        proxy_headers=False, interface="asgi3",
        # Longer than any client's keep-alive, so the client always closes an idle
        # connection first: no spurious "connection closed" on a reused socket.
        timeout_keep_alive=120, timeout_graceful_shutdown=1, backlog=1024,
    )


class SandboxServer:
    """Both simulated providers on one port of 127.0.0.1, served from a thread."""

    def __init__(self, port: int = 0, *, state: SandboxState | None = None,
                 throttle_seconds: float = 300.0, daily_limit: int | None = 5,
                 latency: float = 0.0, host: str = HOST) -> None:
        """``throttle_seconds``: one vend per meter in that many seconds (0: none);
        ``daily_limit``: vends per meter per day (None or 0: none). Both are set on
        the state, also on a ``state`` passed in; ``latency`` is added to every
        provider request."""
        self._state = state
        self._limits = (float(throttle_seconds), daily_limit)
        if state is not None:
            self._apply_limits(state)
        self.host = host
        self.port = port
        self.latency = latency
        self._app: Any = None
        self._sock: socket.socket | None = None
        #: While stopped after serving: the port, bound and not listening.
        self._held: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def _apply_limits(self, state: SandboxState) -> None:
        state.throttle_seconds, state.daily_limit = self._limits

    @property
    def state(self) -> SandboxState:
        """The simulators' data (demo cards, meters, floats, faults, clock)."""
        if self._state is None:
            from pos.sandbox.state import SandboxState

            self._state = SandboxState()
            self._apply_limits(self._state)
        return self._state

    @property
    def app(self) -> Any:
        """The ASGI app of both providers (built on first use: it imports the web stack)."""
        if self._app is None:
            from pos.sandbox.app import create_app

            self._app = create_app(self.state, latency=self.latency)
        return self._app

    # ------------------------------------------------------------------ urls
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def patasente_url(self) -> str:
        return self.base_url + PATASENTE_PREFIX

    @property
    def pawacard_url(self) -> str:
        return self.base_url + PAWACARD_PREFIX

    @property
    def patascore_url(self) -> str:
        """Patascore's API root (the back office's KYB)."""
        return self.base_url + PATASCORE_ROOT

    @property
    def particeep_url(self) -> str:
        """Particeep's API root including ``/v1/`` (the back office's signed exchange)."""
        return self.base_url + PARTICEEP_PREFIX

    @property
    def control_url(self) -> str:
        return self.base_url + "/_control/"

    @property
    def faults(self) -> FaultRegistry:
        return self.state.faults

    @property
    def clock(self) -> SandboxClock:
        return self.state.clock

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def env(self) -> dict[str, str]:
        """``SENTE_POS_*`` variables pointing a terminal at this sandbox."""
        return sandbox_env(self.patasente_url, self.pawacard_url)

    def reset(self) -> None:
        """Fresh demo data, no faults, clock back to now; restart if stopped."""
        self.state.reset()
        if not self.running:
            self.start()

    # ------------------------------------------------------------- lifecycle
    def reserve(self) -> SandboxServer:
        """Bind the port now, so the URLs are known and connections queue in the backlog
        until :meth:`start` serves them (the demo starts serving after its first paint)."""
        if self._sock is None and not self.running:
            self._release()
            self._sock = _bind(self.host, self.port)
            self.port = self._sock.getsockname()[1]
        return self

    def start(self) -> SandboxServer:
        """Start serving; returns once the socket accepts connections."""
        if self.running:
            return self
        self.reserve()
        sock, self._sock = self._sock, None
        assert sock is not None
        self._loop = loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error = None
        config = _config(self.app, self.host, self.port)
        thread = threading.Thread(target=self._serve, args=(loop, config, sock),
                                  name=f"sandbox:{self.port}", daemon=True)
        self._thread = thread
        thread.start()
        if not self._started.wait(START_TIMEOUT) or self._error is not None:
            self.close()
            raise RuntimeError(f"sandbox failed to start on port {self.port}: {self._error}")
        return self

    def _serve(self, loop: asyncio.AbstractEventLoop, config: uvicorn.Config,
               sock: socket.socket) -> None:
        """The server thread: uvicorn's HTTP protocol on our own event loop.

        Not ``uvicorn.Server``: its shutdown sleeps a fixed 0.1 s + a 0.1 s tick,
        which would cost 0.2 s per test; here stop() takes milliseconds.
        """
        from uvicorn.server import ServerState

        asyncio.set_event_loop(loop)
        server_state = ServerState()
        try:
            config.load()
            server_state.default_headers = list(config.encoded_headers)
            stopping = asyncio.Event()
            self._stopping = stopping

            def factory() -> asyncio.Protocol:
                return sandbox_protocol()(config=config,  # type: ignore[call-arg]
                                          server_state=server_state, app_state={}, _loop=loop)

            server = loop.run_until_complete(
                loop.create_server(factory, sock=sock, backlog=config.backlog))
        except BaseException as exc:
            self._error = exc
            sock.close()
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_until_complete(stopping.wait())
        finally:
            server.close()
            # The provider goes down: idle connections close, busy ones are cut.
            for conn in list(server_state.connections):
                transport = getattr(conn, "transport", None)
                if transport is not None:
                    transport.abort()
            tasks = list(server_state.tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            sock.close()

    def stop(self) -> None:
        """Stop serving (open connections are cut; new ones are refused). The port stays
        held for :meth:`start` until :meth:`close`."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if self._sock is not None:  # reserved, never served
            self._sock.close()
            self._sock = None
        if thread is None or loop is None:
            return
        if stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=10)
        self._thread = self._loop = self._stopping = None
        self._held = _hold(self.host, self.port)

    def close(self) -> None:
        """Stop serving and release the port."""
        self.stop()
        self._release()

    def _release(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SandboxServer {self.base_url} {'running' if self.running else 'stopped'}>"


def sandbox_env(patasente_url: str, pawacard_url: str) -> dict[str, str]:
    return {
        "SENTE_POS_PATASENTE__BASE_URL": patasente_url,
        "SENTE_POS_PATASENTE__USERNAME": data.MERCHANT_CODE,
        "SENTE_POS_PATASENTE__PASSWORD": data.MERCHANT_PASSWORD,
        "SENTE_POS_PAWACARD__BASE_URL": pawacard_url,
        "SENTE_POS_PAWACARD__USERNAME": data.VENDOR_USERNAME,
        "SENTE_POS_PAWACARD__PASSWORD": data.VENDOR_PASSWORD,
    }


def describe(sb_or_urls: SandboxServer | str | Mapping[str, str]) -> str:
    """What a person needs to use the sandbox: URLs, credentials, cards, meters.

    Accepts a server, its base URL, or a mapping with ``patasente_url`` and
    ``pawacard_url`` (and optionally ``base_url``). The demo credentials are
    printed on purpose: they are public test data, not secrets.
    """
    if isinstance(sb_or_urls, SandboxServer):
        base, pata, pawa = sb_or_urls.base_url, sb_or_urls.patasente_url, sb_or_urls.pawacard_url
    elif isinstance(sb_or_urls, str):
        base = sb_or_urls.rstrip("/")
        pata, pawa = base + PATASENTE_PREFIX, base + PAWACARD_PREFIX
    else:
        pata, pawa = sb_or_urls["patasente_url"], sb_or_urls["pawacard_url"]
        base = sb_or_urls.get("base_url") or pata.split(PATASENTE_PREFIX)[0]
    lines = [
        "Sente POS provider sandbox",
        f"  Patasente : {pata}",
        f"  PawaCard  : {pawa}",
        f"  Patascore : {base}{PATASCORE_ROOT}  (back office KYB; Bearer demo-patascore-key;"
        " PVT-FYUVQBQR pending then verified, PVT-INSTANT1 verified, PVT-REJECTED)",
        f"  Particeep : {base}{PARTICEEP_PREFIX}  (back office; document 004's public test"
        " key and secret)",
        f"  Control   : {base}/_control/state  (faults, reset, clock, expire-tokens)",
        "",
        "Credentials (demo data)",
        f"  Patasente merchant {data.MERCHANT_NAME}: username {data.MERCHANT_CODE} "
        f"(or {data.MERCHANT_EMAIL} / {data.MERCHANT_PHONE}), password {data.MERCHANT_PASSWORD}",
        f"  PawaCard vendor: username {data.VENDOR_USERNAME}, password {data.VENDOR_PASSWORD}",
        "",
        "Cards (QR payload | PIN | role)",
    ]
    for card in data.DEMO_CARDS:
        lines.append(f"  {card.name:<19} {card.payload:<52} PIN {card.pin or '-':<4}  "
                     f"{card.role}")
    lines += ["", f"  Sente card activation SMS code: {data.SMS_CODE}", "",
              "Meters and accounts"]
    lines += [f"  {name:<19} {role}" for name, role in data.METER_ROLES]
    lines += ["  any other Luhn-valid meter vends; any other account verifies", "",
              "Environment for a terminal:"]
    lines += [f"  {k}={v}" for k, v in sandbox_env(pata, pawa).items()]
    return "\n".join(lines)


def serve_forever(host: str = HOST, port: int = 8765, *, throttle_seconds: float = 300.0,
                  daily_limit: int | None = 5, latency: float = 0.0, quiet: bool = False,
                  faults: list[dict[str, Any]] | None = None, **opts: Any) -> None:
    """Serve in the foreground until Ctrl-C / SIGTERM (``sente-pos sandbox --port N``).

    Prints :func:`describe` once the port is bound unless ``quiet``. Extra
    ``opts`` go to :class:`SandboxState` (``vendor_float``, ``prepaid_float``).
    """
    from pos.sandbox.state import SandboxState

    state = SandboxState(throttle_seconds=throttle_seconds, daily_limit=daily_limit, **opts)
    for fault in faults or []:
        state.faults.add(**fault)
    import uvicorn

    from pos.sandbox.app import create_app

    app = create_app(state, latency=latency)
    sock = _bind(host, port)
    port = sock.getsockname()[1]
    if not quiet:
        print(describe(f"http://{host}:{port}"), flush=True)
    server = uvicorn.Server(_config(app, host, port))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m pos.sandbox.server --port 8765``: what ``sente-pos sandbox`` does."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pos.sandbox.server", description=__doc__)
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--throttle-seconds", type=float, default=300.0)
    parser.add_argument("--daily-limit", type=int, default=5, help="0: no limit")
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args(argv)
    serve_forever(args.host, args.port, throttle_seconds=args.throttle_seconds,
                  daily_limit=args.daily_limit or None, latency=args.latency)
    return 0


__all__ = ["SandboxServer", "describe", "main", "sandbox_env", "serve_forever"]

if __name__ == "__main__":
    raise SystemExit(main())
