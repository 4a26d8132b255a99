"""Electricity: prepaid tokens and postpaid bills through PawaCard, cash or card.

Cash sales queue while PawaCard is down (a "token pending" receipt) within
the merchant's limits. A card-paid sale debits the card first, then vends;
if the vend finally fails the card is credited back (see ``refunds``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

from pos.clock import process_start
from pos.errors import (
    Declined,
    InputError,
    LinkDown,
    OutcomeUnknown,
    PosError,
    ProviderError,
    ProviderUnavailable,
)
from pos.journal import Kind, State, Tender, Txn
from pos.meter import validate_account, validate_meter
from pos.money import Money
from pos.offline import check_offline_vend
from pos.providers.models import AccountInfo, MeterInfo, VendOutcome, VendStatus
from pos.usecases.cards import pay_by_card, refusals_journaled
from pos.usecases.context import Context
from pos.usecases.quotes import Quote, check_quote, get_quote
from pos.usecases.results import CardLookup, SaleResult
from pos.usecases.settle import UNRECORDED, apply_vend_outcome, confirm_lost_answer, finish

log = logging.getLogger(__name__)

TenderName = Literal["cash", "card"]
T = TypeVar("T")


async def verify_meter(ctx: Context, meter: str) -> MeterInfo:
    """The meter's registered name. Raises LinkDown when PawaCard (or Kenya Power behind
    it) cannot answer: for the sale that is "offline" (a cash sale queues), never an
    error; Declined when Kenya Power does not know the meter."""
    meter = validate_meter(meter)
    return await _online(ctx, ctx.pawacard.verify_meter(meter))


async def verify_account(ctx: Context, account: str) -> AccountInfo:
    account = validate_account(account)
    return await _online(ctx, ctx.pawacard.postpaid_verify(account))


async def _online(ctx: Context, coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` (a PawaCard request that moves no money) through the link monitor:
    refused at once while PawaCard is known down."""
    link = ctx.link.pawacard
    if not link.should_try():
        coro.close()
        raise ProviderUnavailable("PawaCard is offline (the terminal will retry shortly)",
                                  provider="PawaCard")
    try:
        out = await coro
    except LinkDown as exc:
        link.record_failure(str(exc))
        raise
    link.record_success()
    return out


def _check_amount(ctx: Context, amount: Money) -> None:
    if amount.currency != ctx.power_currency:
        raise InputError(f"Electricity is sold in {ctx.power_currency}, not {amount.currency}")
    if amount.minor <= 0:
        raise InputError("The amount must be greater than zero")
    if amount.major != amount.major.to_integral_value():
        raise InputError(f"PawaCard sells whole {amount.currency} amounts")
    limit = ctx.settings.limits.power_max
    if amount.minor > limit:
        raise InputError(f"{amount.format()} is over the most one electricity sale may be "
                         f"({Money(limit, amount.currency).format()})")


def recent_meter_sale(ctx: Context, meter: str) -> Txn | None:
    """A vend on this meter inside PawaCard's 5-minute throttle window, if any."""
    window = dt.timedelta(seconds=ctx.settings.sync.meter_throttle_seconds)
    since = ctx.clock() - window
    for txn in ctx.journal.list(kinds=[Kind.vend], since=since, search=meter, limit=20):
        if txn.meter == meter and txn.state in (State.done, State.pending, State.sending,
                                                State.unknown):
            return txn
    return None


