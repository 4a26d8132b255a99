"""The sync engine: drains the outbox, reconciles unknowns, polls pending sales.

One asyncio component used by the TUI (in the background) and by
``sente-pos sync``. Rules it keeps (DESIGN.md invariants 1-4, 7):

* oldest first, bounded concurrency, exponential backoff with jitter;
* a row left ``sending`` or ``unknown`` (crash, lost answer) is *queried by
  ref first*; it is sent again, with the same ref, only when the provider
  shows it absent;
* pending vends are polled by ref until complete or failed, across restarts;
* PawaCard's one-sale-per-meter-per-5-minutes throttle and 429/503 answers
  reschedule instead of failing;
* an offline sale refused at sync is flagged (``declined_offline``), an
  offline debit older than the merchant's max age is flagged ``expired``;
* a file lock keeps two processes (TUI and CLI) from draining at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import logging
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pos.errors import (
    Declined,
    OutcomeUnknown,
    PosError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from pos.journal import Kind, State, Txn
from pos.offline import expired_offline
from pos.providers.models import CardOpStatus, VendStatus
from pos.providers.patasente import FAILED_ROW
from pos.usecases.context import Context
from pos.usecases.refunds import REFUND_REASON, owed_refunds
from pos.usecases.settle import apply_card_result, apply_vend_outcome, finish, refused_state

log = logging.getLogger(__name__)

CARD_KINDS = {Kind.card_debit, Kind.card_credit, Kind.card_refund}
POWER_KINDS = {Kind.vend, Kind.postpaid}
STATUS_KINDS = {Kind.gift_activation, Kind.card_lock, Kind.card_unlock}


@dataclass
class SyncReport:
    settled: list[str] = field(default_factory=list)
    declined: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    refunds: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    remaining: int = 0
    busy: bool = False
    offline: bool = False

    def to_json(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def merge(self, other: SyncReport) -> None:
        for name in ("settled", "declined", "failed", "pending", "deferred", "expired",
                     "refunds", "errors"):
            getattr(self, name).extend(getattr(other, name))
        self.remaining = other.remaining
        self.busy = self.busy or other.busy
        self.offline = other.offline


class SyncLock:
    """An advisory lock file in the data directory: one drainer at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def hold(self) -> Iterator[bool]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class SyncEngine:
    def __init__(self, ctx: Context, *, lock_path: Path | None = None) -> None:
        self.ctx = ctx
        self.lock = SyncLock(lock_path or ctx.settings.home / "sync.lock")
        self._meter_last: dict[str, dt.datetime] = {}
        self._provider_pause: dict[str, dt.datetime] = {}
        self._running = asyncio.Lock()

    # ------------------------------------------------------------- public
    async def run_once(self, *, limit: int = 500) -> SyncReport:
        """One pass over everything due now."""
        report = SyncReport()
        if self._running.locked():
            report.busy = True
            return report
        async with self._running:
            with self.lock.hold() as got:
                if not got:
                    report.busy = True
                    return report
                await self._pass(report, limit)
        return report

    async def drain(self, *, max_passes: int = 100, limit: int = 500) -> SyncReport:
        """Repeat passes while progress is made and something is due now."""
        total = SyncReport()
        for _ in range(max_passes):
            rep = await self.run_once(limit=limit)
            total.merge(rep)
            progressed = rep.settled or rep.declined or rep.failed or rep.expired
            if rep.busy or rep.offline or not progressed or rep.remaining == 0:
                break
        total.remaining = self.outstanding()
        return total

    def outstanding(self) -> int:
        return self.ctx.journal.unsynced().count

    # ------------------------------------------------------------- a pass
    async def _pass(self, report: SyncReport, limit: int) -> None:
        ctx = self.ctx
        now = ctx.clock()
        self._recover_created(now)
        for refund in owed_refunds(ctx):
            if refund.state == State.queued and refund.ref not in report.refunds:
                report.refunds.append(refund.ref)
        self._load_meter_history(now)
        due = ctx.journal.due_for_sync(now, limit=limit)
        sem = asyncio.Semaphore(max(1, ctx.settings.sync.concurrency))
        # Items for one meter or one card go in order, one at a time.
        lanes: dict[str, list[Txn]] = {}
        for txn in due:
            lanes.setdefault(self._lane(txn), []).append(txn)

        async def run_lane(items: list[Txn]) -> None:
            for txn in items:
                async with sem:
                    await self._process_safely(txn, report)

        await asyncio.gather(*(run_lane(items) for items in lanes.values()))
        report.offline = not ctx.link.online
        report.remaining = len(ctx.journal.due_for_sync(ctx.clock(), limit=limit))
        from pos.hubsync import after_sync_pass  # back office upload; it never raises

        await after_sync_pass(ctx)

    def _lane(self, txn: Txn) -> str:
        if txn.meter:
            return f"meter:{txn.meter}"
        if txn.account:
            return f"account:{txn.account}"
        if txn.card_id is not None:
            return f"card:{txn.card_id}"
        return f"ref:{txn.ref}"

    def _recover_created(self, now: dt.datetime) -> None:
        """Rows journaled but never marked sending (a crash in between) were never sent."""
        cutoff = now - dt.timedelta(seconds=self.ctx.settings.sync.abandon_created_after)
        for txn in self.ctx.journal.list(states=[State.created], until=cutoff, limit=1000):
            finish(self.ctx, txn, State.cancelled, note="interrupted before sending")

    def _load_meter_history(self, now: dt.datetime) -> None:
        window = dt.timedelta(seconds=self.ctx.settings.sync.meter_throttle_seconds)
        for txn in self.ctx.journal.list(kinds=[Kind.vend], since=now - window, limit=10_000):
            if txn.meter and txn.state in (State.done, State.pending, State.unknown):
                last = txn.updated_at
                if txn.meter not in self._meter_last or self._meter_last[txn.meter] < last:
                    self._meter_last[txn.meter] = last

    async def _process_safely(self, txn: Txn, report: SyncReport) -> None:
        txn = self.ctx.journal.require(txn.ref)  # fresh: a lane may have changed it
        provider = "pawacard" if txn.kind in POWER_KINDS else "patasente"
        link = getattr(self.ctx.link, provider)
        pause = self._provider_pause.get(provider)
        if pause and self.ctx.clock() < pause:
            report.deferred.append(txn.ref)
            return
        if not link.should_try():
            report.deferred.append(txn.ref)
            return
        try:
            await self._process(txn, report)
        except ProviderUnavailable as exc:
            link.record_failure(str(exc))
            self._after_connect_failure(txn)
            report.deferred.append(txn.ref)
        except RateLimited as exc:
            link.record_success()
            wait = exc.retry_after or 30.0
            self._provider_pause[provider] = self.ctx.clock() + dt.timedelta(seconds=wait)
            self._backoff(txn, exc.message, minimum=wait)
            report.deferred.append(txn.ref)
        except OutcomeUnknown as exc:
            link.record_success()
            current = self.ctx.journal.require(txn.ref)
            if current.state in (State.sending, State.unknown):
                if current.state == State.sending:
                    self.ctx.journal.transition(txn.ref, State.unknown, error=exc.message)
                self._backoff(self.ctx.journal.require(txn.ref), exc.message)
            report.pending.append(txn.ref)
        except ProviderError as exc:
            self._backoff(self.ctx.journal.require(txn.ref), exc.message)
            report.errors.append(f"{txn.ref}: {exc.message}")
        except PosError as exc:
            log.warning("sync %s: %s", txn.ref, exc.message)
            self._backoff(self.ctx.journal.require(txn.ref), exc.message)
            report.errors.append(f"{txn.ref}: {exc.message}")
        else:
            link.record_success()
        final = self.ctx.journal.require(txn.ref)
        self._classify(final, report)

    def _classify(self, txn: Txn, report: SyncReport) -> None:
        if txn.ref in report.deferred or txn.ref in report.pending:
            return
        if txn.state == State.done:
            report.settled.append(txn.ref)
        elif txn.state in (State.declined, State.declined_offline):
            report.declined.append(txn.ref)
        elif txn.state == State.failed:
            report.failed.append(txn.ref)
        elif txn.state == State.expired:
            report.expired.append(txn.ref)
        elif txn.state in (State.pending, State.unknown):
            report.pending.append(txn.ref)
        elif txn.state == State.queued:
            report.deferred.append(txn.ref)

    def _after_connect_failure(self, txn: Txn) -> None:
        current = self.ctx.journal.require(txn.ref)
        if current.state == State.sending and txn.state == State.queued:
            # We marked it sending and the connection then failed: nothing left.
            self.ctx.journal.transition(txn.ref, State.queued, note="link down")

    def _backoff(self, txn: Txn, error: str, *, minimum: float = 0.0) -> None:
        s = self.ctx.settings.sync
        attempts = (txn.attempts or 0) + 1
        delay = min(s.backoff_max, s.backoff_base * 2 ** min(attempts - 1, 16))
        delay = max(minimum, delay * random.uniform(0.5, 1.0))
        at = self.ctx.clock() + dt.timedelta(seconds=delay)
        self.ctx.journal.update(txn.ref, attempts=attempts, next_attempt_at=at, last_error=error)

    # ---------------------------------------------------------- per item
    async def _process(self, txn: Txn, report: SyncReport) -> None:
        ctx = self.ctx
        if txn.state == State.queued:
            if txn.offline and txn.kind == Kind.card_debit and expired_offline(
                ctx.settings.offline, txn, ctx.clock()
            ):
                finish(ctx, txn, State.expired, error="offline debit too old to send")
                return
            if not self._parent_ready(txn):
                return
            if txn.kind == Kind.vend and txn.meter and self._throttled(txn.meter):
                when = self._meter_last[txn.meter] + dt.timedelta(
                    seconds=ctx.settings.sync.meter_throttle_seconds)
                ctx.journal.update(txn.ref, next_attempt_at=when)
                report.deferred.append(txn.ref)
                return
            txn = ctx.journal.transition(txn.ref, State.sending,
                                         attempts=(txn.attempts or 0) + 1)
            await self._send(txn)
            return
        if txn.state in (State.sending, State.unknown):
            await self._reconcile_then_send(txn)
            return
        if txn.state == State.pending:
            await self._poll(txn)

    def _parent_ready(self, txn: Txn) -> bool:
        """A card-paid vend waits for its debit; a refused debit cancels it."""
        if txn.kind not in POWER_KINDS or not txn.parent_ref:
            return True
        parent = self.ctx.journal.get(txn.parent_ref)
        if parent is None or parent.state == State.done:
            return True
        if parent.state in (State.declined, State.declined_offline, State.cancelled,
                            State.expired, State.failed, State.resolved):
            finish(self.ctx, txn, State.cancelled, note="card payment was not taken")
            return False
        self._backoff(txn, "waiting for the card debit")
        return False

    def _throttled(self, meter: str) -> bool:
        last = self._meter_last.get(meter)
        if last is None:
            return False
        window = dt.timedelta(seconds=self.ctx.settings.sync.meter_throttle_seconds)
        return self.ctx.clock() < last + window

    async def _send(self, txn: Txn) -> None:
        ctx = self.ctx
        if txn.kind in POWER_KINDS:
            if txn.meter:
                self._meter_last[txn.meter] = ctx.clock()
            if txn.kind == Kind.vend:
                assert txn.meter
                outcome = await ctx.pawacard.vend(txn.meter, txn.amount, txn.customer_name or "",
                                                  txn.ref)
            else:
                assert txn.account
                outcome = await ctx.pawacard.postpaid_bill(txn.account, txn.amount,
                                                           txn.customer_name or "", txn.ref)
            if outcome.status in (VendStatus.ABSENT, VendStatus.UNKNOWN):
                raise OutcomeUnknown("PawaCard gave no usable answer", provider="PawaCard",
                                     ref=txn.ref)
            apply_vend_outcome(ctx, txn, outcome, background=True)
            return
        if txn.kind == Kind.card_debit:
            assert txn.card_id is not None
            pin = ctx.journal.load_pin(txn.ref)
            try:
                result = await ctx.patasente.debit_card(txn.card_id, txn.amount, txn.reason or "",
                                                        pin, txn.wallet or "", txn.ref)
            except Declined as exc:
                finish(ctx, txn, refused_state(txn, background=True), error=exc.message)
                return
            txn = apply_card_result(ctx, txn, result, background=True)
            if txn.state == State.done:
                self._card_seen_online(txn)
            return
        if txn.kind in (Kind.card_credit, Kind.card_refund):
            assert txn.card_id is not None
            try:
                result = await ctx.patasente.credit_card(
                    txn.card_id, txn.amount, txn.reason or REFUND_REASON, txn.ref)
            except Declined as exc:
                # A refund the provider refuses must reach a person: it is flagged.
                finish(ctx, txn, refused_state(txn, background=True), error=exc.message)
                return
            if result.status == CardOpStatus.APPROVED:
                finish(ctx, txn, State.done, note=result.message,
                       provider_txn_id=result.provider_txn_id)
            else:
                finish(ctx, txn, refused_state(txn, background=True), error=result.message)
            return
        if txn.kind in STATUS_KINDS:
            # Never re-sent automatically (a gift activation carries the customer's PIN):
            # an unresolved card-service call is flagged for the cashier to redo.
            finish(ctx, txn, State.failed, error="not confirmed: please do it again")
            return
        finish(ctx, txn, State.failed, error=f"sync cannot send {txn.kind}")

    def _card_seen_online(self, txn: Txn) -> None:
        """A debit the issuer accepted counts as the card being seen online again
        (resets the consecutive-offline count); the cached balance follows the debit."""
        cached = self.ctx.journal.card_cache_get(txn.card_id) if txn.card_id else None
        if cached is None or txn.card_id is None:
            return
        balance = cached.balance
        if (balance is not None and balance.currency == txn.amount.currency
                and "credit" not in (txn.wallet or "").lower()):
            balance = balance - txn.amount
        self.ctx.journal.card_cache_put(txn.card_id, cached.card_no, cached.status,
                                        cached.has_pin, list(cached.wallets), balance,
                                        self.ctx.clock())

    async def _reconcile_then_send(self, txn: Txn) -> None:
        """Invariant 2: query by ref before anything is sent again."""
        ctx = self.ctx
        if txn.kind in POWER_KINDS:
            outcome = await (ctx.pawacard.postpaid_transaction(txn.ref)
                             if txn.kind == Kind.postpaid else ctx.pawacard.transaction(txn.ref))
            if outcome.status == VendStatus.ABSENT:
                log.info("reconcile %s: absent at PawaCard, sending again (same ref)", txn.ref)
                txn = ctx.journal.transition(txn.ref, State.sending, note="absent: resend",
                                             attempts=(txn.attempts or 0) + 1) \
                    if txn.state == State.unknown else txn
                await self._send(txn)
                return
            if outcome.status == VendStatus.UNKNOWN:
                raise OutcomeUnknown("PawaCard status unclear", provider="PawaCard", ref=txn.ref)
            apply_vend_outcome(ctx, txn, outcome, background=True)
            return
        if txn.kind in CARD_KINDS:
            kind = "debit" if txn.kind == Kind.card_debit else "credit"
            found = await ctx.patasente.find_by_ref(txn.ref, kind=kind)
            if found is not None:
                if FAILED_ROW.search(found.status or ""):
                    finish(ctx, txn, refused_state(txn, background=True),
                           error=f"Patasente recorded it as {found.status}")
                else:
                    finish(ctx, txn, State.done, note="found by reconciliation",
                           provider_txn_id=found.transaction_id)
                return
            log.info("reconcile %s: absent at Patasente, sending again (same ref)", txn.ref)
            if txn.state == State.unknown:
                txn = ctx.journal.transition(txn.ref, State.sending, note="absent: resend",
                                             attempts=(txn.attempts or 0) + 1)
            await self._send(txn)
            return
        if txn.kind in STATUS_KINDS and txn.card_id is not None:
            await self._reconcile_status(txn)
            return
        await self._send(txn)

    async def _reconcile_status(self, txn: Txn) -> None:
        """A lock / unlock / gift activation with a lost answer: read the card's status."""
        from pos.cardqr import CardRef

        ctx = self.ctx
        target = str((txn.details or {}).get("target_status", ""))
        ref = CardRef(number=txn.card_no or "", expiry_month=1, expiry_year=2099,
                      currency=txn.amount.currency, digit=0, card_type="", card_id=txn.card_id or 0,
                      raw="")
        info = await ctx.patasente.get_card(ref)
        if target and info.status.lower() == target:
            finish(ctx, txn, State.done, note=f"card is {info.status}")
        else:
            finish(ctx, txn, State.failed, error=f"card is {info.status}: please do it again")

    async def _poll(self, txn: Txn) -> None:
        ctx = self.ctx
        outcome = await (ctx.pawacard.postpaid_transaction(txn.ref)
                         if txn.kind == Kind.postpaid else ctx.pawacard.transaction(txn.ref))
        if outcome.status == VendStatus.PENDING:
            self._backoff(txn, "still pending", minimum=ctx.settings.pawacard.poll_interval)
            return
        if outcome.status == VendStatus.ABSENT:
            # Accepted as pending, now unknown: treat like a lost answer.
            ctx.journal.transition(txn.ref, State.unknown, error="pending ref not found")
            self._backoff(ctx.journal.require(txn.ref), "pending ref not found")
            return
        if outcome.status == VendStatus.UNKNOWN:
            raise OutcomeUnknown("PawaCard status unclear", provider="PawaCard", ref=txn.ref)
        apply_vend_outcome(ctx, txn, outcome, background=True)
