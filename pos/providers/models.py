"""Typed results of the provider clients. Amounts are :class:`~pos.money.Money`.

These are the shapes the use cases, the journal and the screens rely on;
the clients build them from the providers' loosely typed JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pos.meter import format_token
from pos.money import Money


# --------------------------------------------------------------- Patasente
@dataclass(frozen=True, slots=True)
class CardInfo:
    """``get-patasente-card``: what the issuer says about a scanned card."""

    card_id: int
    card_no: str
    currency: str
    status: str  # "active" | "inactive" | "expired" | "locked" ...
    has_pin: bool
    wallets: tuple[str, ...]  # e.g. ("Current Account", "Credit Account")
    current_balance: Money  # current_account_wallet_balance
    credit_limit: Money  # credit_account_limit
    available_credit: Money
    expiry: str | None = None
    company_id: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def available_in(self, wallet: str) -> Money:
        """What the wallet can pay: the balance, or the available credit."""
        if "credit" in wallet.lower():
            return self.available_credit
        return self.current_balance


@dataclass(frozen=True, slots=True)
class WalletBalance:
    """``get-wallet-balance``: the merchant's wallet and prepaid (card) float."""

    currency: str
    amount: Money
    prepaid_float: Money | None
    credit_balance: Money | None
    reseller_float: Money | None
    account_no: str | None = None


@dataclass(frozen=True, slots=True)
class PrepaidTransaction:
    """One row of ``get-prepaid-transactions`` (card debits and credits)."""

    id: int
    transaction_id: str
    amount: Money
    payment_reason: str
    status: str  # transaction_status, e.g. "Processed"
    card_transaction_type: str | None  # "debit" | "credit"
    card_no: str | None
    created_at: str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    name: str
    unit_price: Money
    units: str | None = None


@dataclass(frozen=True, slots=True)
class CompanyDetails:
    id: int
    business_name: str
    merchant_code: str
    currency: str
    wallet_balance: Money | None
    prepaid_account: str | None  # "active" / "inactive"
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SenteActivation:
    """``activate-sente-card`` answer: the code was sent to this phone / user."""

    user_id: int
    phone_number: str
    message: str


class CardOpStatus(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"


@dataclass(frozen=True, slots=True)
class CardOpResult:
    """A settled card debit or credit (approved, or declined with the provider's reason).

    An unknown outcome is never a result: the client raises
    :class:`pos.errors.OutcomeUnknown` with the ref instead.
    """

    status: CardOpStatus
    ref: str
    message: str
    provider_txn_id: str | None = None  # transaction_id found by reconciliation


# ---------------------------------------------------------------- PawaCard
class VendStatus(StrEnum):
    VENDED = "vended"  # complete: token / receipt present
    PENDING = "pending"  # accepted, poll by ref
    DECLINED = "declined"  # refused or failed: nothing charged
    UNKNOWN = "unknown"  # sent, no usable answer: query by ref
    ABSENT = "absent"  # the provider has no transaction with this ref (104)


@dataclass(frozen=True, slots=True)
class Charge:
    name: str
    amount: str  # as the provider sends it (minor units undocumented): shown, not summed


@dataclass(frozen=True, slots=True)
class VendOutcome:
    """Outcome of ``/vend``, ``/transaction``, ``/postpaidbill``, ``/postpaidtransaction``."""

    status: VendStatus
    ref: str
    message: str = ""
    code: str | None = None  # elec000 / elec001 / elec003 / elec100
    status_code: str | None = None  # the top-level "status": 0, 1, 102 ... 105
    token: str | None = None  # 20 digits, prepaid only
    receipt_no: str | None = None  # stdTokenRctNum or rctNum
    units: str | None = None
    total_amount: Money | None = None
    charges: tuple[Charge, ...] = ()
    transaction_id: int | None = None
    customer_name: str | None = None
    date: str | None = None
    throttled: bool = False  # meter throttle ("too soon"): retry after 5 minutes
    unknown_target: bool = False  # elec100 "did not pass the Luhn validation": no such meter
    target: str | None = None  # meter / accountNo as the answer states it, if it does
    amount: Money | None = None  # "amount" as the answer states it, if it does
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def token_groups(self) -> str:
        return format_token(self.token) if self.token else ""


@dataclass(frozen=True, slots=True)
class MeterInfo:
    meter: str
    customer_name: str


@dataclass(frozen=True, slots=True)
class AccountInfo:
    account: str
    customer_name: str
    balance: Money | None


