"""Offline store-and-forward limits: each rule refuses with a message naming it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pos.config import OfflineLimits
from pos.errors import Declined
from pos.journal import CachedCard, Journal, Kind, State, Tender
from pos.money import Money
from pos.offline import check_offline_debit, check_offline_vend, expired_offline
from tests.fakeclock import FakeDevice

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
CARD = 108


def ugx(n: int) -> Money:
    return Money(n, "UGX")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal(tmp_path: Path, clock: Clock):
    j = Journal.open(tmp_path / "journal.db", clock=clock)
    yield j
    j.close()


def limits(**kw: object) -> OfflineLimits:
    base: dict[str, object] = dict(
        enabled=True, max_amount=50_000, max_total=300_000, max_count=20, max_age_hours=24,
        per_card_max_total=100_000, per_card_max_consecutive=3, allow_unknown_cards=False,
        vend_max_amount=500_000, vend_max_count=50,
    )
    base.update(kw)
    return OfflineLimits(**base)  # type: ignore[arg-type]


def seen(journal: Journal, card_id: int = CARD, *, status: str = "active",
         balance: int | None = 1_000_000, wallets: tuple[str, ...] = ("Current Account",),
         at: datetime = T0 - timedelta(hours=1)) -> CachedCard:
    journal.card_cache_put(card_id, "1613*****65219", status, True, list(wallets),
                           None if balance is None else ugx(balance), at)
    cached = journal.card_cache_get(card_id)
    assert cached is not None
    return cached


def queue_debit(journal: Journal, amount: int, card_id: int = CARD) -> str:
    return journal.create(Kind.card_debit, ugx(amount), operator="a", terminal_id="T",
                          tender=Tender.card, card_id=card_id, state=State.queued,
                          offline=True).ref


def refused(code: str, fn, *args, **kw) -> str:
    with pytest.raises(Declined) as info:
        fn(*args, **kw)
    assert info.value.code == code, info.value.message
    assert info.value.message.startswith("Offline limit: ")
    assert info.value.provider == "offline"
    return info.value.message


def test_within_limits_is_accepted(journal: Journal) -> None:
    cached = seen(journal)
    check_offline_debit(limits(), journal, CARD, ugx(50_000), cached, T0,
                        wallet="Current Account")


def test_disabled(journal: Journal) -> None:
    cached = seen(journal)
    msg = refused("disabled", check_offline_debit, limits(enabled=False), journal, CARD,
                  ugx(100), cached, T0)
    assert "turned off" in msg
    refused("disabled", check_offline_vend, limits(enabled=False), journal, ugx(100))


def test_max_amount(journal: Journal) -> None:
    msg = refused("max_amount", check_offline_debit, limits(), journal, CARD, ugx(50_001),
                  seen(journal), T0)
    assert "UGX 50,001" in msg and "UGX 50,000" in msg


def test_unknown_card(journal: Journal) -> None:
    msg = refused("unknown_card", check_offline_debit, limits(), journal, CARD, ugx(100),
                  None, T0)
    assert "never been seen online" in msg
    check_offline_debit(limits(allow_unknown_cards=True), journal, CARD, ugx(100), None, T0)


@pytest.mark.parametrize("status", ["locked", "inactive", "expired", ""])
def test_card_status(journal: Journal, status: str) -> None:
    msg = refused("card_status", check_offline_debit, limits(), journal, CARD, ugx(100),
                  seen(journal, status=status), T0)
    assert (status or "not active") in msg


def test_wallet_must_be_known(journal: Journal) -> None:
    cached = seen(journal, wallets=("Current Account",))
    msg = refused("wallet", check_offline_debit, limits(), journal, CARD, ugx(100), cached, T0,
                  wallet="Credit Account")
    assert "Credit Account" in msg
    for unnamed in (None, ""):  # no wallet chosen: the card's default
        check_offline_debit(limits(), journal, CARD, ugx(100), cached, T0, wallet=unnamed)


def test_cached_balance_less_outstanding(journal: Journal) -> None:
    cached = seen(journal, balance=10_000, wallets=("Current Account", "Credit Account"))
    check_offline_debit(limits(), journal, CARD, ugx(10_000), cached, T0)
    queue_debit(journal, 6_000)
    check_offline_debit(limits(), journal, CARD, ugx(4_000), cached, T0)
    msg = refused("balance", check_offline_debit, limits(), journal, CARD, ugx(4_001), cached,
                  T0)
    assert "UGX 4,000" in msg
    # the credit wallet's room is not cached: the rule does not apply to it
    check_offline_debit(limits(), journal, CARD, ugx(4_001), cached, T0,
                        wallet="Credit Account")
    # an unknown balance is not a reason to refuse
    check_offline_debit(limits(), journal, CARD, ugx(4_001), seen(journal, balance=None), T0)


def test_per_card_consecutive(journal: Journal, clock: Clock) -> None:
    cached = seen(journal, at=T0 - timedelta(minutes=1))
    for _ in range(3):
        check_offline_debit(limits(), journal, CARD, ugx(1000), cached, clock.now)
        ref = queue_debit(journal, 1000)
        journal.transition(ref, State.sending)
        journal.transition(ref, State.done)  # synced, but the card itself was not seen
        clock.now += timedelta(minutes=1)
    msg = refused("per_card_consecutive", check_offline_debit, limits(), journal, CARD,
                  ugx(1000), cached, clock.now)
    assert "3 offline payment" in msg
    # another card is not affected; the card seen online again resets the count
    check_offline_debit(limits(), journal, 999, ugx(1000), seen(journal, 999), clock.now)
    cached = seen(journal, at=clock.now)
    clock.now += timedelta(seconds=1)
    check_offline_debit(limits(), journal, CARD, ugx(1000), cached, clock.now)


def test_per_card_total(journal: Journal) -> None:
    cached = seen(journal)
    queue_debit(journal, 50_000)
    queue_debit(journal, 40_000)
    check_offline_debit(limits(), journal, CARD, ugx(10_000), cached, T0)
    msg = refused("per_card_total", check_offline_debit, limits(), journal, CARD, ugx(10_001),
                  cached, T0)
    assert "UGX 100,001" in msg and "UGX 100,000" in msg


def test_terminal_count(journal: Journal) -> None:
    for card in range(1, 5):
        queue_debit(journal, 100, card_id=card)
    lim = limits(max_count=5)
    check_offline_debit(lim, journal, CARD, ugx(100), seen(journal), T0)
    queue_debit(journal, 100, card_id=5)
    msg = refused("max_count", check_offline_debit, lim, journal, CARD, ugx(100),
                  seen(journal), T0)
    assert "5 offline payments" in msg


def test_terminal_total(journal: Journal) -> None:
    for card in range(1, 4):
        queue_debit(journal, 45_000, card_id=card)
    lim = limits(max_total=140_000)
    check_offline_debit(lim, journal, CARD, ugx(5_000), seen(journal), T0)
    msg = refused("max_total", check_offline_debit, lim, journal, CARD, ugx(5_001),
                  seen(journal), T0)
    assert "UGX 140,001" in msg


def test_settled_and_refused_debits_free_the_limits(journal: Journal) -> None:
    lim = limits(max_count=1)
    ref = queue_debit(journal, 100, card_id=1)
    refused("max_count", check_offline_debit, lim, journal, CARD, ugx(100), seen(journal), T0)
    journal.transition(ref, State.sending)
    journal.transition(ref, State.declined_offline)
    check_offline_debit(lim, journal, CARD, ugx(100), seen(journal), T0)


def test_vend_limits(journal: Journal) -> None:
    check_offline_vend(limits(), journal, ugx(500_000))
    msg = refused("vend_max_amount", check_offline_vend, limits(), journal, ugx(500_001))
    assert "UGX 500,000" in msg
    for _ in range(2):
        journal.create(Kind.vend, ugx(1000), operator="a", terminal_id="T", tender=Tender.cash,
                       meter="04040404040", state=State.queued, offline=True)
    journal.create(Kind.postpaid, ugx(1000), operator="a", terminal_id="T", tender=Tender.cash,
                   account="123", state=State.queued, offline=True)
    lim = limits(vend_max_count=4)
    check_offline_vend(lim, journal, ugx(1000))
    # a card-paid vend waiting for its debit is no cash exposure
    debit = journal.create(Kind.card_debit, ugx(1000), operator="a", terminal_id="T").ref
    journal.create(Kind.vend, ugx(1000), operator="a", terminal_id="T", tender=Tender.card,
                   meter="04040404040", parent_ref=debit, state=State.queued)
    check_offline_vend(lim, journal, ugx(1000))
    journal.create(Kind.vend, ugx(1000), operator="a", terminal_id="T", tender=Tender.cash,
                   meter="04040404040", state=State.queued, offline=True)
    msg = refused("vend_max_count", check_offline_vend, lim, journal, ugx(1000))
    assert "4 electricity sales" in msg


def test_expired_offline(tmp_path: Path) -> None:
    dev = FakeDevice(T0)
    journal = Journal.open(tmp_path / "j.db", device=dev)
    lim = limits(max_age_hours=24)
    ref = queue_debit(journal, 100)
    txn = journal.require(ref)
    dev.advance(24 * 3600)
    assert not expired_offline(lim, txn, dev.stamp())
    dev.advance(1)
    assert expired_offline(lim, txn, dev.stamp())
    journal.transition(ref, State.sending)  # may have been sent: never expires
    dev.advance(30 * 86400)
    assert not expired_offline(lim, journal.require(ref), dev.stamp())
    online = journal.create(Kind.card_debit, ugx(100), operator="a", terminal_id="T")
    assert not expired_offline(lim, online, dev.stamp())
    journal.close()


def test_a_clock_step_never_expires_an_offline_debit(tmp_path: Path) -> None:
    """A Pi without RTC sells with a stale clock; NTP then steps it forward a year."""
    dev = FakeDevice(T0 - timedelta(days=365), synced=False)
    journal = Journal.open(tmp_path / "j.db", device=dev)
    txn = journal.require(queue_debit(journal, 100))
    dev.advance(600)
    dev.step(365 * 86400)  # NTP corrects the clock
    dev.set_synced(True)
    assert not expired_offline(limits(max_age_hours=24), txn, dev.stamp())
    # ... and across a reboot, only the time that surely passed counts.
    dev.reboot(off_for=3600, synced=True)
    assert not expired_offline(limits(max_age_hours=24), txn, dev.stamp())
    dev.advance(25 * 3600)  # this boot alone has now run longer than the max age
    assert expired_offline(limits(max_age_hours=24), txn, dev.stamp())
    journal.close()


def test_synchronised_clocks_count_the_time_between_boots(tmp_path: Path) -> None:
    dev = FakeDevice(T0, synced=True)
    journal = Journal.open(tmp_path / "j.db", device=dev)
    txn = journal.require(queue_debit(journal, 100))
    dev.reboot(off_for=30 * 3600, synced=True)  # a long power cut, NTP at both ends
    assert expired_offline(limits(max_age_hours=24), txn, dev.stamp())
    journal.close()
