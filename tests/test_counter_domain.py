"""The counter's domain: catalogue, basket, basket sales with cash / card / split tender,
shifts with a blind cash-up, against the sandbox over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pos import shifts
from pos.basket import MAX_BASKET_REASON, Basket, DiscountNeedsSupervisor
from pos.catalogue import Item
from pos.errors import InputError
from pos.money import Money
from pos.sandbox import data
from pos.text import MAX_REASON

UGX = "UGX"


def ugx(n: int) -> Money:
    return Money(n, UGX)


SUGAR = Item("Sugar 1kg", ugx(4_500), 18)
MILK = Item("Milk 500ml", ugx(1_500), 19)
SODA = Item("Soda 300ml", ugx(1_000), barcode="5449000000996")


def test_basket_totals_quantities_and_discounts():
    b = Basket(UGX)
    b.add(SUGAR, 2)
    b.add(MILK)
    b.add(MILK)  # same item: one line, quantity 2
    assert [(ln.item.name, ln.qty) for ln in b.lines] == [("Sugar 1kg", 2), ("Milk 500ml", 2)]
    assert b.subtotal == ugx(12_000)
    off = b.discount(0, 10, role="cashier", cashier_max=10, supervisor_max=50)
    assert off == ugx(900) and b.total == ugx(11_100) and b.discount_by is None
    with pytest.raises(DiscountNeedsSupervisor):
        b.discount(1, 20, role="cashier", cashier_max=10, supervisor_max=50)
    b.discount(1, 20, role="cashier", cashier_max=10, supervisor_max=50, approved_by="boss")
    assert b.discount_by == "boss" and b.total == ugx(11_100 - 600)
    with pytest.raises(InputError):  # over the supervisor's cap too
        b.discount(1, 60, role="supervisor", cashier_max=10, supervisor_max=50)
    b.set_qty(1, 0)
    assert len(b.lines) == 1
    with pytest.raises(InputError):
        b.add(Item("Cola", Money(100, "KES")))
    with pytest.raises(InputError):
        b.set_qty(0, 10_000)


def test_basket_reason_fits_the_providers_field():
    b = Basket(UGX)
    for i in range(30):
        b.add(Item(f"Item number {i} with a long name", ugx(100 + i)))
    reason = b.reason()
    assert len(reason) <= MAX_BASKET_REASON
    assert len(reason) + len(" ref:123456789012") <= MAX_REASON
    assert reason.startswith("Sale: Item number 0") and reason.endswith("more")
    small = Basket(UGX)
    small.add(SUGAR, 2)
    small.add(MILK)
    assert small.reason() == "Sale: 2x Sugar 1kg, Milk 500ml"


async def test_catalogue_is_fetched_cached_and_used_offline(term, sandbox):
    cat = await term.catalogue()
    names = {p.name for p in cat.products}
    assert {"Sugar 1kg", "Milk 500ml", "Bread (large)"} <= names
    assert cat.find("19").name == "Milk 500ml"
    assert cat.find("5449000000996").name == "Soda 300ml"  # a quick key's barcode
    with pytest.raises(InputError):
        cat.find("0000")
    sandbox.faults.add("patasente", "*", "drop", count=None)
    term.link.patasente.record_failure("test")
    offline = await term.catalogue()
    assert offline.offline and {p.name for p in offline.products} == names


async def test_cash_sale_with_change_and_the_drawer(term):
    from hardware.printer import DRAWER_KICK, DummyPrinter

    term.printer = DummyPrinter()
    b = term.new_basket()
    b.add(SUGAR, 2)
    sale = term.begin_sale(b)
    with pytest.raises(InputError, match="No shift"):
        await term.sale_pay_cash(sale.id, ugx(10_000))
    await term.open_shift(ugx(20_000))
    done = await term.sale_pay_cash(sale.id, ugx(10_000))
    assert done.state == "done" and done.change == ugx(1_000) and done.remaining == ugx(0)
    assert term.printer.kicks == 2 and term.printer.jobs[-1] == DRAWER_KICK  # float + sale
    rec = term.sale_receipt(sale.id)
    assert ("2 x Sugar 1kg", "9,000") in rec.lines and ("Change", "UGX 1,000") in rec.lines
    rep = term.shift_report()
    assert rep.expected() == ugx(20_000 + 10_000 - 1_000)


async def test_a_receipt_with_a_line_discount_adds_up_to_its_total(term):
    """The discounted line was printed after its discount (4,050) with the discount
    under it again (-450): the column read 450 short of the total."""
    b = term.new_basket()
    b.add(SODA, 2)
    b.add(SUGAR)
    b.add(MILK)
    b.discount(1, 10, role="cashier", cashier_max=10, supervisor_max=50)
    sale = term.begin_sale(b)
    await term.open_shift(ugx(0))
    await term.sale_pay_cash(sale.id, ugx(10_000))
    rec = term.sale_receipt(sale.id)
    assert ("Sugar 1kg", "4,500") in rec.lines and ("  discount", "-450") in rec.lines
    items = rec.lines[:rec.lines.index(("Subtotal", "UGX 8,000"))]
    assert sum(int(amount.replace(",", "")) for _, amount in items) == 7_550
    assert rec.total == ugx(7_550)


async def test_split_tender_card_then_cash_and_declined_card_keeps_the_sale_open(term, sandbox):
    await term.open_shift(ugx(0))
    before = sandbox.state.patasente.balance(data.CARD_ACTIVE)
    b = term.new_basket()
    b.add(SUGAR)
    b.add(MILK)
    sale = term.begin_sale(b)
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    res, s = await term.sale_pay_card(sale.id, lookup, ugx(2_000), "Current Account", "9999")
    assert res.status == "declined" and s.state == "open" and s.remaining == ugx(6_000)
    res, s = await term.sale_pay_card(sale.id, lookup, ugx(2_000), "Current Account", "1234")
    assert res.status == "approved" and s.state == "open" and s.remaining == ugx(4_000)
    txn = term.journal.require(res.ref)
    assert txn.reason == "Sale: Sugar 1kg, Milk 500ml" and txn.details["sale_id"] == sale.id
    assert sandbox.state.patasente.applied_count(res.ref) == 1
    s = await term.sale_pay_cash(sale.id, ugx(5_000))
    assert s.state == "done" and s.change == ugx(1_000) and s.tender_label() == "SPLIT"
    assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == before - 2_000
    with pytest.raises(InputError):
        await term.sale_pay_cash(sale.id, ugx(1))  # done: nothing more is taken
    rep = term.shift_report()
    assert rep.sales == 1 and rep.card_parts == 2_000 and rep.expected() == ugx(4_000)


@pytest.mark.counter(supervisor=True)
async def test_blind_cash_up_with_every_kind_of_cash(term, sandbox):
    boss = term.check_supervisor("8642")
    await term.open_shift(ugx(50_000))
    await term.cash_move("in", ugx(5_000), "coins from the bank")
    await term.cash_move("out", ugx(2_000), "bought receipt paper")
    b = term.new_basket()
    b.add(SUGAR)
    sale = term.begin_sale(b)
    await term.sale_pay_cash(sale.id, ugx(5_000))
    voided = term.begin_sale(_basket(MILK))
    await term.sale_pay_cash(voided.id, ugx(1_500))
    v = await term.void_sale(voided.id, boss, "wrong item")
    assert v.state == "voided"
    token = await term.sell_token(data.METER_OK, Money(15_000, "KES"), "Bilbo")
    assert token.status == "approved"
    rep = term.close_shift([ugx(57_000), Money(15_000, "KES")])
    # 50,000 + 5,000 - 2,000 + (5,000 - 500 change) + 1,500 - 1,500 refund
    assert rep.expected() == ugx(57_500) and rep.variance() == ugx(-500)
    assert rep.expected("KES") == Money(15_000, "KES") and rep.variance("KES") == Money(0, "KES")
    assert rep.by_operator["ann"]["UGX"]["cash_sales"] == 6_500
    assert rep.by_operator["boss"]["UGX"]["refunds"] == 1_500
    assert shifts.current(term.journal) is None
    with pytest.raises(InputError):
        term.close_shift(ugx(1))
    again = term.shift_report(rep.shift.id)
    assert again.variance() == ugx(-500) and again.expected() == ugx(57_500)


@pytest.mark.counter(supervisor=True)
async def test_x_and_z_count_basket_cash_and_cash_given_back(term, sandbox):
    """Cash basket sales live in the sales tables, not in the transactions table: the X
    and Z reports counted none of them (nor a void's cash refund), so the day's cash
    takings disagreed with the drawer."""
    boss = term.check_supervisor("8642")
    await term.open_shift(ugx(10_000))
    sale = term.begin_sale(_basket(SUGAR))
    await term.sale_pay_cash(sale.id, ugx(5_000))  # 4,500 kept, 500 change
    voided = term.begin_sale(_basket(MILK))
    await term.sale_pay_cash(voided.id, ugx(1_500))
    await term.void_sale(voided.id, boss, "wrong item")
    x = term.x_report().payload
    assert x["cash_expected"]["UGX"] == 4_500 + 1_500 - 1_500
    assert x["by_kind"]["basket_cash"]["count"] == 2
    assert x["by_tender"]["cash"]["totals"]["UGX"] == 4_500
    z = term.close_day().payload
    assert z["cash_expected"]["UGX"] == 4_500
    assert z["transactions"] >= 3  # not an empty day
    assert term.x_report().payload["cash_expected"] == {}  # a new period


def _basket(item: Item) -> Basket:
    b = Basket(UGX)
    b.add(item)
    return b


@pytest.mark.slow
def test_shift_cli_exit_codes_and_json(tmp_path):
    import os
    from pathlib import Path

    env = {**os.environ, "SENTE_POS_HOME": str(tmp_path), "SENTE_POS_OPERATOR": "ann",
           "PYTHONPATH": str(Path(__file__).parent.parent)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sente_pos.cli", "shift", *args],
                              capture_output=True, text=True, env=env)

    assert run("close", "--counted", "0").returncode == 2  # no shift open
    opened = run("open", "--float", "10000", "--json")
    assert opened.returncode == 0 and json.loads(opened.stdout)["float"]["minor"] == 10_000
    assert run("open", "--float", "1").returncode == 2
    assert run("cash-out", "abc", "--reason", "x").returncode == 2
    assert run("cash-in", "500", "--reason", "coins").returncode == 0
    shown = run("show", "--json")
    assert json.loads(shown.stdout)["shift"]["expected"] is None  # blind until counted
    closed = run("close", "--counted", "10400", "--json")
    out = json.loads(closed.stdout)
    assert closed.returncode == 0
    assert out["expected"]["minor"] == 10_500 and out["variance"]["minor"] == -100
