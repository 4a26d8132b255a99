"""The cash drawers of a fleet from the uploaded counter tables: each open shift's
figures and cash expected, by the terminal's own rules (:mod:`pos.shifts`), and the
shift list with the variances counted at each cash-up.

Expected = float + cash tendered for basket sales - change + electricity sold for cash
(in a state where the cash stays) + cash in - cash out - cash given back + cash
collected. Three grouped queries joined to the open shifts (tender parts and cash moves
by shift, electricity by the shift's time window on an indexed range), so the cost
follows the open shifts, not the history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, func, select

from pos.hub import schema as t
from pos.hub.accounts import Scope
from pos.hub.clock import parse
from pos.money import Money
from pos.shifts import CASH_KEPT_STATES, FIGURES, POWER_KINDS, expected_cash

_MOVE_FIGURE = {"in": "cash_in", "out": "cash_out", "refund": "refunds",
                "collected": "collected"}


@dataclass
class Drawer:
    """An open shift on the hub: its figures per currency (minor units)."""

    terminal_id: int
    shift_id: int
    operator: str
    currency: str
    float_minor: int
    opened_at: str
    figures: dict[str, dict[str, int]] = field(default_factory=dict)

    def expected(self, currency: str | None = None) -> Money:
        cur = currency or self.currency
        return Money(expected_cash(self.figures.get(cur, {})), cur)

    @property
    def currencies(self) -> list[str]:
        return [self.currency, *sorted(c for c in self.figures if c != self.currency)]

    def view(self) -> dict[str, Any]:
        return {"shift": self.shift_id, "operator": self.operator,
                "opened_at": parse(self.opened_at),
                "float": Money(self.float_minor, self.currency).format(),
                "expected": [self.expected(c).format() for c in self.currencies]}


def _zero() -> dict[str, int]:
    return dict.fromkeys(FIGURES, 0)


def open_drawers(conn: Connection, scope: Scope) -> dict[int, Drawer]:
    """Each terminal's open shift (at most one per terminal), by hub terminal id."""
    s = t.shifts.c
    open_q = (select(t.shifts).join(t.terminals, t.terminals.c.id == s.terminal_id)
              .where(scope.terminals(), s.closed_at.is_(None)))
    drawers: dict[tuple[int, int], Drawer] = {}
    for r in conn.execute(open_q):
        d = Drawer(r.terminal_id, r.shift_id, r.operator, r.currency, r.float_minor,
                   r.opened_at)
        d.figures[r.currency] = {**_zero(), "float": r.float_minor}
        drawers[(r.terminal_id, r.shift_id)] = d
    if not drawers:
        return {}
    opened = select(s.terminal_id, s.shift_id, s.opened_at).join(
        t.terminals, t.terminals.c.id == s.terminal_id).where(
        scope.terminals(), s.closed_at.is_(None)).subquery()

    def add(tid: int, sid: int, cur: str, key: str, value: Any) -> None:
        d = drawers.get((tid, sid))
        if d is not None:
            d.figures.setdefault(cur, _zero())[key] += int(value or 0)

    st = t.sale_tenders.c
    for r in conn.execute(
            select(st.terminal_id, st.shift_id, st.currency,
                   func.sum(st.tendered_minor).label("tendered"),
                   func.sum(st.change_minor).label("change"))
            .join(opened, and_(opened.c.terminal_id == st.terminal_id,
                               opened.c.shift_id == st.shift_id))
            .where(st.tender == "cash", st.state == "paid")
            .group_by(st.terminal_id, st.shift_id, st.currency)):
        add(r.terminal_id, r.shift_id, r.currency, "cash_sales", r.tendered)
        add(r.terminal_id, r.shift_id, r.currency, "change", r.change)
    m = t.cash_moves.c
    for r in conn.execute(
            select(m.terminal_id, m.shift_id, m.kind, m.currency,
                   func.sum(m.amount_minor).label("amount"))
            .join(opened, and_(opened.c.terminal_id == m.terminal_id,
                               opened.c.shift_id == m.shift_id))
            .group_by(m.terminal_id, m.shift_id, m.kind, m.currency)):
        add(r.terminal_id, r.shift_id, r.currency, _MOVE_FIGURE[r.kind], r.amount)
    x = t.txns.c
    for r in conn.execute(
            select(opened.c.terminal_id, opened.c.shift_id, x.currency,
                   func.sum(x.amount_minor).label("amount"))
            .join(opened, and_(opened.c.terminal_id == x.terminal_id,
                               x.created_at >= opened.c.opened_at))
            .where(x.tender == "cash", x.kind.in_(POWER_KINDS),
                   x.state.in_(sorted(str(k) for k in CASH_KEPT_STATES)))
            .group_by(opened.c.terminal_id, opened.c.shift_id, x.currency)):
        add(r.terminal_id, r.shift_id, r.currency, "power_cash", r.amount)
    return {d.terminal_id: d for d in drawers.values()}


def shift_list(conn: Connection, scope: Scope, limit: int = 200) -> list[dict[str, Any]]:
    """The shifts newest first: float, expected, counted and variance (the cash-up's,
    as the terminal stored them; an open shift's expected so far)."""
    q = (select(t.shifts, t.terminals.c.name.label("terminal"))
         .join(t.terminals, t.terminals.c.id == t.shifts.c.terminal_id)
         .where(scope.terminals()).order_by(t.shifts.c.opened_at.desc()).limit(limit))
    drawers = open_drawers(conn, scope)
    out = []
    for r in conn.execute(q):
        cur = r.currency
        row: dict[str, Any] = {
            "terminal": r.terminal, "id": r.shift_id, "operator": r.operator,
            "opened_at": parse(r.opened_at), "closed_at": parse(r.closed_at),
            "closed_by": r.closed_by, "open": r.closed_at is None,
            "float": Money(r.float_minor, cur).format(), "counted": None, "variance": None,
            "variance_minor": None, "expected": None}
        if r.closed_at is None:
            d = drawers.get(r.terminal_id)
            if d is not None and d.shift_id == r.shift_id:
                row["expected"] = d.expected().format()
        else:
            if r.expected_minor is not None:
                row["expected"] = Money(r.expected_minor, cur).format()
            if r.counted_minor is not None and r.expected_minor is not None:
                var = r.counted_minor - r.expected_minor
                row.update(counted=Money(r.counted_minor, cur).format(),
                           variance=Money(var, cur).format(), variance_minor=var)
            row["others"] = _other_currencies(r.report_json, cur)
        out.append(row)
    return out


def _other_currencies(report_json: str | None, main: str) -> list[dict[str, str]]:
    """Variances in the shift's other currencies (electricity sold in the vendor's), from
    the stored cash-up report."""
    try:
        report = json.loads(report_json or "{}")
    except ValueError:
        return []
    out = []
    for cur, v in sorted((report.get("currencies") or {}).items()):
        if cur == main or not isinstance(v, dict) or not v.get("variance"):
            continue
        out.append({"currency": cur,
                    "expected": Money(int(v["expected"]["minor"]), cur).format(),
                    "counted": Money(int((v.get("counted") or {}).get("minor", 0)),
                                     cur).format(),
                    "variance": Money(int(v["variance"]["minor"]), cur).format()})
    return out


__all__ = ["Drawer", "open_drawers", "shift_list"]
