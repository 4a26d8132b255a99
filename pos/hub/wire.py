"""What terminals send the hub, validated field by field (pydantic): a bad upload is a
clear 400 naming the field, and stores nothing.

The terminal sends its journal rows as the journal writes them (``Txn.to_json``,
``Event.to_json``, Z report payloads); the hub keeps the whole row as JSON beside the
columns it indexes, so a restore gives the terminal back exactly what it had.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pos.journal.states import Kind, State, Tender

_REF = r"^[A-Za-z0-9_-]{1,40}$"
MAX_ROW_BYTES = 32_000


def _utc(v: str | None) -> str | None:
    """An aware ISO time in the journal's fixed-width UTC form (sorts as text)."""
    if v is None:
        return v
    import datetime as dt

    try:
        stamp = dt.datetime.fromisoformat(v)
    except ValueError:
        raise ValueError("not an ISO 8601 time") from None
    if stamp.tzinfo is None:
        raise ValueError("a time without its zone")
    return stamp.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _row_json(model: BaseModel, what: str, cap: int) -> str:
    """The row as the hub stores it (compact, keys sorted), refused past ``cap`` bytes."""
    text = json.dumps(model.model_dump(mode="json"), separators=(",", ":"), sort_keys=True)
    if len(text) > cap:
        raise ValueError(f"{what} is larger than {cap} bytes")
    return text


class Amount(BaseModel):
    model_config = ConfigDict(extra="ignore")
    minor: int = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class TxnIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    ref: str = Field(pattern=_REF)
    kind: Kind
    state: State
    amount: Amount
    tender: Tender
    operator: str = Field(min_length=1, max_length=64)
    card_no: str | None = Field(default=None, max_length=32)
    meter: str | None = Field(default=None, max_length=32)
    account: str | None = Field(default=None, max_length=64)
    customer_name: str | None = Field(default=None, max_length=200)
    receipt_number: int | None = Field(default=None, ge=0)
    created_at: str = Field(min_length=19, max_length=32)
    updated_at: str = Field(min_length=19, max_length=32)
    settled_at: str | None = Field(default=None, max_length=32)
    flagged: bool = False

    @field_validator("created_at", "updated_at", "settled_at")
    @classmethod
    def _aware(cls, v: str | None) -> str | None:
        return _utc(v)

    def row_json(self) -> str:
        return _row_json(self, f"transaction {self.ref}", MAX_ROW_BYTES)


