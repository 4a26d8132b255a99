"""What terminals send the hub, validated field by field (pydantic): a bad upload is a
clear 400 naming the field, and stores nothing.

The terminal sends its journal rows as the journal writes them (``Txn.to_json``,
``Event.to_json``, Z report payloads); the hub keeps the whole row as JSON beside the
columns it indexes, so a restore gives the terminal back exactly what it had.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pos.journal.states import Kind, State, Tender

_REF = r"^[A-Za-z0-9_-]{1,40}$"
MAX_ROW_BYTES = 32_000


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

    def row_json(self) -> str:
        text = json.dumps(self.model_dump(mode="json"), separators=(",", ":"), sort_keys=True)
        if len(text) > MAX_ROW_BYTES:
            raise ValueError(f"transaction {self.ref} is larger than {MAX_ROW_BYTES} bytes")
        return text


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
    status: StatusIn = Field(default_factory=StatusIn)

    def size(self) -> int:
        return len(self.txns) + len(self.events) + len(self.z_reports)


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
