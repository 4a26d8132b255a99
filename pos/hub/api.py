"""The hub's terminal API (``/api/v1/``: enrolment, upload, restore) and Particeep's
webhooks (``/webhooks/particeep``). JSON in, JSON out; a bad request is a 400 naming
what is wrong and stores nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pos.errors import InputError
from pos.hub.accounts import RateLimitExceeded
from pos.hub.service import Hub
from pos.hub.store import BadCredential, NotVerified
from pos.hub.wire import EnrolIn, UploadIn, errors_text

MAX_BODY = 8 * 1024 * 1024


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


async def blocking(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Database work off the event loop (the drivers block)."""
    return await asyncio.to_thread(fn, *args, **kw)


async def _json_body(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InputError(f"Body larger than {MAX_BODY} bytes")
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise InputError("The body must be JSON") from None


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status)


def terminal_routes(hub: Hub) -> list[Route]:
    async def api_ping(request: Request) -> Response:
        return JSONResponse({"ok": True, "service": "sente-pos hub"})

    async def api_enrol(request: Request) -> Response:
        try:
            body = EnrolIn.model_validate(await _json_body(request))
            out = await blocking(hub.store.enrol, body.code, client_address(request))
        except ValidationError as exc:
            return _error(400, errors_text(exc))
        except RateLimitExceeded as exc:
            return _error(429, exc.message)
        except NotVerified as exc:
            return _error(403, exc.message, reason="merchant_not_verified")
        except InputError as exc:
            return _error(400, exc.message)
        return JSONResponse(out, 201)

    def terminal_of(request: Request) -> Any:
        auth = request.headers.get("authorization", "")
        scheme, _, cred = auth.partition(" ")
        if scheme.lower() != "bearer":
            raise BadCredential("No terminal credential")
        return hub.store.authenticate(cred.strip())

    async def api_upload(request: Request) -> Response:
        try:
            term = await blocking(terminal_of, request)
            up = UploadIn.model_validate(await _json_body(request))
            out = await blocking(hub.store.ingest, term, up,
                                 max_items=hub.settings.upload_max_items)
        except BadCredential as exc:
            return _error(401, exc.message)
        except ValidationError as exc:
            return _error(400, errors_text(exc))
        except (InputError, ValueError) as exc:
            return _error(400, str(exc))
        return JSONResponse(out)

    async def api_restore(request: Request) -> Response:
        try:
            term = await blocking(terminal_of, request)
            limit = int(request.query_params.get("limit", "1000"))
            out = await blocking(hub.store.restore_page, term, request.path_params["part"],
                                 request.query_params.get("after") or None, limit)
        except BadCredential as exc:
            return _error(401, exc.message)
        except (InputError, ValueError) as exc:
            return _error(400, str(exc))
        return JSONResponse(out)

    async def webhook_particeep(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(413, "too large")
        outcome = await hub.forwarder.receive_webhook(dict(request.headers), body)
        return JSONResponse({"ok": outcome.accepted, "outcome": outcome.message},
                            outcome.status)

    return [
        Route("/api/v1/ping", api_ping),
        Route("/api/v1/enrol", api_enrol, methods=["POST"]),
        Route("/api/v1/upload", api_upload, methods=["POST"]),
        Route("/api/v1/restore/{part}", api_restore),
        Route("/webhooks/particeep", webhook_particeep, methods=["POST"]),
    ]
