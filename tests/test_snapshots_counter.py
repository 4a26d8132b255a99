"""Layout snapshots of the counter's screens at 80x24, default and console-safe themes
(the fixtures of tests/test_snapshots.py: frozen clock, no background work)."""

from __future__ import annotations

from typing import Any

import pytest

from pos.catalogue import Catalogue, Item, quick_keys
from pos.money import Money
from tests.test_snapshots import THEMES, make, then  # noqa: F401  (make: a fixture)


def _basket(app: Any) -> Any:
    term = app.terminal
    keys = quick_keys(term.settings)
    basket = term.new_basket()
    basket.add(keys[0], 2)
    basket.add(keys[3])
    basket.add(Item("Milk 500ml", Money(1_500, "UGX"), 19))
    term.discount_line(basket, 1, 10)
    return basket


@pytest.mark.parametrize("theme", THEMES)
def test_basket(snap_compare, make, theme):  # noqa: F811
    from screens.basket import BasketScreen

    def screen(app: Any) -> Any:
        cat = Catalogue((), quick_keys(app.terminal.settings), None)
        return BasketScreen(_basket(app), cat)

    assert snap_compare(make(theme), run_before=then(screen, "1", "8"))


@pytest.mark.parametrize("theme", THEMES)
def test_tender(snap_compare, make, theme):  # noqa: F811
    from screens.tender import TenderScreen

    assert snap_compare(make(theme), run_before=then(
        lambda app: TenderScreen(app.terminal.begin_sale(_basket(app)))))


@pytest.mark.parametrize("theme", THEMES)
def test_change(snap_compare, make, theme):  # noqa: F811
    from screens.tender import ChangeScreen

    def screen(app: Any) -> Any:
        term = app.terminal
        sale = term.begin_sale(_basket(app))
        from pos import shifts
        from pos.usecases import sale as sales

        shifts.open_shift(term.journal, "ann", Money(0, "UGX"), term.ctx.clock())
        done = sales.pay_cash(term.ctx, sale.id, Money(10_000, "UGX"))
        return ChangeScreen(done, Money(10_000, "UGX"))

    assert snap_compare(make(theme), run_before=then(screen))


@pytest.mark.parametrize("theme", THEMES)
def test_shift_report(snap_compare, make, theme):  # noqa: F811
    from pos import shifts
    from screens.shift import ShiftReportScreen

    def screen(app: Any) -> Any:
        term = app.terminal
        now = term.ctx.clock()
        shifts.open_shift(term.journal, "ann", Money(50_000, "UGX"), now)
        shifts.move_cash(term.journal, "in", Money(3_000, "UGX"), "coins", "ann", now)
        shifts.move_cash(term.journal, "out", Money(1_000, "UGX"), "paper", "ann", now)
        return ShiftReportScreen(term.close_shift([Money(51_500, "UGX")]))

    assert snap_compare(make(theme), run_before=then(screen))
