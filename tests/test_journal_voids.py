"""Journal and voids (issue 13, point 9 and the void part of point 5): void eligibility
said before any PIN, the voided state with its refund row linked, the VOID receipt
(printed off the UI loop), a live search with the focus on open, against the sandbox."""

from __future__ import annotations

import pytest

from hardware.printer import DummyPrinter
from pos.catalogue import Item
from pos.errors import InputError
from pos.journal import Kind, State
from pos.money import Money
from pos.receipts import render_text
from pos.sandbox import data
from pos.terminal import Terminal
from pos.usecases import voids
from screens.dialogs import ConfirmDialog, MessageDialog, TextPrompt
from screens.home import HomeScreen
from screens.journal import JournalDetailScreen, JournalScreen, VoidReceiptScreen
from screens.signin import SupervisorPinScreen
from tests.screens_support import app_for, screen_text, type_text, wait_for, wait_screen

pytestmark = [pytest.mark.sandbox(throttle_seconds=0, daily_limit=None),
              pytest.mark.counter(supervisor=True)]


def ugx(n: int) -> Money:
    return Money(n, "UGX")


async def card_payment(term: Terminal, amount: int = 3000, reason: str = "shoes") -> str:
    card = data.CARD_ACTIVE
    lookup = await term.lookup_card(card.payload)
    paid = await term.pay_by_card(lookup, ugx(amount), data.CURRENT, card.pin, reason)
    assert paid.status == "approved", paid.message
    return paid.ref


async def open_detail(pilot, ref: str) -> JournalDetailScreen:
    await pilot.press("5")
    await wait_screen(pilot, JournalScreen)
    await type_text(pilot, ref)
    await pilot.press("enter")
    return await wait_screen(pilot, JournalDetailScreen)


# ------------------------------------------------------------------ the one rule
async def test_check_gives_the_reason_void_refuses_with(term, sandbox):
    """One rule: what check() says is exactly what void() refuses with, and a row it
    calls voidable is voided."""
    boss = term.check_supervisor("8642")
    token = await term.sell_token(data.METER_OK, Money(10_000, "KES"), "Bilbo")
    paid = await card_payment(term)
    for ref in (token.ref, paid):
        can = term.void_check(ref)
        if can.ok:
            assert can.how == "credit"
            assert (await term.void(ref, boss, "test")).status == "approved"
            can = term.void_check(ref)
        assert not can.ok and can.why_not
        with pytest.raises(InputError) as exc:
            await term.void(ref, boss, "again")
        assert exc.value.message == can.why_not
    assert "cannot be taken back" in term.void_check(token.ref).why_not
    assert "already voided" in term.void_check(paid).why_not
    with pytest.raises(InputError, match="No transaction or sale"):
        term.void_check("S000000000000")


async def test_void_not_possible_is_said_and_no_pin_is_asked(term, sandbox):
    """BUG (issue 13): Void asked for the supervisor PIN and a reason, then said the row
    cannot be voided. Now the detail says why, offers no Void, and O asks nothing."""
    token = await term.sell_token(data.METER_OK, Money(10_000, "KES"), "Bilbo")
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        screen = await open_detail(pilot, token.ref)
        text = " ".join(screen_text(app).split())
        assert "Void not possible: A delivered token or a paid bill cannot be taken back" in text
        assert "o Void" not in text
        await pilot.press("o")
        for _ in range(5):
            await pilot.pause()
        assert app.screen is screen
        assert not any(isinstance(s, (ConfirmDialog, SupervisorPinScreen))
                       for s in app.screen_stack)
    assert term.journal.require(token.ref).state == State.done


