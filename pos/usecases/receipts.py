"""Build the printable :class:`~pos.receipts.Receipt` of a journal row."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pos.config import Settings
from pos.journal import Journal, Kind, State, Tender, Txn
from pos.receipts import Receipt

TITLES = {
    Kind.card_debit: "CARD PAYMENT",
    Kind.card_credit: "CARD TOP-UP",
    Kind.card_refund: "CARD REFUND",
    Kind.gift_activation: "GIFT CARD ACTIVATION",
    Kind.sente_activation: "SENTE CARD ACTIVATION",
    Kind.card_lock: "CARD LOCKED",
    Kind.card_unlock: "CARD UNLOCKED",
    Kind.vend: "ELECTRICITY TOKEN",
    Kind.postpaid: "ELECTRICITY BILL",
}


def receipt_number(journal: Journal, txn: Txn) -> int:
    """Our receipt number, drawn once per transaction and kept in the journal."""
    if txn.receipt_number:
        return txn.receipt_number
    number = journal.next_receipt_no()
    journal.update(txn.ref, receipt_number=number)
    return number


def _charge_lines(txn: Txn) -> list[tuple[str, str]]:
    """A card-paid token or bill: what the card was debited, in its currency, and the
    rate; its card debit: the sale's amount and the rate (the quote the customer saw)."""
    if txn.tender != Tender.card:
        return []
    details = txn.details or {}
    raw = details.get("quote")
    quote: dict[str, Any] = raw if isinstance(raw, dict) else {}
    rate = str(quote.get("rate") or "")
    out: list[tuple[str, str]] = []
    if txn.kind == Kind.card_debit:
        price = quote.get("price") or details.get("price")
        if rate and isinstance(price, dict):
            out.append(("Sale amount", str(price.get("display", ""))))
    else:
        charge = details.get("card_amount") or quote.get("charge")
        if isinstance(charge, dict):
            out.append(("Charged to card", str(charge.get("display", ""))))
    if rate:
        out.append(("Rate", rate))
    return out


def build_receipt(settings: Settings, journal: Journal, txn: Txn, *,
                  duplicate: bool = False) -> Receipt:
    marks: set[str] = set()
    notes: list[str] = []
    if duplicate:
        marks.add("DUPLICATE")
    if txn.offline and txn.state != State.done:
        marks.add("OFFLINE")
    if txn.clock_synced is False:
        # The wall clock was not synchronised when the sale was made (a Pi without RTC
        # after a power cut): the time printed may be wrong; the ref and number are not.
        marks.add("TIME NOT SYNCED")
    if txn.kind in (Kind.vend, Kind.postpaid) and txn.needs_sync:
        marks.add("TOKEN PENDING" if txn.kind == Kind.vend else "PENDING")
        notes.append("Token follows when the provider answers" if txn.kind == Kind.vend
                     else "Payment will be confirmed by the provider")
    elif txn.needs_sync:
        marks.add("PENDING")
    if txn.state in (State.declined, State.declined_offline, State.failed, State.expired):
        marks.add("DECLINED")
        if txn.last_error:
            notes.append(txn.last_error)
    lines: list[tuple[str, str]] = []
    if txn.wallet:
        lines.append(("Wallet", txn.wallet))
    if txn.reason and txn.kind in (Kind.card_debit, Kind.card_credit, Kind.card_refund):
        lines.append(("For", txn.reason))
    lines.extend(_charge_lines(txn))
    if txn.parent_ref:
        for child in journal.children(txn.parent_ref):
            if child.kind == Kind.card_refund:
                marks.add("REFUNDED")
                notes.append(f"Card credited back {child.amount.format()} (ref {child.ref}, "
                             f"{child.state})")
    if txn.kind == Kind.card_debit:
        for child in journal.children(txn.ref):
            if child.kind == Kind.card_refund and "void_of" in (child.details or {}):
                marks.add("VOIDED")
                notes.append(f"Voided: {child.amount.format()} credited back (ref {child.ref}, "
                             f"{child.state})")
    void = (txn.details or {}).get("void")
    if txn.state == State.cancelled and isinstance(void, dict):
        marks.add("VOIDED")
        notes.append(f"Voided before it was sent, by {void.get('by', '')}")
    if txn.kind == Kind.card_refund:
        if (txn.details or {}).get("void_of"):
            notes.append(f"Void of card payment {txn.details['void_of']}")
        vend_ref = (txn.details or {}).get("vend_ref")
        if vend_ref:
            notes.append(f"Refund for electricity sale {vend_ref}")
    timestamp = (txn.settled_at or txn.created_at).astimezone()
    from pos.hubsync import receipt_header  # the name and number the hub verified

    verified_name, registration = receipt_header(journal)
    return Receipt(
        merchant_name=verified_name or settings.merchant_name,
        merchant_registration=registration or "",
        terminal_id=txn.terminal_id,
        receipt_no=receipt_number(journal, txn),
        ref=txn.ref,
        timestamp=timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=dt.UTC),
        title=TITLES.get(txn.kind, str(txn.kind).upper()),
        total=txn.amount,
        operator=txn.operator,
        lines=lines,
        tender=str(txn.tender).upper() if txn.tender != Tender.none else "",
        card_number=txn.card_no or "",
        meter=txn.meter or "",
        account=txn.account or "",
        customer_name=txn.customer_name or "",
        token=txn.token or "",
        units=txn.units or "",
        charges=[(c.get("name", ""), c.get("amount", "")) for c in txn.charges],
        provider_receipt_no=txn.receipt_no or "",
        marks=marks,
        notes=notes,
    )
