"""The dashboard's questions, each one query over indexed columns (the pages stay quick
with millions of transactions): terminals, flagged items, today's sales, Z reports,
search, CSV export. Every query is limited to what the signed-in person may see."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select

from pos.hub import schema as t
from pos.hub.accounts import Scope
from pos.hub.clock import Clock, iso, parse, utcnow
from pos.hub.db import Database
from pos.hub.store import SALE_KINDS
from pos.money import Money

#: A terminal not heard from for this long is shown as not seen (its link is unknown).
STALE_SECONDS = 300
SEARCH_LIMIT = 200
KIND_LABELS = {"card_debit": "Card payments", "vend": "Electricity tokens",
               "postpaid": "Electricity bills", "card_credit": "Card top-ups",
               "card_refund": "Card refunds"}


def money_text(totals: dict[str, int]) -> str:
    if not totals:
        return "0"
    return ", ".join(Money(int(v), c).format() for c, v in sorted(totals.items()))


@dataclass
class Bucket:
    count: int = 0
    totals: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, n: int, currency: str, amount: int) -> None:
        self.count += n
        self.totals[currency] += amount

    @property
    def text(self) -> str:
        return money_text(dict(self.totals))


@dataclass
class Sales:
    day: dt.date
    total: Bucket
    by_terminal: dict[str, Bucket]
    by_kind: dict[str, Bucket]
    by_tender: dict[str, Bucket]
    by_hour: list[Bucket]

    def chart(self, width: int = 480, height: int = 160) -> dict[str, Any]:
        """Bars per local hour, scaled on the sale count (currencies differ)."""
        top = max((b.count for b in self.by_hour), default=0) or 1
        bar_w = width / 24
        bars = []
        for hour, b in enumerate(self.by_hour):
            h = round((height - 20) * b.count / top)
            bars.append({"x": round(hour * bar_w + 1, 1), "y": height - 14 - h,
                         "w": round(bar_w - 2, 1), "h": h, "hour": hour, "count": b.count,
                         "text": b.text})
        return {"width": width, "height": height, "bars": bars, "top": top}


class Dashboard:
    def __init__(self, db: Database, clock: Clock = utcnow, tz: str = "Africa/Kampala") -> None:
        self.db = db
        self.clock = clock
        self.tz = ZoneInfo(tz)

    def today(self) -> dt.date:
        return self.clock().astimezone(self.tz).date()

    def day_bounds(self, day: dt.date) -> tuple[str, str]:
        start = dt.datetime.combine(day, dt.time(), self.tz)
        return iso(start), iso(start + dt.timedelta(days=1))

    # ------------------------------------------------------------- terminals
    def terminals(self, scope: Scope) -> list[dict[str, Any]]:
        now = self.clock()
        q = (select(t.terminals, t.shops.c.name.label("shop"))
             .join(t.shops, t.shops.c.id == t.terminals.c.shop_id)
             .where(scope.terminals()).order_by(t.shops.c.name, t.terminals.c.name))
        out = []
        with self.db.read() as conn:
            for r in conn.execute(q):
                seen = parse(r.last_seen_at)
                stale = seen is None or (now - seen).total_seconds() > STALE_SECONDS
                floats = json.loads(r.float_json) if r.float_json else {}
                out.append({
                    "id": r.id, "name": r.name, "shop": r.shop, "last_seen": seen,
                    "stale": stale,
                    "link": "not seen recently" if stale else (r.link or "no status yet"),
                    "online": None if stale else r.online,
                    "unsynced_count": r.unsynced_count,
                    "unsynced": money_text(json.loads(r.unsynced_json or "{}")),
                    "flagged_count": r.flagged_count,
                    "floats": {k: Money(v["minor"], v["currency"]).format()
                               for k, v in sorted(floats.items())},
                    "receipt_no": r.receipt_no,
                })
        return out

    # ----------------------------------------------------------- flagged etc.
    def _txn_query(self, scope: Scope) -> Any:
        return (select(t.txns, t.terminals.c.name.label("terminal"))
                .join(t.terminals, t.terminals.c.id == t.txns.c.terminal_id)
                .where(scope.terminals()))

    def flagged(self, scope: Scope, limit: int = 500) -> list[dict[str, Any]]:
        q = self._txn_query(scope).where(t.txns.c.flagged.is_(True)).order_by(
            t.txns.c.created_at.desc()).limit(limit)
        with self.db.read() as conn:
            return [_txn(r) for r in conn.execute(q)]

    def search(self, scope: Scope, text: str, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
        q = self._txn_query(scope).where(search_condition(text)).order_by(
            t.txns.c.created_at.desc()).limit(limit)
        with self.db.read() as conn:
            return [_txn(r) for r in conn.execute(q)]

    def detail(self, scope: Scope, terminal: str, ref: str) -> dict[str, Any] | None:
        q = self._txn_query(scope).where(t.terminals.c.name == terminal, t.txns.c.ref == ref)
        with self.db.read() as conn:
            row = conn.execute(q).first()
            if row is None:
                return None
            evs = conn.execute(select(t.events).where(
                t.events.c.terminal_id == row.terminal_id, t.events.c.ref == ref)
                .order_by(t.events.c.event_id)).all()
        out = _txn(row)
        out["data"] = json.loads(row.data_json)
        out["events"] = [dict(e._mapping) for e in evs]
        return out

    # ------------------------------------------------------------------ sales
    def sales(self, scope: Scope, day: dt.date | None = None) -> Sales:
        """Settled sales of ``day`` (local time): two aggregate queries, one per terminal
        and one per kind, tender and hour, so a fleet's day (10^5 rows) comes back as
        about a thousand rows instead of their full cross product."""
        day = day or self.today()
        start, end = self.day_bounds(day)
        c = t.txns.c
        mine = select(t.terminals.c.id).where(scope.terminals())
        where = (c.terminal_id.in_(mine), c.state == "done", c.kind.in_(sorted(SALE_KINDS)),
                 c.created_at >= start, c.created_at < end)
        n, amount = func.count().label("n"), func.sum(c.amount_minor).label("amount")
        hour = func.substr(c.created_at, 1, 13).label("hour")
        per_terminal = (select(c.terminal_id, c.currency, n, amount).where(*where)
                        .group_by(c.terminal_id, c.currency))
        per_slot = (select(c.kind, c.tender, c.currency, hour, n, amount).where(*where)
                    .group_by(c.kind, c.tender, c.currency, hour))
        total = Bucket()
        by_terminal: dict[str, Bucket] = defaultdict(Bucket)
        by_kind: dict[str, Bucket] = defaultdict(Bucket)
        by_tender: dict[str, Bucket] = defaultdict(Bucket)
        by_hour = [Bucket() for _ in range(24)]
        with self.db.read() as conn:
            names = dict(conn.execute(select(t.terminals.c.id, t.terminals.c.name)
                                      .where(scope.terminals())).all())
            if not self.db.is_sqlite:
                # Room to hash a fleet's day in memory instead of sorting it on disk
                # (measured 3x faster; for this transaction only).
                conn.exec_driver_sql("SET LOCAL work_mem = '32MB'")
            for r in conn.execute(per_terminal):
                by_terminal[names[r.terminal_id]].add(int(r.n), r.currency, int(r.amount or 0))
            for r in conn.execute(per_slot):
                cnt, amt = int(r.n), int(r.amount or 0)
                local = dt.datetime.fromisoformat(r.hour + ":00:00+00:00").astimezone(self.tz)
                for bucket in (total, by_kind[r.kind], by_tender[r.tender], by_hour[local.hour]):
                    bucket.add(cnt, r.currency, amt)
        kinds = {KIND_LABELS.get(k, k): v for k, v in sorted(by_kind.items())}
        return Sales(day, total, dict(sorted(by_terminal.items())), kinds,
                     dict(sorted(by_tender.items())), by_hour)

    # ------------------------------------------------------------- Z reports
    def z_reports(self, scope: Scope, limit: int = 200) -> list[dict[str, Any]]:
        q = (select(t.z_reports, t.terminals.c.name.label("terminal"))
             .join(t.terminals, t.terminals.c.id == t.z_reports.c.terminal_id)
             .where(scope.terminals()).order_by(t.z_reports.c.created_at.desc()).limit(limit))
        out = []
        with self.db.read() as conn:
            for r in conn.execute(q):
                p = json.loads(r.payload_json)
                out.append({"terminal": r.terminal, "number": r.number,
                            "created_at": parse(r.created_at), "payload": p,
                            "sales": money_text(_z_sales(p)),
                            "count": sum(int(v.get("count", 0))
                                         for v in (p.get("by_kind") or {}).values()),
                            "override_by": p.get("override_by"),
                            "closed_by": p.get("closed_by")})
        return out

    # ----------------------------------------------------------------- export
    def export_rows(self, scope: Scope, *, day: dt.date | None = None,
                    text: str | None = None) -> Iterator[list[str]]:
        """CSV rows (header first), streamed in pages so a big export holds little memory."""
        yield ["terminal", "ref", "created_at", "kind", "state", "tender", "amount",
               "currency", "operator", "card", "meter", "account", "customer", "receipt"]
        q = self._txn_query(scope)
        if text:
            q = q.where(search_condition(text))
        if day is not None:
            start, end = self.day_bounds(day)
            q = q.where(t.txns.c.created_at >= start, t.txns.c.created_at < end)
        q = q.order_by(t.txns.c.created_at, t.txns.c.ref)
        with self.db.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=2000).execute(q)
            for r in result:
                yield [r.terminal, r.ref, r.created_at, r.kind, r.state, r.tender,
                       plain_amount(r.amount_minor, r.currency), r.currency, r.operator,
                       r.card_no or "", r.meter or "", r.account or "",
                       r.customer_name or "", str(r.receipt_number or "")]


def search_condition(text: str) -> Any:
    """By ref, masked card (or its last four digits), meter or account: exact matches on
    indexed columns, so a search stays quick over millions of rows."""
    q = text.strip()
    conds = [t.txns.c.ref == q, t.txns.c.meter == q, t.txns.c.account == q,
             t.txns.c.card_no == q]
    digits = "".join(ch for ch in q if ch.isdigit())
    if len(digits) == 4 and len(q.replace("*", "")) == 4:
        conds.append(t.txns.c.card_last4 == digits)
    return and_(or_(*conds))


def _z_sales(payload: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for kind, v in (payload.get("by_kind") or {}).items():
        if kind in SALE_KINDS:
            for cur, amount in (v.get("totals") or {}).items():
                out[cur] += int(amount)
    return dict(out)


def _txn(r: Any) -> dict[str, Any]:
    return {"terminal": r.terminal, "ref": r.ref, "kind": r.kind,
            "kind_label": KIND_LABELS.get(r.kind, r.kind), "state": r.state,
            "tender": r.tender, "amount": Money(r.amount_minor, r.currency).format(),
            "operator": r.operator, "card_no": r.card_no, "meter": r.meter,
            "account": r.account, "customer_name": r.customer_name,
            "created_at": parse(r.created_at), "receipt_number": r.receipt_number}


def plain_amount(minor: int, currency: str) -> str:
    """``150050`` KES -> ``1500.50``: no separators, for spreadsheets."""
    return Money(minor, currency).format(symbol=False).replace(",", "")
