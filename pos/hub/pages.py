"""The dashboard: server-rendered Jinja2 pages (no build step, laid out for a phone
first), sign-in and sign-out, CSV export.

Sessions live in the database (see :mod:`pos.hub.accounts`): the cookie carries a
random token, the database its hash. Every form that changes something carries the
session's CSRF token; the sign-in form a double-submit cookie. Every query is limited
to what the signed-in person may see (:class:`pos.hub.accounts.Scope`).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import (
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from pos.errors import InputError
from pos.hub.accounts import AuthFailed, RateLimitExceeded, Scope, User, csrf_ok
from pos.hub.api import blocking, client_address
from pos.hub.service import Hub
from pos.receipts import token_groups

HERE = Path(__file__).parent
COOKIE = "sente_hub"
LOGIN_COOKIE = "sente_hub_login"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
Handler = Callable[[Request], Awaitable[Response]]


def dashboard_routes(hub: Hub) -> list[Route]:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["when"] = _when(hub)
    templates.env.filters["token"] = lambda tok: " ".join(token_groups(str(tok or "")))

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
                                          str(form.get("password", "")), client_address(request))
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
    async def shifts_page(request: Request, user: User) -> Response:
        rows = await blocking(hub.dashboard.shifts, Scope.of(user))
        return page(request, "shifts.html", user, rows=rows, nav="shifts")

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

    return [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", overview),
        Route("/flagged", flagged_page),
        Route("/sales", sales_page),
        Route("/shifts", shifts_page),
        Route("/z", z_page),
        Route("/search", search_page),
        Route("/t/{terminal}/{ref}", txn_page),
        Route("/export.csv", export_csv),
        Route("/terminals", terminals_page, methods=["GET", "POST"]),
        Route("/merchant", merchant_page, methods=["GET", "POST"]),
        Route("/static/hub.css", stylesheet),
    ]


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
