"""Shifts: one drawer session from the opening float to the blind cash-up.

Cash expected in the drawer =
    float + cash taken for sales (tendered) - change given + cash in - cash out
    - cash given back (refunds) + cash collected for flagged card debits.

"Cash taken for sales" is the basket sales' cash parts (``sale_tenders``) and the
electricity tokens and bills paid in cash (``txns`` with tender cash, in a state where
the cash stays in the drawer). Everything is read for the shift only: tender parts and
cash moves by their shift id, journal rows by the shift's time window (an indexed range
on ``created_at``), never the whole history.

The cash-up is blind: :func:`close` takes the counted amount first and only then
computes and returns what was expected, the variance and the figures per operator.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pos.errors import InputError
from pos.journal.models import Txn, iso
from pos.journal.states import FLAGGED_STATES, SYNC_STATES, Kind, State, Tender
from pos.money import Money
from pos.text import MAX_REASON, validate_free_text

if TYPE_CHECKING:
    import sqlite3

    from pos.journal import Journal

MoveKind = Literal["in", "out", "refund", "collected"]

#: Journal states of a cash electricity sale whose cash went into the drawer: done,
#: still settling, flagged (owed back) or resolved. A flagged sale's cash leaves only by
#: the refund move recorded when it is handed back (resolved with cash); a queued sale
#: voided (cancelled) hands its cash back with the void.
CASH_KEPT_STATES: frozenset[State] = frozenset({State.done, *SYNC_STATES, *FLAGGED_STATES,
                                                State.resolved})
#: The electricity kinds paid at the counter.
POWER_KINDS = ("vend", "postpaid")

FIGURES = ("float", "cash_sales", "change", "power_cash", "cash_in", "cash_out",
           "refunds", "collected")


@dataclass(frozen=True)
class Shift:
    id: int
    operator: str
    currency: str
    float: Money
    opened_at: dt.datetime
    closed_at: dt.datetime | None = None
    closed_by: str | None = None
    counted: Money | None = None
    expected: Money | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "operator": self.operator, "currency": self.currency,
                "float": self.float.to_json(), "opened_at": iso(self.opened_at),
                "closed_at": iso(self.closed_at) if self.closed_at else None,
                "closed_by": self.closed_by,
                "counted": self.counted.to_json() if self.counted else None,
                "expected": self.expected.to_json() if self.expected else None}


Figures = dict[str, int]


@dataclass
class ShiftReport:
    """The shift's cash figures in minor units, per currency (the float is in the shift's
    currency; electricity is sold in the vendor's), for the drawer and per operator."""

    shift: Shift
    figures: dict[str, Figures]  # currency -> figure -> minor units
    by_operator: dict[str, dict[str, Figures]]  # operator -> currency -> figures
    sales: int  # basket sales completed
    card_parts: int  # minor units paid by card in basket sales (shift currency)
    counted: dict[str, int] | None = None  # currency -> counted minor units (None: open)

    @property
    def currencies(self) -> list[str]:
        main = self.shift.currency
        return [main, *sorted(c for c in self.figures if c != main)]

    def expected(self, currency: str | None = None) -> Money:
        cur = currency or self.shift.currency
        return Money(_expected(self.figures.get(cur, _zero())), cur)

    def variance(self, currency: str | None = None) -> Money | None:
        """Counted minus expected (negative: cash is missing)."""
        cur = currency or self.shift.currency
        if self.counted is None:
            return None
        return Money(self.counted.get(cur, 0), cur) - self.expected(cur)

    def to_json(self) -> dict[str, Any]:
        def money(fig: Figures, cur: str) -> dict[str, Any]:
            return {k: Money(v, cur).to_json() for k, v in fig.items()}

        out: dict[str, Any] = {"shift": self.shift.to_json(), "currencies": {}}
        for cur in self.currencies:
            var = self.variance(cur)
            out["currencies"][cur] = {
                "figures": money(self.figures.get(cur, _zero()), cur),
                "expected": self.expected(cur).to_json(),
                "counted": (Money(self.counted.get(cur, 0), cur).to_json()
                            if self.counted is not None else None),
                "variance": var.to_json() if var is not None else None,
            }
        main = out["currencies"][self.shift.currency]
        out.update(expected=main["expected"], counted=main["counted"], variance=main["variance"])
        out["by_operator"] = {
            op: {cur: {"figures": dict(f), "cash_share": _share(f)} for cur, f in per.items()}
            for op, per in sorted(self.by_operator.items())}
        out["sales"] = self.sales
        out["card_in_sales"] = Money(self.card_parts, self.shift.currency).to_json()
        return out

    def lines(self) -> list[tuple[str, str]]:
        out = [("Shift", f"#{self.shift.id} {self.shift.operator}"),
               ("Opened", self.shift.opened_at.strftime("%Y-%m-%d %H:%M"))]
        labels = (("float", "Float", 1), ("cash_sales", "Cash sales", 1),
                  ("change", "Change given", -1), ("power_cash", "Electricity cash", 1),
                  ("cash_in", "Cash in", 1), ("cash_out", "Cash out", -1),
                  ("refunds", "Cash refunds", -1), ("collected", "Cash collected", 1))
        for cur in self.currencies:
            f = self.figures.get(cur, _zero())
            out.append((f"CASH {cur}", ""))
            for key, label, sign in labels:
                if f[key] or key in ("float", "cash_sales"):
                    out.append((label, Money(sign * f[key], cur).format()))
            out.append(("EXPECTED", self.expected(cur).format()))
            var = self.variance(cur)
            if self.counted is not None and var is not None:
                out += [("COUNTED", Money(self.counted.get(cur, 0), cur).format()),
                        ("VARIANCE", var.format())]
        out.append(("SALES", ""))
        out.append(("Baskets sold", str(self.sales)))
        out.append(("Paid by card", Money(self.card_parts, self.shift.currency).format()))
        out.append(("BY OPERATOR", ""))
        for op, per in sorted(self.by_operator.items()):
            out.append((op, ", ".join(Money(_share(f), c).format()
                                      for c, f in sorted(per.items()))))
        return out


