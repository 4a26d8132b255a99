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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pos.config import Settings, ensure_home
from pos.errors import InputError, PosError, ProviderUnavailable
from pos.journal import SYNC_STATES, Event, Journal, Kind, State, Txn
from pos.money import Money
from pos.operators import (
    Operator,
    Role,
    hash_pin,
    is_pin_hash,
    validate_operator_pin,
    verify_pin,
)
from pos.usecases.context import Context, utcnow
from pos.vault import Vault

# The use cases, reports and sync engine are imported by the methods that need them:
# the counter's first screen needs none of them, and start-up time is the cashier's.
if TYPE_CHECKING:
    from pos import reports
    from pos.link import LinkMonitor
    from pos.providers.models import AccountInfo, CardInfo, MeterInfo, SenteActivation
    from pos.receipts import Receipt
    from pos.sync import SyncEngine, SyncReport
    from pos.usecases.results import CardLookup, SaleResult

log = logging.getLogger(__name__)



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

    def to_json(self) -> dict[str, Any]:
        return {
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
    name = " ".join(name.split())
    if not name or len(name) > 32:
        raise InputError("An operator name has 1 to 32 characters")
    if role not in ("cashier", "supervisor"):
        raise InputError("Role is cashier or supervisor")
    return name


class Terminal:
    def __init__(self, ctx: Context, *, printer: Any = None) -> None:
        self.ctx = ctx
        self._sync_engine: SyncEngine | None = None
        self.printer = printer
        self.operator: Operator | None = None
        self._floats: dict[str, Money | None] = {"pawacard": None, "patasente": None}

    # ------------------------------------------------------------ set-up
    @classmethod
    async def open(cls, settings: Settings, *, printer: Any = None,
                   clock: Callable[[], dt.datetime] | None = None,
                   operator: str = "system") -> Terminal:
        return cls.open_sync(settings, printer=printer, clock=clock, operator=operator)

    @classmethod
    def open_sync(cls, settings: Settings, *, printer: Any = None,
                  clock: Callable[[], dt.datetime] | None = None,
                  operator: str = "system") -> Terminal:
        home = ensure_home(settings.home)
        vault = Vault.open(home / "device.key")
        journal = Journal.open(home / "journal.db", vault=vault)
        journal.sending_lease = settings.sync.sending_lease_seconds
        ctx = Context(settings=settings, journal=journal, operator=operator,
                      clock=clock or utcnow)
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
            flagged_count=len(self.journal.flagged()),
            pawacard_float=self._floats["pawacard"],
            patasente_float=self._floats["patasente"],
            low_float=low,
            operator=self.operator.name if self.operator else None,
        )

    async def refresh_floats(self, *, probe: bool = False) -> None:
        """Ask both providers for the merchant's floats (cheap, no money moves).

        ``probe``: also try a link that is down now, whatever its back-off."""
        if probe:
            self.link.probe_now()
        async def pawa() -> None:
            if not self.link.pawacard.should_try():
                return
            try:
                self._floats["pawacard"] = await self.ctx.pawacard.balance()
                self.link.pawacard.record_success()
            except ProviderUnavailable as exc:
                self.link.pawacard.record_failure(str(exc))
            except PosError as exc:
                log.info("pawacard float: %s", exc.message)

        async def pata() -> None:
            if not self.link.patasente.should_try():
                return
            try:
                wb = await self.ctx.patasente.wallet_balance()
                self._floats["patasente"] = wb.prepaid_float or wb.amount
                self.link.patasente.record_success()
            except ProviderUnavailable as exc:
                self.link.patasente.record_failure(str(exc))
            except PosError as exc:
                log.info("patasente float: %s", exc.message)

        await asyncio.gather(pawa(), pata())
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
        return [Operator(o.name, o.role) for o in self.journal.operators()]  # type: ignore[arg-type]

    def add_operator(self, name: str, role: Role, pin: str) -> Operator:
        name = _operator_name(name, role)
        validate_operator_pin(pin)
        self.journal.operator_put(name, role, hash_pin(pin))
        return Operator(name, role)

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
        if rec is None or not verify_pin(pin, rec.pin_hash):
            raise InputError("Wrong operator or PIN")
        return Operator(rec.name, rec.role)  # type: ignore[arg-type]

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
        """Any supervisor whose PIN matches (or the named one)."""
        candidates = [o for o in self.journal.operators() if o.role == "supervisor"
                      and (name is None or o.name == name)]
        for rec in candidates:
            if verify_pin(pin, rec.pin_hash):
                return Operator(rec.name, "supervisor")
        raise InputError("Supervisor PIN not accepted")

    async def check_supervisor_async(self, pin: str, name: str | None = None) -> Operator:
        """:meth:`check_supervisor` in a thread (one scrypt per supervisor)."""
        return await asyncio.to_thread(self.check_supervisor, pin, name)

    # ------------------------------------------------------------- cards
    async def lookup_card(self, payload: str) -> CardLookup:
        from pos.usecases import cards

        return await cards.lookup_card(self.ctx, payload)

    async def quote(self, lookup: CardLookup, amount: Money) -> Money | None:
        from pos.usecases import cards

        return await cards.quote(self.ctx, lookup, amount)

    async def pay_by_card(self, lookup: CardLookup, amount: Money, wallet: str, pin: str | None,
                          reason: str) -> SaleResult:
        from pos.usecases import cards

        return await cards.pay_by_card(self.ctx, lookup, amount, wallet, pin, reason)

    async def activate_gift(self, lookup: CardLookup, pin: str, phone_number: str | None = None,
                            card_names: str | None = None) -> SaleResult:
        from pos.usecases import cards

        return await cards.activate_gift(self.ctx, lookup, pin, phone_number, card_names)

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

    async def unlock_card(self, lookup: CardLookup) -> str:
        from pos.usecases import cards

        return (await cards.set_locked(self.ctx, lookup, False)).message

    async def card_balance(self, lookup: CardLookup) -> CardInfo:
        from pos.usecases import cards

        return await cards.card_balance(self.ctx, lookup)

    # ------------------------------------------------------- electricity
    async def verify_meter(self, meter: str) -> MeterInfo:
        from pos.usecases import electricity

        return await electricity.verify_meter(self.ctx, meter)

    async def verify_account(self, account: str) -> AccountInfo:
        from pos.usecases import electricity

        return await electricity.verify_account(self.ctx, account)

    async def sell_token(self, meter: str, amount: Money, customer_name: str, *,
                         tender: str = "cash", card: CardLookup | None = None,
                         wallet: str | None = None, pin: str | None = None) -> SaleResult:
        from pos.usecases import electricity

        return await electricity.sell(self.ctx, Kind.vend, meter, amount, customer_name,
                                      tender=tender, card=card, wallet=wallet,  # type: ignore[arg-type]
                                      pin=pin)

    async def pay_bill(self, account: str, amount: Money, customer_name: str, *,
                       tender: str = "cash", card: CardLookup | None = None,
                       wallet: str | None = None, pin: str | None = None) -> SaleResult:
        from pos.usecases import electricity

        return await electricity.sell(self.ctx, Kind.postpaid, account, amount, customer_name,
                                      tender=tender, card=card, wallet=wallet,  # type: ignore[arg-type]
                                      pin=pin)

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
                     since: dt.datetime | None = None) -> list[Txn]:
        states = None
        if state == "flagged":
            return self.journal.flagged()
        if state == "unsynced":
            states = list(SYNC_STATES)
        elif state:
            states = [State(state)]
        return self.journal.list(states=states, kinds=[Kind(kind)] if kind else None,
                                 search=search, limit=limit, since=since)

    def journal_detail(self, ref: str) -> tuple[Txn, list[Event]]:
        return self.journal.require(ref), self.journal.events(ref)

    def receipt(self, ref: str, duplicate: bool = False) -> Receipt:
        from pos.usecases.receipts import build_receipt

        return build_receipt(self.settings, self.journal, self.journal.require(ref),
                             duplicate=duplicate)

    def print_receipt(self, ref: str, duplicate: bool = False) -> str:
        """Print; a printer problem is a message for the cashier, never a failed sale."""
        receipt = self.receipt(ref, duplicate=duplicate)
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

    def resolve_flagged(self, ref: str, note: str, supervisor: Operator) -> Txn:
        if not supervisor.is_supervisor:
            raise InputError("A supervisor must resolve flagged items")
        txn = self.journal.require(ref)
        if not txn.is_flagged:
            raise InputError(f"{ref} is not a flagged item")
        if not note.strip():
            raise InputError("Say how it was resolved (e.g. cash refunded)")
        return self.journal.transition(ref, State.resolved, note=note.strip(),
                                       operator=supervisor.name)

    async def void(self, ref: str, supervisor: Operator, reason: str = "") -> SaleResult:
        """Cancel a queued sale, or credit back a settled card payment (supervisor only)."""
        from pos.usecases import voids

        if not supervisor.is_supervisor:
            raise InputError("A supervisor must approve a void")
        return await voids.void(self.ctx, ref, supervisor.name, reason)

    # ----------------------------------------------------------- reports
    def x_report(self) -> reports.Report:
        from pos import reports

        return reports.x_report(self.journal, terminal_id=self.settings.terminal_id,
                                now=self.ctx.clock())

    def close_day(self, override_by: Operator | None = None) -> reports.Report:
        from pos import reports

        if override_by is not None and not override_by.is_supervisor:
            raise InputError("Only a supervisor can override the day close")
        return reports.close_day(self.journal, terminal_id=self.settings.terminal_id,
                                 now=self.ctx.clock(), operator=self.ctx.operator,
                                 override_by=override_by.name if override_by else None)

    # -------------------------------------------------------------- sync
    async def sync_now(self, *, probe: bool = False) -> SyncReport:
        """Drain the outbox. ``probe``: a person asked, so try a down link at once
        instead of waiting out its back-off (the background sync keeps the back-off)."""
        if probe:
            self.link.probe_now()
        return await self.sync_engine.drain()
