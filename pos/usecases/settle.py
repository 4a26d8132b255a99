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

from pos.journal import JournalUnwritable, Kind, State, Tender, Txn, is_final
from pos.providers.models import CardOpResult, CardOpStatus, VendOutcome, VendStatus
from pos.usecases.context import Context
from pos.usecases.reconcile import Action, Decision, record

log = logging.getLogger(__name__)

#: States after which a queued PIN is no longer needed.
_PIN_DONE = {State.done, State.declined, State.declined_offline, State.expired, State.cancelled,
             State.failed, State.resolved}


#: Message for the cashier when an answer could only go to the fallback file.
UNRECORDED = ("THE JOURNAL COULD NOT BE WRITTEN (storage full or locked). This result is "
              "kept in a fallback file and recorded at the next start: do not sell again "
              "until the journal is fixed (sente-pos doctor).")


def finish(ctx: Context, txn: Txn, state: State, *, note: str | None = None,
           error: str | None = None, **fields: Any) -> Txn:
    """Transition (unless the row already got there) and erase a PIN no longer needed.

    When the journal refuses the write (disk full past the reserve, locked past the
    busy timeout, an I/O error) the outcome goes to the fallback file instead
    (pos.journal.fallback) and the row returned carries ``details["unrecorded"]``: the
    cashier is shown the result and told not to sell again.
    """
    current = ctx.journal.require(txn.ref)
    if current.state != state or state == State.pending:
        if is_final(current.state) or current.state == State.resolved:
            log.info("%s already %s; %s not applied", txn.ref, current.state, state)
            return current
        try:
            current = ctx.journal.transition(txn.ref, state, note=note, error=error, **fields)
        except JournalUnwritable:
            return _unrecorded(ctx, current, state, note, error, fields)
    if state in _PIN_DONE and current.kind == Kind.card_debit:
        try:
            ctx.journal.erase_pin(current.ref)
        except JournalUnwritable:
            log.warning("%s: PIN erasure deferred (journal unwritable)", current.ref)
    return current


def _unrecorded(ctx: Context, txn: Txn, state: State, note: str | None, error: str | None,
                fields: dict[str, Any]) -> Txn:
    from dataclasses import replace

    from pos.journal import fallback

    log.error("%s: journal unwritable, outcome %s kept in the fallback file", txn.ref, state)
    fallback.append(fallback.fallback_path(ctx.journal.path), txn.ref, state, note=note,
                    error=error, fields=fields)
    keep = {k: v for k, v in fields.items()
            if k in ("token", "receipt_no", "units", "provider_txn_id", "customer_name")}
    return replace(txn, state=state, last_error=error or txn.last_error,
                   details={**txn.details, "unrecorded": True}, **keep)


def refused_state(txn: Txn, *, background: bool = False) -> State:
    """A refusal nobody saw at the counter is flagged, never silently final.

    ``background``: the sync engine learned it, after the cashier was told the sale
    was accepted offline or pending.
    """
    power = txn.kind in (Kind.vend, Kind.postpaid)
    if power and txn.tender == Tender.card:
        return State.declined  # the card is credited back automatically (ensure_refund)
    if power and (txn.state == State.pending or (background and not txn.offline)):
        return State.failed  # cash taken, nothing delivered: a person gives it back
    if txn.kind in (Kind.card_refund, Kind.card_credit) and background:
        return State.failed  # a credit the provider refuses must reach a person
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
                       background: bool = False, **extra: Any) -> Txn:
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
            total=outcome.total_amount, **extra,
        )
    if outcome.status == VendStatus.PENDING:
        return finish(ctx, txn, State.pending, note=outcome.message or "pending",
                      provider_txn_id=str(outcome.transaction_id)
                      if outcome.transaction_id else txn.provider_txn_id, **extra)
    if outcome.status != VendStatus.DECLINED:
        raise ValueError(f"{outcome.status} is not a final vend outcome")
    later = txn.offline or background
    if outcome.throttled and later:
        # Nothing was done; PawaCard allows one sale per meter per 5 minutes. A sale
        # the customer already paid for waits and goes again.
        retry = ctx.clock() + dt.timedelta(seconds=ctx.settings.sync.meter_throttle_seconds)
        return _requeue(ctx, txn, "meter throttled", outcome.message, retry, **extra)
    if outcome.status_code == "102" and later and txn.tender == Tender.cash:
        # Document 003, "102 Insufficient balance": the vendor float cannot pay for it and
        # nothing was vended. The customer paid cash and waits for a token that a float
        # top-up makes possible: it stays queued (the status bar shows the low float) and
        # is flagged for a person only when the retry caps run out.
        retry = ctx.clock() + dt.timedelta(seconds=ctx.settings.sync.backoff_max)
        return _requeue(ctx, txn, "vendor float too low: top up the PawaCard float",
                        outcome.message, retry, **extra)
    txn = finish(ctx, txn, refused_state(txn, background=background),
                 error=outcome.message or "declined", **extra)
    if txn.tender == Tender.card:
        from pos.usecases.refunds import ensure_refund

        ensure_refund(ctx, txn)
    return txn


