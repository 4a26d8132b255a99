"""The sync engine: drains the outbox, reconciles lost answers, polls pending sales.

One asyncio component used by the TUI (in the background) and by
``sente-pos sync``. Rules it keeps (DESIGN.md invariants 1-4, 7, 9-11):

* oldest first, bounded concurrency, exponential backoff with jitter;
* a row whose answer was lost (``unknown``), or left ``sending`` by a process that
  is gone (a crash, a power cut: its lease names the holder), is settled by
  reconciliation (pos.usecases.reconcile): asked about, and sent again (same ref)
  only when every signal agrees nothing happened and the settle window has passed;
  never when the counter never accepted it;
* pending vends are polled by ref until complete or failed, across restarts;
* PawaCard's one-sale-per-meter-per-5-minutes throttle, 429/503 answers and a low
  vendor float reschedule instead of failing;
* every item has a cap in attempts and in age (measured on the boot-relative
  clock: pos.clock): past it, it is flagged for a supervisor (``review``), never
  retried for ever and never dropped;
* an offline sale refused at sync is flagged (``declined_offline``), an offline
  debit older than the merchant's max age is flagged ``expired``;
* one odd item never stops the others: a failure on an item is that item's;
* a file lock keeps two processes (TUI and CLI) from draining at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pos.clock import Stamp, elapsed, step_between
from pos.errors import (
    Declined,
    LinkDown,
    OutcomeUnknown,
    PosError,
    ProviderUnavailable,
    RateLimited,
)
from pos.journal import JournalUnwritable, Kind, State, Txn
from pos.offline import expired_offline
from pos.providers.models import CardOpStatus, VendOutcome, VendStatus
from pos.usecases import reconcile
from pos.usecases.context import Context
from pos.usecases.refunds import REFUND_REASON, owed_refunds
from pos.usecases.settle import (
    apply_card_result,
    apply_vend_outcome,
    finish,
    refused_state,
    settle_decision,
)

log = logging.getLogger(__name__)

CARD_KINDS = {Kind.card_debit, Kind.card_credit, Kind.card_refund}
POWER_KINDS = {Kind.vend, Kind.postpaid}
STATUS_KINDS = {Kind.gift_activation, Kind.card_lock, Kind.card_unlock}
#: Persist the clock heartbeat at most this often (a write on the SD card).
_HEARTBEAT_EVERY = 300.0


@dataclass
class SyncReport:
    settled: list[str] = field(default_factory=list)
    declined: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    refunds: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    remaining: int = 0
    busy: bool = False
    offline: bool = False

    def to_json(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def merge(self, other: SyncReport) -> None:
        for name in ("settled", "declined", "failed", "pending", "deferred", "expired",
                     "refunds", "review", "cancelled", "errors"):
            getattr(self, name).extend(getattr(other, name))
        self.remaining = other.remaining
        self.busy = self.busy or other.busy
        self.offline = other.offline

    @property
    def progressed(self) -> bool:
        return bool(self.settled or self.declined or self.failed or self.expired
                    or self.review or self.cancelled)


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
        self._provider_pause: dict[str, float] = {}  # provider -> boot-relative time
        self._running = asyncio.Lock()
        self._last_stamp: Stamp | None = None
        self._persisted_at: float | None = None

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
            if rep.busy or rep.offline or not rep.progressed or rep.remaining == 0:
                break
        total.remaining = self.outstanding()
        return total

    def outstanding(self) -> int:
        return self.ctx.journal.unsynced().count

    # ------------------------------------------------------------- a pass
    async def _pass(self, report: SyncReport, limit: int) -> None:
        ctx = self.ctx
        now = ctx.clock()
        self._watch_clock()
        try:
            self._recover_created(now)
            for refund in owed_refunds(ctx):
                if refund.state == State.queued and refund.ref not in report.refunds:
                    report.refunds.append(refund.ref)
        except JournalUnwritable as exc:
            report.errors.append(exc.message)
            return
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

    def _watch_clock(self) -> None:
        """Notice a wall-clock step (NTP after a cold boot, a hand correction) between
        passes and record it for the doctor and the status bar; schedules do not depend
        on it (pos.clock), but the cashier should know."""
        stamp = self.ctx.device.stamp()
        journal = self.ctx.journal
        prev = self._last_stamp
        if prev is None:
            prev = Stamp.from_json(_loads(journal.meta_get("clock.heartbeat")))
        step = step_between(prev, stamp) if prev is not None else 0.0
        self._last_stamp = stamp
        try:
            if step:
                log.warning("the wall clock stepped %+.0f s", step)
                journal.meta_set("clock.last_step", json.dumps(
                    {"seconds": round(step, 1), "at": stamp.to_json()}))
            if self._persisted_at is None or stamp.mono - self._persisted_at > _HEARTBEAT_EVERY \
                    or step:
                journal.meta_set("clock.heartbeat", json.dumps(stamp.to_json()))
                self._persisted_at = stamp.mono
        except JournalUnwritable:
            pass

    def _recover_created(self, now: dt.datetime) -> None:
        """Rows journaled but never marked sending (a crash in between) were never sent:
        cancelled at once when their maker is gone."""
        cutoff = now - dt.timedelta(seconds=self.ctx.settings.sync.abandon_created_after)
        for txn in self.ctx.journal.abandoned_created(cutoff):
            finish(self.ctx, txn, State.cancelled, note="interrupted before sending")

    def _load_meter_history(self, now: dt.datetime) -> None:
        window = dt.timedelta(seconds=self.ctx.settings.sync.meter_throttle_seconds)
        for txn in self.ctx.journal.list(kinds=[Kind.vend], since=now - window, limit=10_000):
            if txn.meter and txn.state in (State.done, State.pending, State.unknown):
                last = txn.updated_at
                if txn.meter not in self._meter_last or self._meter_last[txn.meter] < last:
                    self._meter_last[txn.meter] = last

    async def _process_safely(self, txn: Txn, report: SyncReport) -> None:
        ctx = self.ctx
        current = ctx.journal.get(txn.ref)  # fresh: a lane or the counter may have changed it
        if current is None or not current.needs_sync:
            return
        txn = current
        provider = "pawacard" if txn.kind in POWER_KINDS else "patasente"
        link = getattr(ctx.link, provider)
        pause = self._provider_pause.get(provider)
        if pause is not None and ctx.device.mono() < pause:
            report.deferred.append(txn.ref)
            return
        if not link.should_try():
            report.deferred.append(txn.ref)
            return
        client = ctx.pawacard if provider == "pawacard" else ctx.patasente
        heard = client.answers
        try:
            await self._process(txn, report)
        except ProviderUnavailable as exc:
            link.record_failure(str(exc))
            self._after_connect_failure(txn)
            report.deferred.append(txn.ref)
        except RateLimited as exc:
            wait = exc.retry_after or 30.0
            self._provider_pause[provider] = ctx.device.mono() + wait
            self._backoff(txn, exc.message, minimum=wait)
            report.deferred.append(txn.ref)
        except OutcomeUnknown as exc:
            self._lost_answer(txn, exc)
            report.pending.append(txn.ref)
        except JournalUnwritable as exc:
            report.errors.append(f"{txn.ref}: {exc.message}")
            return
        except PosError as exc:  # a question that failed, an odd answer: this item only
            if isinstance(exc, LinkDown):
                link.record_failure(exc.message)
            self._backoff(txn, exc.message)
            report.errors.append(f"{txn.ref}: {exc.message}")
        except Exception as exc:  # a bug must not stop the others, nor lose this one
            log.exception("sync %s", txn.ref)
            self._backoff(txn, f"internal error: {type(exc).__name__}")
            report.errors.append(f"{txn.ref}: internal error ({type(exc).__name__})")
        else:
            if client.answers > heard:  # deferred or settled locally: nothing was heard
                link.record_success()
        final = ctx.journal.get(txn.ref)
        if final is not None:
            self._classify(final, report)

    def _classify(self, txn: Txn, report: SyncReport) -> None:
        if txn.ref in report.deferred or txn.ref in report.pending:
            return
        bucket = {
            State.done: report.settled, State.declined: report.declined,
            State.declined_offline: report.declined, State.failed: report.failed,
            State.expired: report.expired, State.review: report.review,
            State.cancelled: report.cancelled, State.pending: report.pending,
            State.unknown: report.pending, State.queued: report.deferred,
        }.get(txn.state)
        if bucket is not None:
            bucket.append(txn.ref)

    def _after_connect_failure(self, txn: Txn) -> None:
        current = self.ctx.journal.require(txn.ref)
        if current.state == State.sending and txn.state == State.queued:
            # We marked it sending and the connection then failed: nothing left.
            self.ctx.journal.transition(txn.ref, State.queued, note="link down")

    def _lost_answer(self, txn: Txn, exc: OutcomeUnknown) -> None:
        """A request sent by sync lost its answer: ask about it soon, never send blind."""
        current = self.ctx.journal.require(txn.ref)
        if current.state == State.sending:
            self.ctx.journal.transition(txn.ref, State.unknown, error=exc.message)
        self._backoff(self.ctx.journal.require(txn.ref), exc.message,
                      maximum=self.ctx.settings.reconcile.confirm_interval * 4)

    def _backoff(self, txn: Txn, error: str, *, minimum: float = 0.0,
                 maximum: float | None = None, count: bool = True) -> None:
        """Schedule the next attempt; ``count``: this one counts against the attempts cap
        (waiting on another item does not)."""
        s = self.ctx.settings.sync
        attempts = (txn.attempts or 0) + int(count)
        delay = min(s.backoff_max, s.backoff_base * 2 ** min(max(attempts - 1, 0), 16))
        if maximum is not None:
            delay = min(delay, maximum)
        delay = max(minimum, delay * random.uniform(0.5, 1.0))
        at = self.ctx.clock() + dt.timedelta(seconds=delay)
        current = self.ctx.journal.get(txn.ref)
        if current is None or not current.needs_sync:
            return
        self.ctx.journal.update(txn.ref, attempts=attempts, next_attempt_at=at, last_error=error)

    def _delay(self, txn: Txn) -> float:
        s = self.ctx.settings.sync
        return float(min(s.backoff_max, s.backoff_base * 2 ** min(txn.attempts or 0, 16)))

    def _give_up(self, txn: Txn) -> str | None:
        """Why ``txn`` has run out of retries (None: it has not)."""
        s = self.ctx.settings.sync
        if (txn.attempts or 0) >= s.max_attempts:
            return f"gave up after {txn.attempts} attempts"
        if txn.created_stamp is not None:
            age = elapsed(txn.created_stamp, self.ctx.device.stamp())
            if age > s.max_age_hours * 3600:
                return f"still unsettled after {age / 3600:.0f} hours"
        return None

    # ---------------------------------------------------------- per item
    async def _process(self, txn: Txn, report: SyncReport) -> None:
        ctx = self.ctx
        if txn.state == State.queued and txn.offline and txn.kind == Kind.card_debit and \
                expired_offline(ctx.settings.offline, txn, ctx.device.stamp()):
            finish(ctx, txn, State.expired, error="offline debit too old to send")
            return
        why = self._give_up(txn)
        if why is not None:
            ctx.journal.transition(txn.ref, State.review,
                                   error=f"{why}: a supervisor must settle it"
                                   + (f" (last: {txn.last_error})" if txn.last_error else ""))
            return
        if txn.state == State.queued:
            if not self._parent_ready(txn):
                return
            if txn.kind == Kind.vend and txn.meter and self._throttled(txn.meter):
                when = self._meter_last[txn.meter] + dt.timedelta(
                    seconds=ctx.settings.sync.meter_throttle_seconds)
                ctx.journal.update(txn.ref, next_attempt_at=when)
                report.deferred.append(txn.ref)
                return
            if txn.kind in CARD_KINDS:
                await self._note_balance(txn)
            txn = ctx.journal.transition(txn.ref, State.sending,
                                         attempts=(txn.attempts or 0) + 1)
            await self._send(txn)
            return
        if txn.state == State.sending:
            # Its holder is gone (or its lease ran out): whether the request reached the
            # provider is unknown. Ask before anything else.
            txn = ctx.journal.transition(txn.ref, State.unknown,
                                         error="interrupted while sending: outcome unknown")
        if txn.kind in STATUS_KINDS:
            await self._reconcile_status(txn)
            return
        if txn.kind in POWER_KINDS or txn.kind in CARD_KINDS:
            await self._reconcile(txn)
            return
        finish(ctx, txn, State.failed, error=f"sync cannot settle {txn.kind}")

    async def _reconcile(self, txn: Txn) -> None:
        """Invariant 2: ask before anything is sent again (pos.usecases.reconcile)."""
        ctx = self.ctx
        decision = await reconcile.assess(ctx, txn)
        poll = decision.action is reconcile.Action.pending
        retry_in = ctx.settings.pawacard.poll_interval if poll else self._delay(txn)
        if decision.action is not reconcile.Action.resend:
            txn = settle_decision(ctx, txn, decision, background=True, retry_in=retry_in)
            if decision.counts and txn.state in (State.unknown, State.pending):
                ctx.journal.update(txn.ref, attempts=(txn.attempts or 0) + 1)
            return
        log.info("reconcile %s: %s; sending again (same ref)", txn.ref, decision.reason)
        ctx.journal.update(txn.ref, recon=reconcile.record(ctx, txn, decision))
        if txn.kind in CARD_KINDS:
            await self._note_balance(txn)
        txn = ctx.journal.transition(txn.ref, State.sending, note="absent: resend (same ref)",
                                     attempts=(txn.attempts or 0) + 1)
        await self._send(txn)

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
        self._backoff(txn, "waiting for the card debit", count=False)
        return False

    def _throttled(self, meter: str) -> bool:
        last = self._meter_last.get(meter)
        if last is None:
            return False
        window = dt.timedelta(seconds=self.ctx.settings.sync.meter_throttle_seconds)
        now = self.ctx.clock()
        if last > now + window:
            return False  # recorded under a clock that was ahead: not a real sale time
        return now < last + window

    async def _note_balance(self, txn: Txn) -> None:
        """The card's balance just before a debit or credit leaves (reconciliation's
        balance signal, pos.usecases.reconcile); nothing when it cannot be read."""
        if txn.card_id is None:
            return
        from pos.usecases.cards import balance_before, card_snapshot

        info = await card_snapshot(self.ctx, txn.card_id, txn.card_no, txn.amount.currency)
        wallet = txn.wallet or ("Current Account" if txn.kind != Kind.card_debit
                                else self.ctx.settings.patasente.default_wallet)
        noted = balance_before(info, wallet, self.ctx.device.stamp())
        if noted:
            self.ctx.journal.update(txn.ref, details=noted)

    async def _send(self, txn: Txn) -> None:
        """Send a row sync just marked ``sending``; its answer is applied here, a lost
        one raises OutcomeUnknown (asked about on the next pass)."""
        ctx = self.ctx
        if txn.kind in POWER_KINDS:
            before = self._meter_last.get(txn.meter) if txn.meter else None
            if txn.meter:
                self._meter_last[txn.meter] = ctx.clock()
            try:
                if txn.kind == Kind.vend:
                    assert txn.meter
                    outcome = await ctx.pawacard.vend(txn.meter, txn.amount,
                                                      txn.customer_name or "", txn.ref)
                else:
                    assert txn.account
                    outcome = await ctx.pawacard.postpaid_bill(txn.account, txn.amount,
                                                               txn.customer_name or "", txn.ref)
            except Declined as exc:  # refused before any work (a 4xx)
                outcome = VendOutcome(VendStatus.DECLINED, txn.ref, message=exc.message)
            except ProviderUnavailable:
                # No connection: no sale reached the meter, so it is not throttled by one.
                if txn.meter:
                    if before is None:
                        self._meter_last.pop(txn.meter, None)
                    else:
                        self._meter_last[txn.meter] = before
                raise
            apply_vend_outcome(ctx, txn, outcome, background=True)
            return
        if txn.kind == Kind.card_debit:
            assert txn.card_id is not None
            pin = ctx.journal.load_pin(txn.ref)
            try:
                result = await ctx.patasente.debit_card(txn.card_id, txn.amount, txn.reason or "",
                                                        pin, txn.wallet or "", txn.ref)
            except Declined as exc:
                from pos.usecases.cards import note_card_pin

                note_card_pin(ctx, txn.card_id, pin, exc.message)
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

    async def _reconcile_status(self, txn: Txn) -> None:
        """A lock / unlock / gift activation with a lost answer: read the card's status.
        Never sent again automatically (a gift activation carries the customer's PIN)."""
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


def _loads(text: str | None) -> object:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
