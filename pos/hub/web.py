"""The hub's HTTP face (Starlette): the terminal API and Particeep's webhooks
(:mod:`pos.hub.api`) and the dashboard (:mod:`pos.hub.pages`) in one ASGI app, whose
lifespan runs the background work (KYB polling, Particeep forwarding)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from pos.errors import PosError
from pos.hub.api import terminal_routes
from pos.hub.pages import dashboard_routes
from pos.hub.service import Hub

log = logging.getLogger(__name__)


def create_app(hub: Hub, *, background: bool = True) -> Starlette:
    """The ASGI app; ``background`` runs KYB polling and Particeep forwarding in it."""

    async def on_error(request: Request, exc: Exception) -> Response:
        log.exception("hub request %s", request.url.path)
        if request.url.path.startswith(("/api/", "/webhooks/")):
            return JSONResponse({"error": "hub error"}, 500)
        return PlainTextResponse("Something went wrong on the hub; it is in the hub's log.", 500)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if background:
            hub.start_background()
        yield
        await hub.aclose()

    return Starlette(routes=[*terminal_routes(hub), *dashboard_routes(hub)], lifespan=lifespan,
                     exception_handlers={Exception: on_error, PosError: on_error})
