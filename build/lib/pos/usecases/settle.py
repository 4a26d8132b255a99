"""Apply a provider's answer to a journal row: one place for foreground sales and sync.

Every path that learns how a money movement ended goes through here, so the
state machine, the PIN erasure and the automatic refund of a card-paid vend
that finally failed are decided once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from pos.journal import Kind, State, Tender, Txn
from pos.providers.models import CardOpResult, CardOpStatus, VendOutcome, VendStatus
from pos.usecases.context import Context

log = logging.getLogger(__name__)

#: States after which a queued PIN is no longer needed.
_PIN_DONE = {State.done, State.declined, State.declined_offline, State.expired, State.cancelled,
             State.failed, State.resolved}


def finish(ctx: Context, txn: Txn, state: State, *, note: str | None = None,
           error: str | None = None, **fields: Any) -> Txn:
    """Transition and, once the row no longer needs it, erase its queued PIN."""
    if txn.state != state or state == State.pending:
        txn = ctx.journal.transition(txn.ref, state, note=note, error=error, **fields)
    if state in _PIN_DONE and txn.kind == Kind.card_debit:
        ctx.journal.erase_pin(txn.ref)
    return txn


def refused_state(txn: Txn) -> State:
    """An offline-accepted sale refused at sync is flagged, not silently dropped."""
    return State.declined_offline if txn.offline else State.declined


def apply_card_result(ctx: Context, txn: Txn, result: CardOpResult) -> Txn:
    if result.status == CardOpStatus.APPROVED:
        return finish(ctx, txn, State.done, note=result.message,
                      provider_txn_id=result.provider_txn_id)
    return finish(ctx, txn, refused_state(txn), error=result.message)


def apply_vend_outcome(ctx: Context, txn: Txn, outcome: VendOutcome) -> Txn:
    """Record a PawaCard outcome; start the refund if a card-paid vend ended without power."""
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
    if outcome.status == VendStatus.DECLINED and outcome.throttled and txn.offline:
        # Nothing was done; PawaCard allows one sale per meter per 5 minutes.
        retry = ctx.clock() + dt.timedelta(seconds=ctx.settings.sync.meter_throttle_seconds)
        return ctx.journal.transition(txn.ref, State.queued, note="meter throttled",
                                      error=outcome.message, next_attempt_at=retry)
    if outcome.status in (VendStatus.DECLINED, VendStatus.UNKNOWN, VendStatus.ABSENT):
        target = State.failed if txn.state == State.pending else refused_state(txn)
        if outcome.status != VendStatus.DECLINED:
            raise ValueError(f"{outcome.status} is not a final vend outcome")
        txn = finish(ctx, txn, target, error=outcome.message or "declined")
        if txn.tender == Tender.card:
            from pos.usecases.refunds import ensure_refund

            ensure_refund(ctx, txn)
        return txn
    raise ValueError(f"unhandled vend outcome {outcome.status}")  # pragma: no cover


def details_json(**kw: object) -> str:
    return json.dumps(kw, default=str)
