"""Apply a provider's answer to a journal row: one place for foreground sales and sync.

Every path that learns how a money movement ended goes through here, so the
state machine, the PIN erasure and the automatic refund of a card-paid vend
that finally failed are decided once.

Two rules hold for every caller:

* the row is re-read before anything is decided: the TUI's foreground poll and
  the background sync may both be settling the same sale, and the first answer
  applied wins (a row already final is left as it is);
* an outcome learned *in the background* (by the sync engine, after the cashier
  was told "offline" or "pending") that refuses the sale is flagged for the
  merchant: the customer has left with goods or a receipt, and somebody must act.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pos.journal import Kind, State, Tender, Txn, is_final
from pos.providers.models import CardOpResult, CardOpStatus, VendOutcome, VendStatus
from pos.usecases.context import Context

log = logging.getLogger(__name__)

#: States after which a queued PIN is no longer needed.
_PIN_DONE = {State.done, State.declined, State.declined_offline, State.expired, State.cancelled,
             State.failed, State.resolved}


def finish(ctx: Context, txn: Txn, state: State, *, note: str | None = None,
           error: str | None = None, **fields: Any) -> Txn:
    """Transition (unless the row already got there) and erase a PIN no longer needed."""
    current = ctx.journal.require(txn.ref)
    if current.state != state or state == State.pending:
        if is_final(current.state) or current.state == State.resolved:
            log.info("%s already %s; %s not applied", txn.ref, current.state, state)
            return current
        current = ctx.journal.transition(txn.ref, state, note=note, error=error, **fields)
    if state in _PIN_DONE and current.kind == Kind.card_debit:
        ctx.journal.erase_pin(current.ref)
    return current


def refused_state(txn: Txn, *, background: bool = False) -> State:
    """A refusal nobody saw at the counter is flagged, never silently final.

    ``background``: the sync engine learned it, after the cashier was told the sale
    was accepted offline or pending.
    """
    power = txn.kind in (Kind.vend, Kind.postpaid)
    if power and (txn.state == State.pending or (background and not txn.offline)):
        return State.failed  # cash taken or card charged, nothing delivered
    if txn.kind == Kind.card_refund and background:
        return State.failed  # a refund the provider refuses must reach a person
    return State.declined_offline if (txn.offline or background) else State.declined


def apply_card_result(ctx: Context, txn: Txn, result: CardOpResult, *,
                      background: bool = False) -> Txn:
    txn = ctx.journal.require(txn.ref)
    if is_final(txn.state):
        return txn
    if result.status == CardOpStatus.APPROVED:
        return finish(ctx, txn, State.done, note=result.message,
                      provider_txn_id=result.provider_txn_id)
    return finish(ctx, txn, refused_state(txn, background=background), error=result.message)


def apply_vend_outcome(ctx: Context, txn: Txn, outcome: VendOutcome, *,
                       background: bool = False) -> Txn:
    """Record a PawaCard outcome; start the refund if a card-paid sale ended without power."""
    txn = ctx.journal.require(txn.ref)
    if is_final(txn.state) or txn.is_flagged:
        return txn  # settled meanwhile (by the foreground poll or the sync engine)
    if outcome.status == VendStatus.VENDED:
        charges = [{"name": c.name, "amount": c.amount} for c in outcome.charges]
        return finish(
            ctx, txn, State.done, note=outcome.message or "vended",
            token=outcome.token, receipt_no=outcome.receipt_no, units=outcome.units,
            charges=charges,
            provider_txn_id=str(outcome.transaction_id) if outcome.transaction_id else None,
            customer_name=outcome.customer_name or txn.customer_name,
            total=outcome.total_amount,
        )
    if outcome.status == VendStatus.PENDING:
        return finish(ctx, txn, State.pending, note=outcome.message or "pending",
                      provider_txn_id=str(outcome.transaction_id)
                      if outcome.transaction_id else txn.provider_txn_id)
    if outcome.status == VendStatus.DECLINED and outcome.throttled and (
        txn.offline or background
    ):
        # Nothing was done; PawaCard allows one sale per meter per 5 minutes. A sale
        # the customer already paid for waits and goes again.
        retry = ctx.clock() + dt.timedelta(seconds=ctx.settings.sync.meter_throttle_seconds)
        return ctx.journal.transition(txn.ref, State.queued, note="meter throttled",
                                      error=outcome.message, next_attempt_at=retry)
    if outcome.status != VendStatus.DECLINED:
        raise ValueError(f"{outcome.status} is not a final vend outcome")
    txn = finish(ctx, txn, refused_state(txn, background=background),
                 error=outcome.message or "declined")
    if txn.tender == Tender.card:
        from pos.usecases.refunds import ensure_refund

        ensure_refund(ctx, txn)
    return txn