def _requeue(ctx: Context, txn: Txn, note: str, error: str, retry: dt.datetime,
             **extra: Any) -> Txn:
    if txn.state not in (State.sending, State.unknown):
        return ctx.journal.update(txn.ref, next_attempt_at=retry, note=note, error=error)
    return ctx.journal.transition(txn.ref, State.queued, note=note, error=error,
                                  next_attempt_at=retry, **extra)


def settle_decision(ctx: Context, txn: Txn, decision: Decision, *,
                    background: bool, retry_in: float) -> Txn:
    """Write down what reconciliation decided (never a resend: the caller sends).

    ``retry_in``: seconds until the next question when the answer is "wait".
    """
    txn = ctx.journal.require(txn.ref)
    if is_final(txn.state) or txn.is_flagged:
        return txn
    recon = record(ctx, txn, decision)
    ev = decision.evidence
    action = decision.action
    power = txn.kind in (Kind.vend, Kind.postpaid)
    if action is Action.applied:
        if power and ev.vend is not None:
            return apply_vend_outcome(ctx, txn, ev.vend, background=background, recon=recon)
        return finish(ctx, txn, State.done, note="confirmed: " + decision.reason[:200],
                      provider_txn_id=ev.row.transaction_id if ev.row else None, recon=recon)
    if action is Action.failed:
        if power and ev.vend is not None:
            return apply_vend_outcome(ctx, txn, ev.vend, background=background, recon=recon)
        return finish(ctx, txn, refused_state(txn, background=background),
                      error="Patasente recorded it as failed: " + decision.reason[:200],
                      recon=recon)
    if action is Action.pending and power and ev.vend is not None:
        return apply_vend_outcome(ctx, txn, ev.vend, background=background, recon=recon)
    if action is Action.cancel:
        return finish(ctx, txn, State.cancelled, note=decision.reason[:300], recon=recon)
    if action is Action.review:
        return ctx.journal.transition(txn.ref, State.review, error=decision.reason[:500],
                                      recon=recon)
    # wait (and resend, which the caller performs after this): ask again later.
    return ctx.journal.update(
        txn.ref, recon=recon,
        next_attempt_at=ctx.clock() + dt.timedelta(seconds=max(0.0, retry_in)))


async def confirm_lost_answer(ctx: Context, txn: Txn, *, error: str,
                              pin: str | None = None) -> Txn:
    """A money request left and its answer was lost: ask while the customer is at the
    counter (never send again here), then write down what is known.

    The row goes ``unknown`` first, held by this process (a crash hands it to the next
    sync at once), with the card PIN sealed in the same transaction where there is one,
    so a debit accepted as pending can be completed later. It is ``accepted`` only
    when the cashier is told "pending": a crash before that, and a provider that never
    applied it, cancel it (pos.usecases.reconcile.decide).
    """
    from pos.clock import process_start
    from pos.usecases.reconcile import confirm

    s = ctx.settings.reconcile
    hold = ctx.clock() + dt.timedelta(seconds=s.confirm_seconds + 120)
    current = ctx.journal.require(txn.ref)
    if current.state == State.sending:
        current = ctx.journal.transition(txn.ref, State.unknown, error=error,
                                         next_attempt_at=hold, lease_owner=process_start(),
                                         seal_pin=pin if current.kind == Kind.card_debit
                                         else None)
    try:
        decision = await confirm(ctx, current)
    except Exception:  # never lose the row to a bug in asking: sync asks again
        log.exception("confirming %s", txn.ref)
        decision = None
    if decision is not None:
        current = settle_decision(ctx, current, decision, background=False,
                                  retry_in=s.confirm_interval)
    if current.state == State.unknown:
        current = ctx.journal.update(txn.ref, accepted=True, lease_owner=None,
                                     next_attempt_at=ctx.clock() + dt.timedelta(
                                         seconds=s.confirm_interval),
                                     note="accepted as pending: confirmed in the background")
    return current
