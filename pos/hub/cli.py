"""``sente-pos hub ...``: serve the back office, set it up, and (on a terminal) enrol,
upload and restore. Only argparse at import: each command loads what it needs."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, default=str) if getattr(args, "json", False) else text)


def _secret_from_stdin(prompt: str) -> str:
    if sys.stdin is None:
        return ""
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\n")


def _hub_settings(args: argparse.Namespace) -> Any:
    from pos.hub.config import load_hub_settings

    overrides: dict[str, Any] = {}
    for name in ("db", "host", "port"):
        value = getattr(args, name, None)
        if value is not None:
            overrides["db_url" if name == "db" else name] = value
    return load_hub_settings(**overrides)


def _open_hub(args: argparse.Namespace) -> Any:
    from pos.hub.service import Hub

    return Hub.open(_hub_settings(args))


def cmd_serve(args: argparse.Namespace, settings: Any) -> int:
    from pos.hub.server import serve_forever

    serve_forever(_hub_settings(args))
    return 0


def cmd_setup(args: argparse.Namespace, settings: Any) -> int:
    hub = _open_hub(args)
    try:
        password = _secret_from_stdin(f"Password for {args.owner}: ")
        mid = hub.accounts.create_merchant(args.merchant, args.registration, shop=args.shop,
                                           kyb=hub.settings.patascore.enabled)
        hub.accounts.add_user(mid, args.owner, password, "owner")
        data = {"merchant_id": mid, "owner": args.owner,
                "kyb": "queued" if hub.settings.patascore.enabled else "off"}
    finally:
        asyncio.run(hub.aclose())
    _emit(args, data, f"merchant {mid} created with owner {args.owner}; business verification "
                      f"{data['kyb']} (runs in the hub)")
    return 0


def cmd_user_add(args: argparse.Namespace, settings: Any) -> int:
    hub = _open_hub(args)
    try:
        shop = hub.accounts.shop_id(args.merchant, args.shop) if args.role == "supervisor" \
            else None
        password = _secret_from_stdin(f"Password for {args.name}: ")
        uid = hub.accounts.add_user(args.merchant, args.name, password, args.role, shop)
    finally:
        asyncio.run(hub.aclose())
    _emit(args, {"user_id": uid, "name": args.name, "role": args.role},
          f"added {args.role} {args.name}")
    return 0


def cmd_code(args: argparse.Namespace, settings: Any) -> int:
    hub = _open_hub(args)
    try:
        shop = hub.accounts.shop_id(args.merchant, args.shop)
        code = hub.accounts.create_code(args.merchant, shop, args.terminal, "cli")
    finally:
        asyncio.run(hub.aclose())
    _emit(args, {"terminal_id": args.terminal, "code": code},
          f"one-time code for {args.terminal}: {code}")
    return 0


def cmd_enrol(args: argparse.Namespace, settings: Any) -> int:
    from pos.config import ensure_home
    from pos.hubsync import enrol

    out = asyncio.run(enrol(ensure_home(), args.url, args.code))
    merchant = out.get("merchant") or {}
    _emit(args, out, f"enrolled as {out['terminal_id']} for {merchant.get('name')}"
                     + (" (replaces the previous device: run `sente-pos hub restore`)"
                        if out.get("replaced") else ""))
    return 0


def cmd_restore(args: argparse.Namespace, settings: Any) -> int:
    from pos.config import ensure_home
    from pos.hubrestore import restore

    out = asyncio.run(restore(ensure_home()))
    _emit(args, out, f"restored {out['txns']} transactions ({out['unsynced']} to sync), "
                     f"{out['events']} events, {out['z_reports']} Z reports; next receipt "
                     f"{out['receipt_no'] + 1}")
    return 0


def cmd_upload(args: argparse.Namespace, settings: Any) -> int:
    """Upload now (what the sync engine does after each pass)."""
    from pos.hubsync import Uploader, load_credential
    from pos.terminal import Terminal

    cred = load_credential(settings.home)
    if cred is None:
        from pos.errors import InputError

        raise InputError("This terminal is not enrolled: sente-pos hub enrol URL CODE")

    async def body() -> int:
        term = Terminal.open_sync(settings)
        up = Uploader(term.journal, cred)
        try:
            rep = await up.run(term.link, max_batches=1000)
        finally:
            await up.aclose()
            await term.aclose()
        _emit(args, rep.to_json(), f"uploaded {rep.events} events, {rep.txns} transactions, "
                                   f"{rep.z_reports} Z reports in {rep.batches} batches")
        return 0

    return asyncio.run(body())


def add_hub_commands(sub: Any) -> None:
    hub = sub.add_parser("hub", help="the back office: serve it, or enrol / restore a terminal")
    hub.set_defaults(fn=cmd_serve)
    for p in (hub,):
        p.add_argument("--db", help="SQLAlchemy URL (default: SQLite hub.db in the data dir)")
        p.add_argument("--host", help="address to bind (default 127.0.0.1)")
        p.add_argument("--port", type=int, help="port to bind (default 8780)")
    acts = hub.add_subparsers(dest="hub_action")

    def act(name: str, fn: Any, help_: str, *, db: bool = False) -> argparse.ArgumentParser:
        p = acts.add_parser(name, help=help_)
        p.set_defaults(fn=fn)
        p.add_argument("--json", action="store_true", help="print one JSON document")
        if db:
            p.add_argument("--db", help="SQLAlchemy URL of the hub database")
        return p

    e = act("enrol", cmd_enrol, "enrol this terminal with a one-time code")
    e.add_argument("url", help="the hub, e.g. https://hub.example.com/")
    e.add_argument("code", help="one-time code from the dashboard (Terminals)")
    act("restore", cmd_restore, "rebuild this (replacement) terminal's journal from the hub")
    act("upload", cmd_upload, "upload this terminal's journal now")
    s = act("setup", cmd_setup, "create a merchant and its owner (password on stdin)", db=True)
    s.add_argument("--merchant", required=True, help="business name")
    s.add_argument("--registration", required=True, help="business registration number")
    s.add_argument("--owner", required=True, help="owner's user name")
    s.add_argument("--shop", default="Main shop", help="name of the first shop")
    u = act("user", cmd_user_add, "add an owner or a shop supervisor (password on stdin)",
            db=True)
    u.add_argument("name")
    u.add_argument("--role", choices=["owner", "supervisor"], default="supervisor")
    u.add_argument("--merchant", type=int, default=1)
    u.add_argument("--shop", default=None, help="the supervisor's shop (default: the first)")
    c = act("code", cmd_code, "make a one-time enrolment code for a terminal id", db=True)
    c.add_argument("terminal", help="terminal id, e.g. POS-002")
    c.add_argument("--merchant", type=int, default=1)
    c.add_argument("--shop", default=None)
