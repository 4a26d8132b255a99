"""The hub's HTTP face (Starlette): the terminal API under ``/api/v1/``, Particeep's
webhooks under ``/webhooks/``, and the dashboard (server-rendered Jinja2 pages, no
build step, laid out for a phone first).

Sessions live in the database (see :mod:`pos.hub.accounts`): the cookie carries a
random token, the database its hash. Every form that changes something carries the
session's CSRF token; the sign-in form a double-submit cookie.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from pos.errors import InputError, PosError
from pos.hub.accounts import AuthFailed, RateLimitExceeded, Scope, User, csrf_ok
from pos.hub.service import Hub
from pos.hub.store import BadCredential, NotVerified
from pos.hub.wire import EnrolIn, UploadIn, errors_text
from pos.receipts import token_groups

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
COOKIE = "sente_hub"
LOGIN_COOKIE = "sente_hub_login"
MAX_BODY = 8 * 1024 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
Handler = Callable[[Request], Awaitable[Response]]


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


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


def create_app(hub: Hub, *, background: bool = True) -> Starlette:
    """The ASGI app; ``background`` runs KYB polling and Particeep forwarding in it."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["when"] = _when(hub)
    templates.env.filters["token"] = lambda tok: " ".join(token_groups(str(tok or "")))

    async def blocking(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Database work off the event loop (the driver blocks)."""
        return await asyncio.to_thread(fn, *args, **kw)

    # ----------------------------------------------------------- terminal API
    async def api_ping(request: Request) -> Response:
        return JSONResponse({"ok": True, "service": "sente-pos hub"})

    async def api_enrol(request: Request) -> Response:
        try:
            body = EnrolIn.model_validate(await _json_body(request))
            out = await blocking(hub.store.enrol, body.code, _client(request))
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

    # -------------------------------------------------------------- dashboard
    def page(request: Request, name: str, user: User | None, status: int = 200,
             **ctx: Any) -> Response:
        merchant = getattr(request.state, "merchant", None)
        resp = templates.TemplateResponse(request, name, {"user": user, "m": merchant, **ctx},
                                          status_code=status)
        resp.headers.update(SECURITY_HEADERS)
        return resp

    def signed_in(handler: Callable[[Request, User], Awaitable[Response]]) -> Handler:
        async def wrapped(request: Request) -> Response:
            user = await blocking(hub.accounts.session_user, request.cookies.get(COOKIE))
            if user is None:
                return RedirectResponse("/login?next=" + request.url.path, 303)
            request.state.merchant = await blocking(hub.accounts.merchant, user.merchant_id)
            if request.method == "POST":
                form = await request.form()
                if not csrf_ok(user, str(form.get("csrf", ""))):
                    return PlainTextResponse("Form expired: reload the page", 403)
                request.state.form = form
            return await handler(request, user)

        return wrapped

    async def login(request: Request) -> Response:
        nxt = request.query_params.get("next", "/")
        # Only a path on this site: "//host" and "/\host" would leave it (open redirect).
        nxt = nxt if re.fullmatch(r"/(?![/\\])[^\s\\]*", nxt) else "/"
        if request.method == "GET":
            token = secrets.token_urlsafe(16)
            resp = page(request, "login.html", None, login_csrf=token, next=nxt, error=None)
            resp.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                            secure=hub.settings.cookie_secure)
            return resp
        form = await request.form()
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        sent = str(form.get("csrf", ""))
        error = None
        if not cookie or not secrets.compare_digest(cookie, sent):
            error = "The sign-in form expired: try again"
        else:
            try:
                _, token = await blocking(hub.accounts.sign_in, str(form.get("username", "")),
                                          str(form.get("password", "")), _client(request))
            except (AuthFailed, RateLimitExceeded) as exc:
                error = exc.message
            else:
                resp = RedirectResponse(nxt, 303)
                resp.set_cookie(COOKIE, token, httponly=True, samesite="lax",
                                secure=hub.settings.cookie_secure,
                                max_age=int(hub.settings.session_hours * 3600))
                resp.delete_cookie(LOGIN_COOKIE)
                return resp
        token = secrets.token_urlsafe(16)
        resp = page(request, "login.html", None, 401, login_csrf=token, next=nxt, error=error)
        resp.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                        secure=hub.settings.cookie_secure)
        return resp

    @signed_in
    async def logout(request: Request, user: User) -> Response:
        await blocking(hub.accounts.sign_out, request.cookies.get(COOKIE))
        resp = RedirectResponse("/login", 303)
        resp.delete_cookie(COOKIE)
        return resp

    @signed_in
    async def overview(request: Request, user: User) -> Response:
        scope = Scope.of(user)
        terms = await blocking(hub.dashboard.terminals, scope)
        flagged = await blocking(hub.dashboard.flagged, scope, 20)
        sales = await blocking(hub.dashboard.sales, scope)
        return page(request, "overview.html", user, terminals=terms, flagged=flagged,
                    sales=sales, nav="overview")

    @signed_in
    async def flagged_page(request: Request, user: User) -> Response:
        rows = await blocking(hub.dashboard.flagged, Scope.of(user))
        return page(request, "flagged.html", user, rows=rows, nav="flagged")

    @signed_in
    async def sales_page(request: Request, user: User) -> Response:
        day = _day(request.query_params.get("day"))
        sales = await blocking(hub.dashboard.sales, Scope.of(user), day)
        return page(request, "sales.html", user, sales=sales, nav="sales")

    @signed_in
    async def z_page(request: Request, user: User) -> Response:
        rows = await blocking(hub.dashboard.z_reports, Scope.of(user))
        return page(request, "z.html", user, rows=rows, nav="z")

    @signed_in
    async def search_page(request: Request, user: User) -> Response:
        q = request.query_params.get("q", "").strip()[:64]
        rows = await blocking(hub.dashboard.search, Scope.of(user), q) if q else []
        return page(request, "search.html", user, q=q, rows=rows, nav="search")

    @signed_in
    async def txn_page(request: Request, user: User) -> Response:
        row = await blocking(hub.dashboard.detail, Scope.of(user),
                             request.path_params["terminal"], request.path_params["ref"])
        if row is None:
            return page(request, "message.html", user, 404, title="Not found",
                        message="No such transaction in your shops.")
        return page(request, "txn.html", user, t=row, nav="search")

    @signed_in
    async def export_csv(request: Request, user: User) -> Response:
        q = request.query_params.get("q", "").strip()[:64] or None
        day = _day(request.query_params.get("day")) if request.query_params.get("day") else None
        if q is None and day is None:
            day = hub.dashboard.today()
        rows = hub.dashboard.export_rows(Scope.of(user), day=day, text=q)

        async def stream() -> AsyncIterator[str]:
            it = iter(rows)
            while True:
                chunk = await asyncio.to_thread(_csv_chunk, it)
                if not chunk:
                    return
                yield chunk

        name = f"sales-{day.isoformat() if day else 'search'}.csv"
        return StreamingResponse(stream(), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{name}"', **SECURITY_HEADERS})

    @signed_in
    async def terminals_page(request: Request, user: User) -> Response:
        message = error = None
        shops = await blocking(hub.accounts.shops, user.merchant_id)
        if not user.is_owner:
            shops = [s for s in shops if s["id"] == user.shop_id]
        if request.method == "POST":
            form = request.state.form
            try:
                shop_id = int(str(form.get("shop", "0")))
                if shop_id not in {s["id"] for s in shops}:
                    raise InputError("Choose one of your shops")
                code = await blocking(hub.accounts.create_code, user.merchant_id, shop_id,
                                      str(form.get("terminal", "")), user.username)
                message = (f"One-time code for {form.get('terminal')}: {code} — on the "
                           f"terminal run: sente-pos hub enrol {request.base_url} {code}")
            except (InputError, ValueError) as exc:
                error = getattr(exc, "message", str(exc))
        codes = await blocking(hub.accounts.open_codes, user.merchant_id,
                               None if user.is_owner else user.shop_id)
        terms = await blocking(hub.dashboard.terminals, Scope.of(user))
        return page(request, "terminals.html", user, shops=shops, codes=codes,
                    terminals=terms, message=message, error=error, nav="terminals")

    @signed_in
    async def merchant_page(request: Request, user: User) -> Response:
        if request.method == "POST" and user.is_owner and hub.settings.patascore.enabled:
            await blocking(hub.kyb.requeue, user.merchant_id)
        merchant = await blocking(hub.accounts.merchant, user.merchant_id)
        request.state.merchant = merchant
        return page(request, "merchant.html", user, merchant=merchant,
                    kyb_enabled=hub.settings.patascore.enabled, nav="merchant")

    async def stylesheet(request: Request) -> Response:
        return Response((HERE / "static" / "hub.css").read_bytes(), media_type="text/css",
                        headers={"Cache-Control": "max-age=3600"})

    async def on_error(request: Request, exc: Exception) -> Response:
        log.exception("hub request %s", request.url.path)
        if request.url.path.startswith(("/api/", "/webhooks/")):
            return _error(500, "hub error")
        return PlainTextResponse("Something went wrong on the hub; it is in the hub's log.", 500)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if background:
            hub.start_background()
        yield
        await hub.aclose()

    routes = [
        Route("/api/v1/ping", api_ping),
        Route("/api/v1/enrol", api_enrol, methods=["POST"]),
        Route("/api/v1/upload", api_upload, methods=["POST"]),
        Route("/api/v1/restore/{part}", api_restore),
        Route("/webhooks/particeep", webhook_particeep, methods=["POST"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", overview),
        Route("/flagged", flagged_page),
        Route("/sales", sales_page),
        Route("/z", z_page),
        Route("/search", search_page),
        Route("/t/{terminal}/{ref}", txn_page),
        Route("/export.csv", export_csv),
        Route("/terminals", terminals_page, methods=["GET", "POST"]),
        Route("/merchant", merchant_page, methods=["GET", "POST"]),
        Route("/static/hub.css", stylesheet),
    ]
    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={Exception: on_error, PosError: on_error})


def _day(text: str | None) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _csv_chunk(rows: Iterator[list[str]], n: int = 500) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    for _ in range(n):
        try:
            writer.writerow(next(rows))
        except StopIteration:
            break
    return buf.getvalue()


def _when(hub: Hub) -> Callable[[Any], str]:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(hub.settings.timezone)

    def fmt(value: Any) -> str:
        if value is None:
            return "never"
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return str(value.astimezone(tz).strftime("%Y-%m-%d %H:%M"))

    return fmt