async def sell(ctx: Context, kind: Kind, target: str, amount: Money, customer_name: str, *,
               tender: TenderName = "cash", card: CardLookup | None = None,
               wallet: str | None = None, pin: str | None = None,
               quote: Quote | None = None) -> SaleResult:
    """Sell a prepaid token (``kind=vend``, target = meter) or pay a bill (``postpaid``).

    Paid by card: ``quote`` is the card's amount the customer was shown before the PIN
    (:func:`pos.usecases.quotes.get_quote`); the debit is that amount. Without one (the
    CLI) it is fetched here, once."""
    if tender == "card" and card is not None and wallet is not None:
        what = "Electricity token" if kind == Kind.vend else "Electricity bill"
        with refusals_journaled(ctx, card, quote.charge if quote else amount, wallet,
                                f"{what} {target}", typed=pin is not None,
                                details={"for": kind.value, "target": target,
                                         "price": amount.to_json()}):
            target, customer_name = _check_sale(ctx, kind, target, amount, customer_name)
    else:
        target, customer_name = _check_sale(ctx, kind, target, amount, customer_name)
    link = ctx.link.pawacard
    common = dict(operator=ctx.operator, terminal_id=ctx.terminal_id, customer_name=customer_name,
                  meter=target if kind == Kind.vend else None,
                  account=target if kind == Kind.postpaid else None)

    if tender == "card":
        return await _sell_by_card(ctx, kind, target, amount, card, wallet, pin, quote, common)

    ctx.ensure_room()
    if not link.should_try():
        return _queue_cash(ctx, kind, amount, common)
    txn = ctx.journal.create(kind, amount, tender=Tender.cash, **common)  # type: ignore[arg-type]
    return await _send(ctx, txn, queue_on_connect_failure=True)


def _check_sale(ctx: Context, kind: Kind, target: str, amount: Money,
                customer_name: str) -> tuple[str, str]:
    """The target and amount checked, the meter's 5-minute throttle; the clean name."""
    target = validate_meter(target) if kind == Kind.vend else validate_account(target)
    _check_amount(ctx, amount)
    if kind == Kind.vend:
        refusal = throttle_refusal(ctx, target)
        if refusal is not None:
            raise Declined(refusal, provider="PawaCard")
    return target, " ".join((customer_name or "").split())


def throttle_refusal(ctx: Context, meter: str) -> str | None:
    """Why this meter cannot be sold to now (PawaCard's 5-minute throttle), or None: asked
    by the screen at the meter number, before an amount, a card or a PIN."""
    if recent_meter_sale(ctx, meter) is None:
        return None
    return ("This meter had a sale less than 5 minutes ago (PawaCard allows one every 5 "
            "minutes). Wait a few minutes.")


def _vend_guard(ctx: Context, amount: Money) -> Any:
    """The queued-sale limits, checked inside the write that admits the sale."""
    return lambda reader: check_offline_vend(ctx.settings.offline, reader, amount)


def _queue_cash(ctx: Context, kind: Kind, amount: Money, common: dict[str, Any]) -> SaleResult:
    txn = ctx.journal.create(kind, amount, tender=Tender.cash, offline=True,
                             guard=_vend_guard(ctx, amount), **common)
    txn = ctx.journal.transition(txn.ref, State.queued, note="accepted offline", accepted=True)
    what = "token" if kind == Kind.vend else "bill payment"
    return SaleResult("offline", txn.ref,
                      f"PawaCard is unreachable: the {what} is queued and will be sent when the "
                      "link is back (receipt says TOKEN PENDING)", txn)


async def _send(ctx: Context, txn: Txn, *, queue_on_connect_failure: bool) -> SaleResult:
    """Mark the row sending (durably), then ask PawaCard once.

    Not sent (the connection failed): a cash sale queues within the limits. Sent
    and the answer lost (any form of link failure, an answer we cannot read, elec100
    "fetch the response again"): asked about by ref at the counter, then in the
    background -- never sent again blind.
    """
    link = ctx.link.pawacard
    txn = ctx.journal.transition(txn.ref, State.sending)
    try:
        outcome = await _request(ctx, txn)
    except ProviderUnavailable as exc:
        link.record_failure(str(exc))
        if queue_on_connect_failure:
            try:
                txn = ctx.journal.transition(txn.ref, State.queued, offline=True, accepted=True,
                                             note="link down: accepted offline",
                                             guard=_vend_guard(ctx, txn.amount))
            except Declined as lim:
                txn = ctx.journal.transition(txn.ref, State.declined, error=lim.message)
                return SaleResult("declined", txn.ref, lim.message, txn)
            return SaleResult("offline", txn.ref,
                              "PawaCard is unreachable: queued, TOKEN PENDING", txn)
        txn = ctx.journal.transition(txn.ref, State.queued, note="link down: will retry",
                                     accepted=True)
        return SaleResult("pending", txn.ref, "PawaCard is unreachable: will retry", txn)
    except Declined as exc:
        # Refused before any work (a 4xx): nothing sold. A card-paid sale is refunded.
        link.record_success()
        refusal = VendOutcome(VendStatus.DECLINED, txn.ref, message=exc.message)
        return result_from(ctx, apply_vend_outcome(ctx, txn, refusal), refusal)
    except (OutcomeUnknown, ProviderError) as exc:
        if getattr(exc, "link_down", False):
            link.record_failure(exc.message)
        txn = await confirm_lost_answer(ctx, txn, error=exc.message)
        return result_from(ctx, txn)
    link.record_success()
    return result_from(ctx, apply_vend_outcome(ctx, txn, outcome), outcome)


