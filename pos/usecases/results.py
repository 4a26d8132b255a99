"""What a sale or a card lookup returns to the screens and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pos.cardqr import CardRef
from pos.providers.models import CardInfo

if TYPE_CHECKING:
    from pos.journal import CachedCard, Txn

SaleStatus = Literal["approved", "declined", "offline", "pending", "failed", "refunded",
                     "review"]

#: CLI exit code per sale status (DESIGN.md: 0 done, 2 declined, 3 offline / pending, 1 other).
#: "refunded": the sale was declined and the card credited back, a decline (2).
#: "review": nobody can tell yet what the provider did; a supervisor decides (1).
EXIT_CODES: dict[str, int] = {
    "approved": 0,
    "declined": 2,
    "refunded": 2,
    "offline": 3,
    "pending": 3,
    "failed": 1,
    "review": 1,
}


@dataclass(frozen=True)
class CardLookup:
    """A scanned card, with the issuer's view when online or the cached one offline."""

    card: CardRef
    info: CardInfo | None
    offline: bool
    problems: list[str]
    wallets: list[str]
    cached: CachedCard | None = None

    @property
    def has_pin(self) -> bool:
        if self.info is not None:
            return self.info.has_pin
        return bool(self.cached.has_pin) if self.cached is not None else True

    @property
    def status(self) -> str:
        if self.info is not None:
            return self.info.status
        return self.cached.status if self.cached is not None else "unknown"

    def activation_problems(self, kind: Literal["gift", "sente"]) -> list[str]:
        """Why this card cannot be activated as ``kind``, decided at look-up: before a
        PIN is chosen or the customer's details are typed (the issuer would refuse at
        the end: "already active", "Card doesn't exist.")."""
        out: list[str] = []
        if kind == "sente" and self.card.is_gift:
            out.append("This is a gift card, not a Sente card")
        if kind == "gift" and not self.card.is_gift:
            out.append(f"This is a {self.card.card_type}, not a gift card")
        if self.offline or self.info is None:
            out.append("The card service cannot be reached: a card is activated online only")
        elif self.status == "active":
            out.append("This card is already active" + (
                ": it belongs to an account" if kind == "sente" else ""))
        elif self.status in ("locked", "expired"):
            out.append(f"This card is {self.status}")
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "card": self.card.to_json(),
            "status": self.status,
            "has_pin": self.has_pin,
            "wallets": self.wallets,
            "offline": self.offline,
            "problems": self.problems,
        }
        if self.info is not None:
            out["balance"] = self.info.current_balance.to_json()
            out["available_credit"] = self.info.available_credit.to_json()
            out["credit_limit"] = self.info.credit_limit.to_json()
        return out


@dataclass(frozen=True)
class SaleResult:
    status: SaleStatus
    ref: str
    message: str
    txn: Txn
    token: str | None = None
    units: str | None = None
    receipt_no: str | None = None
    refund_ref: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_json(self) -> dict[str, Any]:
        from pos.meter import format_token

        return {
            "status": self.status,
            "ref": self.ref,
            "message": self.message,
            "token": self.token,
            "token_display": format_token(self.token) if self.token else None,
            "units": self.units,
            "receipt_no": self.receipt_no,
            "refund_ref": self.refund_ref,
            "transaction": self.txn.to_json(),
            **self.extra,
        }
