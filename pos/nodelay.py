"""uvicorn's h11 protocol with ``TCP_NODELAY``, for the servers we run ourselves (the
provider sandbox, the hub): an answer's headers and body leave in two writes, and
without it the second waits for the client's delayed ACK (40 ms a request on Linux)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket


@functools.cache
def nodelay_protocol() -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class NoDelayProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().connection_made(transport)

    return NoDelayProtocol
