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
from pos.hub.drawer import Drawer, open_drawers, shift_list
from pos.hub.store import SALE_KINDS
from pos.money import Money
from pos.reports import KIND_LABELS, takings_sign

#: A terminal not heard from for this long is shown as not seen (its link is unknown).
STALE_SECONDS = 300
SEARCH_LIMIT = 200


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
        if amount:
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
    #: ``by_kind`` and ``by_tender`` keyed as the terminal's X report has them.
    figures: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

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
            drawers = open_drawers(conn, scope)
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
                    "drawer": drawers[r.id].view() if r.id in drawers else None,
                })
        return out

    def drawers(self, scope: Scope) -> dict[str, Drawer]:
        """Each terminal's open shift with its figures, by terminal name."""
        with self.db.read() as conn:
            names = dict(conn.execute(select(t.terminals.c.id, t.terminals.c.name)
                                      .where(scope.terminals())).all())
            return {names[tid]: d for tid, d in open_drawers(conn, scope).items()}

    def shifts(self, scope: Scope, limit: int = 200) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return shift_list(conn, scope, limit)

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
        """The day's (local time) sales and takings by the terminal's X / Z rules
        (:func:`pos.reports.figures`): completed transactions, the cash parts of basket
        sales (their card parts are card debits, counted once as such), cash given back
        (taken off) and cash collected for flagged debits; card-paid electricity is
        counted by its card debit. "Sales" counts what customers bought: a basket sale
        once however it was paid, a card-paid token once.

        Two aggregate queries over the transactions, one per terminal and one per kind,
        tender and hour, so a fleet's day (10^5 rows) comes back as a few thousand rows
        instead of their full cross product; the counter's tables by time, through
        their indexes."""
        day = day or self.today()
        start, end = self.day_bounds(day)
        c = t.txns.c
        mine = select(t.terminals.c.id).where(scope.terminals())
        where = (c.terminal_id.in_(mine), c.state == "done", c.created_at >= start,
                 c.created_at < end)
        n, amount = func.count().label("n"), func.sum(c.amount_minor).label("amount")
        hour = func.substr(c.created_at, 1, 13).label("hour")
        per_terminal = (select(c.terminal_id, c.kind, c.tender, c.currency, n, amount)
                        .where(*where).group_by(c.terminal_id, c.kind, c.tender, c.currency))
        per_slot = (select(c.kind, c.tender, c.currency, hour, n, amount).where(*where)
                    .group_by(c.kind, c.tender, c.currency, hour))
        day_ = _Day(self.tz)
        with self.db.read() as conn:
            names = dict(conn.execute(select(t.terminals.c.id, t.terminals.c.name)
                                      .where(scope.terminals())).all())
            if not self.db.is_sqlite:
                # Room to hash a fleet's day in memory instead of sorting it on disk
                # (measured 3x faster; for this transaction only).
                conn.exec_driver_sql("SET LOCAL work_mem = '32MB'")
            for r in conn.execute(per_terminal):
                day_.money(names[r.terminal_id], None, r.kind, r.tender, r.currency,
                           int(r.n), int(r.amount or 0), figures=False)
            for r in conn.execute(per_slot):
                day_.money(None, r.hour, r.kind, r.tender, r.currency, int(r.n),
                           int(r.amount or 0))
            for row in _counter_rows(conn, mine, start, end):
                tid, hour_, kind, tender, cur, cnt, amt, sales = row
                for term, slot in ((names[tid], None), (None, hour_)):
                    day_.money(term, slot, kind, tender, cur, cnt, amt, sales=sales,
                               figures=slot is not None)
        return day_.result(day)

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


#: Tenders that are money at the counter (a card credit draws on the merchant's float).
_TAKINGS = ("cash", "card")


