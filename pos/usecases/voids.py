"""Voids (supervisor): cancel a sale not yet sent, or credit back a settled card payment."""

from __future__ import annotations

from pos.errors import Declined, InputError, OutcomeUnknown, ProviderError, ProviderUnavailable
from pos.journal import Kind, State, Tender
from pos.providers.models import CardOpStatus
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
    refund = ctx.journal.create(
        Kind.card_refund, txn.amount, tender=Tender.card, operator=supervisor,
        terminal_id=ctx.terminal_id, card_id=txn.card_id, card_no=txn.card_no,
        wallet=txn.wallet, reason=f"Void of {txn.ref}", parent_ref=txn.ref,
        details={"void_of": txn.ref, "supervisor": supervisor, "why": reason.strip()},
    )
    refund = ctx.journal.transition(refund.ref, State.sending)
    try:
        res = await ctx.patasente.credit_card(txn.card_id, txn.amount, refund.reason or "Void",
                                              refund.ref)
    except ProviderUnavailable as exc:
        ctx.link.patasente.record_failure(str(exc))
        refund = ctx.journal.transition(refund.ref, State.queued, note="link down: will retry")
        return SaleResult("offline", refund.ref,
                          "Void accepted: the card is credited when the link is back", refund)
    except Declined as exc:
        refund = finish(ctx, refund, State.declined, error=exc.message)
        return SaleResult("declined", refund.ref, exc.message, refund)
    except (OutcomeUnknown, ProviderError) as exc:
        refund = ctx.journal.transition(refund.ref, State.unknown, error=exc.message)
        return SaleResult("pending", refund.ref,
                          "No clear answer: the credit will be confirmed by sync", refund)
    ctx.link.patasente.record_success()
    if res.status == CardOpStatus.APPROVED:
        refund = finish(ctx, refund, State.done, note=note, provider_txn_id=res.provider_txn_id)
        return SaleResult("approved", refund.ref,
                          f"Voided: {txn.amount.format()} credited back to the card", refund)
    refund = finish(ctx, refund, State.declined, error=res.message)
    return SaleResult("declined", refund.ref, res.message, refund)
