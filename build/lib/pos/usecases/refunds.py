"""Card pays for electricity: if the vend finally fails, the card is credited back.

The refund is its own journal row (kind ``card_refund``, own ref) whose
``parent_ref`` is the card debit and whose details name the failed vend, so
the three are linked both ways. It is created queued and sent like any other
outbox item, so a crash or a dead link only delays it.
"""

from __future__ import annotations

import logging

from pos.journal import Kind, State, Tender, Txn
from pos.usecases.context import Context

log = logging.getLogger(__name__)

REFUND_REASON = "Refund: electricity not delivered"


def ensure_refund(ctx: Context, failed: Txn) -> Txn | None:
    """Create (once) the refund owed for a failed card-paid vend or bill."""
    if failed.tender != Tender.card or not failed.parent_ref:
        return None
    debit = ctx.journal.get(failed.parent_ref)
    if debit is None or debit.kind != Kind.card_debit or debit.state != State.done:
        return None  # the card was never charged: nothing to give back
    for child in ctx.journal.children(debit.ref):
        if child.kind == Kind.card_refund:
            return child
    refund = ctx.journal.create(
        Kind.card_refund,
        debit.amount,
        tender=Tender.card,
        operator=failed.operator,
        terminal_id=ctx.terminal_id,
        card_id=debit.card_id,
        card_no=debit.card_no,
        wallet=debit.wallet,
        reason=REFUND_REASON,
        parent_ref=debit.ref,
        state=State.queued,
        details={"vend_ref": failed.ref, "debit_ref": debit.ref},
    )
    log.info("refund %s queued for failed %s %s", refund.ref, failed.kind, failed.ref)
    return refund


def owed_refunds(ctx: Context) -> list[Txn]:
    """Failed card-paid sales whose refund row is missing (e.g. a crash in between)."""
    out = []
    for txn in ctx.journal.list(states=[State.failed, State.declined, State.declined_offline],
                                kinds=[Kind.vend, Kind.postpaid], limit=1000):
        if txn.tender == Tender.card and txn.parent_ref:
            refund = ensure_refund(ctx, txn)
            if refund is not None:
                out.append(refund)
    return out