class _Day:
    """Adds up one day's aggregate rows into the dashboard's buckets and the X report's
    figures (``by_kind`` and ``by_tender`` exactly as :func:`pos.reports.figures`)."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.total = Bucket()
        self.by_terminal: dict[str, Bucket] = defaultdict(Bucket)
        self.by_kind: dict[str, dict[str, Any]] = {}
        self.by_tender: dict[str, dict[str, Any]] = {}
        self.by_hour = [Bucket() for _ in range(24)]

    def money(self, terminal: str | None, hour: str | None, kind: str, tender: str,
              currency: str, n: int, amount: int, *, sales: int | None = None,
              figures: bool = True) -> None:
        """One aggregate row: for a terminal (``hour`` None) or for an hour (the X
        figures and the total are taken from the hourly rows, each row once)."""
        sign = takings_sign(kind, tender)
        if sales is None:  # a transaction: a customer's sale unless it is paid by another
            sales = n if kind in SALE_KINDS and sign > 0 else 0
        taken = sign * amount if kind and tender in _TAKINGS else 0
        if figures and kind:
            _add(self.by_kind, kind, n, currency, amount)
            if sign:
                _add(self.by_tender, tender, n, currency, sign * amount)
        if terminal is not None:
            buckets = [self.by_terminal[terminal]]
        else:
            local = dt.datetime.fromisoformat(f"{hour}:00:00+00:00").astimezone(self.tz)
            buckets = [self.total, self.by_hour[local.hour]]
        for b in buckets:
            b.add(sales, currency, taken)

    def result(self, day: dt.date) -> Sales:
        by_tender = {k: Bucket(v["count"], defaultdict(int, v["totals"]))
                     for k, v in sorted(self.by_tender.items())}
        kinds = {KIND_LABELS.get(k, k): Bucket(v["count"], defaultdict(int, v["totals"]))
                 for k, v in sorted(self.by_kind.items())}
        return Sales(day, self.total, dict(sorted(self.by_terminal.items())), kinds,
                     by_tender, self.by_hour,
                     figures={"by_kind": self.by_kind, "by_tender": self.by_tender})


def _add(out: dict[str, dict[str, Any]], key: str, n: int, currency: str, amount: int) -> None:
    entry = out.setdefault(key, {"count": 0, "totals": {}})
    entry["count"] += n
    entry["totals"][currency] = entry["totals"].get(currency, 0) + amount


def _counter_rows(conn: Any, mine: Any, start: str, end: str) -> Iterator[tuple[Any, ...]]:
    """The day's rows of the counter's tables shaped like the transactions' aggregates:
    (terminal, hour, kind, tender, currency, count, amount, sales)."""
    st, m, s, x = t.sale_tenders.c, t.cash_moves.c, t.sales.c, t.txns.c
    n = func.count().label("n")
    at_hour = func.substr(st.at, 1, 13).label("hour")
    for r in conn.execute(
            select(st.terminal_id, at_hour, st.currency, n,
                   func.sum(st.amount_minor).label("amount"))
            .where(st.terminal_id.in_(mine), st.tender == "cash", st.state == "paid",
                   st.at >= start, st.at < end)
            .group_by(st.terminal_id, at_hour, st.currency)):
        yield (r.terminal_id, r.hour, "basket_cash", "cash", r.currency, int(r.n),
               int(r.amount or 0), 0)
    m_hour = func.substr(m.at, 1, 13).label("hour")
    for r in conn.execute(
            select(m.terminal_id, m_hour, m.kind, m.currency, n,
                   func.sum(m.amount_minor).label("amount"))
            .where(m.terminal_id.in_(mine), m.kind.in_(("refund", "collected")),
                   m.at >= start, m.at < end)
            .group_by(m.terminal_id, m_hour, m.kind, m.currency)):
        kind = "cash_refund" if r.kind == "refund" else "cash_collected"
        yield (r.terminal_id, r.hour, kind, "cash", r.currency, int(r.n), int(r.amount or 0), 0)
    # A card debit that paid part of a basket is that basket's money, not a sale of its
    # own: the basket (once done) is the sale.
    x_hour = func.substr(x.created_at, 1, 13).label("hour")
    for r in conn.execute(
            select(x.terminal_id, x_hour, x.currency, n)
            .join(t.sale_tenders, and_(st.terminal_id == x.terminal_id, st.txn_ref == x.ref))
            .where(x.terminal_id.in_(mine), st.tender == "card", st.state == "paid",
                   x.kind == "card_debit", x.state == "done", x.created_at >= start,
                   x.created_at < end)
            .group_by(x.terminal_id, x_hour, x.currency)):
        yield (r.terminal_id, r.hour, "", "", r.currency, 0, 0, -int(r.n))
    s_hour = func.substr(s.completed_at, 1, 13).label("hour")
    for r in conn.execute(
            select(s.terminal_id, s_hour, s.currency, n)
            .where(s.terminal_id.in_(mine), s.state == "done", s.completed_at >= start,
                   s.completed_at < end)
            .group_by(s.terminal_id, s_hour, s.currency)):
        yield (r.terminal_id, r.hour, "", "", r.currency, 0, 0, int(r.n))


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
    """A Z report's takings: its cash and card tenders (refunds taken off, basket cash
    in, card-paid electricity once), or the sales kinds of a report without tenders."""
    out: dict[str, int] = defaultdict(int)
    if payload.get("by_tender"):
        for tender, v in payload["by_tender"].items():
            if tender in _TAKINGS:
                for cur, amount in (v.get("totals") or {}).items():
                    out[cur] += int(amount)
        return dict(out)
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
