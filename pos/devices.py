"""The receipt printer as the terminal drives it (a Protocol: the domain imports no
hardware). ``hardware.printer``'s printers satisfy it structurally; the wiring
(``sente_pos``) hands one to :class:`pos.terminal.Terminal`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pos.receipts import Receipt


class Printer(Protocol):
    """Prints or raises ``PosError`` (``hardware.printer.PrinterError``) with a message
    for the cashier. A printer that can open a cash drawer also has ``kick_drawer()``."""

    def print_receipt(self, receipt: Receipt) -> None: ...

    def print_text(self, text: str) -> None: ...
