"""A basket sale: one journal entity (``sales`` + ``sale_lines``) with its tender parts
(``sale_tenders``): cash (tendered, change) and card, a card part being the card_debit
row of the existing debit path (:func:`pos.usecases.cards.pay_by_card`: journaled before
it is sent, exactly once, offline within limits). There is no second path to money.

The sale is journaled (state ``open``) before its first tender; it is ``done`` when the
parts paid cover the total. A declined card part leaves the sale open: the cashier picks
another tender. A card debit carries the sale id in its details, so the link between the
debit and the sale is in the journal before the request leaves.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pos import shifts
from pos.basket import Basket
from pos.errors import InputError
from pos.journal.codec import like_escape
from pos.journal.models import iso
from pos.money import Money
from pos.receipts import Receipt

if TYPE_CHECKING:
    from pos.journal import Journal
    from pos.usecases.context import Context
    from pos.usecases.results import CardLookup, SaleResult

#: How a card part's journal state reads on the tender screen and the receipt.
_CARD_PAID = ("approved", "offline", "pending", "review")


@dataclass(frozen=True)
class SaleLine:
    name: str
    qty: int
    unit: Money
    discount: Money
    product_id: int | None

    @property
    def gross(self) -> Money:
        return Money(self.unit.minor * self.qty, self.unit.currency)

    @property
    def total(self) -> Money:
        return self.gross - self.discount


@dataclass(frozen=True)
class TenderPart:
    id: int
    tender: str  # cash | card
    state: str  # paid | declined
    amount: Money
    tendered: Money
    change: Money
    txn_ref: str | None
    operator: str


@dataclass(frozen=True)
class Sale:
    id: str
    state: str  # open | done | abandoned | voided
    operator: str
    shift_id: int | None
    subtotal: Money
    discount: Money
    total: Money
    reason: str
    lines: tuple[SaleLine, ...]
    parts: tuple[TenderPart, ...]
    created_at: dt.datetime
    completed_at: dt.datetime | None
    receipt_number: int | None
    discount_by: str | None

    @property
    def paid(self) -> Money:
        return sum((p.amount for p in self.parts if p.state == "paid"),
                   Money.zero(self.total.currency))

    @property
    def remaining(self) -> Money:
        return self.total - self.paid

    @property
    def change(self) -> Money:
        return sum((p.change for p in self.parts if p.state == "paid"),
                   Money.zero(self.total.currency))

    def tender_label(self) -> str:
        kinds = sorted({p.tender for p in self.parts if p.state == "paid"})
        return "SPLIT" if len(kinds) > 1 else (kinds[0].upper() if kinds else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "state": self.state, "operator": self.operator,
            "shift_id": self.shift_id, "subtotal": self.subtotal.to_json(),
            "discount": self.discount.to_json(), "total": self.total.to_json(),
            "paid": self.paid.to_json(), "remaining": self.remaining.to_json(),
            "change": self.change.to_json(), "reason": self.reason,
            "lines": [{"name": ln.name, "qty": ln.qty, "unit": ln.unit.to_json(),
                       "discount": ln.discount.to_json(), "total": ln.total.to_json(),
                       "product_id": ln.product_id} for ln in self.lines],
            "tenders": [{"tender": p.tender, "state": p.state, "amount": p.amount.to_json(),
                         "tendered": p.tendered.to_json(), "change": p.change.to_json(),
                         "ref": p.txn_ref} for p in self.parts],
            "receipt_number": self.receipt_number,
        }


# ------------------------------------------------------------------ reading
def load(journal: Journal, sale_id: str) -> Sale:
    rows = journal.query("SELECT * FROM sales WHERE id = ?", (sale_id,))
    if not rows:
        raise InputError(f"No sale {sale_id}")
    r = rows[0]
    cur = r["currency"]
    lines = tuple(SaleLine(x["name"], x["qty"], Money(x["unit_minor"], cur),
                           Money(x["discount_minor"], cur), x["product_id"])
                  for x in journal.query("SELECT * FROM sale_lines WHERE sale_id = ?"
                                         " ORDER BY line_no", (sale_id,)))
    parts = tuple(TenderPart(x["id"], x["tender"], x["state"], Money(x["amount_minor"], cur),
                             Money(x["tendered_minor"], cur), Money(x["change_minor"], cur),
                             x["txn_ref"], x["operator"])
                  for x in journal.query("SELECT * FROM sale_tenders WHERE sale_id = ?"
                                         " ORDER BY id", (sale_id,)))
    return Sale(r["id"], r["state"], r["operator"], r["shift_id"], Money(r["subtotal_minor"], cur),
                Money(r["discount_minor"], cur), Money(r["total_minor"], cur), r["reason"],
                lines, parts, dt.datetime.fromisoformat(r["created_at"]),
                dt.datetime.fromisoformat(r["completed_at"]) if r["completed_at"] else None,
                r["receipt_number"], r["discount_by"])


def recent(journal: Journal, limit: int = 50, search: str | None = None,
           offset: int = 0) -> list[Sale]:
    """Basket sales, newest first, less those abandoned with nothing paid. ``search``:
    part of the sale id or of a line's name (a cash-only sale has no journal row, so
    this is how it is found again: to reprint it or void it)."""
    where, args = "state != 'abandoned'", []
    if search:
        like = "%" + like_escape(search) + "%"
        where += (" AND (id LIKE ? ESCAPE '\\' OR id IN (SELECT sale_id FROM sale_lines"
                  " WHERE name LIKE ? ESCAPE '\\'))")
        args += [like, like]
    rows = journal.query(f"SELECT id FROM sales WHERE {where} ORDER BY created_at DESC"
                         " LIMIT ? OFFSET ?", (*args, limit, offset))
    return [load(journal, r["id"]) for r in rows]


# ------------------------------------------------------------------ writing
def begin(ctx: Context, basket: Basket) -> Sale:
    """Journal the basket as an open sale (before any tender)."""
    if basket.is_empty():
        raise InputError("The basket is empty")
    if basket.total.minor <= 0:
        raise InputError("The sale total must be greater than zero")
    if basket.currency != ctx.card_currency:
        raise InputError(f"This terminal sells in {ctx.card_currency}")
    ctx.ensure_room()
    shift = shifts.current(ctx.journal)
    now = iso(ctx.clock())
    reason = basket.reason()
    with ctx.journal.transaction() as conn:
        for _ in range(20):
            sale_id = "S" + ctx.journal.draw_ref()
            if not conn.execute("SELECT 1 FROM sales WHERE id = ?", (sale_id,)).fetchone():
                break
        conn.execute(
            "INSERT INTO sales(id, shift_id, state, operator, currency, subtotal_minor,"
            " discount_minor, total_minor, discount_by, reason, created_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (sale_id, shift.id if shift else None, "open", ctx.operator, basket.currency,
             basket.subtotal.minor, basket.discount_total.minor, basket.total.minor,
             basket.discount_by, reason, now))
        conn.executemany(
            "INSERT INTO sale_lines(sale_id, line_no, product_id, name, qty, unit_minor,"
            " discount_minor) VALUES (?,?,?,?,?,?,?)",
            [(sale_id, i, ln.item.product_id, ln.item.name, ln.qty, ln.item.price.minor,
              ln.discount.minor) for i, ln in enumerate(basket.lines, start=1)])
    return load(ctx.journal, sale_id)


def _open(ctx: Context, sale_id: str, amount: Money) -> Sale:
    sale = load(ctx.journal, sale_id)
    if sale.state != "open":
        raise InputError(f"Sale {sale_id} is {sale.state}")
    if amount.currency != sale.total.currency:
        raise InputError(f"This sale is in {sale.total.currency}")
    if amount.minor <= 0:
        raise InputError("The amount must be greater than zero")
    return sale


def _add_part(ctx: Context, sale: Sale, tender: str, state: str, amount: Money,
              tendered: Money, txn_ref: str | None) -> Sale:
    """Record a tender part, and close the sale when the parts paid cover it (one
    transaction: a sale is never done without the part that paid it)."""
    shift = shifts.current(ctx.journal)
    now = iso(ctx.clock())
    with ctx.journal.transaction() as conn:
        conn.execute(
            "INSERT INTO sale_tenders(sale_id, shift_id, tender, state, amount_minor,"
            " tendered_minor, change_minor, txn_ref, operator, at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (sale.id, shift.id if shift else sale.shift_id, tender, state, amount.minor,
             tendered.minor, tendered.minor - amount.minor, txn_ref, ctx.operator, now))
        if shift is not None and sale.shift_id is None:  # the basket began before the
            # shift was opened (the tender opens it): the sale is this shift's
            conn.execute("UPDATE sales SET shift_id = ? WHERE id = ? AND shift_id IS NULL",
                         (shift.id, sale.id))
        paid = conn.execute("SELECT coalesce(sum(amount_minor), 0) FROM sale_tenders"
                            " WHERE sale_id = ? AND state = 'paid'", (sale.id,)).fetchone()[0]
        if paid >= sale.total.minor:
            conn.execute("UPDATE sales SET state = 'done', completed_at = ? WHERE id = ?",
                         (now, sale.id))
    return load(ctx.journal, sale.id)


async def pay_card(ctx: Context, sale_id: str, lookup: CardLookup, amount: Money, wallet: str,
                   pin: str | None) -> tuple[SaleResult, Sale]:
    """A card part of ``amount`` (at most what remains) through the one debit path."""
    from pos.usecases import cards

    with cards.refusals_journaled(ctx, lookup, amount, wallet, f"Sale {sale_id}",
                                  typed=pin is not None, details={"sale_id": sale_id}):
        sale = _open(ctx, sale_id, amount)
        if amount > sale.remaining:
            raise InputError(f"Only {sale.remaining.format()} remains to pay")
    result = await cards.pay_by_card(ctx, lookup, amount, wallet, pin, sale.reason,
                                     details={"sale_id": sale.id})
    state = "paid" if result.status in _CARD_PAID else "declined"
    return result, _add_part(ctx, sale, "card", state, amount, amount, result.ref)


def pay_cash(ctx: Context, sale_id: str, tendered: Money) -> Sale:
    """A cash part: what the customer handed over; change = tendered - what remains (when
    more was handed over than remains). Needs an open shift (the drawer) by default."""
    sale = _open(ctx, sale_id, tendered)
    if ctx.settings.counter.require_shift and shifts.current(ctx.journal) is None:
        raise InputError("No shift is open: open one with the opening float to take cash")
    amount = min(tendered, sale.remaining)
    if tendered.minor > 100 * max(sale.remaining.minor, 1) and tendered.minor > 1_000_000:
        raise InputError(f"{tendered.format()} handed over for {sale.remaining.format()}? "
                         "Type the amount again")
    return _add_part(ctx, sale, "cash", "paid", amount, tendered, None)


def abandon(ctx: Context, sale_id: str) -> Sale:
    """Give up an open sale nothing has paid yet (a declined card part paid nothing)."""
    sale = load(ctx.journal, sale_id)
    if sale.state != "open":
        return sale
    if any(p.state == "paid" for p in sale.parts):
        raise InputError("Part of this sale is paid: finish it, or a supervisor voids it")
    with ctx.journal.transaction() as conn:
        conn.execute("UPDATE sales SET state = 'abandoned', completed_at = ? WHERE id = ?"
                     " AND state = 'open'", (iso(ctx.clock()), sale_id))
    return load(ctx.journal, sale_id)


async def void(ctx: Context, sale_id: str, supervisor: str, reason: str = "") -> Sale:
    """A supervisor voids a sale: every card part is voided through the existing void
    (queued: cancelled; settled: credited back) and the cash kept is handed back (a cash
    refund in the open shift)."""
    from pos.usecases import voids

    voids.check_sale(ctx.journal, sale_id).require()  # every part, before any moves
    sale = load(ctx.journal, sale_id)
    paid = [p for p in sale.parts if p.state == "paid"]
    cash = sum((p.amount for p in paid if p.tender == "cash"), Money.zero(sale.total.currency))
    for part in paid:
        if part.tender == "card" and part.txn_ref:
            await voids.void(ctx, part.txn_ref, supervisor, reason or f"void of sale {sale_id}",
                             part_of_sale=True)
    if cash.minor:
        shifts.move_cash(ctx.journal, "refund", cash, f"void of sale {sale_id}", supervisor,
                         ctx.clock(), ref=sale_id)
    with ctx.journal.transaction() as conn:
        conn.execute("UPDATE sales SET state = 'voided' WHERE id = ?", (sale_id,))
        voids.record_sale_void(conn, sale_id, supervisor, reason.strip(), ctx.clock())
    return load(ctx.journal, sale_id)


def receipt_no(journal: Journal, sale: Sale) -> int:
    if sale.receipt_number:
        return sale.receipt_number
    number = journal.next_receipt_no()
    with journal.transaction() as conn:
        conn.execute("UPDATE sales SET receipt_number = ? WHERE id = ? AND receipt_number IS NULL",
                     (number, sale.id))
    return load(journal, sale.id).receipt_number or number


def receipt(ctx: Context, sale_id: str, *, duplicate: bool = False) -> Receipt:
    """The sale's receipt: its lines, discounts, each tender part, the change."""
    journal = ctx.journal
    sale = load(journal, sale_id)
    rows: list[tuple[str, str]] = []
    for ln in sale.lines:
        label = f"{ln.qty} x {ln.name}" if ln.qty > 1 else ln.name
        # The line before its discount, then the discount under it: the column adds up
        # to the total (4,500 then -450, not 4,050 then -450 again).
        rows.append((label, ln.gross.format(symbol=False)))
        if ln.discount.minor:
            rows.append(("  discount", (-ln.discount).format(symbol=False)))
    if sale.discount.minor:
        rows.append(("Subtotal", sale.subtotal.format()))
        rows.append(("Discount", (-sale.discount).format()))
    card_no = ""
    marks: set[str] = {"DUPLICATE"} if duplicate else set()
    notes: list[str] = []
    for part in sale.parts:
        if part.state != "paid":
            continue
        if part.tender == "cash":
            rows.append(("Cash", part.tendered.format()))
            if part.change.minor:
                rows.append(("Change", part.change.format()))
        else:
            txn = journal.get(part.txn_ref or "")
            card_no = card_no or (txn.card_no or "" if txn else "")
            state = f" ({txn.state})" if txn is not None and str(txn.state) != "done" else ""
            rows.append((f"Card{state}", part.amount.format()))
            if txn is not None and txn.needs_sync:
                marks.add("PENDING")
    if sale.state == "voided":
        marks.add("VOIDED")
        notes.append("VOIDED: card parts credited back, cash handed back")
    from pos.hubsync import receipt_header

    name, registration = receipt_header(journal)
    stamp = (sale.completed_at or sale.created_at).astimezone()
    return Receipt(merchant_name=name or ctx.settings.merchant_name,
                   merchant_registration=registration or "",
                   terminal_id=ctx.terminal_id, receipt_no=receipt_no(journal, sale),
                   ref=sale.id, timestamp=stamp, title="SALE", total=sale.total,
                   operator=sale.operator, lines=rows, tender=sale.tender_label(),
                   card_number=card_no, marks=marks, notes=notes)