async def test_void_shows_voided_links_the_refund_and_prints_a_void_receipt(term, sandbox):
    """BUG (issue 13): a voided sale still showed ``done``, with no link to its refund
    and no void receipt. Now: VOIDED in the list and the detail, G opens the refund row,
    and the VOID receipt is printed (in a thread) when the void succeeds."""
    printer = DummyPrinter()
    term.printer = printer
    paid = await card_payment(term, 3000)
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await open_detail(pilot, paid)
        assert "o Void" in screen_text(app)
        await pilot.press("o")
        await wait_screen(pilot, ConfirmDialog)
        assert "credit UGX 3,000 back to the card" in screen_text(app)
        await pilot.press("1")
        await wait_screen(pilot, SupervisorPinScreen)
        await pilot.press(*"8642", "enter")
        await wait_screen(pilot, TextPrompt)
        await type_text(pilot, "wrong size")
        await pilot.press("enter")
        await wait_screen(pilot, MessageDialog)
        text = screen_text(app)
        assert "credited back" in text and "Printed" in text
        await pilot.press("enter")
        detail = await wait_screen(pilot, JournalDetailScreen)
        (refund,) = [t for t in term.journal.children(paid) if t.kind == Kind.card_refund]
        text = screen_text(app)
        assert "done  (VOIDED)" in text and "by boss (wrong size)" in text
        assert f"Refund     {refund.ref}" in text and "o Void" not in text
        await pilot.press("g")  # the refund row
        await wait_for(pilot, lambda: app.screen is not detail
                       and isinstance(app.screen, JournalDetailScreen), 5, "refund detail")
        text = screen_text(app)
        assert f"Transaction {refund.ref}" in text and f"Void of    {paid}" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is detail, 5, "back")
        await pilot.press("escape")
        screen = await wait_screen(pilot, JournalScreen)
        table = screen.query_one("#journal-table")
        states = {str(table.get_row(k)[1]): str(table.get_row(k)[3]) for k in table.rows}
        assert states[paid] == "voided"
    # The VOID receipt went to the printer, and reads right.
    assert len(printer.jobs) == 1 and b"VOID" in printer.jobs[0]
    receipt = term.void_receipt(paid)
    text = render_text(receipt, 32)
    assert receipt.title == "VOID" and receipt.total == ugx(-3000)
    for needle in ("VOID", paid, "-UGX 3,000", "Credited to card", "Supervisor", "boss",
                   "wrong size", "CARD PAYMENT UGX 3,000", refund.ref):
        assert needle in text, needle
    # The payment's own receipt is marked VOIDED; the number of the void is kept.
    assert "VOIDED" in term.receipt(paid).marks
    assert term.void_receipt(refund.ref).receipt_no == receipt.receipt_no


async def test_void_receipt_is_shown_when_there_is_no_printer(term, sandbox):
    sandbox.stop()
    queued = await term.sell_token(data.METER_PENDING, Money(10_000, "KES"), "Frodo")
    assert queued.status == "offline"
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await open_detail(pilot, queued.ref)
        await pilot.press("o")
        await wait_screen(pilot, ConfirmDialog)
        assert "cancel it before it is sent" in screen_text(app)
        await pilot.press("1")
        await wait_screen(pilot, SupervisorPinScreen)
        await pilot.press(*"8642", "enter")
        await wait_screen(pilot, TextPrompt)
        await type_text(pilot, "customer left")
        await pilot.press("enter")
        await wait_screen(pilot, MessageDialog)
        assert "No printer" in screen_text(app)
        await pilot.press("enter")
        shown = await wait_screen(pilot, VoidReceiptScreen)
        assert "VOID" in screen_text(app)
        text = shown.query_one("#void-receipt-view").text
        assert "VOID" in text and "customer left" in text and "hand the cash back" in text
    txn = term.journal.require(queued.ref)
    assert txn.state == State.cancelled and txn.details["void"]["by"] == "boss"
    assert voids.mark(term.journal, txn).label == "voided"  # type: ignore[union-attr]
    assert "VOIDED" in term.receipt(queued.ref).marks


