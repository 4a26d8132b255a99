"""The VOID receipt: what was voided, what goes back to the customer, who approved it.

Built from the journal as :func:`pos.usecases.voids.void` recorded it (see that
module): the refund row of a settled card payment, the cancelled row of a sale voided
before it was sent, or a basket sale marked voided. Its total is what goes back
(negative); its receipt number is drawn once and kept with the void.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from pos.config import Settings
from pos.errors import InputError
from pos.journal import Journal, Kind, State, Txn
from pos.money import Money
from pos.receipts import Receipt
from pos.usecases import voids
from pos.usecases.receipts import TITLES, receipt_number

_REFUND_FAILED = {State.declined, State.declined_offline, State.failed, State.expired,
                  State.review, State.cancelled}


@dataclass
class _Void:
    """The parts of a void receipt, whichever way the void was recorded."""

    ref: str  # the void's own ref (the refund row, or the row / sale voided)
    original: str
    what: str  # "CARD PAYMENT UGX 3,000"
    amount: Money  # what goes back to the customer
    by: str
    why: str
    cashier: str
    number: int
    at: dt.datetime
    card_no: str = ""
    lines: list[tuple[str, str]] = field(default_factory=list)
    marks: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def _credited(journal: Journal, refund: Txn, original: Txn | None) -> _Void:
    details = refund.details or {}
    void = _Void(refund.ref, str(details.get("void_of") or refund.parent_ref or ""),
                 _what(original), refund.amount, str(details.get("supervisor", "")),
                 str(details.get("why", "")), refund.operator,
                 receipt_number(journal, refund), refund.settled_at or refund.created_at,
                 refund.card_no or "")
    void.lines.append(("Credited to card", refund.amount.format()))
    if refund.needs_sync:
        void.marks.add("PENDING")
        void.notes.append("The card is credited when the link is back")
    elif refund.state in _REFUND_FAILED:
        void.marks.add("DECLINED")
        void.notes.append(f"The credit back did not go through ({refund.state}): a "
                          "supervisor settles it from the journal")
    else:
        void.notes.append(f"{refund.amount.format()} credited back to the card")
    return void


def _cancelled(journal: Journal, txn: Txn, info: dict[str, object]) -> _Void:
    number = info.get("receipt_number")
    if not isinstance(number, int):
        number = journal.next_receipt_no()
        journal.update(txn.ref, details={"void": {**info, "receipt_number": number}})
    void = _Void(txn.ref, txn.ref, _what(txn), txn.amount, str(info.get("by", "")),
                 str(info.get("why", "")), txn.operator, number,
                 txn.settled_at or txn.updated_at, txn.card_no or "")
    if txn.kind == Kind.card_debit:
        void.notes.append("Cancelled before it was sent: the card was not charged")
    else:
        void.lines.append(("Cash to hand back", txn.amount.format()))
        void.notes.append("Cancelled before it was sent: hand the cash back")
    return void


def _sale(journal: Journal, sale_id: str) -> _Void:
    from pos.usecases import sale as sales

    sale = sales.load(journal, sale_id)
    if sale.state != "voided":
        raise InputError(f"Sale {sale_id} was not voided")
    info = voids.sale_void(journal, sale_id)
    number = info.get("receipt_number")
    if not isinstance(number, int):
        number = journal.next_receipt_no()
        journal.meta_set(f"void.{sale_id}", json.dumps({**info, "receipt_number": number}))
    at_text = info.get("at")
    at = dt.datetime.fromisoformat(at_text) if isinstance(at_text, str) else (
        sale.completed_at or sale.created_at)
    void = _Void(sale_id, sale_id, f"SALE {sale.total.format()}", sale.paid,
                 str(info.get("by", "")), str(info.get("why", "")), sale.operator, number,
                 at)
    for part in sale.parts:
        if part.state != "paid":
            continue
        if part.tender == "cash":
            void.lines.append(("Cash handed back", part.amount.format()))
            continue
        txn = journal.get(part.txn_ref or "")
        void.card_no = void.card_no or (txn.card_no or "" if txn else "")
        mark = voids.mark(journal, txn) if txn is not None else None
        label = "Card credited" if mark is None or mark.label == "voided" else (
            f"Card ({mark.label})")
        void.lines.append((label, part.amount.format()))
        if mark is not None and mark.label == "void queued":
            void.marks.add("PENDING")
            void.notes.append("The card is credited when the link is back")
    return void


def _what(txn: Txn | None) -> str:
    if txn is None:
        return ""
    return f"{TITLES.get(txn.kind, str(txn.kind).upper())} {txn.amount.format()}"


def find(journal: Journal, ref: str) -> _Void:
    """The void of ``ref`` (the row voided, its refund row, or a basket sale id)."""
    txn = journal.get(ref)
    if txn is None:
        if journal.query("SELECT 1 FROM sales WHERE id = ?", (ref,)):
            return _sale(journal, ref)
        raise InputError(f"No transaction or sale with ref {ref}")
    if txn.kind == Kind.card_refund and (txn.details or {}).get("void_of"):
        return _credited(journal, txn, journal.get(str(txn.details["void_of"])))
    info = (txn.details or {}).get("void")
    if txn.state == State.cancelled and isinstance(info, dict):
        return _cancelled(journal, txn, info)
    if txn.kind == Kind.card_debit:
        sale_id = (txn.details or {}).get("sale_id")
        for child in journal.children(txn.ref):
            if child.kind == Kind.card_refund and "void_of" in (child.details or {}):
                if sale_id and journal.query("SELECT 1 FROM sales WHERE id = ? AND"
                                             " state = 'voided'", (sale_id,)):
                    return _sale(journal, str(sale_id))
                return _credited(journal, child, txn)
    raise InputError(f"{ref} was not voided")


def build_void_receipt(settings: Settings, journal: Journal, ref: str, *,
                       duplicate: bool = False) -> Receipt:
    void = find(journal, ref)
    from pos.hubsync import receipt_header  # the name and number the hub verified

    name, registration = receipt_header(journal)
    lines = [("Original ref", void.original), ("Original", void.what), *void.lines,
             ("Supervisor", void.by), ("Reason", void.why)]
    at = void.at if void.at.tzinfo else void.at.replace(tzinfo=dt.UTC)
    return Receipt(
        merchant_name=name or settings.merchant_name, merchant_registration=registration or "",
        terminal_id=settings.terminal_id, receipt_no=void.number, ref=void.ref,
        timestamp=at.astimezone(), title="VOID", total=-void.amount, operator=void.cashier,
        lines=lines, card_number=void.card_no,
        marks=void.marks | ({"DUPLICATE"} if duplicate else set()), notes=void.notes)