async def _request(ctx: Context, txn: Txn) -> VendOutcome:
    if txn.kind == Kind.vend:
        assert txn.meter is not None
        return await ctx.pawacard.vend(txn.meter, txn.amount, txn.customer_name or "", txn.ref)
    assert txn.account is not None
    return await ctx.pawacard.postpaid_bill(txn.account, txn.amount, txn.customer_name or "",
                                            txn.ref)


def result_from(ctx: Context, txn: Txn, outcome: VendOutcome | None = None) -> SaleResult:
    """Turn a journal row (after an outcome) into what the cashier sees."""
    refund_ref = None
    if txn.tender == Tender.card and txn.parent_ref:
        for child in ctx.journal.children(txn.parent_ref):
            if child.kind == Kind.card_refund:
                refund_ref = child.ref
    msg = (outcome.message if outcome else "") or ""
    unrecorded = bool((txn.details or {}).get("unrecorded"))
    if txn.state == State.done:
        return SaleResult("approved", txn.ref, UNRECORDED if unrecorded else (msg or "Done"), txn,
                          token=txn.token, units=txn.units, receipt_no=txn.receipt_no)
    if txn.state == State.review:
        return SaleResult("review", txn.ref,
                          "PawaCard's answer was lost and its record does not match this "
                          "sale: a supervisor must check it (journal, flagged). Do not sell "
                          "again.", txn)
    if txn.state in (State.pending, State.sending, State.unknown):
        what = "token" if txn.kind == Kind.vend else "payment"
        return SaleResult("pending", txn.ref,
                          f"PawaCard has not confirmed it yet: the {what} comes automatically "
                          "(TOKEN PENDING). Do not sell again.", txn)
    if txn.state == State.queued:
        if txn.offline:
            note = "Queued: will be sent when PawaCard is reachable (TOKEN PENDING)"
        else:
            note = txn.last_error or "Queued: will retry"
        return SaleResult("offline" if txn.offline else "pending", txn.ref, note, txn)
    reason = txn.last_error or msg or "Declined"
    if unrecorded:
        reason = f"{reason}. {UNRECORDED}"
    if refund_ref:
        return SaleResult("refunded", txn.ref,
                          f"{reason}. The card is being credited back (refund {refund_ref}).",
                          txn, refund_ref=refund_ref)
    status = "failed" if txn.state == State.failed else "declined"
    return SaleResult(status, txn.ref, reason, txn)  # type: ignore[arg-type]