def _zero() -> Figures:
    return dict.fromkeys(FIGURES, 0)


def _expected(f: Figures) -> int:
    return (f["float"] + f["cash_sales"] - f["change"] + f["power_cash"] + f["cash_in"]
            - f["cash_out"] - f["refunds"] + f["collected"])


def expected_cash(f: Figures) -> int:
    """Cash expected in the drawer from a shift's figures (the module docstring's sum);
    the back office computes the same from the uploaded rows (pos/hub/drawer.py)."""
    return _expected({**_zero(), **f})


def _share(f: Figures) -> int:
    """An operator's part of the expected cash (the float is the shift's, not theirs)."""
    return _expected({**_zero(), **f, "float": 0})


# ------------------------------------------------------------------- reading
def _to_shift(r: sqlite3.Row) -> Shift:
    cur = r["currency"]
    return Shift(
        id=r["id"], operator=r["operator"], currency=cur, float=Money(r["float_minor"], cur),
        opened_at=dt.datetime.fromisoformat(r["opened_at"]),
        closed_at=dt.datetime.fromisoformat(r["closed_at"]) if r["closed_at"] else None,
        closed_by=r["closed_by"],
        counted=Money(r["counted_minor"], cur) if r["counted_minor"] is not None else None,
        expected=Money(r["expected_minor"], cur) if r["expected_minor"] is not None else None)


def current(journal: Journal) -> Shift | None:
    rows = journal.query("SELECT * FROM shifts WHERE closed_at IS NULL")
    return _to_shift(rows[0]) if rows else None


