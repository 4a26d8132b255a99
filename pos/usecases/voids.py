"""Voids (supervisor): cancel a sale not yet sent, or credit back a settled card payment."""

from __future__ import annotations

from pos.errors import InputError
from pos.journal import Kind, State, Tender
from pos.usecases.context import Context
from pos.usecases.results import SaleResult
from pos.usecases.settle import finish

VOIDABLE_QUEUED = {Kind.card_debit, Kind.vend, Kind.postpaid}


async def void(ctx: Context, ref: str, supervisor: str, reason: str = "") -> SaleResult:
    txn = ctx.journal.require(ref)
    note = f"voided by {supervisor}" + (f": {reason.strip()}" if reason.strip() else "")
    if txn.state == State.queued and txn.kind in VOIDABLE_QUEUED and not txn.parent_ref:
        # Never sent: cancelling it is enough (the cashier hands back the cash).
        txn = finish(ctx, txn, State.cancelled, note=note, operator=supervisor)
        return SaleResult("approved", txn.ref, "Voided before it was sent", txn)
    if txn.kind != Kind.card_debit or txn.state != State.done:
        raise InputError("Only a settled card payment, or a sale still queued, can be voided "
                         "(a delivered token cannot be taken back)")
    if txn.card_id is None:
        raise InputError("This payment has no card to credit")
    children = ctx.journal.children(txn.ref)
    if any(c.kind == Kind.card_refund for c in children):
        raise InputError("This payment was already voided or refunded")
    if any(c.kind in (Kind.vend, Kind.postpaid) for c in children):
        raise InputError("This card payment bought electricity: a delivered token or bill "
                         "cannot be taken back, and a failed one is refunded automatically")
    ctx.ensure_room()
    from pos.usecases.cards import balance_before, card_snapshot, credit

    info = await card_snapshot(ctx, txn.card_id, txn.card_no, txn.amount.currency)
    refund = ctx.journal.create(
        # Booked to the cashier who took the sale (the supervisor approved: in details).
        Kind.card_refund, txn.amount, tender=Tender.card, operator=txn.operator,
        terminal_id=ctx.terminal_id, card_id=txn.card_id, card_no=txn.card_no,
        wallet=txn.wallet, reason=f"Void of {txn.ref}", parent_ref=txn.ref,
        details={"void_of": txn.ref, "supervisor": supervisor, "why": reason.strip(),
                 **balance_before(info, "Current Account", ctx.device.stamp())},
    )
    result = await credit(ctx, refund,
                          success=f"Voided: {txn.amount.format()} credited back to the card")
    if result.status == "offline":
        return SaleResult("offline", result.ref,
                          "Void accepted: the card is credited when the link is back",
                          result.txn)
    return result
