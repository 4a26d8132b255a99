"""Merchants, shops, staff, sign-in sessions, one-time enrolment codes, rate limits.

All of it is in the database, so any hub process behind a load balancer answers
the same: a session made by one is valid on the other, a code used on one is used
on all, and the sign-in rate limit counts attempts made anywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, select, update

from pos.errors import InputError, PosError
from pos.hub import schema as t
from pos.hub.clock import Clock, iso, later, utcnow
from pos.hub.db import Database
from pos.operators import hash_pin as hash_password  # scrypt, salted; not PIN-specific
from pos.operators import verify_pin as verify_password

ROLES = ("owner", "supervisor")
#: Sign-in attempts allowed per user name and per client address in one window.
LOGIN_LIMIT, LOGIN_WINDOW = 10, 900.0
#: Enrolment attempts per client address in one window (codes are short: slow guessing).
ENROL_LIMIT, ENROL_WINDOW = 20, 900.0
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud, typed by hand


class AuthFailed(PosError):
    """Wrong user name or password, or an expired session."""


class RateLimitExceeded(PosError):
    """Too many attempts from one client or for one account: wait and try again."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def normalise_code(code: str) -> str:
    raw = "".join(ch for ch in code.upper() if ch.isalnum())
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}" if len(raw) == 12 else raw


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: str
    merchant_id: int
    shop_id: int | None
    csrf: str = ""

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"


@dataclass(frozen=True, slots=True)
class Scope:
    """What a signed-in person may see: one merchant, and one shop unless an owner."""

    merchant_id: int
    shop_id: int | None

    @classmethod
    def of(cls, user: User) -> Scope:
        return cls(user.merchant_id, None if user.is_owner else user.shop_id)

    def terminals(self) -> Any:
        """A WHERE clause on ``terminals`` for this scope."""
        cond = t.terminals.c.merchant_id == self.merchant_id
        if self.shop_id is not None:
            cond = and_(cond, t.terminals.c.shop_id == self.shop_id)
        return cond


