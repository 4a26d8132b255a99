"""The facade the screens and the CLI use: one object per running terminal.

It wires settings, the journal (with the PIN vault), both provider clients,
the link monitor and the sync engine, and exposes the use cases as plain
async methods. The screens call only this; it never imports Textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pos.clock import DeviceClock
from pos.config import Settings, data_dir_error, ensure_home
from pos.errors import InputError, LinkDown, PosError
from pos.journal import SYNC_STATES, Event, Journal, Kind, State, Txn
from pos.money import Money
from pos.operators import (
    PIN_KEY_PURPOSE,
    Operator,
    Role,
    hash_pin,
    is_pin_hash,
    needs_rehash,
    validate_new_pin,
    validate_operator_name,
    verify_pin,
)
from pos.pinguard import PinGuard, Policy, record_event
from pos.usecases.context import Context, utcnow
from pos.vault import Vault

# The use cases, reports and sync engine are imported by the methods that need them:
# the counter's first screen needs none of them, and start-up time is the cashier's.
if TYPE_CHECKING:
    import sqlite3

    from pos import reports
    from pos.basket import Basket
    from pos.catalogue import Catalogue
    from pos.devices import Printer
    from pos.link import LinkMonitor
    from pos.providers.models import AccountInfo, CardInfo, MeterInfo, SenteActivation
    from pos.receipts import Receipt
    from pos.shifts import Shift, ShiftReport
    from pos.sync import SyncEngine, SyncReport
    from pos.usecases.electricity import TenderName
    from pos.usecases.operator_admin import OperatorRow
    from pos.usecases.quotes import Quote
    from pos.usecases.results import CardLookup, SaleResult
    from pos.usecases.sale import Sale
    from pos.usecases.voids import Voidability, VoidMark

log = logging.getLogger(__name__)


def configure_journal(journal: Journal, settings: Settings) -> None:
    """The journal's settings: the sending lease, the terminal number refs carry, and the
    horizon past which a scheduled time is a clock stepped back (longer than any delay
    the terminal schedules: backoff, lease, settle window, a provider's Retry-After)."""
    s = settings.sync
    journal.sending_lease = s.sending_lease_seconds
    journal.terminal_number = settings.ref_terminal_number
    journal.horizon_seconds = 2 * max(s.backoff_max, s.sending_lease_seconds,
                                      s.meter_throttle_seconds,
                                      settings.reconcile.settle_seconds, 3600.0)


def clock_warning(journal: Journal, device: DeviceClock) -> str | None:
    """The wall clock not synchronised, stepped in the last day, or behind the journal."""
    import json

    from pos.clock import Stamp, elapsed

    now = device.stamp()
    if not now.synced:
        return "clock not synced (NTP)"
    newest = journal.newest_created_at()
    if newest is not None and now.wall < newest - dt.timedelta(minutes=2):
        return "clock behind the journal"
    try:
        step = json.loads(journal.meta_get("clock.last_step") or "null")
    except ValueError:
        step = None
    if isinstance(step, dict):
        at = Stamp.from_json(step.get("at"))
        if at is not None and elapsed(at, now) < 86_400:
            return f"clock changed {float(step.get('seconds', 0)):+.0f} s"
    return None


def replay_fallback(journal: Journal) -> list[str]:
    """Answers that could not be written last time (disk full, locked) go in first."""
    from pos.journal import fallback

    applied = fallback.replay(journal, fallback.fallback_path(journal.path))
    if applied:
        log.warning("recorded %d outcome(s) from the fallback file: %s", len(applied),
                    ", ".join(applied))
    return applied



@dataclass(frozen=True)
class TerminalStatus:
    online: bool
    link: str
    unsynced_count: int
    unsynced_total: list[Money]
    flagged_count: int
    pawacard_float: Money | None
    patasente_float: Money | None
    low_float: bool
    operator: str | None
    clock_warning: str | None = None  # the wall clock is not to be trusted (pos.clock)

    def to_json(self) -> dict[str, Any]:
        return {
            "clock_warning": self.clock_warning,
            "online": self.online,
            "link": self.link,
            "unsynced_count": self.unsynced_count,
            "unsynced_total": [m.to_json() for m in self.unsynced_total],
            "flagged_count": self.flagged_count,
            "pawacard_float": self.pawacard_float.to_json() if self.pawacard_float else None,
            "patasente_float": self.patasente_float.to_json() if self.patasente_float else None,
            "low_float": self.low_float,
            "operator": self.operator,
        }


def _operator_name(name: str, role: str) -> str:
    return validate_operator_name(name, role)


def pin_key(journal: Journal) -> bytes | None:
    """The key operator PIN hashes are keyed with (from the device key), if there is one."""
    vault = journal.vault
    return vault.derive_key(PIN_KEY_PURPOSE) if vault is not None else None


def upgrade_hash(journal: Journal, name: str, role: str, stored: str, pin: str) -> None:
    """Rewrite an old-scheme hash keyed, now that the PIN is known to be right."""
    key = pin_key(journal)
    if needs_rehash(stored, key):
        journal.operator_put(name, role, hash_pin(pin, key))


def check_supervisor_pin(journal: Journal, settings: Settings, pin: str,
                         name: str | None = None) -> Operator:
    """The supervisor of ``journal`` whose PIN is ``pin`` (or the named one), through the
    attempt limits; also used to approve a restore against the backup's supervisors."""
    candidates = [o for o in journal.operators() if o.role == "supervisor"
                  and not o.disabled and (name is None or o.name == name)]
    key = pin_key(journal)
    found: list[Any] = []

    def verify() -> bool:
        found.extend(rec for rec in candidates if verify_pin(pin, rec.pin_hash, key))
        return bool(found)

    subject = "supervisor" if name is None else f"operator:{name}"
    if not PinGuard(journal, Policy.operators(settings.security)).attempt(subject, verify):
        raise InputError("Supervisor PIN not accepted")
    rec = found[0]
    upgrade_hash(journal, rec.name, rec.role, rec.pin_hash, pin)
    return Operator(rec.name, "supervisor")


class Terminal:
    def __init__(self, ctx: Context, *, printer: Printer | None = None) -> None:
        self.ctx = ctx
        self._sync_engine: SyncEngine | None = None
        self.printer = printer
        self.operator: Operator | None = None
        self._floats: dict[str, Money | None] = {"pawacard": None, "patasente": None}
        self._clock_checked: tuple[float, str | None] | None = None

    # ------------------------------------------------------------ set-up
    @classmethod
    async def open(cls, settings: Settings, *, printer: Printer | None = None,
                   clock: Callable[[], dt.datetime] | None = None,
                   operator: str = "system", device: DeviceClock | None = None) -> Terminal:
        return cls.open_sync(settings, printer=printer, clock=clock, operator=operator,
                             device=device)

    @classmethod
    def open_sync(cls, settings: Settings, *, printer: Printer | None = None,
                  clock: Callable[[], dt.datetime] | None = None,
                  operator: str = "system", device: DeviceClock | None = None) -> Terminal:
        """``device``: the device's clocks (tests pass a fake); ``clock``: a wall clock
        for the real device clocks."""
        home = ensure_home(settings.home)
        device = device or DeviceClock(wall=clock or utcnow)
        try:
            vault = Vault.open(home / "device.key")
            journal = Journal.open(home / "journal.db", vault=vault, device=device,
                                   busy_timeout_ms=settings.storage.busy_timeout_ms)
        except OSError as exc:  # a read-only or full SD card: say so, not "OSError"
            raise data_dir_error(home, exc) from exc
        configure_journal(journal, settings)
        replay_fallback(journal)
        from pos.link import LinkMonitor

        ctx = Context(settings=settings, journal=journal, operator=operator,
                      clock=device.wall, device=device,
                      link=LinkMonitor.every(settings.sync.probe_interval))
        return cls(ctx, printer=printer)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.ctx.aclose_clients()
        with contextlib.suppress(Exception):
            from pos.hubsync import close_uploader  # the back office's, if enrolled

            await close_uploader(self.ctx.journal)
        self.ctx.journal.close()

    @property
    def sync_engine(self) -> SyncEngine:
        if self._sync_engine is None:
            from pos.sync import SyncEngine

            self._sync_engine = SyncEngine(self.ctx)
        return self._sync_engine

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def journal(self) -> Journal:
        return self.ctx.journal

    @property
    def link(self) -> LinkMonitor:
        return self.ctx.link

    # ------------------------------------------------------------ status
    def status(self) -> TerminalStatus:
        unsynced = self.journal.unsynced()
        low = any(
            m is not None and m.major < self.settings.low_float_warning
            for m in self._floats.values()
        )
        return TerminalStatus(
            online=self.link.online,
            link=self.link.describe(),
            unsynced_count=unsynced.count,
            unsynced_total=[Money(v, c) for c, v in sorted(unsynced.totals.items())],
            flagged_count=self.journal.flagged_count(),
            pawacard_float=self._floats["pawacard"],
            patasente_float=self._floats["patasente"],
            low_float=low,
            operator=self.operator.name if self.operator else None,
            clock_warning=self.clock_warning(),
        )

    def clock_warning(self) -> str | None:
        """Why the wall clock should not be trusted now (None: it looks right).

        A Pi without RTC boots with a stale clock; NTP may step it later. Sales and
        schedules do not depend on it (pos.clock), but receipts print it and the
        cashier should know. Looked at every 10 s at most (the status bar asks often).
        """
        now = self.ctx.device.mono()
        cached = self._clock_checked
        if cached is not None and now - cached[0] < 10.0:
            return cached[1]
        warning = clock_warning(self.journal, self.ctx.device)
        self._clock_checked = (now, warning)
        return warning

    async def refresh_floats(self, *, probe: bool = False) -> None:
        """Ask both providers for the merchant's floats (cheap, no money moves).

        ``probe``: also try a link that is down now, whatever its back-off."""
        if probe:
            self.link.probe_now()
        await self._ask_floats(("pawacard", "patasente"))

    def probe_in_background(self) -> None:
        """The caller runs :meth:`probe_links` on a cycle (the app): from now on requests
        no longer probe a down link themselves, they wait for the cycle (pos.link)."""
        self.link.probe_in_background()

    def probe_due(self) -> bool:
        """Whether a link's probe is due (pos.link): cheap, no request is sent."""
        return bool(self.link.due())

    async def probe_links(self) -> list[str]:
        """The link monitor's probe cycle: ask each provider whose probe is due for its
        float (money-free). Returns the names of the links that came back online, so the
        caller can send what was queued while they were down."""
        due = self.link.due()
        if not due:
            return []
        down = [key for key in due if not self.link.links[key].online]
        await self._ask_floats(due)
        return [self.link.links[key].name for key in down if self.link.links[key].online]

    async def _ask_floats(self, providers: Sequence[str]) -> None:
        async def pawa() -> None:
            if not self.link.pawacard.may_probe():
                return
            try:
                self._floats["pawacard"] = await self.ctx.pawacard.balance()
                self.link.pawacard.record_success()
            except LinkDown as exc:
                self.link.pawacard.record_failure(str(exc))
            except PosError as exc:
                self.link.pawacard.record_success()  # it answered, however oddly
                log.info("pawacard float: %s", exc.message)

        async def pata() -> None:
            if not self.link.patasente.may_probe():
                return
            try:
                wb = await self.ctx.patasente.wallet_balance()
                self._floats["patasente"] = wb.prepaid_float or wb.amount
                self.link.patasente.record_success()
            except LinkDown as exc:
                self.link.patasente.record_failure(str(exc))
            except PosError as exc:
                self.link.patasente.record_success()
                log.info("patasente float: %s", exc.message)

        asks = {"pawacard": pawa, "patasente": pata}
        await asyncio.gather(*(asks[p]() for p in providers))
        from pos.hubsync import note_floats  # reported to the back office with each upload

        note_floats(self.journal, self._floats)

    def hub_pending(self) -> bool:
        """Something for the back office (hub) to receive: a reason for a sync pass."""
        from pos.hubsync import pending

        return pending(self.journal, self.settings.home)

    # --------------------------------------------------------- operators
    def has_operators(self) -> bool:
        return bool(self.journal.operators())

    def operators(self) -> list[Operator]:
        """The operators who can sign in (a disabled one is not offered)."""
        return [Operator(o.name, o.role) for o in self.journal.operators()  # type: ignore[arg-type]
                if not o.disabled]

    # PINs: hashes keyed with the device key, attempts limited (pos/pinguard.py).
    @property
    def _pin_key(self) -> bytes | None:
        return pin_key(self.journal)

    @property
    def pin_guard(self) -> PinGuard:
        return PinGuard(self.journal, Policy.operators(self.settings.security))

    def add_operator(self, name: str, role: Role, pin: str, *,
                     approved_by: Operator | None = None) -> Operator:
        """Add an operator or change one's PIN or role. Only the first operator of a
        fresh terminal needs no approval; after that a supervisor approves every add or
        change (so no one can overwrite a supervisor's PIN and then use it)."""
        name = _operator_name(name, role)
        existing = {o.name: o for o in self.journal.operators()}
        before = existing.get(name)
        validate_new_pin(pin, role, previous_hash=before.pin_hash if before else None,
                         key=self._pin_key)
        if existing and (approved_by is None or not approved_by.is_supervisor):
            raise InputError("A supervisor must approve adding or changing an operator")
        kind = "operator_changed" if before else "operator_added"
        at, by = self.ctx.clock(), approved_by.name if approved_by else None
        detail = f"{role}" + ("" if existing else ", the terminal's first operator")

        def trail(conn: sqlite3.Connection) -> None:
            record_event(conn, at, kind, f"operator:{name}", by, detail)

        self.journal.operator_put(name, role, hash_pin(pin, self._pin_key), also=trail)
        return Operator(name, role)

    # Operator management from the TUI (pos/usecases/operator_admin.py): each change
    # approved by a supervisor and on the security trail in the same transaction.
    def operator_list(self) -> list[OperatorRow]:
        from pos.usecases import operator_admin

        return operator_admin.list_operators(self.journal)

    def create_operator(self, name: str, role: Role, pin: str,
                        supervisor: Operator) -> Operator:
        from pos.usecases import operator_admin

        return operator_admin.add(self.journal, name, role, pin, supervisor, self.ctx.clock())

    def change_operator_pin(self, name: str, pin: str, supervisor: Operator) -> Operator:
        from pos.usecases import operator_admin

        return operator_admin.change_pin(self.journal, name, pin, supervisor,
                                         self.ctx.clock())

    def change_operator_role(self, name: str, role: Role, supervisor: Operator, *,
                             pin: str | None = None) -> Operator:
        from pos.usecases import operator_admin

        op = operator_admin.change_role(self.journal, name, role, supervisor,
                                        self.ctx.clock(), pin=pin)
        if self.operator is not None and self.operator.name == name:
            self._become(op)
        return op

    def set_operator_disabled(self, name: str, disabled: bool,
                              supervisor: Operator) -> OperatorRow:
        """Disable an operator (no sign-in, no approvals) or enable them again; a
        disabled operator who is signed in is signed out."""
        from pos.usecases import operator_admin

        row = operator_admin.set_disabled(self.journal, name, disabled, supervisor,
                                          self.ctx.clock())
        if disabled and self.operator is not None and self.operator.name == name:
            self.sign_out()
        return row

    def add_hashed_operator(self, name: str, role: Role, pin_hash: str) -> Operator:
        """An operator whose PIN was hashed beforehand (the demo's, whose PINs are public:
        hashing them on every demo start would cost ~50 ms each)."""
        name = _operator_name(name, role)
        if not is_pin_hash(pin_hash):
            raise InputError("Not a PIN hash")
        self.journal.operator_put(name, role, pin_hash)
        return Operator(name, role)

    def _check(self, name: str, pin: str) -> Operator:
        rec = self.journal.operator_get(name)
        if rec is None:  # operator names are on the sign-in screen: nothing to guard
            raise InputError("Wrong operator or PIN")
        if rec.disabled:
            raise InputError(f"{rec.name} is disabled: a supervisor can enable them again")
        key = self._pin_key
        if not self.pin_guard.attempt(f"operator:{rec.name}",
                                      lambda: verify_pin(pin, rec.pin_hash, key)):
            raise InputError("Wrong operator or PIN")
        self._upgrade_hash(rec.name, rec.role, rec.pin_hash, pin)
        return Operator(rec.name, rec.role)  # type: ignore[arg-type]

    def _upgrade_hash(self, name: str, role: str, stored: str, pin: str) -> None:
        upgrade_hash(self.journal, name, role, stored, pin)

    def sign_in(self, name: str, pin: str) -> Operator:
        return self._become(self._check(name, pin))

    async def sign_in_async(self, name: str, pin: str) -> Operator:
        """:meth:`sign_in` with the PIN check in a thread, so the screen stays live while
        scrypt runs (~50 ms here, a few times that on a Pi; it releases the GIL)."""
        return self._become(await asyncio.to_thread(self._check, name, pin))

    def _become(self, op: Operator) -> Operator:
        self.operator = op
        self.ctx.operator = op.name
        return op

    def sign_out(self) -> None:
        self.operator = None
        self.ctx.operator = "system"

    def check_supervisor(self, pin: str, name: str | None = None) -> Operator:
        """Any supervisor whose PIN matches (or the named one). Attempts are limited:
        the any-supervisor check is one guarded subject, a named one that operator's."""
        return check_supervisor_pin(self.journal, self.settings, pin, name)

    def unlock_pin(self, name: str | None, supervisor: Operator) -> bool:
        """A supervisor clears the lock-out of an operator (or, with None, of the
        supervisor check); whether one was set."""
        if not supervisor.is_supervisor:
            raise InputError("Only a supervisor can clear a PIN lock-out")
        return self.pin_guard.reset("supervisor" if name is None else f"operator:{name}",
                                    by=supervisor.name)

    async def check_supervisor_async(self, pin: str, name: str | None = None) -> Operator:
        """:meth:`check_supervisor` in a thread (one scrypt per supervisor)."""
        return await asyncio.to_thread(self.check_supervisor, pin, name)

    def _approver(self, supervisor: Operator | None) -> str | None:
        """The approving supervisor's name (None: no one approved); anyone who is not an
        enabled supervisor of this terminal is refused."""
        if supervisor is None:
            return None
        rec = self.journal.operator_get(supervisor.name)
        if not supervisor.is_supervisor or rec is None or rec.role != "supervisor" \
                or rec.disabled:
            raise InputError("Only a supervisor can approve this")
        return supervisor.name

    # ------------------------------------------------------------- cards
    async def lookup_card(self, payload: str) -> CardLookup:
        from pos.usecases import cards

        return await cards.lookup_card(self.ctx, payload)

    async def quote(self, lookup: CardLookup, amount: Money) -> Quote:
        """The card's amount for ``amount`` (one conversion when the currencies differ):
        shown before the PIN and passed to the sale, which debits exactly it."""
        from pos.usecases import quotes

        return await quotes.get_quote(self.ctx, lookup, amount)

    def quote_fresh(self, quote: Quote) -> bool:
        """Whether ``quote`` may still be debited (else fetch and show a new one)."""
        from pos.usecases import quotes

        return quotes.is_fresh(self.ctx, quote)

    async def pay_by_card(self, lookup: CardLookup, amount: Money, wallet: str, pin: str | None,
                          reason: str) -> SaleResult:
        from pos.usecases import cards

        return await cards.pay_by_card(self.ctx, lookup, amount, wallet, pin, reason)

    async def activate_gift(self, lookup: CardLookup, pin: str, phone_number: str | None = None,
                            card_names: str | None = None, *,
                            supervisor: Operator | None = None) -> SaleResult:
        """The holder's new PIN; a card that already has one needs ``supervisor``."""
        from pos.usecases import cards

        return await cards.activate_gift(self.ctx, lookup, pin, phone_number, card_names,
                                         approved_by=self._approver(supervisor))

    async def activate_sente(self, lookup: CardLookup, name: str, phone: str, email: str | None,
                             pin: str, document_b64: str) -> SenteActivation:
        from pos.usecases import cards

        return await cards.activate_sente(self.ctx, lookup, name, phone, email, pin, document_b64)

    async def verify_sente_code(self, user_id: int, phone: str, code: str) -> str:
        from pos.usecases import cards

        return await cards.verify_sente_code(self.ctx, user_id, phone, code)

    async def top_up(self, lookup: CardLookup, amount: Money, reason: str,
                     supervisor: Operator) -> SaleResult:
        from pos.usecases import cards

        if not supervisor.is_supervisor:
            raise InputError("A supervisor must approve a top-up or refund")
        return await cards.top_up(self.ctx, lookup, amount, reason, supervisor.name)

    async def lock_card(self, lookup: CardLookup) -> str:
        from pos.usecases import cards

        return (await cards.set_locked(self.ctx, lookup, True)).message

    async def unlock_card(self, lookup: CardLookup, supervisor: Operator) -> str:
        """Unlock at the issuer: a supervisor approves (the endpoint takes no card PIN)."""
        from pos.usecases import cards

        by = self._approver(supervisor)
        if by is None:
            raise InputError("A supervisor must approve unlocking a card")
        return (await cards.set_locked(self.ctx, lookup, False, approved_by=by)).message

    async def card_balance(self, lookup: CardLookup, supervisor: Operator) -> CardInfo:
        """The balances, shown to the holder once a supervisor approved (no card PIN
        check exists at Patasente that moves no money)."""
        from pos.usecases import cards

        by = self._approver(supervisor)
        if by is None:
            raise InputError("A supervisor must approve showing a card's balance")
        return await cards.card_balance(self.ctx, lookup, by)

    # ------------------------------------------------------- electricity
    async def verify_meter(self, meter: str) -> MeterInfo:
        from pos.usecases import electricity

        return await electricity.verify_meter(self.ctx, meter)

    def meter_throttled(self, meter: str) -> str | None:
        """Why ``meter`` cannot be sold to now (a sale less than 5 minutes ago), or None."""
        from pos.meter import validate_meter
        from pos.usecases import electricity

        return electricity.throttle_refusal(self.ctx, validate_meter(meter))

    async def verify_account(self, account: str) -> AccountInfo:
        from pos.usecases import electricity

        return await electricity.verify_account(self.ctx, account)

    async def sell_token(self, meter: str, amount: Money, customer_name: str, *,
                         tender: TenderName = "cash", card: CardLookup | None = None,
                         wallet: str | None = None, pin: str | None = None,
                         quote: Quote | None = None) -> SaleResult:
        from pos.usecases import electricity

        return await electricity.sell(self.ctx, Kind.vend, meter, amount, customer_name,
                                      tender=tender, card=card, wallet=wallet,
                                      pin=pin, quote=quote)

    async def pay_bill(self, account: str, amount: Money, customer_name: str, *,
                       tender: TenderName = "cash", card: CardLookup | None = None,
                       wallet: str | None = None, pin: str | None = None,
                       quote: Quote | None = None) -> SaleResult:
        from pos.usecases import electricity

        return await electricity.sell(self.ctx, Kind.postpaid, account, amount, customer_name,
                                      tender=tender, card=card, wallet=wallet,
                                      pin=pin, quote=quote)

    async def wait_settled(self, ref: str, *, interval: float | None = None,
                           max_polls: int | None = None) -> SaleResult:
        from pos.usecases import electricity

        return await electricity.wait_settled(self.ctx, ref, interval=interval,
                                              max_polls=max_polls)

    def sale_result(self, ref: str) -> SaleResult:
        from pos.usecases import electricity

        return electricity.result_from(self.ctx, self.journal.require(ref))

    # ----------------------------------------------------------- journal
    def journal_list(self, state: str | None = None, kind: str | None = None,
                     search: str | None = None, limit: int = 200,
                     since: dt.datetime | None = None, offset: int = 0) -> list[Txn]:
        """A page of the journal (``limit`` rows from the ``offset``-th), newest first;
        flagged ones oldest first (the longest waiting on top)."""
        states = None
        if state == "flagged":
            return self.journal.flagged(limit=limit, offset=offset)
        if state == "unsynced":
            states = list(SYNC_STATES)
        elif state:
            states = [State(state)]
        return self.journal.list(states=states, kinds=[Kind(kind)] if kind else None,
                                 search=search, limit=limit, since=since, offset=offset)

    def journal_detail(self, ref: str) -> tuple[Txn, list[Event]]:
        return self.journal.require(ref), self.journal.events(ref)

    def receipt(self, ref: str, duplicate: bool = False) -> Receipt:
        from pos.usecases.receipts import build_receipt

        return build_receipt(self.settings, self.journal, self.journal.require(ref),
                             duplicate=duplicate)

    def print_receipt(self, ref: str, duplicate: bool = False) -> str:
        """Print; a printer problem is a message for the cashier, never a failed sale."""
        return self._print(self.receipt(ref, duplicate=duplicate), duplicate)

    def _print(self, receipt: Receipt, duplicate: bool) -> str:
        if self.printer is None:
            return "No printer: receipt shown on screen"
        try:
            self.printer.print_receipt(receipt)
        except PosError as exc:
            return exc.message
        return "Printed (duplicate)" if duplicate else "Printed"

    def last_token_ref(self) -> str | None:
        for txn in self.journal.list(kinds=[Kind.vend], limit=20):
            if txn.token:
                return txn.ref
        return None

    def resolve_flagged(self, ref: str, note: str, supervisor: Operator, *,
                        also: Callable[[sqlite3.Connection], None] | None = None) -> Txn:
        """A supervisor settles a flagged item; ``also`` writes the rows that go with
        it in the same transaction (see :meth:`resolve_flagged_cash`)."""
        if not supervisor.is_supervisor:
            raise InputError("A supervisor must resolve flagged items")
        txn = self.journal.require(ref)
        if not txn.is_flagged:
            raise InputError(f"{ref} is not a flagged item")
        if not note.strip():
            raise InputError("Say how it was resolved (e.g. cash refunded)")
        return self.journal.transition(ref, State.resolved, note=note.strip(),
                                       operator=supervisor.name, also=also)

    async def void(self, ref: str, supervisor: Operator, reason: str = "") -> SaleResult:
        """Cancel a queued sale, or credit back a settled card payment (supervisor only)."""
        from pos.usecases import voids

        if not supervisor.is_supervisor:
            raise InputError("A supervisor must approve a void")
        return await voids.void(self.ctx, ref, supervisor.name, reason)

    def void_check(self, ref: str) -> Voidability:
        """Whether ``ref`` (a journal ref or a basket sale id) can be voided, how, and
        why not: asked before any supervisor PIN (the same rule the void applies)."""
        from pos.usecases import voids

        return voids.check_ref(self.journal, ref)

    def void_marks(self, txns: list[Txn]) -> dict[str, VoidMark]:
        """Which of ``txns`` were voided or refunded, with their refund rows."""
        from pos.usecases import voids

        return voids.void_marks(self.journal, txns)

    def void_receipt(self, ref: str, duplicate: bool = False) -> Receipt:
        """The VOID receipt of ``ref`` (the row voided, its refund row, or a sale id)."""
        from pos.usecases.void_receipt import build_void_receipt

        return build_void_receipt(self.settings, self.journal, ref, duplicate=duplicate)

    def print_void_receipt(self, ref: str, duplicate: bool = False) -> str:
        """Print the VOID receipt (blocking: call from a thread); a problem is a message."""
        return self._print(self.void_receipt(ref, duplicate=duplicate), duplicate)

    # ----------------------------------------------------------- counter
    async def catalogue(self, *, refresh: bool = True) -> Catalogue:
        """Products (fetched and cached, or the cached copy offline) and quick keys."""
        from pos import catalogue

        return await catalogue.load(self.ctx, refresh=refresh)

    def new_basket(self) -> Basket:
        from pos.basket import Basket

        return Basket(self.settings.card_currency)

    def discount_line(self, basket: Basket, index: int, percent: int,
                      supervisor: Operator | None = None) -> Money:
        """A line discount within the signed-in operator's rights (or a supervisor's)."""
        c = self.settings.counter
        role = self.operator.role if self.operator else "cashier"
        if supervisor is not None and not supervisor.is_supervisor:
            raise InputError("Only a supervisor can approve that discount")
        return basket.discount(index, percent, role=role,
                               cashier_max=c.cashier_max_discount_percent,
                               supervisor_max=c.supervisor_max_discount_percent,
                               approved_by=supervisor.name if supervisor else None)

    def begin_sale(self, basket: Basket) -> Sale:
        from pos.usecases import sale

        return sale.begin(self.ctx, basket)

    def sale(self, sale_id: str) -> Sale:
        from pos.usecases import sale

        return sale.load(self.journal, sale_id)

    def recent_sales(self, search: str | None = None, limit: int = 200,
                     offset: int = 0) -> list[Sale]:
        """Basket sales, newest first (the journal's "Sales" list)."""
        from pos.usecases import sale

        return sale.recent(self.journal, limit, search, offset)

    async def sale_pay_card(self, sale_id: str, lookup: CardLookup, amount: Money, wallet: str,
                            pin: str | None) -> tuple[SaleResult, Sale]:
        from pos.usecases import sale

        return await sale.pay_card(self.ctx, sale_id, lookup, amount, wallet, pin)

    async def sale_pay_cash(self, sale_id: str, tendered: Money) -> Sale:
        """A cash part; the drawer opens (ESC/POS kick, in a thread) once it is recorded."""
        from pos.usecases import sale

        done = sale.pay_cash(self.ctx, sale_id, tendered)
        await asyncio.to_thread(self.kick_drawer)
        return done

    def abandon_sale(self, sale_id: str) -> Sale:
        from pos.usecases import sale

        return sale.abandon(self.ctx, sale_id)

    async def void_sale(self, sale_id: str, supervisor: Operator, reason: str = "") -> Sale:
        from pos.usecases import sale

        if not supervisor.is_supervisor:
            raise InputError("A supervisor must approve a void")
        return await sale.void(self.ctx, sale_id, supervisor.name, reason)

    def sale_receipt(self, sale_id: str, duplicate: bool = False) -> Receipt:
        from pos.usecases import sale

        return sale.receipt(self.ctx, sale_id, duplicate=duplicate)

    def print_sale_receipt(self, sale_id: str, duplicate: bool = False) -> str:
        """Print a sale's receipt (call from a thread); a printer problem is a message."""
        return self._print(self.sale_receipt(sale_id, duplicate=duplicate), duplicate)

    def kick_drawer(self) -> str:
        """Open the cash drawer through the receipt printer (ESC/POS pulse). Blocking:
        call from a thread. A printer problem is a message, never a failed sale."""
        kick = getattr(self.printer, "kick_drawer", None)
        if kick is None:
            return "No drawer"
        try:
            kick()
        except PosError as exc:
            log.info("drawer kick: %s", exc.message)
            return exc.message
        return "Drawer opened"

    # shifts (pos/shifts.py)
    def current_shift(self) -> Shift | None:
        from pos import shifts

        return shifts.current(self.journal)

    def _who(self) -> str:
        return self.operator.name if self.operator else self.ctx.operator

    async def open_shift(self, float_: Money) -> Shift:
        from pos import shifts

        shift = shifts.open_shift(self.journal, self._who(), float_, self.ctx.clock())
        await asyncio.to_thread(self.kick_drawer)  # the float goes in
        return shift

    async def cash_move(self, kind: str, amount: Money, reason: str) -> int:
        """Cash in or out of the open shift, with a reason; the drawer opens."""
        from pos import shifts

        if kind not in ("in", "out"):
            raise InputError("Cash moves are 'in' or 'out'")
        move = shifts.move_cash(self.journal, kind, amount, reason,  # type: ignore[arg-type]
                                self._who(), self.ctx.clock())
        await asyncio.to_thread(self.kick_drawer)
        return move

    def close_shift(self, counted: Money | list[Money]) -> ShiftReport:
        """The blind cash-up: the counted cash first (per currency), then expected,
        variance and the figures per operator."""
        from pos import shifts

        amounts = counted if isinstance(counted, list) else [counted]
        return shifts.close(self.journal, amounts, self._who(), self.ctx.clock())

    def shift_report(self, shift_id: int | None = None) -> ShiftReport:
        from pos import shifts

        shift = shifts.get(self.journal, shift_id) if shift_id else shifts.require_open(
            self.journal)
        if shift.is_open:
            return shifts.report(self.journal, shift)
        return shifts.stored_report(self.journal, shift)

    def cash_resolution(self, txn: Txn) -> str | None:
        """'refunded' / 'collected' when a flagged item can be settled in cash."""
        from pos import shifts

        return shifts.cash_resolution(txn)

    def resolve_flagged_cash(self, ref: str, how: str, supervisor: Operator,
                             note: str = "") -> Txn:
        """Resolve a flagged item with cash: ``collected`` (a card debit refused at sync,
        paid in cash by the customer after all: into the drawer) or ``refunded`` (a cash
        sale that failed: its cash handed back). The cash move joins the open shift."""
        from pos import shifts

        if how not in ("collected", "refunded"):
            raise InputError("Cash is 'collected' or 'refunded'")
        txn = self.journal.require(ref)
        if shifts.cash_resolution(txn) != how:
            raise InputError(f"{ref} cannot be resolved with cash {how}")
        shifts.require_open(self.journal)
        text = note.strip() or ("cash collected" if how == "collected" else "cash refunded")
        kind: shifts.MoveKind = "collected" if how == "collected" else "refund"
        now = self.ctx.clock()

        def cash_move(conn: sqlite3.Connection) -> None:
            shifts.insert_move(conn, kind, txn.amount, f"{text} ({ref})", supervisor.name,
                               now, ref=ref)

        return self.resolve_flagged(ref, text, supervisor, also=cash_move)

    # ----------------------------------------------------------- reports
    def x_report(self, *, all_refs: bool = True) -> reports.Report:
        """The running totals since the last Z; ``all_refs=False`` for the screen (its
        payload lists only the flagged lines shown: pos.reports.build)."""
        from pos import reports

        return reports.x_report(self.journal, terminal_id=self.settings.terminal_id,
                                now=self.ctx.clock(), all_refs=all_refs)

    def close_day(self, override_by: Operator | None = None, *,
                  allow_empty: bool = False, finish: bool = True) -> reports.Report:
        """Commit the next Z report. ``finish``: also make its backup and archive what is
        due (:meth:`finish_day_close`) before returning; False lets the caller show the
        Z first (the Z is committed either way) and then finish."""
        from pos import reports

        if override_by is not None and not override_by.is_supervisor:
            raise InputError("Only a supervisor can override the day close")
        rep = reports.close_day(self.journal, terminal_id=self.settings.terminal_id,
                                now=self.ctx.clock(), operator=self.ctx.operator,
                                override_by=override_by.name if override_by else None,
                                keep_backups=self.settings.backup.keep,
                                allow_empty=allow_empty, backup=False)
        if finish:
            self.finish_day_close(rep)
        return rep

    def finish_day_close(self, rep: reports.Report) -> reports.Report:
        """After a committed Z: its backup (a copy of the whole journal, checked), then the
        archive run (after the backup, which still holds every row). Fills
        ``payload["backup"]`` (None if it failed: logged, the scheduled backup retries)
        and ``payload["archive"]``. Never raises for either; sales may go on meanwhile."""
        from pos import reports
        from pos.housekeeping import after_z

        assert rep.number is not None, "finish_day_close takes a Z report"
        rep.payload["backup"] = reports.day_close_backup(self.journal, rep.number,
                                                         self.settings.backup.keep)
        archived = after_z(self.journal, self.settings, self.ctx.clock())
        if archived is not None:
            rep.payload["archive"] = archived
        return rep

    def backup_if_due(self) -> str | None:
        """The scheduled journal backup (pos/backup.py); the file name when one was made.
        Never raises: a backup problem is logged and retried at the next call."""
        from pos.backup import backup_if_due

        made = backup_if_due(self.journal, self.settings)
        return made.name if made else None

    # -------------------------------------------------------------- sync
    async def sync_now(self, *, probe: bool = False) -> SyncReport:
        """Drain the outbox. ``probe``: a person asked, so try a down link at once
        instead of waiting out its back-off (the background sync keeps the back-off)."""
        if probe:
            self.link.probe_now()
            self.journal.hurry_queued(self.ctx.clock())
        return await self.sync_engine.drain()
