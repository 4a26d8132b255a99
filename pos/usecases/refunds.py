"""Card pays for electricity: if the vend finally fails, the card is credited back.

The refund is its own journal row (kind ``card_refund``, own ref) whose
``parent_ref`` is the card debit and whose details name the failed vend, so
the three are linked both ways. It is created queued and sent like any other
outbox item, so a crash or a dead link only delays it.
"""

from __future__ import annotations

import datetime as dt
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
        once_per_parent=True,  # one refund per debit, whoever gets here first
    )
    if (refund.details or {}).get("vend_ref") == failed.ref and refund.state == State.queued:
        log.info("refund %s queued for failed %s %s", refund.ref, failed.kind, failed.ref)
    return refund


#: A refund check whose card debit is still unsettled is looked at again this much later.
RECHECK_SECONDS = 60.0


def owed_refunds(ctx: Context, *, limit: int = 100) -> list[Txn]:
    """Failed card-paid sales whose refund row may be missing (e.g. a crash in between).

    Such a sale is scheduled for a check when it fails (``next_attempt_at``, see
    Journal.refund_checks_due): a pass reads only the checks that are due, so its
    work does not grow with the number of failed sales in the journal."""
    out = []
    now = ctx.clock()
    for txn in ctx.journal.refund_checks_due(now, limit=limit):
        refund = ensure_refund(ctx, txn) if txn.parent_ref else None
        if refund is not None:
            out.append(refund)
            ctx.journal.refund_checked(txn.ref, None)
            continue
        debit = ctx.journal.get(txn.parent_ref) if txn.parent_ref else None
        unsettled = debit is not None and debit.needs_sync
        ctx.journal.refund_checked(
            txn.ref, now + dt.timedelta(seconds=RECHECK_SECONDS) if unsettled else None)
    return out
