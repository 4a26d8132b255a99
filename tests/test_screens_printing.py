"""Printing runs off the UI loop (issue 13: "Printing blocks the UI loop"): with a printer
that hangs in its driver, keys are still handled and the screen moves on; a notification
says when the job is done or why not. "Print" with no printer shows the receipt."""

from __future__ import annotations

import threading

import pytest

from hardware.printer import DummyPrinter, NullPrinter
from pos.terminal import Terminal
from screens.dialogs import ChoiceDialog
from screens.home import HomeScreen
from screens.receipt import ReceiptScreen, offer_receipt
from tests.screens_support import app_for, make_settings, screen_text, wait_for, wait_screen
from tests.test_snapshots_journal import PAID, voided_payment


class StuckPrinter(DummyPrinter):
    """A printer whose driver blocks until the test releases it (a USB time-out)."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()
        self.threads: list[str] = []

    def _wait(self) -> None:
        self.threads.append(threading.current_thread().name)
        self.started.set()
        assert self.release.wait(30), "the test never released the printer"

    def print_receipt(self, receipt):
        self._wait()
        super().print_receipt(receipt)

    def print_text(self, text):
        self._wait()
        super().print_text(text)


@pytest.fixture
async def counter(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))

    async def open_with(printer):
        t = await Terminal.open(make_settings(tmp_path), printer=printer)
        t.add_operator("ann", "cashier", "1111")
        t.sign_in("ann", "1111")
        opened.append(t)
        return t

    opened: list[Terminal] = []
    yield open_with
    for t in opened:
        await t.aclose()


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


async def until_started(pilot, printer: StuckPrinter) -> None:
    await wait_for(pilot, printer.started.is_set, what="the print job to start")


async def test_a_hung_printer_does_not_freeze_the_receipt_screen(counter):
    printer = StuckPrinter()
    term = await counter(printer)
    app = app_for(term.settings, term, printer=printer)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        voided_payment(app)
        await app.push_screen(ReceiptScreen(PAID))
        await wait_screen(pilot, ReceiptScreen)
        await pilot.press("p")
        await until_started(pilot, printer)
        # The printer is stuck in its driver; the screen still answers keys.
        await pilot.press("escape")
        await wait_screen(pilot, HomeScreen)
        await pilot.press("5")  # and a new task starts: the journal
        await wait_for(pilot, lambda: not isinstance(app.screen, HomeScreen), what="journal")
        assert not printer.release.is_set() and printer.jobs == []
        printer.release.set()
        await wait_for(pilot, lambda: "Printed" in notes(app), what="the Printed notice")
    assert PAID.encode() in printer.output
    assert threading.main_thread().name not in printer.threads


async def test_the_receipt_choice_goes_home_while_printing(counter):
    printer = StuckPrinter()
    term = await counter(printer)
    app = app_for(term.settings, term, printer=printer)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        voided_payment(app)
        app.run_worker(offer_receipt(app, PAID), group="flow")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("1")  # print
        await until_started(pilot, printer)
        await wait_screen(pilot, HomeScreen)  # the flow did not wait for the printer
        printer.release.set()
        await wait_for(pilot, lambda: "Printed" in notes(app), what="the Printed notice")


async def test_a_report_prints_in_a_thread_and_a_failure_is_a_notice(counter):
    from screens.reports import ReportScreen

    printer = StuckPrinter()
    term = await counter(printer)
    app = app_for(term.settings, term, printer=printer)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await app.push_screen(ReportScreen(term.x_report()))
        await wait_screen(pilot, ReportScreen)
        printer.fault = "Printer out of paper"
        await pilot.press("p")
        await until_started(pilot, printer)
        await pilot.press("escape")
        await wait_screen(pilot, HomeScreen)
        printer.release.set()
        await wait_for(pilot, lambda: "Printer out of paper" in notes(app), what="the fault")
        assert app.is_running and not app.errors_shown


async def test_a_printer_raising_the_unexpected_is_a_notice_not_a_crash(counter):
    class Broken(DummyPrinter):
        def print_receipt(self, receipt):
            raise RuntimeError("usb stack exploded")

    term = await counter(Broken())
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        voided_payment(app)
        await app.push_screen(ReceiptScreen(PAID))
        await wait_screen(pilot, ReceiptScreen)
        await pilot.press("p")
        await wait_for(pilot, lambda: any("printer failed" in n for n in notes(app)),
                       what="the failure notice")
        assert "usb stack" not in screen_text(app)
        assert app.is_running


@pytest.mark.parametrize("printer", [None, NullPrinter()], ids=["none", "kind-none"])
async def test_print_with_no_printer_shows_the_receipt(counter, printer):
    """'Print' with no printer said 'receipt shown on screen' and went home."""
    term = await counter(printer)
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        voided_payment(app)
        app.run_worker(offer_receipt(app, PAID), group="flow")
        await wait_screen(pilot, ChoiceDialog)
        await pilot.press("1")  # print
        await wait_screen(pilot, ReceiptScreen)
        assert PAID in screen_text(app)

