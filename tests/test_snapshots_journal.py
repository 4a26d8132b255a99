"""Layout snapshots of the journal with a voided card payment at 80x24, default and
console-safe themes: the list (state ``voided``), the payment's detail (VOIDED, the
refund row, by whom) and its VOID receipt. Fixed refs and a frozen clock."""

from __future__ import annotations

from typing import Any

import pytest

from pos.journal import Kind, State, Tender
from pos.money import Money
from tests.test_snapshots import THEMES, make, then  # noqa: F401  (make: a fixture)

PAID, REFUND, TOKEN = "000100000001", "000100000002", "000100000003"


def voided_payment(app: Any) -> None:
    j = app.terminal.journal
    common = {"operator": "ann", "terminal_id": "POS-001", "tender": Tender.card,
              "card_id": 108, "card_no": "1613*****65219", "wallet": "Current Account"}
    j.create(Kind.vend, Money(50_000, "KES"), ref=TOKEN, operator="ann", terminal_id="POS-001",
             tender=Tender.cash, meter="01451174955", customer_name="Bilbo Baggins")
    j.transition(TOKEN, State.sending)
    j.transition(TOKEN, State.done, token="66430474307561657038", note="success")
    j.create(Kind.card_debit, Money(3_000, "UGX"), ref=PAID, reason="shoes", **common)
    j.transition(PAID, State.sending)
    j.transition(PAID, State.done, note="Funds have been debited")
    j.create(Kind.card_refund, Money(3_000, "UGX"), ref=REFUND, reason=f"Void of {PAID}",
             parent_ref=PAID, details={"void_of": PAID, "supervisor": "boss",
                                       "why": "wrong size"}, **common)
    j.transition(REFUND, State.sending)
    j.transition(REFUND, State.done, note="Funds have been credited")


def _then(screen: Any) -> Any:
    def push(app: Any) -> Any:
        voided_payment(app)
        return screen(app)

    return then(push)


@pytest.mark.parametrize("theme", THEMES)
def test_journal_with_a_void(snap_compare, make, theme):  # noqa: F811
    from screens.journal import JournalScreen

    assert snap_compare(make(theme), run_before=_then(lambda app: JournalScreen()))


@pytest.mark.parametrize("theme", THEMES)
def test_journal_detail_voided(snap_compare, make, theme):  # noqa: F811
    from screens.journal import JournalDetailScreen

    assert snap_compare(make(theme), run_before=_then(lambda app: JournalDetailScreen(PAID)))


@pytest.mark.parametrize("theme", THEMES)
def test_void_receipt(snap_compare, make, theme):  # noqa: F811
    from screens.journal import VoidReceiptScreen

    assert snap_compare(make(theme), run_before=_then(lambda app: VoidReceiptScreen(PAID)))
