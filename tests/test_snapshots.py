"""Layout snapshots of the main screens at 80x24, default and console-safe themes.

Deterministic: clock frozen, cursor blink off, no background float refresh or
sync (the status bar shows no floats), and screens that need data are given
fixed data. Update with ``pytest tests/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from pos.cardqr import parse_card_qr
from pos.clock import DeviceClock
from pos.money import Money
from pos.providers.models import CardInfo
from pos.terminal import Terminal
from pos.usecases.results import CardLookup
from tests.screens_support import FROZEN, app_for, make_settings

THEMES = ["default", "console"]
PAYLOAD = "1613*****65219&11/29&UGX&0&Debit Card&108"


def lookup() -> CardLookup:
    card = parse_card_qr(PAYLOAD)
    info = CardInfo(card_id=108, card_no=card.number, currency="UGX", status="active",
                    has_pin=True, wallets=("Current Account", "Credit Account"),
                    current_balance=Money(150_000, "UGX"), credit_limit=Money(100_000, "UGX"),
                    available_credit=Money(60_000, "UGX"), expiry="11/29")
    return CardLookup(card=card, info=info, offline=False, problems=[],
                      wallets=["Current Account", "Credit Account"])


@pytest.fixture
def make(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    terms: list[Terminal] = []

    def build(theme: str, *, signed_in: bool = True) -> Any:
        settings = make_settings(tmp_path)
        term = Terminal.open_sync(settings, device=DeviceClock(wall=lambda: FROZEN,
                                                               synced=lambda: True))
        terms.append(term)
        if not term.has_operators():
            term.add_operator("ann", "cashier", "1111")
        if signed_in:
            term.sign_in("ann", "1111")
        return app_for(settings, term, theme=theme, background=False)

    yield build
    for term in terms:
        with contextlib.suppress(Exception):
            asyncio.run(term.aclose())


async def settle(pilot: Any) -> None:
    """Let the sign-in worker and the first paint finish."""
    await pilot.pause()
    await pilot.pause()


def then(push: Callable[[Any], Any], *keys: str) -> Callable[[Any], Any]:
    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        screen = push(pilot.app)
        if screen is not None:
            await pilot.app.push_screen(screen)
        await pilot.pause()
        if keys:
            await pilot.press(*keys)
        await settle(pilot)

    return run_before


@pytest.mark.parametrize("theme", THEMES)
def test_home(snap_compare, make, theme):
    assert snap_compare(make(theme), run_before=settle)


@pytest.mark.parametrize("theme", THEMES)
def test_sign_in(snap_compare, make, theme):
    assert snap_compare(make(theme, signed_in=False), run_before=settle)


@pytest.mark.parametrize("theme", THEMES)
def test_scan(snap_compare, make, theme):
    from screens.scan import ScanScreen

    assert snap_compare(make(theme), run_before=then(lambda app: ScanScreen()))


@pytest.mark.parametrize("theme", THEMES)
def test_card_summary(snap_compare, make, theme):
    from screens.cards import CardSummaryScreen

    assert snap_compare(make(theme), run_before=then(lambda app: CardSummaryScreen(lookup())))


@pytest.mark.parametrize("theme", THEMES)
def test_amount(snap_compare, make, theme):
    from screens.entry import AmountScreen

    assert snap_compare(make(theme), run_before=then(
        lambda app: AmountScreen("Amount to pay", "UGX"), "1", "2", "5", "0", "0"))


@pytest.mark.parametrize("theme", THEMES)
def test_pin_pad(snap_compare, make, theme):
    from screens.entry import PinScreen

    assert snap_compare(make(theme), run_before=then(
        lambda app: PinScreen("PIN for UGX 12,500"), "4", "2"))


SIZES = [(80, 24), (60, 20)]  # 60x20: a 480x320 display's console with an 8x16 font


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("theme", THEMES)
def test_hand_over_converted(snap_compare, make, theme, size):
    """Electricity (KES) from a UGX card: the card's amount big, the sale and the rate."""
    from pos.usecases.quotes import Quote
    from screens.cards import HandOverScreen

    quote = Quote(Money(15_000, "KES"), Money(4_275, "UGX"), 108)
    assert snap_compare(make(theme), terminal_size=size, run_before=then(
        lambda app: HandOverScreen(quote, "Current Account")))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("theme", THEMES)
def test_pin_pad_converted(snap_compare, make, theme, size):
    from pos.usecases.quotes import Quote
    from screens.entry import PinScreen

    quote = Quote(Money(15_000, "KES"), Money(4_275, "UGX"), 108)
    assert snap_compare(make(theme), terminal_size=size, run_before=then(
        lambda app: PinScreen("PIN for UGX 4,275", charge=quote, wallet="Current Account"),
        "4", "2"))


@pytest.mark.parametrize("theme", THEMES)
def test_token_result(snap_compare, make, theme):
    from screens.receipt import ResultScreen

    def screen(app: Any) -> Any:
        return ResultScreen("approved", "Token generated", "KES 500.00",
                            token="66430474307561657038",
                            extra=["Units: 21.4 kWh", "VAT: 68.97", "Fuel levy: 12.00"])

    assert snap_compare(make(theme), run_before=then(screen))


@pytest.mark.parametrize("theme", THEMES)
def test_journal_empty(snap_compare, make, theme):
    from screens.journal import JournalScreen

    assert snap_compare(make(theme), run_before=then(lambda app: JournalScreen()))


@pytest.mark.parametrize("theme", THEMES)
def test_x_report(snap_compare, make, theme):
    from screens.reports import ReportScreen

    assert snap_compare(make(theme), run_before=then(
        lambda app: ReportScreen(app.terminal.x_report())))


@pytest.mark.parametrize("theme", THEMES)
def test_settings(snap_compare, make, theme):
    from screens.settings import SettingsScreen

    assert snap_compare(make(theme), run_before=then(
        lambda app: SettingsScreen(app.settings, kiosk=True)))
