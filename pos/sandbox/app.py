"""One ASGI app: PawaCard under ``/pawacard/v3/``, Patasente under ``/patasente/phantom-api/``,
and the control endpoints under ``/_control/``.

The dispatch is a thin hand-written ASGI layer (Starlette's ``Request`` and
``Response`` for the control endpoints only): the simulators must answer
thousands of requests a second, and the fault modes need the raw ``send`` to
break a response half-way.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pos.sandbox import faults as faultmod
from pos.sandbox import particeep, patascore, patasente, pawacard
from pos.sandbox.faults import Fault, FaultError
from pos.sandbox.state import SandboxState
from pos.sandbox.urls import (
    CONTROL_PREFIX,
    PARTICEEP_PREFIX,
    PATASCORE_PREFIX,
    PATASENTE_PREFIX,
    PAWACARD_PREFIX,
)
from pos.sandbox.wire import Reply, Req

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


_PROVIDERS: dict[str, tuple[str, Callable[[SandboxState, Req], Reply]]] = {
    PAWACARD_PREFIX: (pawacard.PROVIDER, pawacard.handle),
    PATASENTE_PREFIX: (patasente.PROVIDER, patasente.handle),
    PATASCORE_PREFIX: (patascore.PROVIDER, patascore.handle),
    PARTICEEP_PREFIX: (particeep.PROVIDER, particeep.handle),
}


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send(send: Send, status: int, body: bytes, content_type: str = "application/json",
                extra: list[tuple[str, str]] | None = None) -> None:
    headers = [(b"content-type", content_type.encode()),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra or ()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SandboxApp:
    """The ASGI callable. ``latency`` seconds are added to every provider request."""

    def __init__(self, state: SandboxState, *, latency: float = 0.0) -> None:
        self.state = state
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # pragma: no cover - websockets are switched off
            return
        send = self._dated(send)
        path: str = scope["path"]
        for prefix, (provider, handler) in _PROVIDERS.items():
            if path.startswith(prefix):
                await self._provider(scope, receive, send, provider, handler, path[len(prefix):])
                return
        if path.startswith(CONTROL_PREFIX):
            response = await self._control(Request(scope, receive), path[len(CONTROL_PREFIX):])
            await response(scope, receive, send)
            return
        await _send(send, 404, b'{"error":"Not found"}')

    def _dated(self, send: Send) -> Send:
        """Add an HTTP ``Date`` header from the sandbox clock (doctor reads clock skew)."""

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"date" for k, _ in headers):
                    stamp = email.utils.formatdate(self.state.clock.now(), usegmt=True)
                    headers.append((b"date", stamp.encode("latin-1")))
                    message = {**message, "headers": headers}
            await send(message)

        return wrapped

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------ providers
    async def _provider(self, scope: Scope, receive: Receive, send: Send, provider: str,
                        handler: Callable[[SandboxState, Req], Reply], rest: str) -> None:
        state = self.state
        parts = [unquote(p) for p in rest.strip("/").split("/")] if rest.strip("/") else [""]
        endpoint, args = parts[0], parts[1:]
        method: str = scope["method"]
        body = await _read_body(receive)
        delay, fault = state.faults.take(provider, endpoint)
        delay += self.latency
        if delay > 0:
            await asyncio.sleep(delay)
        mode = fault.mode if fault else None
        # The log keeps the path only: Patasente sends PINs in the query string.
        log_path = scope["path"]

        if fault is not None and mode in faultmod.BEFORE_EFFECT:
            with state.lock:
                state.log_request(method, provider, endpoint, log_path, 0, mode)
            await self._fail_before(send, provider, fault)
            return

        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if body and headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            # Like the PHP backend behind the real API: form fields join the query
            # parameters (the client sends a large ID-document photo this way).
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            query = {**form, **query}
        req = Req(method, endpoint, args, query, headers, body)
        if fault is not None and mode == "pending":
            req.pending_polls = fault.polls
        skip_effect = fault is not None and mode in faultmod.GARBAGE and not fault.effect
        if skip_effect:
            reply = Reply(200, b"")
        else:
            with state.lock:
                reply = handler(state, req)
        with state.lock:
            state.log_request(method, provider, endpoint, log_path, reply.status, mode)

        if mode == "drop_after_commit":
            await self._drop_after(send, reply)
        elif mode == "html":
            await _send(send, 200, faultmod.HTML_PAGE, "text/html; charset=utf-8")
        elif mode == "empty":
            await _send(send, 200, b"")
        elif mode == "badjson":
            await _send(send, 200, faultmod.BAD_JSON)
        else:
            await _send(send, reply.status, reply.body, reply.content_type, reply.headers)

    @staticmethod
    async def _fail_before(send: Send, provider: str, fault: Fault) -> None:
        if fault.mode == "drop_before":
            if not await faultmod.cut_connection():
                raise ConnectionAbortedError("sandbox fault: drop_before")
            return
        if fault.mode == "http500" and provider == patascore.PROVIDER:
            r = patascore.fault_reply(500)
            await _send(send, r.status, r.body)
            return
        if fault.mode == "http500":
            if provider == patasente.PROVIDER:  # Laravel's answer
                await _send(send, 500, b'{"message":"Server Error"}')
            else:
                await _send(send, 500, b"<html><body><h1>500 Internal Server Error</h1>"
                                       b"</body></html>", "text/html")
            return
        status = {"http503": 503, "http403": 403, "http409": 409}.get(fault.mode, 429)
        if provider == patascore.PROVIDER:  # its own error envelope (documents 000 / 001)
            r = patascore.fault_reply(status)
            await _send(send, r.status, r.body, extra=[("retry-after",
                                                        faultmod.retry_after(fault))])
            return
        body = (b'{"message":"Service Unavailable"}' if status == 503
                else b'{"message":"Too Many Attempts."}')
        await _send(send, status, body, extra=[("retry-after", faultmod.retry_after(fault))])

    @staticmethod
    async def _drop_after(send: Send, reply: Reply) -> None:
        """Start the answer (status, Content-Length, part of the body), then cut."""
        body = reply.body or b"{}"
        headers = [(b"content-type", reply.content_type.encode()),
                   (b"content-length", str(len(body) + 64).encode())]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2],
                    "more_body": True})
        if not await faultmod.cut_connection():
            raise ConnectionAbortedError("sandbox fault: drop_after_commit")

    # -------------------------------------------------------------- control
    async def _control(self, request: Request, name: str) -> Response:
        state = self.state
        method = request.method
        name = name.strip("/")
        try:
            payload = await request.json() if method == "POST" and await request.body() else {}
        except json.JSONDecodeError:
            return JSONResponse({"error": "body must be JSON"}, 400)
        if not isinstance(payload, dict):
            return JSONResponse({"error": "body must be a JSON object"}, 400)
        if name == "state" and method == "GET":
            full = request.query_params.get("transactions", "1") not in ("0", "false", "no")
            return JSONResponse(state.snapshot(transactions=full))
        if name == "faults" and method == "POST":
            try:
                fault = state.faults.add(
                    provider=str(payload.get("provider", "*")),
                    endpoint=str(payload.get("endpoint", "*")),
                    mode=str(payload.get("mode", "")),
                    count=payload.get("count", 1),
                    seconds=float(payload.get("seconds", 0.0)),
                    polls=int(payload.get("polls", 2)),
                    effect=bool(payload.get("effect", True)),
                )
            except (FaultError, TypeError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, 400)
            return JSONResponse({"ok": True, "fault": fault.to_json(),
                                 "faults": state.faults.to_json()})
        if name == "faults" and method == "GET":
            return JSONResponse(state.faults.to_json())
        if name == "faults" and method == "DELETE":
            state.faults.clear()
            return JSONResponse({"ok": True, "faults": []})
        if name == "reset" and method == "POST":
            state.reset()
            return JSONResponse({"ok": True})
        if name == "clock" and method == "POST":
            try:
                now = state.clock.advance(float(payload.get("advance", 0)))
            except (TypeError, ValueError):
                return JSONResponse({"error": "advance must be a number of seconds"}, 400)
            return JSONResponse({"ok": True, "now": now, "offset": state.clock.offset})
        if name == "expire-tokens" and method == "POST":
            state.expire_tokens()
            return JSONResponse({"ok": True})
        return JSONResponse({"error": f"no control endpoint {method} /_control/{name}"}, 404)


def create_app(state: SandboxState | None = None, *, latency: float = 0.0) -> SandboxApp:
    """The sandbox as an ASGI app (mount it anywhere, or serve it with uvicorn)."""
    return SandboxApp(state or SandboxState(), latency=latency)
