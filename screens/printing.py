"""Printing off the UI loop: a print job (a receipt, a report, a VOID slip) runs in a
thread, the screen stays live, and a notification says when it is done or why not.

A printer that is slow, out of paper or unplugged blocks for seconds in its driver
(USB and serial time-outs); on the event loop that froze the screen and the systemd
watchdog's heartbeat with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("sente_pos.screens")

#: What the cashier is told when a print job raised (the detail goes to the log).
PRINT_FAILED = "The printer failed: nothing was printed"


def has_printer(app: Any) -> bool:
    """Whether this terminal has a receipt printer configured (kind "none" is the
    hardware's NullPrinter, ``configured = False``)."""
    printer = getattr(app.terminal, "printer", None)
    return printer is not None and getattr(printer, "configured", True)


async def print_in_thread(app: Any, job: Callable[..., str], *args: Any, **kw: Any) -> str:
    """Run ``job`` (blocking; returns the message for the cashier) in a thread and
    notify its message. Never raises: a printer problem never fails a sale."""
    try:
        message = await asyncio.to_thread(job, *args, **kw)
    except Exception:
        log.exception("print job failed")
        message = PRINT_FAILED
    printed = message.startswith("Printed")
    app.notify(message, severity="information" if printed else "warning")
    return message


def print_in_background(app: Any, job: Callable[..., str], *args: Any, **kw: Any) -> None:
    """Start ``job`` in a thread and return at once: the flow goes on (home, the next
    sale) while the printer works; a notification follows."""
    app.run_worker(print_in_thread(app, job, *args, **kw), group="print",
                   name="print", exit_on_error=False)


def text_job(printer: Any, text: str) -> Callable[[], str]:
    """A job printing ``text`` (a report) on ``printer``, as a message for the cashier."""
    def job() -> str:
        from pos.errors import PosError

        try:
            printer.print_text(text)
        except PosError as exc:
            return exc.message
        return "Printed"

    return job
