"""Voids (supervisor): cancel a sale not yet sent, or credit back a settled card payment.

One rule decides what can be voided: :func:`check` (a journal row) and
:func:`check_sale` (a basket sale). The screens and the CLI ask it before any PIN is
typed; :func:`void` asks it again, inside the same rule, before it moves anything.

How a void is recorded, and so how it is read back (:func:`void_marks`, :func:`info`):

* a row still queued is cancelled, with ``details.void`` = who and why;
* a settled card payment gets a ``card_refund`` child (``parent_ref`` = the payment,
  ``details.void_of``), sent like any other outbox item;
* a basket sale is ``voided`` (sales.state), its card parts voided as above and its
  cash handed back (a ``refund`` cash move); who and why in the journal's meta.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pos.errors import InputError
from pos.journal import Kind, State, Tender, Txn
from pos.money import Money
from pos.usecases.context import Context
from pos.usecases.results import SaleResult
from pos.usecases.settle import finish

if TYPE_CHECKING:
    import sqlite3

    from pos.journal import Journal

VOIDABLE_QUEUED = {Kind.card_debit, Kind.vend, Kind.postpaid}
#: States whose outcome is still being settled: a void waits until it is known.
_IN_FLIGHT = {State.created, State.sending, State.unknown, State.pending}
_REFUSED = {State.declined, State.declined_offline, State.failed, State.expired}

How = Literal["cancel", "credit", "sale"]


@dataclass(frozen=True)
class Voidability:
    """Whether ``ref`` can be voided now: ``how`` (None: it cannot) and ``why_not``."""

    ref: str
    how: How | None
    why_not: str
    amount: Money
    sale_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.how is not None

    def require(self) -> Voidability:
        if not self.ok:
            raise InputError(self.why_not)
        return self

    def describe(self) -> str:
        """What the void will do, for the confirmation."""
        if self.how == "cancel":
            return f"cancel it before it is sent ({self.amount.format()} was not charged)"
        if self.how == "credit":
            return f"credit {self.amount.format()} back to the card"
        if self.how == "sale":
            return f"void the whole sale {self.sale_id} ({self.amount.format()} paid)"
        return self.why_not

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "voidable": self.ok, "how": self.how,
                "why_not": self.why_not or None, "amount": self.amount.to_json(),
                "sale_id": self.sale_id}


@dataclass(frozen=True)
class VoidMark:
    """How a voided (or refunded) row reads in the journal: a label and its linked row."""

    label: str  # voided | void queued | void failed | refunded
    refund_ref: str | None = None
    by: str = ""
    why: str = ""


def _no(txn: Txn, why: str) -> Voidability:
    return Voidability(txn.ref, None, why, txn.amount)


def _queued_void(txn: Txn) -> dict[str, Any] | None:
    void = (txn.details or {}).get("void")
    return void if isinstance(void, dict) else None


def check(journal: Journal, txn: Txn, *, part_of_sale: bool = False) -> Voidability:
    """Can ``txn`` be voided, how, and if not why (plain words for a cashier).

    ``part_of_sale``: asked by :func:`pos.usecases.sale.void` for one of its card parts
    (otherwise a basket's card part is voided with its whole sale)."""
    if txn.state == State.cancelled and _queued_void(txn):
        return _no(txn, f"{txn.ref} was already voided (cancelled before it was sent)")
    children = journal.children(txn.ref) if txn.kind == Kind.card_debit else []
    if any(c.kind in (Kind.vend, Kind.postpaid) for c in children):
        return _no(txn, "This card payment bought electricity: a delivered token or bill "
                        "cannot be taken back, and a failed one is refunded automatically")
    if any(c.kind == Kind.card_refund for c in children):
        return _no(txn, "This payment was already voided or refunded")
    if txn.state == State.queued and txn.kind in VOIDABLE_QUEUED and not txn.parent_ref:
        found = Voidability(txn.ref, "cancel", "", txn.amount)
    elif txn.state in _IN_FLIGHT:
        return _no(txn, f"{txn.ref} is still being settled ({txn.state}): void it once "
                        "it is done")
    elif txn.state == State.review:
        return _no(txn, f"{txn.ref} waits for a supervisor to settle it (flagged): resolve "
                        "it first")
    elif txn.state in _REFUSED or txn.state == State.cancelled:
        return _no(txn, f"Nothing to void: {txn.ref} was {txn.state} (no money moved, "
                        "or it is flagged for a supervisor)")
    elif txn.kind in (Kind.vend, Kind.postpaid) and txn.state == State.done:
        return _no(txn, "A delivered token or a paid bill cannot be taken back")
    elif txn.kind != Kind.card_debit or txn.state != State.done:
        return _no(txn, "Only a settled card payment, or a sale still queued, can be voided "
                        "(a delivered token cannot be taken back)")
    elif txn.card_id is None:
        return _no(txn, "This payment has no card to credit")
    else:
        found = Voidability(txn.ref, "credit", "", txn.amount)
    sale_id = (txn.details or {}).get("sale_id")
    if sale_id and not part_of_sale:
        whole = check_sale(journal, str(sale_id))
        return Voidability(txn.ref, "sale" if whole.ok else None, whole.why_not,
                           whole.amount, str(sale_id))
    return found


def check_sale(journal: Journal, sale_id: str) -> Voidability:
    """Can basket sale ``sale_id`` be voided: every card part voidable, and an open
    shift to hand the cash back from."""
    from pos import shifts
    from pos.usecases import sale as sales

    sale = sales.load(journal, sale_id)
    if sale.state not in ("done", "open"):
        return Voidability(sale_id, None, f"Sale {sale_id} is {sale.state}: nothing to void",
                           sale.paid, sale_id)
    paid = [p for p in sale.parts if p.state == "paid"]
    for part in paid:
        if part.tender == "card" and part.txn_ref:
            txn = journal.get(part.txn_ref)
            if txn is None:
                continue
            one = check(journal, txn, part_of_sale=True)
            if not one.ok:
                return Voidability(sale_id, None, f"Card part {txn.ref}: {one.why_not}",
                                   sale.paid, sale_id)
    if any(p.tender == "cash" and p.amount.minor for p in paid) and \
            shifts.current(journal) is None:
        return Voidability(sale_id, None, "No shift is open: open one to hand the cash "
                           "back from the drawer", sale.paid, sale_id)
    return Voidability(sale_id, "sale", "", sale.paid, sale_id)


def check_ref(journal: Journal, ref: str) -> Voidability:
    """:func:`check` of a journal ref, or :func:`check_sale` of a basket sale id."""
    txn = journal.get(ref)
    if txn is not None:
        return check(journal, txn)
    if journal.query("SELECT 1 FROM sales WHERE id = ?", (ref,)):
        return check_sale(journal, ref)
    raise InputError(f"No transaction or sale with ref {ref}")


async def void(ctx: Context, ref: str, supervisor: str, reason: str = "", *,
               part_of_sale: bool = False) -> SaleResult:
    txn = ctx.journal.require(ref)
    why = reason.strip()
    note = f"voided by {supervisor}" + (f": {why}" if why else "")
    can = check(ctx.journal, txn, part_of_sale=part_of_sale)
    if can.how == "sale":
        raise InputError(f"{ref} is a card part of basket sale {can.sale_id}: void the sale")
    can.require()
    if can.how == "cancel":
        # Never sent: cancelling it is enough (the cashier hands back the cash).
        txn = finish(ctx, txn, State.cancelled, note=note, operator=supervisor,
                     details={"void": {"by": supervisor, "why": why}})
        return SaleResult("approved", txn.ref, "Voided before it was sent", txn)
    assert txn.card_id is not None  # check() said "credit"
    ctx.ensure_room()
    from pos.usecases.cards import balance_before, card_snapshot, credit

    info = await card_snapshot(ctx, txn.card_id, txn.card_no, txn.amount.currency)
    refund = ctx.journal.create(
        # Booked to the cashier who took the sale (the supervisor approved: in details).
        Kind.card_refund, txn.amount, tender=Tender.card, operator=txn.operator,
        terminal_id=ctx.terminal_id, card_id=txn.card_id, card_no=txn.card_no,
        wallet=txn.wallet, reason=f"Void of {txn.ref}", parent_ref=txn.ref,
        details={"void_of": txn.ref, "supervisor": supervisor, "why": why,
                 **balance_before(info, "Current Account", ctx.device.stamp())},
    )
    result = await credit(ctx, refund,
                          success=f"Voided: {txn.amount.format()} credited back to the card")
    if result.status == "offline":
        return SaleResult("offline", result.ref,
                          "Void accepted: the card is credited when the link is back",
                          result.txn)
    return result


# ------------------------------------------------------------------ reading back
def _refund_label(state: str, automatic: bool) -> str:
    if automatic:
        return "refunded"
    if state == State.done:
        return "voided"
    if state in (State.declined, State.declined_offline, State.failed, State.expired,
                 State.review, State.cancelled):
        return "void failed"
    return "void queued"


def void_marks(journal: Journal, txns: list[Txn]) -> dict[str, VoidMark]:
    """The rows of ``txns`` that were voided (or refunded), in one indexed query."""
    out: dict[str, VoidMark] = {}
    debits = [t.ref for t in txns if t.kind == Kind.card_debit]
    for txn in txns:
        void = _queued_void(txn) if txn.state == State.cancelled else None
        if void is not None:
            out[txn.ref] = VoidMark("voided", None, str(void.get("by", "")),
                                    str(void.get("why", "")))
    for start in range(0, len(debits), 500):
        chunk = debits[start:start + 500]
        rows = journal.query(
            "SELECT ref, parent_ref, state, details_json FROM txns WHERE kind = 'card_refund'"
            f" AND parent_ref IN ({','.join('?' * len(chunk))}) ORDER BY created_at, rowid",
            chunk)
        for r in rows:
            details = json.loads(r["details_json"] or "{}")
            automatic = "void_of" not in details
            out.setdefault(r["parent_ref"], VoidMark(
                _refund_label(r["state"], automatic), r["ref"],
                str(details.get("supervisor", "")), str(details.get("why", ""))))
    return out


def mark(journal: Journal, txn: Txn) -> VoidMark | None:
    return void_marks(journal, [txn]).get(txn.ref)


def sale_void(journal: Journal, sale_id: str) -> dict[str, Any]:
    """Who voided basket sale ``sale_id`` and why ({} if it was not)."""
    raw = journal.meta_get(f"void.{sale_id}")
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def record_sale_void(conn: sqlite3.Connection, sale_id: str, supervisor: str, why: str,
                     at: dt.datetime) -> None:
    """Inside the transaction that marks the sale voided."""
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE"
                 " SET value = excluded.value",
                 (f"void.{sale_id}", json.dumps({"by": supervisor, "why": why,
                                                 "at": at.isoformat()})))