async def _sell_by_card(ctx: Context, kind: Kind, target: str, amount: Money,
                        card: CardLookup | None, wallet: str | None, pin: str | None,
                        quote: Quote | None, common: dict[str, Any]) -> SaleResult:
    """Two steps: debit the card (online only), then vend; refund if the vend finally fails.

    The debit is ``quote.charge``, the amount the customer saw; a quote gone stale is
    refused (QuoteExpired) so the screen shows the new one before a PIN is taken for it."""
    if card is None or wallet is None:
        raise InputError("Scan the card and choose a wallet first")
    what = "Electricity token" if kind == Kind.vend else "Electricity bill"
    refusal = dict(typed=pin is not None,
                   details={"for": kind.value, "target": target, "price": amount.to_json()})
    with refusals_journaled(ctx, card, quote.charge if quote else amount, wallet,
                            f"{what} {target}", **refusal):  # type: ignore[arg-type]
        if not (ctx.link.pawacard.should_try() and ctx.link.patasente.should_try()):
            raise Declined("Paying electricity by card needs the link: take cash or try later",
                           provider="Sente POS")
        ctx.ensure_room()
        if quote is None:
            quote = await get_quote(ctx, card, amount)
    # Not journaled as a refusal: the sale goes on with the new rate shown and a new PIN.
    check_quote(ctx, quote, card, amount)
    card_amount = quote.charge
    lease = dt.timedelta(seconds=ctx.settings.sync.sending_lease_seconds)
    second: list[Txn] = []

    def journal_second_step(debit_txn: Txn) -> None:
        """Write-ahead for the whole sale: the vend is journaled (queued, waiting on the
        debit) before the debit leaves, so a crash in between leaves the sync engine a
        vend to send or cancel, never a charged card with nothing owed for it."""
        child = ctx.journal.create(
            kind, amount, tender=Tender.card, parent_ref=debit_txn.ref,
            card_id=card.card.card_id, card_no=debit_txn.card_no, state=State.queued,
            details={"debit_ref": debit_txn.ref, "card_amount": card_amount.to_json(),
                     "quote": quote.to_json()},
            **common)
        # Held by this sale (its lease) while this process lives: if the terminal dies,
        # the next sync takes it at once (sends it once the debit is confirmed, or cancels
        # it when the debit never happened).
        second.append(ctx.journal.update(child.ref, next_attempt_at=ctx.clock() + lease,
                                         lease_owner=process_start(), accepted=True))

    try:
        debit = await pay_by_card(ctx, card, card_amount, wallet, pin, f"{what} {target}",
                                  allow_offline=False, before_send=journal_second_step,
                                  details={"for": kind.value, "target": target,
                                           "price": amount.to_json(),
                                           "quote": quote.to_json()})
    except PosError:
        for child in second:
            finish(ctx, child, State.cancelled, note="card payment not taken")
        raise
    if not second:
        return debit
    child = ctx.journal.require(second[0].ref)
    if debit.status == "declined":
        finish(ctx, child, State.cancelled, note="card payment not taken")
        return debit
    if debit.status == "review":
        child = ctx.journal.update(child.ref, next_attempt_at=ctx.clock(), lease_owner=None,
                                   note="waiting for a supervisor to settle the card debit")
        return SaleResult("review", child.ref, debit.message, child)
    if debit.status != "approved":
        # The debit's outcome is unknown: the vend waits for sync to settle the debit.
        child = ctx.journal.update(child.ref, next_attempt_at=ctx.clock(), lease_owner=None,
                                   note="waiting for the card debit to be confirmed")
        return SaleResult("pending", child.ref,
                          "The card payment is being confirmed; the token follows automatically",
                          child)
    return await _send(ctx, child, queue_on_connect_failure=False)


async def wait_settled(ctx: Context, ref: str, *, interval: float | None = None,
                       max_polls: int | None = None) -> SaleResult:
    """Poll a pending vend or bill by ref until it completes or fails (or we give up)."""
    interval = ctx.settings.pawacard.poll_interval if interval is None else interval
    max_polls = ctx.settings.pawacard.max_polls if max_polls is None else max_polls
    txn = ctx.journal.require(ref)
    outcome: VendOutcome | None = None
    for _ in range(max_polls):
        txn = ctx.journal.require(ref)  # the background sync may have settled it meanwhile
        if txn.state not in (State.pending, State.unknown, State.sending):
            break
        try:
            outcome = await (ctx.pawacard.postpaid_transaction(ref) if txn.kind == Kind.postpaid
                             else ctx.pawacard.transaction(ref))
        except ProviderUnavailable as exc:
            ctx.link.pawacard.record_failure(str(exc))
            break
        except ProviderError as exc:
            log.info("poll %s: %s", ref, exc.message)
        else:
            ctx.link.pawacard.record_success()
            if outcome.status == VendStatus.ABSENT:
                if txn.state == State.pending:
                    log.warning("pending %s now unknown to PawaCard", ref)
                break  # sync resends an absent ref (same ref) after reconciling
            txn = apply_vend_outcome(ctx, txn, outcome)
            if txn.state != State.pending:
                break
        await asyncio.sleep(interval)
    return result_from(ctx, ctx.journal.require(ref), outcome)