def get(journal: Journal, shift_id: int) -> Shift:
    rows = journal.query("SELECT * FROM shifts WHERE id = ?", (shift_id,))
    if not rows:
        raise InputError(f"No shift #{shift_id}")
    return _to_shift(rows[0])


def history(journal: Journal, limit: int = 20) -> list[Shift]:
    return [_to_shift(r) for r in
            journal.query("SELECT * FROM shifts ORDER BY id DESC LIMIT ?", (limit,))]


CashResolution = Literal["collected", "refunded"]


def cash_resolution(txn: Txn) -> CashResolution | None:
    """How a flagged item is settled in cash, if it is: a cash electricity sale that
    failed has its cash handed back ("refunded"); a card debit refused after the goods
    left is paid in cash after all ("collected"). Anything else has no cash side."""
    if not txn.is_flagged:
        return None
    if txn.tender == Tender.cash and txn.kind in POWER_KINDS:
        return "refunded"
    if txn.kind == Kind.card_debit and txn.state != State.review:
        return "collected"
    return None


def require_open(journal: Journal) -> Shift:
    shift = current(journal)
    if shift is None:
        raise InputError("No shift is open: open one with the opening float first")
    return shift


def report(journal: Journal, shift: Shift, counted: dict[str, int] | None = None
           ) -> ShiftReport:
    """The shift's figures from its own rows only (see the module's docstring)."""
    per: dict[str, dict[str, Figures]] = defaultdict(lambda: defaultdict(_zero))
    totals: dict[str, Figures] = defaultdict(_zero)
    totals[shift.currency]["float"] = shift.float.minor

    def add(op: str, cur: str, key: str, value: int) -> None:
        per[op][cur][key] += value
        totals[cur][key] += value

    for r in journal.query(
            "SELECT t.operator, t.tendered_minor, t.change_minor, s.currency FROM sale_tenders t"
            " JOIN sales s ON s.id = t.sale_id"
            " WHERE t.shift_id = ? AND t.tender = 'cash' AND t.state = 'paid'", (shift.id,)):
        add(r["operator"], r["currency"], "cash_sales", r["tendered_minor"])
        add(r["operator"], r["currency"], "change", r["change_minor"])
    until = iso(shift.closed_at) if shift.closed_at else "9999"
    kept = tuple(str(s) for s in CASH_KEPT_STATES)
    marks = ",".join("?" * len(kept))
    for r in journal.query(
            f"SELECT operator, amount_minor, currency FROM txns"
            f" WHERE created_at >= ? AND created_at < ? AND tender = 'cash'"
            f" AND kind IN ('vend', 'postpaid') AND state IN ({marks})",
            (iso(shift.opened_at), until, *kept)):
        add(r["operator"], r["currency"], "power_cash", r["amount_minor"])
    names = {"in": "cash_in", "out": "cash_out", "refund": "refunds", "collected": "collected"}
    for r in journal.query("SELECT kind, operator, amount_minor, currency FROM cash_moves"
                           " WHERE shift_id = ?", (shift.id,)):
        add(r["operator"], r["currency"], names[r["kind"]], r["amount_minor"])
    sales = journal.query("SELECT count(*) AS n FROM sales WHERE shift_id = ? AND state = 'done'",
                          (shift.id,))[0]["n"]
    card = journal.query("SELECT coalesce(sum(amount_minor), 0) AS s FROM sale_tenders"
                         " WHERE shift_id = ? AND tender = 'card' AND state = 'paid'",
                         (shift.id,))[0]["s"]
    return ShiftReport(shift, {c: dict(f) for c, f in totals.items()},
                       {op: {c: dict(f) for c, f in v.items()} for op, v in per.items()},
                       int(sales), int(card), counted)


