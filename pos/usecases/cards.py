"""Card use cases: look up a scanned card, debit it with the customer's PIN, card services."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from pos.cardqr import CardRef, parse_card_qr
from pos.clock import Stamp
from pos.digits import is_digits
from pos.errors import (
    Declined,
    InputError,
    LinkDown,
    OutcomeUnknown,
    PosError,
    ProviderError,
    ProviderUnavailable,
)
from pos.journal import JournalReader, JournalUnwritable, Kind, State, Tender, Txn
from pos.money import Money
from pos.offline import check_offline_debit
from pos.pintries import check_card_allowed, is_wrong_pin_decline, record_card_pin
from pos.providers.models import CardInfo, CardOpStatus, SenteActivation
from pos.usecases.context import Context
from pos.usecases.results import CardLookup, SaleResult
from pos.usecases.settle import apply_card_result, confirm_lost_answer, finish

log = logging.getLogger(__name__)


def validate_card_pin(pin: str | None) -> str:
    if pin is None or len(pin) != 4 or not is_digits(pin):
        raise InputError("The card PIN has 4 digits")
    return pin


def check_card_amount(ctx: Context, amount: Money) -> None:
    """The ceiling on one card payment, top-up or refund, online or not."""
    if amount.minor <= 0:
        raise InputError("The amount must be greater than zero")
    limit = ctx.settings.limits.card_max
    if amount.minor > limit:
        raise InputError(f"{amount.format()} is over the most one card payment may be "
                         f"({Money(limit, amount.currency).format()})")


async def lookup_card(ctx: Context, payload: str) -> CardLookup:
    """Parse the QR and ask the issuer; fall back to the card cache when the link is down
    (any form of it: refused, reset, a gateway's 5xx, a portal's page, a timeout)."""
    card = parse_card_qr(payload)
    problems = card.problems(ctx.clock().date())
    link = ctx.link.patasente
    if link.should_try():
        try:
            info = await ctx.patasente.get_card(card)
        except LinkDown as exc:
            link.record_failure(str(exc))
        else:
            link.record_success()
            ctx.journal.card_cache_put(
                card.card_id, info.card_no or card.number, info.status, info.has_pin,
                list(info.wallets), info.current_balance, ctx.clock(),
            )
            if info.status.lower() != "active":
                problems = [*problems, f"Card is {info.status}"]
            return CardLookup(card, info, False, problems, list(info.wallets),
                              ctx.journal.card_cache_get(card.card_id))
    cached = ctx.journal.card_cache_get(card.card_id)
    wallets = list(cached.wallets) if cached else [ctx.settings.patasente.default_wallet]
    if cached is not None and cached.status.lower() != "active":
        problems = [*problems, f"Card is {cached.status} (last seen online)"]
    return CardLookup(card, None, True, problems, wallets, cached)


def _precheck(ctx: Context, lookup: CardLookup, amount: Money, wallet: str) -> None:
    if amount.currency != lookup.card.currency:
        raise InputError(f"This card pays in {lookup.card.currency}, not {amount.currency}")
    if amount.currency != ctx.card_currency:
        raise InputError(f"This terminal takes {ctx.card_currency} cards; this card is "
                         f"{lookup.card.currency}")
    check_card_amount(ctx, amount)
    if wallet not in lookup.wallets:
        raise InputError(f"This card has no {wallet!r} wallet")
    if lookup.problems:
        raise Declined(lookup.problems[0], provider="Sente POS")
    info = lookup.info
    if info is not None:
        available = info.available_in(wallet)
        if available.currency == amount.currency and amount > available:
            # No figure: this is said before the PIN, and the balance is the holder's.
            raise Declined(f"Not enough on the card's {wallet} for {amount.format()}",
                           provider="Sente POS")


def balance_before(info: CardInfo | None, wallet: str, at: Stamp) -> dict[str, Any]:
    """What the card held before a request (read at ``at``), for reconciliation's
    balance signal. The moment is kept with its boot-relative clock, so the card's later
    movements can be told from earlier ones across a wall-clock step."""
    if info is None:
        return {}
    held = info.available_in(wallet)
    return {"balance_before": {"minor": held.minor, "currency": held.currency,
                               "wallet": wallet,
                               "at": at.wall.astimezone(dt.UTC).isoformat(),
                               "stamp": at.to_json()}}


def result_of(txn: Txn, message: str | None = None) -> SaleResult:
    """What the cashier sees for a card row, from the state it ended in."""
    if txn.state == State.done:
        return SaleResult("approved", txn.ref, message or "Approved", txn)
    if txn.state == State.review:
        return SaleResult("review", txn.ref,
                          "Patasente's answer was lost and its records disagree: a supervisor "
                          "must check this payment with the customer (journal, flagged). Do "
                          "not charge the card again.", txn)
    if txn.state in (State.unknown, State.pending, State.sending):
        return SaleResult("pending", txn.ref,
                          "No clear answer from Patasente. The payment will be confirmed "
                          "automatically: do not charge the card again.", txn)
    if txn.state == State.queued:
        return SaleResult("offline", txn.ref, message or "Accepted offline", txn)
    return SaleResult("declined", txn.ref, txn.last_error or message or "Declined", txn)


async def pay_by_card(ctx: Context, lookup: CardLookup, amount: Money, wallet: str,
                      pin: str | None, reason: str, *, parent_ref: str | None = None,
                      allow_offline: bool = True, details: dict[str, Any] | None = None,
                      before_send: Callable[[Txn], object] | None = None) -> SaleResult:
    """Debit the card. Journaled before anything is sent; offline within the merchant's limits.

    ``before_send`` runs once the debit row is journaled and before the request leaves:
    a two-step sale journals its second step there (write-ahead for the whole sale).
    """
    card = lookup.card
    link = ctx.link.patasente
    with refusals_journaled(ctx, lookup, amount, wallet, reason, typed=pin is not None,
                            parent_ref=parent_ref, details=details):
        _precheck(ctx, lookup, amount, wallet)
        pin = validate_card_pin(pin) if lookup.has_pin else None
        if pin is not None:  # EMV's PIN try counter: a card guessed at is refused a while
            check_card_allowed(ctx.journal, card.card_id, ctx.clock(),
                               settings=ctx.settings.security)
        ctx.ensure_room()
        common: dict[str, Any] = dict(
            tender=Tender.card, operator=ctx.operator, terminal_id=ctx.terminal_id,
            card_id=card.card_id, card_no=lookup.info.card_no if lookup.info else card.number,
            wallet=wallet, reason=reason, parent_ref=parent_ref,
            details={**(details or {}),
                     **balance_before(lookup.info, wallet, ctx.device.stamp())},
        )
        if not link.should_try() and not allow_offline:
            raise Declined("Patasente cannot be reached: this needs the link",
                           provider="Patasente")
    if not link.should_try():
        try:
            return _queue_offline(ctx, lookup, amount, pin, common)
        except Declined as exc:
            # The offline limits refuse inside the write that would admit the debit, so
            # no row exists for the refusal: journal one.
            if pin is None:
                raise
            journal_refusal(ctx, lookup, amount, wallet, reason, exc.message,
                            parent_ref=parent_ref, details=details)
            raise

    txn = ctx.journal.create(Kind.card_debit, amount, **common)
    if before_send is not None:
        before_send(txn)
    txn = ctx.journal.transition(txn.ref, State.sending)
    try:
        result = await ctx.patasente.debit_card(card.card_id, amount, reason, pin, wallet, txn.ref)
    except InputError as exc:
        finish(ctx, txn, State.declined, error=exc.message)  # nothing left
        raise
    except ProviderUnavailable as exc:
        link.record_failure(str(exc))
        if not allow_offline:
            finish(ctx, txn, State.declined, error=f"link down: {exc.message}")
            raise Declined("Patasente cannot be reached: this needs the link",
                           provider="Patasente") from exc
        return _requeue_after_connect_failure(ctx, lookup, txn, pin)
    except Declined as exc:
        link.record_success()
        note_card_pin(ctx, card.card_id, pin, exc.message)
        txn = finish(ctx, txn, State.declined, error=exc.message)
        return SaleResult("declined", txn.ref, exc.message, txn)
    except (OutcomeUnknown, ProviderError) as exc:
        # The request may have been applied: ask before anything else, never charge
        # again blindly; the PIN is kept (sealed) so sync can finish a pending debit.
        if getattr(exc, "link_down", False):
            link.record_failure(exc.message)
        txn = await confirm_lost_answer(ctx, txn, error=exc.message, pin=pin)
        return result_of(txn)
    link.record_success()
    note_card_pin(ctx, card.card_id, pin, None)
    txn = apply_card_result(ctx, txn, result)
    if result.status == CardOpStatus.APPROVED:
        return SaleResult("approved", txn.ref, result.message or "Approved", txn)
    return SaleResult("declined", txn.ref, result.message, txn)


@contextlib.contextmanager
def refusals_journaled(ctx: Context, lookup: CardLookup, amount: Money, wallet: str | None,
                       reason: str, *, typed: bool, parent_ref: str | None = None,
                       details: dict[str, Any] | None = None) -> Iterator[None]:
    """A card payment refused here, before a debit row exists (the card expired, a limit,
    the PIN try counter, a meter's throttle, no link), after the customer typed a PIN:
    leave a declined card_debit row with the reason (issue 13), so the refusal the
    customer saw is in the journal. The PIN itself is never written. ``typed``: whether a
    PIN was typed for it (a refusal before any PIN is the cashier's, not journaled)."""
    try:
        yield
    except JournalUnwritable:
        raise  # nothing can be written; the cashier is told the journal is full
    except PosError as exc:
        if not typed:
            raise
        journal_refusal(ctx, lookup, amount, wallet, reason, exc.message,
                        parent_ref=parent_ref, details=details)
        raise


def journal_refusal(ctx: Context, lookup: CardLookup, amount: Money, wallet: str | None,
                    reason: str, error: str, *, parent_ref: str | None = None,
                    details: dict[str, Any] | None = None) -> Txn | None:
    """The declined row of a card payment refused before anything was sent."""
    card = lookup.card
    try:
        txn = ctx.journal.create(
            Kind.card_debit, amount, tender=Tender.card, operator=ctx.operator,
            terminal_id=ctx.terminal_id, card_id=card.card_id,
            card_no=lookup.info.card_no if lookup.info else card.number, wallet=wallet,
            reason=reason, parent_ref=parent_ref,
            details={**(details or {}), "refused_locally": True})
        return ctx.journal.transition(txn.ref, State.declined, error=error,
                                      note="refused before sending")
    except PosError as exc:  # the refusal stands even when its record cannot be written
        log.warning("card refusal not journaled: %s", exc.message)
        return None


def note_card_pin(ctx: Context, card_id: int, pin: str | None, decline: str | None) -> None:
    """Count a PIN the issuer judged (wrong, or right: the count starts again)."""
    if pin is None:
        return
    wrong = decline is not None and is_wrong_pin_decline(decline)
    if decline is not None and not wrong:
        return  # refused for another reason: says nothing about the PIN
    try:
        record_card_pin(ctx.journal, card_id, wrong, ctx.clock(),
                        settings=ctx.settings.security)
    except PosError as exc:  # the count must never lose the sale's own record
        log.warning("card PIN count not recorded: %s", exc.message)


def _offline_guard(ctx: Context, lookup: CardLookup, amount: Money,
                   wallet: str | None) -> Callable[[JournalReader], None]:
    """The offline limits, checked inside the write that admits the debit: no number of
    processes selling at once can pass them."""
    def guard(reader: JournalReader) -> None:
        check_offline_debit(ctx.settings.offline, reader, lookup.card.card_id, amount,
                            lookup.cached, ctx.clock(), wallet=wallet)
    return guard


def _queue_offline(ctx: Context, lookup: CardLookup, amount: Money, pin: str | None,
                   common: dict[str, Any]) -> SaleResult:
    guard = _offline_guard(ctx, lookup, amount, common["wallet"])
    guard_fn: Any = guard
    txn = ctx.journal.create(Kind.card_debit, amount, offline=True, guard=guard_fn, **common)
    return _hold_offline(ctx, txn, pin, "accepted offline",
                         "Accepted offline: the card will be debited when the link is back")


def _requeue_after_connect_failure(ctx: Context, lookup: CardLookup, txn: Txn,
                                   pin: str | None) -> SaleResult:
    """The connection failed before the request left: safe to store and forward."""
    try:
        txn = ctx.journal.transition(
            txn.ref, State.queued, note="link down: accepted offline", offline=True,
            accepted=True, seal_pin=pin,
            guard=_offline_guard(ctx, lookup, txn.amount, txn.wallet or ""))
    except Declined as exc:
        txn = finish(ctx, txn, State.declined, error=f"link down; {exc.message}")
        return SaleResult("declined", txn.ref, exc.message, txn)
    return SaleResult("offline", txn.ref,
                      "Link down: accepted offline, the card will be debited when it is back",
                      txn)


def _hold_offline(ctx: Context, txn: Txn, pin: str | None, note: str,
                  message: str) -> SaleResult:
    """Store and forward: the PIN sealed with the device key, then the row queued."""
    txn = ctx.journal.transition(txn.ref, State.queued, note=note, offline=True,
                                 accepted=True, seal_pin=pin)
    return SaleResult("offline", txn.ref, message, txn)


# ------------------------------------------------------------- card credits
async def credit(ctx: Context, txn: Txn, *, success: str) -> SaleResult:
    """Send a journaled card credit (top-up, void, refund) once; a lost answer is asked
    about, never sent again blind (the provider may rewrite credit reasons, so the ref
    search alone cannot prove a credit absent: pos.usecases.reconcile)."""
    card_id = txn.card_id
    assert card_id is not None
    link = ctx.link.patasente
    txn = ctx.journal.transition(txn.ref, State.sending)
    try:
        res = await ctx.patasente.credit_card(card_id, txn.amount, txn.reason or "Refund",
                                              txn.ref)
    except ProviderUnavailable as exc:
        link.record_failure(str(exc))
        txn = ctx.journal.transition(txn.ref, State.queued, note="link down: will retry",
                                     accepted=True)
        return SaleResult("offline", txn.ref,
                          "Accepted: the card is credited when the link is back", txn)
    except InputError as exc:
        finish(ctx, txn, State.declined, error=exc.message)
        raise
    except Declined as exc:
        link.record_success()
        txn = finish(ctx, txn, State.declined, error=exc.message)
        return SaleResult("declined", txn.ref, exc.message, txn)
    except (OutcomeUnknown, ProviderError) as exc:
        if getattr(exc, "link_down", False):
            link.record_failure(exc.message)
        txn = await confirm_lost_answer(ctx, txn, error=exc.message)
        if txn.state in (State.unknown, State.sending):
            return SaleResult("pending", txn.ref,
                              "No clear answer: the credit is confirmed by the terminal in "
                              "the background. Do not credit the card again.", txn)
        return result_of(txn, success)
    link.record_success()
    if res.status == CardOpStatus.APPROVED:
        txn = finish(ctx, txn, State.done, note=res.message, provider_txn_id=res.provider_txn_id)
        return SaleResult("approved", txn.ref, success, txn)
    txn = finish(ctx, txn, State.declined, error=res.message)
    return SaleResult("declined", txn.ref, res.message, txn)


async def card_snapshot(ctx: Context, card_id: int, card_no: str | None,
                        currency: str) -> CardInfo | None:
    """The card as Patasente sees it now (None when it cannot be asked): the balance a
    credit or a queued debit starts from."""
    ref = CardRef(number=card_no or "", expiry_month=1, expiry_year=2099, currency=currency,
                  digit=0, card_type="", card_id=card_id, raw="")
    try:
        return await ctx.patasente.get_card(ref)
    except PosError:
        return None


# ------------------------------------------------------------- card services
def _require_online(ctx: Context) -> None:
    if not ctx.link.patasente.should_try():
        raise Declined("Card services need the link to Patasente; try again when online",
                       provider="Patasente")


async def _service_op(ctx: Context, kind: Kind, card: CardRef,
                      op: Callable[[str], Awaitable[str]], *,
                      details: dict[str, Any] | None = None) -> SaleResult:
    """Run a card-service call (no money) with a journal row around it (audit trail)."""
    _require_online(ctx)
    ctx.ensure_room()
    txn = ctx.journal.create(
        kind, Money.zero(card.currency), tender=Tender.none, operator=ctx.operator,
        terminal_id=ctx.terminal_id, card_id=card.card_id, card_no=card.number,
        details=details,
    )
    txn = ctx.journal.transition(txn.ref, State.sending)
    try:
        message = await op(txn.ref)
    except InputError as exc:
        finish(ctx, txn, State.declined, error=exc.message)  # nothing left
        raise
    except ProviderUnavailable as exc:
        ctx.link.patasente.record_failure(str(exc))
        txn = finish(ctx, txn, State.declined, error=f"link down: {exc.message}")
        raise
    except Declined as exc:
        ctx.link.patasente.record_success()
        txn = finish(ctx, txn, State.declined, error=exc.message)
        return SaleResult("declined", txn.ref, exc.message, txn)
    except ProviderError as exc:  # sent, no usable answer: the card's status tells later
        if isinstance(exc, LinkDown):
            ctx.link.patasente.record_failure(exc.message)
        txn = ctx.journal.transition(txn.ref, State.unknown, error=exc.message, accepted=True)
        return SaleResult("pending", txn.ref,
                          "No clear answer from Patasente; the terminal will check it", txn)
    ctx.link.patasente.record_success()
    txn = finish(ctx, txn, State.done, note=str(message))
    return SaleResult("approved", txn.ref, str(message), txn)


async def activate_gift(ctx: Context, lookup: CardLookup, pin: str, phone_number: str | None = None,
                        card_names: str | None = None, *,
                        approved_by: str | None = None) -> SaleResult:
    """Activate a gift card with the PIN its holder chose. A card that already has a PIN
    (deactivated, now activated again: the new PIN replaces the old one, which the
    provider offers no way to check) needs a supervisor's approval (``approved_by``)."""
    pin = validate_card_pin(pin)
    if lookup.has_pin and approved_by is None:
        raise InputError("This card already has a PIN: a supervisor must approve a new one")

    async def op(ref: str) -> str:
        return await ctx.patasente.modify_card_status(lookup.card.card_id, "active", pin=pin,
                                                      phone_number=phone_number,
                                                      card_names=card_names)

    details: dict[str, Any] = {"target_status": "active"}
    if approved_by is not None:
        details.update(approved_by=approved_by, replaces_pin=lookup.has_pin)
    return await _service_op(ctx, Kind.gift_activation, lookup.card, op, details=details)


async def set_locked(ctx: Context, lookup: CardLookup, locked: bool, *,
                     approved_by: str | None = None) -> SaleResult:
    """Lock (anyone: it only protects the holder) or unlock (``approved_by``: the
    supervisor; the unlock endpoint takes no card PIN, and a locked card cannot be
    debited, so the provider offers no way for the holder to prove the PIN)."""
    if not locked and approved_by is None:
        raise InputError("A supervisor must approve unlocking a card")

    async def op(ref: str) -> str:
        if locked:
            return await ctx.patasente.lock_card(lookup.card.card_id)
        return await ctx.patasente.unlock_card(lookup.card.card_id)

    kind = Kind.card_lock if locked else Kind.card_unlock
    details: dict[str, Any] = {"target_status": "locked" if locked else "active"}
    if approved_by is not None:
        details["approved_by"] = approved_by
    result = await _service_op(ctx, kind, lookup.card, op, details=details)
    if not locked and result.status == "approved":
        _after_unlock(ctx, lookup.card.card_id, approved_by or "")
    return result


def _after_unlock(ctx: Context, card_id: int, supervisor: str) -> None:
    """The issuer starts the card's PIN count again on unlock; so does this terminal (its
    refusal after wrong PINs, pos.pintries), on the supervisor's word, on the trail."""
    from pos.pinguard import PinGuard, Policy, at_wall, record_event

    now = ctx.clock()
    guard = PinGuard(ctx.journal, Policy.cards(ctx.settings.security), now=at_wall(now),
                     what="card PIN")
    try:
        guard.reset(f"card:{int(card_id)}", by=supervisor)
        with ctx.journal.transaction() as conn:
            record_event(conn, now, "card_unlocked", f"card:{int(card_id)}", supervisor,
                         "unlocked at the issuer")
    except PosError as exc:  # the unlock is done and journaled: the trail is best effort
        log.warning("card unlock not on the security trail: %s", exc.message)


async def top_up(ctx: Context, lookup: CardLookup, amount: Money, reason: str,
                 supervisor: str) -> SaleResult:
    """Credit the card from the merchant's prepaid float (top-up or refund). Online only."""
    if amount.currency != lookup.card.currency:
        raise InputError(f"This card holds {lookup.card.currency}, not {amount.currency}")
    if amount.currency != ctx.card_currency:
        raise InputError(f"This terminal takes {ctx.card_currency} cards")
    check_card_amount(ctx, amount)
    reason = reason.strip() or "Top-up"
    _require_online(ctx)
    ctx.ensure_room()
    card = lookup.card
    info = lookup.info or await card_snapshot(ctx, card.card_id, card.number, card.currency)
    txn = ctx.journal.create(
        Kind.card_credit, amount, tender=Tender.none, operator=ctx.operator,
        terminal_id=ctx.terminal_id, card_id=card.card_id,
        card_no=info.card_no if info else card.number, wallet="Current Account", reason=reason,
        details={"supervisor": supervisor,
                 **balance_before(info, "Current Account", ctx.device.stamp())},
    )
    return await credit(ctx, txn, success=f"{amount.format()} credited to the card")


async def activate_sente(ctx: Context, lookup: CardLookup, name: str, phone: str, email: str | None,
                         pin: str, document_b64: str) -> SenteActivation:
    """KYC activation, step 1: the provider sends an SMS code to the holder."""
    _require_online(ctx)
    pin = validate_card_pin(pin)
    name = " ".join(name.split())
    if len(name) < 3:
        raise InputError("Enter the holder's full name as on the ID document")
    phone = phone.strip().lstrip("+").replace(" ", "")
    if not is_digits(phone) or not 10 <= len(phone) <= 15:
        raise InputError("Enter the phone number in international form, e.g. 256780000001")
    if not document_b64:
        raise InputError("Take a photo of the ID document first")
    ctx.ensure_room()
    txn = ctx.journal.create(
        Kind.sente_activation, Money.zero(lookup.card.currency), tender=Tender.none,
        operator=ctx.operator, terminal_id=ctx.terminal_id, card_id=lookup.card.card_id,
        card_no=lookup.card.number, customer_name=name, details={"phone": phone},
    )
    txn = ctx.journal.transition(txn.ref, State.sending)
    try:
        act = await ctx.patasente.activate_sente_card(lookup.card.card_id, name, phone, email, pin,
                                                      document_b64)
    except Declined as exc:
        finish(ctx, txn, State.declined, error=exc.message)
        raise
    except ProviderError as exc:  # includes OutcomeUnknown / ProviderUnavailable
        finish(ctx, txn, State.declined, error=str(exc))
        raise
    finish(ctx, txn, State.done, note="SMS code sent", provider_txn_id=str(act.user_id))
    return act


async def verify_sente_code(ctx: Context, user_id: int, phone: str, code: str) -> str:
    _require_online(ctx)
    code = code.strip()
    if not is_digits(code) or len(code) != 4:
        raise InputError("The SMS code has 4 digits")
    message = await ctx.patasente.verify_phone_code(user_id, phone, code)
    for txn in ctx.journal.list(states=[State.done], kinds=[Kind.sente_activation], limit=50):
        if txn.provider_txn_id == str(user_id):
            ctx.journal.update(txn.ref, details={**txn.details, "phone_verified": True})
            break
    return message


async def card_balance(ctx: Context, lookup: CardLookup, approved_by: str) -> CardInfo:
    """The card's balances, for its holder. ``get-patasente-card`` takes no PIN and
    Patasente has no PIN check that moves no money (only the debit checks one), so the
    PIN cannot stand in for the holder here: a supervisor approves (``approved_by``),
    and the enquiry is on the security trail (who, when, which card; no figures)."""
    from pos.pinguard import record_event

    if not approved_by:
        raise InputError("A supervisor must approve showing a card's balance")
    _require_online(ctx)
    try:
        info = await ctx.patasente.get_card(lookup.card)
    except LinkDown as exc:
        ctx.link.patasente.record_failure(str(exc))
        raise
    ctx.link.patasente.record_success()
    with ctx.journal.transaction() as conn:
        record_event(conn, ctx.clock(), "card_balance_shown", f"card:{lookup.card.card_id}",
                     approved_by, f"asked by {ctx.operator}")
    return info
