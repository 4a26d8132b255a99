"""The drawer: open a shift with its float, cash in / out with a reason, and the blind
cash-up (the counted cash is typed before anything expected is shown), then the shift
report: expected, counted, variance, per operator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from pos.errors import PosError
from pos.money import Money
from screens.dialogs import ChoiceDialog, Step, TextPrompt
from screens.entry import AmountScreen
from screens.widgets import Plain

if TYPE_CHECKING:
    from pos.shifts import Shift, ShiftReport
    from screens.app import SentePOSApp


class ShiftReportScreen(Step[bool]):
    """The shift's figures (after the count)."""

    BINDINGS = [Binding("escape", "cancel", "Close"), Binding("enter", "cancel", "Close")]

    def __init__(self, report: ShiftReport) -> None:
        super().__init__(f"Shift #{report.shift.id} closed" if not report.shift.is_open
                         else f"Shift #{report.shift.id}")
        self.report = report

    def body(self) -> ComposeResult:
        lines = self.report.lines()
        text = "\n".join(f"{k:<20}{v:>24}" if v else k for k, v in lines)
        with VerticalScroll(id="shift-report"):
            yield Plain(text, classes="shift-lines")


def _check_reason(text: str) -> str:
    from pos.text import MAX_REASON, validate_free_text

    return validate_free_text(text, "reason", MAX_REASON)


async def open_shift(app: SentePOSApp, note: str = "Count the cash put in the drawer"
                     ) -> Shift | None:
    """The opening float typed, the shift opened; None when cancelled or refused."""
    amount = await app.push_screen_wait(AmountScreen(
        "Open shift: opening float", app.settings.card_currency, note=note, allow_zero=True))
    if amount is None:
        return None
    try:
        return await app.terminal.open_shift(amount)
    except PosError as exc:
        await app.show_message("Shift", exc.message, "warning")
        return None


async def shift_flow(app: SentePOSApp) -> None:
    """Home choice "Shift"."""
    term = app.terminal
    currency = app.settings.card_currency
    shift = term.current_shift()
    if shift is None:
        shift = await open_shift(app)
        if shift is not None:
            await app.show_message("Shift",
                                   f"Shift #{shift.id} open, float {shift.float.format()}")
        return
    note = (f"Shift #{shift.id} of {shift.operator}, since {shift.opened_at:%H:%M}, "
            f"float {shift.float.format()}")
    choice = await app.push_screen_wait(ChoiceDialog(
        "Shift", [("in", "Cash in"), ("out", "Cash out"), ("close", "Close shift (cash-up)")],
        note))
    if choice in ("in", "out"):
        amount = await app.push_screen_wait(AmountScreen(
            "Cash in" if choice == "in" else "Cash out", currency))
        if amount is None:
            return
        reason = await app.push_screen_wait(TextPrompt(
            "Reason", "Why (e.g. change from the bank, paid a supplier)", check=_check_reason))
        if reason is None:
            return
        try:
            await term.cash_move(choice, amount, reason)
        except PosError as exc:
            await app.show_message("Shift", exc.message, "warning")
            return
        app.notify(f"Cash {choice} {amount.format()} recorded")
    elif choice == "close":
        await cash_up(app)


async def cash_up(app: SentePOSApp) -> None:
    """Blind count: the cash in the drawer per currency, then the report."""
    term = app.terminal
    counted: list[Money] = []
    currencies = [app.settings.card_currency]
    other = app.settings.pawacard.currency
    if other not in currencies:
        currencies.append(other)
    for cur in currencies:
        amount = await app.push_screen_wait(AmountScreen(
            f"Cash-up: counted {cur}", cur, note="Count the drawer and type what is there "
            "(0 if none)", allow_zero=True))
        if amount is None:  # cancelled: the shift stays open
            return
        counted.append(amount)
    try:
        report = term.close_shift(counted)
    except PosError as exc:
        await app.show_message("Cash-up", exc.message, "warning")
        return
    await app.push_screen_wait(ShiftReportScreen(report))