# ------------------------------------------------------------------- writing
def open_shift(journal: Journal, operator: str, float_: Money, now: dt.datetime) -> Shift:
    """Open the drawer with its float (0 allowed); refused while another shift is open."""
    if float_.minor < 0:
        raise InputError("The opening float cannot be negative")
    with journal.transaction() as conn:
        row = conn.execute("SELECT id, operator FROM shifts WHERE closed_at IS NULL").fetchone()
        if row is not None:
            raise InputError(f"Shift #{row['id']} of {row['operator']} is still open: "
                             "close it (cash-up) first")
        cur = conn.execute(
            "INSERT INTO shifts(operator, currency, float_minor, opened_at) VALUES (?,?,?,?)",
            (operator, float_.currency, float_.minor, iso(now)))
        shift_id = int(cur.lastrowid or 0)
    return get(journal, shift_id)


def move_cash(journal: Journal, kind: MoveKind, amount: Money, reason: str, operator: str,
              now: dt.datetime, *, ref: str | None = None) -> int:
    """Record cash put in, taken out, given back or collected, in the open shift."""
    with journal.transaction() as conn:
        return insert_move(conn, kind, amount, reason, operator, now, ref=ref)


def insert_move(conn: sqlite3.Connection, kind: MoveKind, amount: Money, reason: str,
                operator: str, now: dt.datetime, *, ref: str | None = None) -> int:
    """:func:`move_cash` inside a write transaction the caller holds (a flagged item
    resolved in cash: its state and its cash move are one step)."""
    if amount.minor <= 0:
        raise InputError("The amount must be greater than zero")
    reason = validate_free_text(reason, "reason", MAX_REASON)
    row = conn.execute("SELECT id FROM shifts WHERE closed_at IS NULL").fetchone()
    if row is None:
        raise InputError("No shift is open: open one with the opening float first")
    cur = conn.execute(
        "INSERT INTO cash_moves(shift_id, kind, amount_minor, currency, reason, operator,"
        " ref, at) VALUES (?,?,?,?,?,?,?,?)",
        (row["id"], kind, amount.minor, amount.currency, reason, operator, ref, iso(now)))
    return int(cur.lastrowid or 0)


def close(journal: Journal, counted: list[Money], operator: str, now: dt.datetime
          ) -> ShiftReport:
    """The blind cash-up: ``counted`` is what the cashier counted, per currency (one
    not given counts as none), typed before anything expected was shown; the shift
    closes with its report (immutable afterwards)."""
    shift = require_open(journal)
    amounts: dict[str, int] = {shift.currency: 0}
    seen: set[str] = set()
    for money in counted:
        if money.minor < 0:
            raise InputError("The counted cash cannot be negative")
        if money.currency in seen:
            raise InputError(f"{money.currency} was counted twice")
        seen.add(money.currency)
        amounts[money.currency] = money.minor
    closed = Shift(shift.id, shift.operator, shift.currency, shift.float, shift.opened_at,
                   closed_at=now, closed_by=operator,
                   counted=Money(amounts[shift.currency], shift.currency))
    rep = report(journal, closed, amounts)
    with journal.transaction() as conn:
        done = conn.execute(
            "UPDATE shifts SET closed_at = ?, closed_by = ?, counted_minor = ?,"
            " expected_minor = ?, report_json = ? WHERE id = ? AND closed_at IS NULL",
            (iso(now), operator, amounts[shift.currency], rep.expected().minor,
             json.dumps(rep.to_json(), default=str), shift.id))
        if done.rowcount != 1:
            raise InputError("The shift was closed meanwhile")
    rep.shift = get(journal, shift.id)
    return rep


def stored_report(journal: Journal, shift: Shift) -> ShiftReport:
    """A closed shift's report as it was at the cash-up (recomputed from its rows with
    the counts that were typed, which are kept in its report)."""
    rows = journal.query("SELECT report_json FROM shifts WHERE id = ?", (shift.id,))
    saved = json.loads(rows[0]["report_json"] or "{}") if rows else {}
    counted = {cur: int(v["counted"]["minor"]) for cur, v in saved.get("currencies", {}).items()
               if v.get("counted")}
    return report(journal, shift, counted or None)
