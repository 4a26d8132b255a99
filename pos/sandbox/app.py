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
        with state.lock:
            state.in_flight += 1
        try:
            await self._provider_request(scope, receive, send, provider, handler, rest)
        finally:
            with state.lock:
                state.in_flight -= 1

    async def _provider_request(self, scope: Scope, receive: Receive, send: Send,
                                provider: str, handler: Callable[[SandboxState, Req], Reply],
                                rest: str) -> None:
        state = self.state
        parts = [unquote(p) for p in rest.strip("/").split("/")] if rest.strip("/") else [""]
        endpoint, args = parts[0], parts[1:]
        with state.lock:
            state.received_counts[f"{provider}/{endpoint}"] += 1
        method: str = scope["method"]
        body = await _read_body(receive)
        taken = state.faults.take(provider, endpoint)
        delay = taken.delay + self.latency
        if delay > 0:
            await asyncio.sleep(delay)
        fault = taken.failure
        mode = fault.mode if fault else None
        # The log keeps the path only: Patasente sends PINs in the query string.
        log_path = scope["path"]

        if fault is not None and not fault.after_commit:
            with state.lock:
                state.log_request(method, provider, endpoint, log_path, 0, mode)
            await self._fail(send, provider, fault, None)
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
        req = Req(method, endpoint, args, query, headers, body,
                  modifiers={name: f.seconds for name, f in taken.modifiers.items()})
        if fault is not None and mode == "pending":
            req.pending_polls = fault.polls
        if fault is not None and mode == "slow":
            await asyncio.sleep(fault.seconds)  # the provider is slow to do the work
        with state.lock:
            reply = handler(state, req)
            state.log_request(method, provider, endpoint, log_path, reply.status, mode)
        if fault is None or mode in ("pending", "slow"):
            await _send(send, reply.status, reply.body, reply.content_type, reply.headers)
        else:
            await self._fail(send, provider, fault, reply)

    async def _fail(self, send: Send, provider: str, fault: Fault, reply: Reply | None) -> None:
        """Answer as the fault says; ``reply`` is the provider's real answer when the
        fault strikes after the work was done (None: nothing was done)."""
        mode = fault.mode
        status_modes = {"http500": 500, "http503": 503, "http403": 403, "http409": 409,
                        "http429": 429}
        if provider == patascore.PROVIDER and mode in status_modes:
            r = patascore.fault_reply(status_modes[mode])  # its envelope (documents 000/001)
            await _send(send, r.status, r.body,
                        extra=[("retry-after", faultmod.retry_after(fault))])
            return
        if mode in ("http403", "http409"):
            await _send(send, status_modes[mode], b'{"message":"Refused"}')
            return
        if mode in ("drop", "drop_before", "drop_after_commit"):
            if reply is not None:
                await self._drop_after(send, reply)
            elif not await faultmod.cut_connection():
                raise ConnectionAbortedError("sandbox fault: drop")
        elif mode == "reset":
            if not await faultmod.cut_connection(reset=True):
                raise ConnectionAbortedError("sandbox fault: reset")
        elif mode in ("http500", "http502", "http504"):
            status = int(mode[4:])
            if status == 500 and provider == patasente.PROVIDER:  # Laravel's answer
                await _send(send, 500, b'{"message":"Server Error"}')
            else:
                title = {500: "500 Internal Server Error", 502: "502 Bad Gateway",
                         504: "504 Gateway Time-out"}[status].encode()
                await _send(send, status, b"<html><head><title>" + title + b"</title></head>"
                            b"<body><center><h1>" + title + b"</h1></center><hr><center>nginx"
                            b"</center></body></html>", "text/html")
        elif mode in ("http503", "http429"):
            status = 503 if mode == "http503" else 429
            body = (b'{"message":"Service Unavailable"}' if status == 503
                    else b'{"message":"Too Many Attempts."}')
            await _send(send, status, body, extra=[("retry-after", faultmod.retry_after(fault))])
        elif mode == "redirect":
            await _send(send, 302, faultmod.PORTAL_PAGE, "text/html",
                        extra=[("location", "http://10.0.0.1/login?redirect=provider")])
        elif mode == "http4xx":
            await _send(send, 404, b"<html><body><h1>Not Found</h1></body></html>", "text/html")
        elif mode == "html":
            await _send(send, 200, faultmod.HTML_PAGE, "text/html; charset=utf-8")
        elif mode == "empty":
            await _send(send, 200, b"")
        elif mode == "badjson":
            await _send(send, 200, faultmod.BAD_JSON)
        elif mode == "trickle":
            await self._trickle(send, reply, fault.seconds)
        elif mode == "huge":
            await self._huge(send, fault.size)
        elif mode == "hang":
            await _until_disconnected(3600.0)
        elif mode in faultmod.PAWA_ANSWER_MODES:
            await _send(send, 200, _odd_answer(mode, reply))
        else:  # pragma: no cover - FaultRegistry.add validates modes
            raise AssertionError(mode)

    @staticmethod
    async def _trickle(send: Send, reply: Reply | None, seconds: float) -> None:
        """Headers at once, then the body a byte at a time: never done in a deadline."""
        body = (reply.body if reply is not None else b"{}") + b" " * 4096
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        for i in range(len(body)):
            if _disconnected():
                return
            await send({"type": "http.response.body", "body": body[i:i + 1],
                        "more_body": i + 1 < len(body)})
            await asyncio.sleep(seconds)

    @staticmethod
    async def _huge(send: Send, size: int) -> None:
        """A body of ``size`` bytes, made as it is sent (never held in memory)."""
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(size).encode())]})
        chunk = b" " * 65536
        sent = 0
        while sent < size and not _disconnected():
            part = chunk[: min(len(chunk), size - sent)]
            sent += len(part)
            await send({"type": "http.response.body", "body": part, "more_body": sent < size})
            await asyncio.sleep(0)

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
                    effect=(None if payload.get("effect") is None
                            else bool(payload.get("effect"))),
                    when=payload.get("when"),
                    size=int(payload.get("size", 300_000_000)),
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


def _disconnected() -> bool:
    transport = faultmod.CURRENT_TRANSPORT.get()
    return transport is None or transport.is_closing()


async def _until_disconnected(limit: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not _disconnected() and loop.time() < end:
        await asyncio.sleep(0.05)


#: 5,000 digits: past Python's int-from-text guard (4,300), far past any id.
_LONG_NUMBER = "9" * 5000
_NESTING = 100_000


def _odd_answer(mode: str, reply: Reply | None) -> bytes:
    """PawaCard's answer made odd but valid JSON (or the elec100 "fetch again" answer)."""
    if mode == "elec100":
        return json.dumps({"status": 1, "msg": pawacard.MSG_TIMEOUT,
                           "code": "elec100"}).encode()
    if mode == "nested":
        return b"[" * _NESTING + (reply.body if reply else b"{}") + b"]" * _NESTING
    try:
        data = json.loads(reply.body) if reply is not None else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {"value": data}
    target = data["transaction"] if isinstance(data.get("transaction"), dict) else data
    target["totalAmount" if mode == "odd_total" else "transactionId"] = "@ODD@"
    literal = "1e999999" if mode == "odd_total" else _LONG_NUMBER
    return json.dumps(data).replace('"@ODD@"', literal).encode()

def create_app(state: SandboxState | None = None, *, latency: float = 0.0) -> SandboxApp:
    """The sandbox as an ASGI app (mount it anywhere, or serve it with uvicorn)."""
    return SandboxApp(state or SandboxState(), latency=latency)
