"""Offline store-and-forward policy: what the terminal may accept while the link is down.

Each check raises :class:`~pos.errors.Declined` (provider ``"offline"``, a
``code`` per rule) with a message for the cashier naming the limit hit, and
returns ``None`` when the sale may be queued. Limit amounts are minor units
of the currency of the amount being checked (see :class:`pos.config.OfflineLimits`).

Cached balance: a debit larger than the card's last known balance, less the
debits already queued offline on that card, is refused. The balance may have
grown since (a top-up elsewhere), but accepting it would most likely end as a
``declined_offline`` item the merchant has to chase, so the terminal asks for
the link instead. Only the current-account balance is cached, so debits from
a credit wallet skip this rule.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from pos.clock import Stamp, elapsed
from pos.config import OfflineLimits
from pos.errors import Declined
from pos.journal.models import CachedCard, Exposure, Txn
from pos.journal.states import State
from pos.money import Money

PROVIDER = "offline"
USABLE_STATUSES = frozenset({"active"})


def _decline(code: str, message: str) -> Declined:
    return Declined(f"Offline limit: {message}", provider=PROVIDER, code=code)


def _fmt(minor: int, currency: str) -> str:
    return Money(minor, currency).format()


class ExposureSource(Protocol):
    """The journal, or a reader inside its write transaction (the limits are then
    checked and the row admitted in one atomic step: pos.journal.Journal.create)."""

    def offline_exposure(self, card_id: int | None = None) -> Exposure: ...

    def queued_vend_exposure(self) -> Exposure: ...


def check_offline_debit(
    limits: OfflineLimits,
    journal: ExposureSource,
    card_id: int,
    amount: Money,
    cached: CachedCard | None,
    now: datetime,
    *,
    wallet: str | None = None,
) -> None:
    """Raise :class:`Declined` unless a card debit of ``amount`` may be accepted offline."""
    cur = amount.currency
    if not limits.enabled:
        raise _decline("disabled", "offline card payments are turned off; the link is needed")
    if amount.minor <= 0:
        raise _decline("amount", "the amount must be greater than zero")
    if amount.minor > limits.max_amount:
        raise _decline(
            "max_amount",
            f"{amount.format()} is over the offline maximum of "
            f"{_fmt(limits.max_amount, cur)} per payment",
        )

    if cached is None:
        if not limits.allow_unknown_cards:
            raise _decline(
                "unknown_card",
                "this card has never been seen online at this terminal; it can only pay online",
            )
    else:
        status = (cached.status or "").strip().lower()
        if status not in USABLE_STATUSES:
            raise _decline(
                "card_status", f"the card was {status or 'not active'} when last seen online"
            )
        if wallet and cached.wallets and wallet not in cached.wallets:
            raise _decline("wallet", f"the card has no {wallet!r} wallet")

    exposure = journal.offline_exposure(card_id)

    balance = cached.balance if cached is not None else None
    if balance is not None and balance.currency == cur and not _is_credit(wallet):
        available = balance.minor - exposure.card_totals.get(cur, 0)
        if amount.minor > available:
            raise _decline(
                "balance",
                f"the card's last known balance leaves {_fmt(max(available, 0), cur)}, "
                f"less than {amount.format()}",
            )

    if exposure.consecutive + 1 > limits.per_card_max_consecutive:
        raise _decline(
            "per_card_consecutive",
            f"this card already has {exposure.consecutive} offline payment(s) since it was "
            f"last online (maximum {limits.per_card_max_consecutive})",
        )
    card_total = exposure.card_totals.get(cur, 0) + amount.minor
    if card_total > limits.per_card_max_total:
        raise _decline(
            "per_card_total",
            f"this card's outstanding offline payments would reach {_fmt(card_total, cur)}, "
            f"over {_fmt(limits.per_card_max_total, cur)} per card",
        )
    if exposure.count + 1 > limits.max_count:
        raise _decline(
            "max_count",
            f"{exposure.count} offline payments are already waiting to be sent "
            f"(maximum {limits.max_count})",
        )
    total = exposure.totals.get(cur, 0) + amount.minor
    if total > limits.max_total:
        raise _decline(
            "max_total",
            f"outstanding offline payments would reach {_fmt(total, cur)}, over the terminal "
            f"maximum of {_fmt(limits.max_total, cur)}",
        )


def check_offline_vend(limits: OfflineLimits, journal: ExposureSource, amount: Money) -> None:
    """Raise :class:`Declined` unless an electricity sale of ``amount`` may be queued."""
    if not limits.enabled:
        raise _decline("disabled", "offline sales are turned off; the link is needed")
    if amount.minor <= 0:
        raise _decline("amount", "the amount must be greater than zero")
    if amount.minor > limits.vend_max_amount:
        raise _decline(
            "vend_max_amount",
            f"{amount.format()} is over the offline maximum of "
            f"{_fmt(limits.vend_max_amount, amount.currency)} per electricity sale",
        )
    exposure = journal.queued_vend_exposure()
    if exposure.count + 1 > limits.vend_max_count:
        raise _decline(
            "vend_max_count",
            f"{exposure.count} electricity sales are already waiting to be sent "
            f"(maximum {limits.vend_max_count})",
        )


def expired_offline(limits: OfflineLimits, txn: Txn, now: Stamp) -> bool:
    """An offline item still queued (never sent) and older than ``max_age_hours``.

    The age is a lower bound no clock step can inflate (pos.clock.elapsed): a debit
    taken while a Pi's clock was stale is not expired when NTP then steps the clock
    forward. Rows from before stamps were kept fall back to their wall age.
    """
    if not txn.offline or txn.state is not State.queued:
        return False
    if txn.created_stamp is not None:
        age = elapsed(txn.created_stamp, now)
    else:
        age = (now.wall - txn.created_at).total_seconds()
    return age > timedelta(hours=limits.max_age_hours).total_seconds()


def _is_credit(wallet: str | None) -> bool:
    return wallet is not None and "credit" in wallet.lower()


__all__ = ["check_offline_debit", "check_offline_vend", "expired_offline"]