class EventIn(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    id: int = Field(ge=1)
    ref: str = Field(pattern=_REF)
    at: str = Field(min_length=19, max_length=32)
    from_state: State | None = Field(default=None, alias="from")
    to_state: State = Field(alias="to")
    note: str | None = Field(default=None, max_length=2000)
    error: str | None = Field(default=None, max_length=2000)
    operator: str | None = Field(default=None, max_length=64)


class ZIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    number: int = Field(ge=1)
    created_at: str = Field(min_length=19, max_length=32)
    payload: dict[str, Any]


_TS = Field(min_length=19, max_length=32)
_CUR = Field(pattern=r"^[A-Z]{3}$")
_OP = Field(min_length=1, max_length=64)


class SaleLineIn(BaseModel):
    """A basket line as the journal's ``sale_lines`` row."""

    model_config = ConfigDict(extra="ignore")
    line_no: int = Field(ge=1)
    product_id: int | None = None
    name: str = Field(min_length=1, max_length=200)
    qty: int = Field(ge=1)
    unit_minor: int = Field(ge=0)
    discount_minor: int = Field(ge=0)


class SaleTenderIn(BaseModel):
    """A tender part as the journal's ``sale_tenders`` row (a card part names its debit)."""

    model_config = ConfigDict(extra="ignore")
    id: int = Field(ge=1)
    shift_id: int | None = Field(default=None, ge=1)
    tender: Literal["cash", "card"]
    state: Literal["paid", "declined"]
    amount_minor: int = Field(gt=0)
    tendered_minor: int = Field(ge=0)
    change_minor: int = Field(ge=0)
    txn_ref: str | None = Field(default=None, pattern=_REF)
    operator: str = _OP
    at: str = _TS

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str | None:
        return _utc(v)

    @model_validator(mode="after")
    def _consistent(self) -> SaleTenderIn:
        if self.tendered_minor - self.amount_minor != self.change_minor:
            raise ValueError("change is not tendered minus amount")
        if (self.tender == "card") != (self.txn_ref is not None):
            raise ValueError("a card part (and only a card part) names its card debit")
        return self


class SaleIn(BaseModel):
    """A basket sale: the journal's ``sales`` row with its lines and tender parts."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(pattern=r"^S?[A-Za-z0-9_-]{1,39}$")
    shift_id: int | None = Field(default=None, ge=1)
    state: Literal["open", "done", "abandoned", "voided"]
    operator: str = _OP
    currency: str = _CUR
    subtotal_minor: int = Field(ge=0)
    discount_minor: int = Field(ge=0)
    total_minor: int = Field(ge=0)
    discount_by: str | None = Field(default=None, max_length=64)
    reason: str = Field(max_length=2000)
    receipt_number: int | None = Field(default=None, ge=0)
    created_at: str = _TS
    completed_at: str | None = Field(default=None, max_length=32)
    lines: list[SaleLineIn] = Field(default_factory=list, max_length=500)
    tenders: list[SaleTenderIn] = Field(default_factory=list, max_length=100)

    @field_validator("created_at", "completed_at")
    @classmethod
    def _times(cls, v: str | None) -> str | None:
        return _utc(v)

    @model_validator(mode="after")
    def _consistent(self) -> SaleIn:
        if self.total_minor != self.subtotal_minor - self.discount_minor:
            raise ValueError("total is not subtotal minus discount")
        return self

    def row_json(self) -> str:
        return _row_json(self, f"sale {self.id}", MAX_ROW_BYTES * 4)


class ShiftIn(BaseModel):
    """A drawer session as the journal's ``shifts`` row (its stored report parsed)."""

    model_config = ConfigDict(extra="ignore")
    id: int = Field(ge=1)
    operator: str = _OP
    currency: str = _CUR
    float_minor: int = Field(ge=0)
    opened_at: str = _TS
    closed_at: str | None = Field(default=None, max_length=32)
    closed_by: str | None = Field(default=None, max_length=64)
    counted_minor: int | None = Field(default=None, ge=0)
    expected_minor: int | None = None
    report: dict[str, Any] | None = None

    @field_validator("opened_at", "closed_at")
    @classmethod
    def _times(cls, v: str | None) -> str | None:
        return _utc(v)

    @model_validator(mode="after")
    def _consistent(self) -> ShiftIn:
        if (self.closed_at is None) != (self.counted_minor is None):
            raise ValueError("a shift is closed exactly when its cash is counted")
        if self.report is not None and len(json.dumps(self.report)) > MAX_ROW_BYTES * 4:
            raise ValueError(f"shift {self.id}'s report is too large")
        return self


class CashMoveIn(BaseModel):
    """Cash put in, taken out, given back or collected (the journal's ``cash_moves``)."""

    model_config = ConfigDict(extra="ignore")
    id: int = Field(ge=1)
    shift_id: int = Field(ge=1)
    kind: Literal["in", "out", "refund", "collected"]
    amount_minor: int = Field(gt=0)
    currency: str = _CUR
    reason: str = Field(max_length=2000)
    operator: str = _OP
    ref: str | None = Field(default=None, max_length=40)
    at: str = _TS

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str | None:
        return _utc(v)


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    online: bool | None = None
    link: str | None = Field(default=None, max_length=200)
    unsynced_count: int = Field(default=0, ge=0)
    unsynced_totals: dict[str, int] = Field(default_factory=dict)
    flagged_count: int = Field(default=0, ge=0)
    floats: dict[str, Amount | None] = Field(default_factory=dict)
    receipt_no: int = Field(default=0, ge=0)


class UploadIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    seq: int = Field(ge=1)
    txns: list[TxnIn] = Field(default_factory=list)
    events: list[EventIn] = Field(default_factory=list)
    z_reports: list[ZIn] = Field(default_factory=list)
    sales: list[SaleIn] = Field(default_factory=list)
    shifts: list[ShiftIn] = Field(default_factory=list)
    cash_moves: list[CashMoveIn] = Field(default_factory=list)
    status: StatusIn = Field(default_factory=StatusIn)

    def size(self) -> int:
        return (len(self.txns) + len(self.events) + len(self.z_reports) + len(self.sales)
                + len(self.shifts) + len(self.cash_moves))


class EnrolIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: str = Field(min_length=6, max_length=40)
    terminal_id: str | None = Field(default=None, max_length=64)


def errors_text(exc: Any) -> str:
    """A pydantic ValidationError as one line a person can act on."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid upload"
