"""Layout snapshots of the authority screens at 80x24, default and console-safe themes:
operators (supervisor), an operator's new PIN, the hand-over to the card holder (the
fixtures of tests/test_snapshots.py: frozen clock, no background work)."""

from __future__ import annotations

import pytest

from pos.usecases.operator_admin import OperatorRow
from tests.screens_support import FROZEN
from tests.test_snapshots import THEMES, make, then  # noqa: F401  (make: a fixture)

ROWS = [OperatorRow("amina", "cashier", False, FROZEN),
        OperatorRow("boss", "supervisor", False, FROZEN),
        OperatorRow("joseph", "cashier", True, FROZEN)]


@pytest.mark.parametrize("theme", THEMES)
def test_operators(snap_compare, make, theme):  # noqa: F811
    from screens.operators import OperatorsScreen

    assert snap_compare(make(theme), run_before=then(
        lambda app: OperatorsScreen(ROWS, "joseph disabled")))


@pytest.mark.parametrize("theme", THEMES)
def test_operator_new_pin(snap_compare, make, theme):  # noqa: F811
    from screens.operators import NewPinForm

    def refuse(pin: str) -> None:
        from pos.operators import validate_new_pin

        validate_new_pin(pin, "supervisor")

    assert snap_compare(make(theme), run_before=then(
        lambda app: NewPinForm("amina", "supervisor", refuse),
        "1", "2", "3", "4", "enter", "1", "2", "3", "4", "enter"))


@pytest.mark.parametrize("theme", THEMES)
def test_holder_hand_over(snap_compare, make, theme):  # noqa: F811
    from screens.card_services import holder_hand_over

    assert snap_compare(make(theme), run_before=then(
        lambda app: holder_hand_over("to choose the card's new PIN",
                                     "Card holder: you will type your new 4-digit PIN twice. "
                                     "Press Enter (or OK) when you have the terminal.")))
