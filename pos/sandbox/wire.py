"""The request and reply shapes the simulated providers work with (no ASGI here)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(slots=True)
class Req:
    method: str
    endpoint: str  # "vend", "debit-patasente-card"
    args: list[str]  # path segments after the endpoint
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    pending_polls: int | None = None  # set by a "pending" fault
    #: Behaviour modifiers in force for this request (fault mode -> its ``seconds``).
    modifiers: dict[str, float] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


def _default(obj: object) -> object:
    # Only the providers' quirky JSON numbers (a wallet "amount": 474561.0023449999,
    # a conversion "result": 3.523) are Decimals here; JSON has no other way to say them.
    if isinstance(obj, Decimal):
        return float(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def reply(obj: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(obj, default=_default, separators=(",", ":")).encode())


def amount_text(value: Decimal | int) -> str:
    """An amount as the providers write it without separators: "50", "12.5"."""
    if isinstance(value, int):
        return str(value)
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def formatted(value: Decimal | int) -> str:
    """Thousands separators, no decimals, as Patasente's ``formated_*`` fields: "474,561"."""
    return f"{int(value):,}"