async def test_a_basket_card_part_voids_its_whole_sale(term, sandbox):
    """A basket's card part is voided with its sale (not alone, leaving a sale done
    whose card was credited back): the card credited, the cash handed back."""
    boss = term.check_supervisor("8642")
    await term.open_shift(ugx(0))
    before = sandbox.state.patasente.balance(data.CARD_ACTIVE)
    basket = term.new_basket()
    basket.add(Item("Sugar 1kg", ugx(4_500), 18))
    sale = term.begin_sale(basket)
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    res, _ = await term.sale_pay_card(sale.id, lookup, ugx(2_000), data.CURRENT, "1234")
    done = await term.sale_pay_cash(sale.id, ugx(2_500))
    assert done.state == "done"
    can = term.void_check(res.ref)
    assert can.ok and can.how == "sale" and can.sale_id == sale.id
    with pytest.raises(InputError, match="void the sale"):
        await term.void(res.ref, boss)
    voided = await term.void_sale(sale.id, boss, "wrong item")
    assert voided.state == "voided"
    assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == before
    assert term.void_marks([term.journal.require(res.ref)])[res.ref].label == "voided"
    assert "Sale S" in term.void_check(sale.id).why_not  # nothing left to void
    text = render_text(term.void_receipt(res.ref), 32)
    for needle in (sale.id, "Cash handed back", "UGX 2,500", "Card credited", "UGX 2,000",
                   "-UGX 4,500", "wrong item", "boss"):
        assert needle in text, needle
    assert "VOIDED" in term.sale_receipt(sale.id).marks


async def test_a_sale_void_is_checked_whole_before_anything_moves(term, sandbox):
    """A sale whose card part cannot be voided any more is refused before its cash is
    handed back or any other part is credited."""
    boss = term.check_supervisor("8642")
    basket = term.new_basket()
    basket.add(Item("Sugar 1kg", ugx(4_500), 18))
    sale = term.begin_sale(basket)
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    first, _ = await term.sale_pay_card(sale.id, lookup, ugx(2_000), data.CURRENT, "1234")
    second, _ = await term.sale_pay_card(sale.id, lookup, ugx(2_500), data.CURRENT, "1234")
    await voids.void(term.ctx, second.ref, "boss", "by hand", part_of_sale=True)
    credited = sandbox.state.patasente.balance(data.CARD_ACTIVE)
    with pytest.raises(InputError, match=f"Card part {second.ref}"):
        await term.void_sale(sale.id, boss, "again")
    assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == credited
    assert not term.journal.children(first.ref)
    assert term.sale(sale.id).state == "done"


# ------------------------------------------------------------------ search
async def test_search_is_focused_on_open_and_filters_as_you_type(term, sandbox):
    """BUG (issue 13): the search box was not focused and filtered only on Enter."""
    first = await term.sell_token(data.METER_OK, Money(10_000, "KES"), "Bilbo")
    await card_payment(term)
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("5")
        screen = await wait_screen(pilot, JournalScreen)
        search = screen.query_one("#journal-search")
        table = screen.query_one("#journal-table")
        assert screen.focused is search and table.row_count == 2
        await type_text(pilot, data.METER_OK[:2])  # too short to search as you type
        await wait_for(pilot, lambda: "Type 3 characters" in screen_text(app), 5, "hint")
        assert table.row_count == 2
        await type_text(pilot, data.METER_OK[2:6])  # no Enter
        await wait_for(pilot, lambda: table.row_count == 1, 5, "live search")
        assert str(table.get_row_at(0)[1]) == first.ref and screen.focused is search
        await pilot.press(*["backspace"] * 6)
        await wait_for(pilot, lambda: table.row_count == 2, 5, "search cleared")
        # Down goes to the list, where the letters filter; / goes back to the search.
        await pilot.press("down")
        assert screen.focused is table
        await pilot.press("d")
        await wait_for(pilot, lambda: "Showing done: 2" in screen_text(app), 5, "filter")
        await pilot.press("slash")
        assert screen.focused is search
        # Enter searches at once and opens the first match.
        await type_text(pilot, first.ref)
        await pilot.press("enter")
        await wait_screen(pilot, JournalDetailScreen)
        assert f"Transaction {first.ref}" in screen_text(app)
