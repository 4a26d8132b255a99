"""Value types the journal hands out: :class:`Txn`, :class:`Event`, :class:`Exposure` ..."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pos.clock import Stamp
from pos.journal.states import Kind, State, Tender, is_final, is_flagged, needs_sync
from pos.money import Money


def iso(value: datetime) -> str:
    """A timezone-aware datetime as a fixed-width UTC ISO string (sorts as text)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("journal timestamps must be timezone-aware (use datetime.now(UTC))")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


@dataclass(frozen=True, slots=True)
class Txn:
    """One journaled transaction, exactly as stored."""

    ref: str
    kind: Kind
    state: State
    amount: Money
    tender: Tender
    operator: str
    terminal_id: str
    card_id: int | None
    card_no: str | None  # masked only
    wallet: str | None
    meter: str | None
    account: str | None
    customer_name: str | None
    reason: str | None
    parent_ref: str | None
    offline: bool
    provider_txn_id: str | None
    token: str | None
    receipt_no: str | None  # the provider's receipt number
    receipt_number: int | None  # ours, from Journal.next_receipt_no()
    units: str | None
    charges: list[dict[str, str]]
    total: Money | None
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    settled_at: datetime | None
    details: dict[str, Any] = field(default_factory=dict)
    lease_owner: str | None = None  # process holding a created / sending row
    created_stamp: Stamp | None = None  # creation on every clock (None: older rows)
    clock_synced: bool | None = None  # the wall clock was synchronised at creation
    sent: Stamp | None = None  # when the money request last left
    sends: int = 0  # how many times it left
    recon: dict[str, Any] = field(default_factory=dict)  # reconciliation evidence
    accepted: bool = False  # the cashier was told "accepted offline / pending"

    @property
    def is_final(self) -> bool:
        return is_final(self.state)

    @property
    def is_flagged(self) -> bool:
        return is_flagged(self.state)

    @property
    def needs_sync(self) -> bool:
        return needs_sync(self.state)

    @property
    def token_groups(self) -> str:
        from pos.meter import format_token

        return format_token(self.token) if self.token else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "kind": str(self.kind),
            "state": str(self.state),
            "amount": self.amount.to_json(),
            "tender": str(self.tender),
            "operator": self.operator,
            "terminal_id": self.terminal_id,
            "card_id": self.card_id,
            "card_no": self.card_no,
            "wallet": self.wallet,
            "meter": self.meter,
            "account": self.account,
            "customer_name": self.customer_name,
            "reason": self.reason,
            "parent_ref": self.parent_ref,
            "offline": self.offline,
            "provider_txn_id": self.provider_txn_id,
            "token": self.token,
            "token_groups": self.token_groups or None,
            "receipt_no": self.receipt_no,
            "receipt_number": self.receipt_number,
            "units": self.units,
            "charges": list(self.charges),
            "total": self.total.to_json() if self.total else None,
            "attempts": self.attempts,
            "next_attempt_at": _iso_or_none(self.next_attempt_at),
            "last_error": self.last_error,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "settled_at": _iso_or_none(self.settled_at),
            "details": self.details,
            "final": self.is_final,
            "flagged": self.is_flagged,
            "sends": self.sends,
            "accepted": self.accepted,
            "clock_synced": self.clock_synced,
            "reconciliation": self.recon or None,
        }


@dataclass(frozen=True, slots=True)
class Event:
    """One line of a transaction's append-only audit trail."""

    id: int
    ref: str
    at: datetime
    from_state: State | None  # None for the creation event
    to_state: State
    note: str | None
    error: str | None
    operator: str | None

    @property
    def step(self) -> str:
        """``from -> to``, or the state it was created in (``queued``, ``created``)."""
        if self.from_state is None:
            return str(self.to_state)
        return f"{self.from_state} -> {self.to_state}"

    @property
    def remark(self) -> str | None:
        """The note, unless it only repeats the step (the creation event's "created")."""
        return None if self.note == str(self.to_state) else self.note

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "at": iso(self.at),
            "from": str(self.from_state) if self.from_state else None,
            "to": str(self.to_state),
            "note": self.note,
            "error": self.error,
            "operator": self.operator,
        }


@dataclass(frozen=True, slots=True)
class RefLine:
    """One line of a report's list (unsynced, flagged): what it shows, read without
    decoding whole rows -- a report lists thousands of them on a long-lived journal."""

    ref: str
    kind: str
    state: str
    amount: Money


@dataclass(frozen=True, slots=True)
class Exposure:
    """Outstanding (not yet settled) offline business, in minor units per currency.

    ``count``/``totals`` cover the whole terminal; the ``card_*`` fields and
    ``consecutive`` are filled when a card was asked about.
    """

    count: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    card_id: int | None = None
    card_count: int = 0
    card_totals: dict[str, int] = field(default_factory=dict)
    consecutive: int = 0  # offline debits on the card since it was last seen online

    def total(self, currency: str) -> Money:
        return Money(self.totals.get(currency.upper(), 0), currency.upper())

    def card_total(self, currency: str) -> Money:
        return Money(self.card_totals.get(currency.upper(), 0), currency.upper())


@dataclass(frozen=True, slots=True)
class CachedCard:
    """What this terminal last learned about a card while online."""

    card_id: int
    card_no: str | None
    status: str
    has_pin: bool
    wallets: tuple[str, ...]
    balance: Money | None
    seen_online_at: datetime

    @property
    def last_online_at(self) -> datetime:
        return self.seen_online_at


@dataclass(frozen=True, slots=True)
class Operator:
    name: str
    role: str  # "cashier" | "supervisor"
    pin_hash: str
    created_at: datetime
    updated_at: datetime
    disabled_at: datetime | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


@dataclass(frozen=True, slots=True)
class ZReport:
    number: int
    payload: dict[str, Any]
    created_at: datetime