class Accounts:
    def __init__(self, db: Database, clock: Clock = utcnow, *, session_hours: float = 12.0,
                 code_hours: float = 24.0) -> None:
        self.db = db
        self.clock = clock
        self.session_hours = session_hours
        self.code_hours = code_hours

    # ------------------------------------------------------------- merchants
    def create_merchant(self, name: str, registration_no: str, *, shop: str = "Main shop",
                        kyb: bool = True) -> int:
        name, registration_no = " ".join(name.split()), registration_no.strip().upper()
        if not name or not registration_no:
            raise InputError("A merchant needs a name and a business registration number")
        with self.db.write() as conn:
            mid = conn.execute(t.merchants.insert().values(
                name=name, registration_no=registration_no, created_at=iso(self.clock()),
                kyb_status="queued" if kyb else "unverified",
                kyb_next_at=iso(self.clock()) if kyb else None,
            )).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(t.shops.insert().values(merchant_id=mid, name=shop))
        return int(mid)

    def merchant(self, merchant_id: int) -> dict[str, Any]:
        with self.db.read() as conn:
            row = conn.execute(select(t.merchants).where(t.merchants.c.id == merchant_id)).first()
        if row is None:
            raise InputError(f"No merchant {merchant_id}")
        return dict(row._mapping)

    def merchants(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(select(t.merchants))]

    def add_shop(self, merchant_id: int, name: str) -> int:
        name = " ".join(name.split())
        if not name:
            raise InputError("A shop needs a name")
        with self.db.write() as conn:
            res = conn.execute(t.shops.insert().values(merchant_id=merchant_id, name=name))
            return int(res.inserted_primary_key[0])  # type: ignore[index]

    def shops(self, merchant_id: int) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(select(t.shops).where(t.shops.c.merchant_id == merchant_id)
                                .order_by(t.shops.c.id))
            return [dict(r._mapping) for r in rows]

    def shop_id(self, merchant_id: int, name: str | None) -> int:
        """The shop called ``name`` (the first shop when None)."""
        shops = self.shops(merchant_id)
        for shop in shops:
            if name is None or shop["name"].lower() == name.strip().lower():
                return int(shop["id"])
        raise InputError(f"No shop {name!r}; shops: {', '.join(s['name'] for s in shops)}")

    # ----------------------------------------------------------------- users
    def add_user(self, merchant_id: int, username: str, password: str, role: str,
                 shop_id: int | None = None) -> int:
        username = username.strip().lower()
        if role not in ROLES:
            raise InputError("A role is owner or supervisor")
        if not username or len(username) > 100 or not username.replace(".", "").replace(
                "-", "").replace("_", "").isalnum():
            raise InputError("A user name is letters, digits, '.', '-' or '_'")
        if len(password) < 8:
            raise InputError("A password has at least 8 characters")
        if role == "supervisor" and shop_id is None:
            raise InputError("A supervisor belongs to one shop")
        with self.db.write() as conn:
            if conn.execute(select(t.users.c.id).where(t.users.c.username == username)).first():
                raise InputError(f"User {username} already exists")
            uid = conn.execute(t.users.insert().values(
                merchant_id=merchant_id, shop_id=None if role == "owner" else shop_id,
                username=username, password_hash=hash_password(password), role=role,
                created_at=iso(self.clock()),
            )).inserted_primary_key[0]  # type: ignore[index]
        return int(uid)

    def sign_in(self, username: str, password: str, client: str) -> tuple[User, str]:
        """Check the password; a new session token (only its hash is stored)."""
        username = username.strip().lower()
        self.limit(f"login:user:{username}", LOGIN_LIMIT, LOGIN_WINDOW)
        self.limit(f"login:ip:{client}", LOGIN_LIMIT * 3, LOGIN_WINDOW)
        with self.db.read() as conn:
            row = conn.execute(select(t.users).where(t.users.c.username == username)).first()
        # Without such a user, check against a dummy hash anyway: same time either way.
        stored = row.password_hash if row else _DUMMY_HASH
        if not verify_password(password, stored) or row is None:
            raise AuthFailed("Wrong user name or password")
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = self.clock()
        with self.db.write() as conn:
            conn.execute(delete(t.sessions).where(t.sessions.c.expires_at < iso(now)))
            conn.execute(t.sessions.insert().values(
                token_hash=digest(token), user_id=row.id, csrf=csrf, created_at=iso(now),
                expires_at=iso(now + dt.timedelta(hours=self.session_hours))))
        return _user(row, csrf), token

    def session_user(self, token: str | None) -> User | None:
        if not token or len(token) > 100:
            return None
        with self.db.read() as conn:
            row = conn.execute(
                select(t.users, t.sessions.c.csrf)
                .join(t.sessions, t.sessions.c.user_id == t.users.c.id)
                .where(t.sessions.c.token_hash == digest(token),
                       t.sessions.c.expires_at > iso(self.clock()))
            ).first()
        return _user(row, row.csrf) if row else None

    def sign_out(self, token: str | None) -> None:
        if token:
            with self.db.write() as conn:
                conn.execute(delete(t.sessions).where(t.sessions.c.token_hash == digest(token)))

    # ------------------------------------------------------------ rate limit
    def limit(self, key: str, limit: int, window: float) -> None:
        """Count one attempt under ``key``; refuse past ``limit`` in ``window`` seconds.

        One conditional upsert: concurrent hubs count into the same row."""
        now = self.clock()
        start = iso(now)
        cutoff = iso(now - dt.timedelta(seconds=window))
        tbl = t.rate_limits
        stmt = self.db.insert(tbl).values(key=key[:200], window_start=start, hits=1)
        fresh = tbl.c.window_start < cutoff
        stmt = stmt.on_conflict_do_update(
            index_elements=[tbl.c.key],
            set_={"hits": func.coalesce(_case(fresh, 1, tbl.c.hits + 1), 1),
                  "window_start": _case(fresh, start, tbl.c.window_start)},
        )
        with self.db.write() as conn:
            conn.execute(stmt)
            hits = conn.execute(select(tbl.c.hits).where(tbl.c.key == key[:200])).scalar_one()
        if hits > limit:
            raise RateLimitExceeded("Too many attempts: wait a few minutes and try again")

    # ------------------------------------------------------- enrolment codes
    def create_code(self, merchant_id: int, shop_id: int, terminal_name: str,
                    created_by: str) -> str:
        """A one-time code that enrols (or re-enrols, replacing) terminal ``terminal_name``."""
        terminal_name = terminal_name.strip()
        if not terminal_name or len(terminal_name) > 64 or not terminal_name.replace(
                "-", "").replace("_", "").isalnum():
            raise InputError("A terminal id is letters, digits, '-' or '_' (e.g. POS-002)")
        with self.db.read() as conn:
            shop = conn.execute(select(t.shops.c.id).where(
                t.shops.c.id == shop_id, t.shops.c.merchant_id == merchant_id)).first()
        if shop is None:
            raise InputError("That shop is not this merchant's")
        code = new_code()
        now = self.clock()
        with self.db.write() as conn:
            conn.execute(t.enrol_codes.insert().values(
                code_hash=digest(code), merchant_id=merchant_id, shop_id=shop_id,
                terminal_name=terminal_name, created_by=created_by, created_at=iso(now),
                expires_at=later(self.clock, self.code_hours * 3600)))
        return code

    def open_codes(self, merchant_id: int, shop_id: int | None) -> list[dict[str, Any]]:
        cond = and_(t.enrol_codes.c.merchant_id == merchant_id, t.enrol_codes.c.used_at.is_(None),
                    t.enrol_codes.c.expires_at > iso(self.clock()))
        if shop_id is not None:
            cond = and_(cond, t.enrol_codes.c.shop_id == shop_id)
        with self.db.read() as conn:
            rows = conn.execute(select(t.enrol_codes.c.terminal_name, t.enrol_codes.c.expires_at,
                                       t.enrol_codes.c.created_by).where(cond))
            return [dict(r._mapping) for r in rows]

    def claim_code(self, conn: Any, code: str) -> Any:
        """Use ``code`` once, inside the caller's transaction; its row, or InputError.

        The claim is one conditional UPDATE: of two hubs given the same code at the same
        moment, exactly one sees its row change."""
        h = digest(normalise_code(code))
        now = iso(self.clock())
        row = conn.execute(select(t.enrol_codes).where(t.enrol_codes.c.code_hash == h)).first()
        if row is None:
            raise InputError("Unknown enrolment code")
        if row.used_at is not None:
            raise InputError("This enrolment code was already used: ask for a new one")
        if row.expires_at <= now:
            raise InputError("This enrolment code has expired: ask for a new one")
        res = conn.execute(update(t.enrol_codes).where(
            t.enrol_codes.c.code_hash == h, t.enrol_codes.c.used_at.is_(None),
        ).values(used_at=now))
        if res.rowcount != 1:
            raise InputError("This enrolment code was already used: ask for a new one")
        return row

    def peek_code(self, code: str) -> Any:
        with self.db.read() as conn:
            return conn.execute(select(t.enrol_codes).where(
                t.enrol_codes.c.code_hash == digest(normalise_code(code)))).first()


def _case(cond: Any, yes: Any, no: Any) -> Any:
    from sqlalchemy import case

    return case((cond, yes), else_=no)


def _user(row: Any, csrf: str) -> User:
    return User(id=row.id, username=row.username, role=row.role, merchant_id=row.merchant_id,
                shop_id=row.shop_id, csrf=csrf)


def csrf_ok(user: User, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(user.csrf, token or "")


_DUMMY_HASH = ("scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$"
               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
__all__ = ["Accounts", "AuthFailed", "RateLimitExceeded", "Scope", "User", "csrf_ok"]
