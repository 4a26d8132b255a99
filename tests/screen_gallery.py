"""Every screen of the app with fixed data: for the snapshots at both sizes (80x24 and a
480x320 console's 60x20) and the Pilot test that their key control is on the screen.

Each entry builds its screen from the app (a real Terminal on a temporary home, frozen
clock, no background work: tests/test_snapshots.py's ``make``), says which widget must be
visible for the screen to be usable, and which keys bring it to the state shown.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pos.money import Money

#: (columns, rows, theme): the 80x24 terminal, and a 480x320 TFT's Linux console (8x16 font).
SIZES = [(80, 24, "default"), (60, 20, "console")]


@dataclass(frozen=True)
class Shot:
    """One screen in one state."""

    cls: str  #: the screen class shown ("module.Class"), for the coverage check
    build: Callable[[Any], Any] | None  #: app -> the screen to push; None: the app's own
    key: str  #: the control that must be visible (CSS selector), besides the key bar
    keys: tuple[str, ...] = ()
    signed_in: bool = True
    demo: bool = False  #: the app has the demo's controls (sente-pos demo)
    #: Texts that must each be on the screen whole, on one line: a column not cut off
    #: (the journal's amounts), a line not wrapped (the demo's card list).
    shows: tuple[str, ...] = ()


def _lookup() -> Any:
    from tests.test_snapshots import lookup

    return lookup()


def _quote() -> Any:
    from pos.usecases.quotes import Quote

    return Quote(Money(15_000, "KES"), Money(4_275, "UGX"), 108)


def _basket(app: Any) -> Any:
    from tests.test_snapshots_counter import _basket as basket

    return basket(app)


def _paid_sale(app: Any) -> Any:
    from pos import shifts
    from pos.usecases import sale as sales

    term = app.terminal
    numbers = itertools.count(50)  # fixed refs: the receipt shows the sale's
    term.journal.draw_ref = lambda: f"0001{next(numbers):08d}"
    sale = term.begin_sale(_basket(app))
    shifts.open_shift(term.journal, "ann", Money(0, "UGX"), term.ctx.clock())
    return sales.pay_cash(term.ctx, sale.id, Money(10_000, "UGX"))


def _journal(app: Any) -> str:
    from tests.test_snapshots_journal import PAID, voided_payment

    voided_payment(app)
    return PAID


def _shift_report(app: Any) -> Any:
    from pos import shifts
    from screens.shift import ShiftReportScreen

    term = app.terminal
    now = term.ctx.clock()
    shifts.open_shift(term.journal, "ann", Money(50_000, "UGX"), now)
    shifts.move_cash(term.journal, "in", Money(3_000, "UGX"), "coins", "ann", now)
    shifts.move_cash(term.journal, "out", Money(1_000, "UGX"), "paper", "ann", now)
    return ShiftReportScreen(term.close_shift([Money(51_500, "UGX")]))


def _never() -> Any:
    return asyncio.Event().wait()  # a request still on its way


def _screens() -> dict[str, Shot]:
    # Imports here: collecting the tests must not import Textual for every test file.
    from screens import (
        basket,
        blocked,
        card_services,
        cards,
        demo,
        dialogs,
        electricity,
        entry,
        handover,
        journal,
        journal_sales,
        operators,
        receipt,
        reports,
        scan,
        settings,
        signin,
        tender,
    )
    from tests.test_snapshots_operators import ROWS

    def pin_rule(pin: str) -> None:
        from pos.operators import validate_new_pin

        validate_new_pin(pin, "supervisor")

    return {
        "home": Shot("home.HomeScreen", None, "#home-shift"),
        "sign_in": Shot("signin.SignInScreen", None, "#signin-pin", signed_in=False),
        "create_supervisor": Shot("signin.CreateSupervisorScreen",
                                  lambda app: signin.CreateSupervisorScreen(app.terminal),
                                  "#sup-pin2"),
        "supervisor_pin": Shot("signin.SupervisorPinScreen",
                               lambda app: signin.SupervisorPinScreen(app.terminal,
                                                                      "void a card payment"),
                               "#supervisor-pin"),
        "scan": Shot("scan.ScanScreen", lambda app: scan.ScanScreen(), "#scan-manual"),
        "card_summary": Shot("cards.CardSummaryScreen",
                             lambda app: cards.CardSummaryScreen(_lookup(), paying=True),
                             "#card-continue"),
        "hand_over": Shot("cards.HandOverScreen",
                          lambda app: cards.HandOverScreen(_quote(), "Current Account"),
                          "#handover-ok"),
        "amount": Shot("entry.AmountScreen",
                       lambda app: entry.AmountScreen("Amount to pay", "UGX",
                                                      note="Card 1613*****65219"),
                       "#amount-keypad", keys=("1", "2", "5", "0", "0")),
        "pin": Shot("entry.PinScreen", lambda app: entry.PinScreen("PIN for UGX 12,500"),
                    "#pin-pad", keys=("4", "2")),
        "percent": Shot("basket.PercentScreen", lambda app: basket.PercentScreen("Sugar 1kg"),
                        "#percent-display", keys=("1", "0")),
        "basket": Shot("basket.BasketScreen", lambda app: basket.BasketScreen(
            _basket(app), _catalogue(app)), "#basket-total", keys=("1", "8"),
            shows=("1,000", "800", "6,000", "4,500")),  # a quick key's price, never cut
        "tender": Shot("tender.TenderScreen",
                       lambda app: tender.TenderScreen(app.terminal.begin_sale(_basket(app))),
                       "#tender-split"),
        "change": Shot("tender.ChangeScreen",
                       lambda app: tender.ChangeScreen(_paid_sale(app), Money(10_000, "UGX")),
                       "#change-ok"),
        "sale_receipt": Shot("tender.SaleReceiptScreen",
                             lambda app: tender.SaleReceiptScreen(_paid_sale(app).id),
                             "#receipt-view"),
        "number": Shot("electricity.NumberScreen",
                       lambda app: electricity.NumberScreen(
                           "Electricity token", "Meter number", check=lambda s: s),
                       "#number-input", keys=("0", "1", "4", "5")),
        "token_result": Shot("receipt.ResultScreen", lambda app: receipt.ResultScreen(
            "approved", "Token generated", "KES 500.00", token="66430474307561657038",
            extra=["Units: 21.4 kWh", "VAT: 68.97", "Fuel levy: 12.00"]), "#result-ok"),
        "pending_result": Shot("receipt.ResultScreen", lambda app: receipt.ResultScreen(
            "pending", "PawaCard is still working on it", "KES 500.00"), "#result-ok"),
        "receipt": Shot("receipt.ReceiptScreen",
                        lambda app: receipt.ReceiptScreen(_journal(app)), "#receipt-view"),
        "journal": Shot("journal.JournalScreen",
                        lambda app: (_journal(app), journal.JournalScreen())[1],
                        "#journal-table",
                        shows=("09:26  000100000001", "voided", "UGX 3,000", "KES 500.00")),
        "journal_detail": Shot("journal.JournalDetailScreen",
                               lambda app: journal.JournalDetailScreen(_journal(app)),
                               "#journal-fields"),
        "sale_detail": Shot("journal_sales.SaleDetailScreen",
                            lambda app: journal_sales.SaleDetailScreen(_paid_sale(app).id),
                            "#sale-receipt-view", shows=("UGX 7,550", "cash UGX 7,550 paid")),
        "void_receipt": Shot("journal.VoidReceiptScreen",
                             lambda app: journal.VoidReceiptScreen(_journal(app)),
                             "#void-receipt-view"),
        "x_report": Shot("reports.ReportScreen",
                         lambda app: reports.ReportScreen(app.terminal.x_report()),
                         "#report-text"),
        "shift_report": Shot("shift.ShiftReportScreen", _shift_report, "#shift-report"),
        "settings": Shot("settings.SettingsScreen",
                         lambda app: settings.SettingsScreen(app.settings, kiosk=True),
                         "#settings-save"),
        "operators": Shot("operators.OperatorsScreen",
                          lambda app: operators.OperatorsScreen(ROWS, "joseph disabled"),
                          "#operators-add"),
        "new_pin": Shot("operators.NewPinForm",
                        lambda app: operators.NewPinForm("amina", "supervisor", pin_rule),
                        "#new-pin2"),
        "kyc": Shot("card_services.KycForm", lambda app: card_services.KycForm("New Sente card"),
                    "#kyc-go"),
        "holder_hand_over": Shot("handover.HandOverNotice", lambda app: handover.HandOverNotice(
            "the card holder", "to choose the card's new PIN",
            "Card holder: you will type your new 4-digit PIN twice. Press Enter (or OK) "
            "when you have the terminal."), "#handover-ready"),
        "message": Shot("dialogs.MessageDialog", lambda app: dialogs.MessageDialog(
            "Sync", "The link is still down.\nSettled: 0\nDeclined: 0\nFailed: 0\n"
            "Pending: 0\nStill queued: 3", "warning"), "#ok"),
        "confirm": Shot("dialogs.ConfirmDialog", lambda app: dialogs.ConfirmDialog(
            "Close the day", "Print the Z report and start a new day?"), "#no"),
        "choice": Shot("dialogs.ChoiceDialog", lambda app: dialogs.ChoiceDialog(
            "Receipt", [("print", "Print"), ("show", "Show on screen"),
                        ("skip", "No receipt")]), "#choice-3"),
        "text_prompt": Shot("dialogs.TextPrompt", lambda app: dialogs.TextPrompt(
            "Reason", "Why (e.g. change from the bank, paid a supplier)",
            note="Cash out UGX 5,000"), "#prompt-input"),
        "busy": Shot("dialogs.BusyScreen",
                     lambda app: dialogs.BusyScreen("Vending the token...", _never()),
                     "#busy-elapsed"),
        "blocked": Shot("blocked.BlockedScreen", lambda app: blocked.BlockedScreen(
            "The journal is damaged (page 12 failed its check). Selling is stopped so that "
            "nothing is lost; restore the last backup with sente-pos journal restore."),
            "#blocked-hint"),
        "demo_menu": Shot("demo.DemoMenu", lambda app: demo.DemoMenu(app.demo), "#demo-actions",
                          demo=True),
        "demo_cards": Shot("demo.CameraCardPicker",
                           lambda app: demo.CameraCardPicker(app.demo), "#demo-cards",
                           demo=True, shows=("..5219", "PIN 1234, UGX 150,000",
                                             "PIN 1357, UGX 80,000 credit")),
    }


def _catalogue(app: Any) -> Any:
    from pos.catalogue import Catalogue, quick_keys

    return Catalogue((), quick_keys(app.terminal.settings), None)


SHOTS: dict[str, Shot] = {}


def shots() -> dict[str, Shot]:
    if not SHOTS:
        SHOTS.update(_screens())
    return SHOTS


#: Names only (for parametrize ids), without importing the screens.
NAMES = ["home", "sign_in", "create_supervisor", "supervisor_pin", "scan", "card_summary",
         "hand_over", "amount", "pin", "percent", "basket", "tender", "change", "sale_receipt",
         "number", "token_result", "pending_result", "receipt", "journal", "journal_detail",
         "sale_detail", "void_receipt", "x_report", "shift_report", "settings", "operators",
         "new_pin", "kyc",
         "holder_hand_over", "message", "confirm", "choice", "text_prompt", "busy", "blocked",
         "demo_menu", "demo_cards"]
