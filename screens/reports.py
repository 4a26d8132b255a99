"""X report, Z (day close, supervisor override when items are unsynced), and sync now."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from pos.errors import InputError, PosError
from screens.dialogs import ConfirmDialog, Step
from screens.printing import print_in_background, text_job
from screens.widgets import Plain

if TYPE_CHECKING:
    from pos.reports import Report
    from pos.sync import SyncReport
    from screens.app import SentePOSApp

T = TypeVar("T")
P = ParamSpec("P")


class ReportScreen(Step[str]):
    """A report as it would print; P prints it, Z closes the day."""

    BINDINGS = [
        Binding("escape", "cancel", "Back"),
        Binding("p", "print", "Print"),
        Binding("z", "close_day", "Close day (Z)"),
    ]

    def __init__(self, report: Report) -> None:
        super().__init__(f"{report.kind} report")
        self.report = report

    def body(self) -> ComposeResult:
        from pos.reports import render_report

        app = self.app
        self.text = render_report(self.report, app.settings.printer.columns)
        yield VerticalScroll(Plain(self.text, classes="receipt-paper report-text",
                                   id="report-text"))

    def action_print(self) -> None:
        app = self.app
        printer = app.terminal.printer or app.printer
        if printer is None:
            self.notify("No printer: the report is on screen")
        else:
            print_in_background(app, text_job(printer, self.text))

    def action_close_day(self) -> None:
        self.dismiss("z")


#: A report that takes longer than this gets a 'please wait' box (it runs in a thread).
BUSY_AFTER = 0.25


async def _off_loop(app: SentePOSApp, text: str, fn: Callable[P, T], /,
                    *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` in a thread, off the event loop (the watchdog's heartbeat and key
    presses go on); show ``text`` in a busy box if it takes long."""
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    done, _ = await asyncio.wait({task}, timeout=BUSY_AFTER)
    if done:
        return task.result()
    result: T = await app.busy(text, task)
    return result


async def close_day(app: SentePOSApp) -> Report | None:
    from pos.reports import EmptyDay

    if not await app.push_screen_wait(ConfirmDialog(
            "Close the day", "Print the Z report and start a new day?")):
        return None
    allow_empty = False
    supervisor = None
    while True:
        try:
            report = await _off_loop(app, "Closing the day...", app.terminal.close_day,
                                     override_by=supervisor, allow_empty=allow_empty,
                                     finish=False)
        except EmptyDay as exc:
            if allow_empty or not await app.push_screen_wait(ConfirmDialog(
                    "Empty day", f"{exc.message}\n\nClose it anyway?")):
                return None
            allow_empty = True
        except InputError as exc:
            if supervisor is not None or not await app.push_screen_wait(ConfirmDialog(
                    "Day close", f"{exc.message}\n\nOverride with a supervisor PIN?")):
                return None
            supervisor = await app.ask_supervisor("close the day with unsynced items")
            if supervisor is None:
                return None
        else:
            # The Z is committed: show it now; its backup (a copy of the whole journal)
            # and the archive run go on in a thread while the counter sells.
            app.finish_day_close(report)
            return report


async def reports(app: SentePOSApp) -> None:
    report: Report | None = await _off_loop(app, "Computing the report...",
                                            app.terminal.x_report, all_refs=False)
    while report is not None:
        choice = await app.push_screen_wait(ReportScreen(report))
        if choice != "z" or report.kind == "Z":
            return
        report = await close_day(app)


async def _probe_then_sync(app: SentePOSApp) -> SyncReport:
    """The cashier asked: probe the links now (floats are a cheap request) rather than
    wait for the link monitor's back-off, then drain the outbox."""
    with contextlib.suppress(PosError):
        await app.terminal.refresh_floats(probe=True)
    return await app.terminal.sync_now(probe=True)


async def sync_now(app: SentePOSApp) -> None:
    rep = await app.busy("Sending queued transactions...", _probe_then_sync(app))
    if rep.busy:
        await app.show_message("Sync", "A sync is already running.")
        return
    parts = [f"Settled: {len(rep.settled)}", f"Declined: {len(rep.declined)}",
             f"Failed: {len(rep.failed)}", f"Pending: {len(rep.pending)}",
             f"Still queued: {rep.remaining}"]
    if rep.offline:
        parts.insert(0, "The link is still down.")
    if rep.declined:
        parts.append("Declined offline sales are flagged in the journal (F).")
    severity = "warning" if rep.declined or rep.failed or rep.offline else "information"
    await app.show_message("Sync", "\n".join(parts), severity)
