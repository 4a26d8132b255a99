"""Receipt printers over ESC/POS (python-escpos), plus a dummy and a null printer.

A receipt is rendered once into bytes (:func:`render_escpos`, through escpos'
``Dummy``) and written to the device in one go, so the golden test sees
exactly what the printer gets. Every device failure becomes a
:class:`PrinterError` with a message for the cashier; the sale itself is
never affected by the printer.

Devices are opened per job, never at start-up: a printer switched on after
the terminal, or unplugged and plugged back, just works on the next receipt.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from hardware.escposcache import load_capabilities
from pos.config import PrinterSettings
from pos.errors import PosError
from pos.text import printable

if TYPE_CHECKING:  # escpos (PIL, qrcode, barcode) costs ~0.5 s to import: only on first print
    from escpos.escpos import Escpos

    from pos.receipts import Block, Receipt  # the layout loads with the first receipt

log = logging.getLogger(__name__)

NOT_FOUND = "Printer not found"
OUT_OF_PAPER = "Printer is out of paper"
OFFLINE = "Printer offline"
NO_ACCESS = "Printer not accessible (permission denied)"
NO_PRINTER = "No printer: receipt shown on screen"

#: Real-time status requests (DLE EOT n) and their answer bits, Epson ESC/POS reference.
_RT_STATUS_ONLINE = b"\x10\x04\x01"
_RT_STATUS_PAPER = b"\x10\x04\x04"
#: Real-time status bits (DLE EOT n answers), Epson ESC/POS reference.
_OFFLINE_BIT = 0x08  # DLE EOT 1: bit 3 set = offline
_PAPER_END_BITS = 0x60  # DLE EOT 4: bits 5-6 = paper roll end
_PAPER_NEAR_END_BITS = 0x0C  # DLE EOT 4: bits 2-3 = paper roll near end

#: usblp's LPGETSTATUS ioctl and parallel-port status bits (linux/lp.h).
_LPABORT = 0x0604
_LPGETSTATUS = 0x060B
_LP_POUTPA = 0x20  # set = out of paper

#: ESC p 0 t1 t2: pulse drawer connector pin 2; the bytes python-escpos' ``cashdraw(2)``
#: sends (``escpos.constants.CD_KICK_2``), without importing escpos for it.
DRAWER_KICK = b"\x1bp\x0022"
_QR_SIZE = 6  # dots per module: a 12-digit ref is ~2 cm wide on 58 mm paper
_STATUS_TIMEOUT = 1.5  # seconds to wait for a status answer before printing anyway


class PrinterError(PosError):
    """The receipt could not be printed; ``message`` is for the cashier, ``detail`` for the log."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    ok: bool
    message: str


@runtime_checkable
class ReceiptPrinter(Protocol):
    def print_receipt(self, receipt: Receipt) -> None:
        """Print or raise :class:`PrinterError`."""

    def print_text(self, text: str) -> None:
        """Print plain text (a report) or raise :class:`PrinterError`."""

    def status(self) -> PrinterStatus:
        """Ready or not, with a message for the cashier; never raises."""


# -- rendering -------------------------------------------------------------


def _write_block(p: Escpos, block: Block, columns: int) -> None:
    from escpos.constants import QR_ECLEVEL_M

    from pos.receipts import fit_groups

    style = block.style
    if style == "header":
        p.set(align="center", bold=True, double_height=True)
        for line in block.lines:
            p.textln(line)
        p.set(align="left", bold=False, normal_textsize=True)
    elif style in ("center", "title"):
        p.set(align="center", bold=style == "title")
        for line in block.lines:
            p.textln(line)
        p.set(align="left", bold=False)
    elif style == "mark":
        p.set(align="center", bold=True, invert=True)
        for mark in block.lines:
            p.textln(f" {mark} ".center(columns))
        p.set(align="left", bold=False, invert=False)
    elif style == "token":
        p.set(align="center", bold=True, double_width=True, double_height=True)
        for line in fit_groups(block.lines, columns // 2):
            p.textln(line)
        p.set(align="left", bold=False, normal_textsize=True)
    elif style == "total":
        p.set(bold=True)
        for line in block.lines:
            p.textln(line)
        p.set(bold=False)
    elif style == "qr":
        p.set(align="center")
        p.qr(block.lines[0], ec=QR_ECLEVEL_M, size=_QR_SIZE, native=True)
        p.set(align="left")
        p.ln()
    else:  # rule, text
        for line in block.lines:
            p.textln(line)


def render_escpos(receipt: Receipt, columns: int = 32) -> bytes:
    """The receipt as one ESC/POS byte stream (init, layout, native QR, feed and cut)."""
    load_capabilities()
    from escpos.printer import Dummy

    from pos.receipts import layout

    p = Dummy()
    p.hw("INIT")
    for block in layout(receipt, columns):
        _write_block(p, block, columns)
    p.cut()
    return p.output


def render_text_job(text: str, columns: int = 32) -> bytes:
    """Plain text already laid out in ``columns`` (a report), fed and cut."""
    load_capabilities()
    from escpos.printer import Dummy

    p = Dummy()
    p.hw("INIT")
    for line in text.splitlines():
        p.textln(printable(line)[:columns])  # no printer commands smuggled in; spaces kept
    p.cut()
    return p.output


# -- device errors -----------------------------------------------------------


def _error_from_os(exc: OSError, *, not_found: str = NOT_FOUND) -> PrinterError:
    """usblp answers ENOSPC for paper out and EIO for off-line (drivers/usb/class/usblp.c)."""
    code = exc.errno
    if code == errno.ENOSPC:
        return PrinterError(OUT_OF_PAPER, detail=str(exc))
    if code in (errno.EACCES, errno.EPERM):
        return PrinterError(NO_ACCESS, detail=str(exc))
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return PrinterError(not_found, detail=str(exc))
    return PrinterError(OFFLINE, detail=str(exc))


def _error_from_status(online: int | None, paper: int | None) -> PrinterError | None:
    if online is not None and online & _OFFLINE_BIT:
        # An off-line printer often is one with its cover open or out of paper; say which if known.
        if paper is not None and paper & _PAPER_END_BITS:
            return PrinterError(OUT_OF_PAPER, detail=f"status {online:#04x}/{paper:#04x}")
        return PrinterError(OFFLINE, detail=f"status {online:#04x}")
    if paper is not None and paper & _PAPER_END_BITS:
        return PrinterError(OUT_OF_PAPER, detail=f"paper status {paper:#04x}")
    return None


# -- printers ----------------------------------------------------------------


class _DeviceFile:
    """A printer device file such as ``/dev/usb/lp0`` (the kernel usblp driver).

    Unlike escpos' ``File`` it never truncates or creates files under ``/dev``
    and it reads the printer's status with the ``LPGETSTATUS`` ioctl.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def open(self) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_NOCTTY
        if not self.path.startswith("/dev/"):
            flags |= os.O_CREAT  # a plain file (demo, spooling); never invent device nodes
        self._fd = os.open(self.path, flags, 0o600)
        try:
            import fcntl

            # LPABORT: a stalled write fails (usblp: ENOSPC) instead of hanging forever.
            fcntl.ioctl(self._fd, _LPABORT, 1)
        except (OSError, ImportError):
            pass  # a plain file

    def _raw(self, msg: bytes) -> None:
        assert self._fd is not None
        view = memoryview(msg)
        while view:
            view = view[os.write(self._fd, view):]

    def lp_status(self) -> int | None:
        """The parallel-port status byte, or None when the file is no printer."""
        if self._fd is None:
            return None
        try:
            import fcntl

            buf = fcntl.ioctl(self._fd, _LPGETSTATUS, b"\0" * 4)
        except (OSError, ImportError):
            return None  # ENOTTY: a plain file
        return int(struct.unpack("i", buf)[0])  # the kernel writes a native int

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _error_from_lp(status: int | None) -> PrinterError | None:
    """Paper out is the one bit trusted: cheap printers report select/error lines loosely."""
    if status is None or status == 0xFF:
        return None
    if status & _LP_POUTPA:
        return PrinterError(OUT_OF_PAPER, detail=f"lp status {status:#04x}")
    return None


class EscposPrinter:
    """A real ESC/POS printer on USB, serial, network (port 9100) or a device file.

    ``print_receipt`` blocks (up to ``timeout`` seconds per step): call it from
    a worker thread, never from the UI loop.
    """

    def __init__(
        self,
        settings: PrinterSettings,
        *,
        timeout: float = 5.0,
        status_timeout: float = _STATUS_TIMEOUT,
    ) -> None:
        if settings.kind == "none":
            raise ValueError("EscposPrinter needs a printer kind other than 'none'")
        self.settings = settings
        self.timeout = timeout
        self.status_timeout = status_timeout
        """Seconds to wait for a status answer; a printer that never answers still prints."""
        self._lock = threading.Lock()

    def _where(self) -> str:
        s = self.settings
        return {
            "usb": f"USB {s.usb_vendor:04x}:{s.usb_product:04x}",
            "serial": s.serial_device,
            "network": f"{s.host}:{s.port}",
            "file": s.file_path,
        }[s.kind]

    # The device object is created per job: nothing touches hardware at start-up.
    def _device(self) -> Escpos | _DeviceFile:
        s = self.settings
        load_capabilities()
        if s.kind == "usb":
            from escpos.printer import Usb

            if not Usb.is_usable():
                raise PrinterError("Printer driver missing: install pyusb", detail="escpos Usb")
            return Usb(s.usb_vendor, s.usb_product, timeout=int(self.timeout * 1000))
        if s.kind == "serial":
            from escpos.printer import Serial

            if not Serial.is_usable():
                raise PrinterError("Printer driver missing: install pyserial",
                                   detail="escpos Serial")
            return Serial(devfile=s.serial_device, baudrate=s.serial_baudrate,
                          timeout=self.status_timeout)
        if s.kind == "network":
            from escpos.printer import Network

            return Network(s.host, port=s.port, timeout=self.timeout)
        return _DeviceFile(s.file_path)

    def _open(self) -> Escpos | _DeviceFile:
        from escpos.exceptions import DeviceNotFoundError

        dev = self._device()
        not_found = OFFLINE if self.settings.kind == "network" else NOT_FOUND
        try:
            dev.open()
        except DeviceNotFoundError as exc:
            raise PrinterError(not_found, detail=f"{self._where()}: {exc}") from exc
        except OSError as exc:
            raise _error_from_os(exc, not_found=not_found) from exc
        if self.settings.kind == "serial" and not isinstance(dev, _DeviceFile):
            # Hardware flow control against a switched-off printer would block forever.
            dev.device.write_timeout = self.timeout
        return dev

    def _query(self, dev: Escpos, request: bytes) -> int | None:
        """One real-time status byte (DLE EOT n), or None when the printer does not answer."""
        sock = getattr(dev, "_device", None) if self.settings.kind == "network" else None
        if sock is not None:
            sock.settimeout(self.status_timeout)
        try:
            answer = dev.query_status(request)
        except (TimeoutError, NotImplementedError):
            return None
        except OSError as exc:
            raise _error_from_os(exc, not_found=OFFLINE) from exc
        except Exception as exc:  # pyusb USBTimeoutError / USBError: status unknown
            log.debug("printer status query failed: %s", exc)
            return None
        finally:
            if sock is not None:
                sock.settimeout(self.timeout)
        return answer[0] if len(answer) else None

    def _check(self, dev: Escpos | _DeviceFile) -> tuple[int | None, int | None]:
        """Raise if the printer says it cannot print; return (online, paper) status bytes."""
        if isinstance(dev, _DeviceFile):
            lp = dev.lp_status()
            error = _error_from_lp(lp)
            if error:
                raise error
            return None, None
        online = self._query(dev, _RT_STATUS_ONLINE)
        paper = self._query(dev, _RT_STATUS_PAPER)
        error = _error_from_status(online, paper)
        if error:
            raise error
        return online, paper

    def print_receipt(self, receipt: Receipt) -> None:
        self._print(render_escpos(receipt, self.settings.columns))

    def print_text(self, text: str) -> None:
        """A report (X / Z) laid out for the paper width."""
        self._print(render_text_job(text, self.settings.columns))

    def _print(self, data: bytes) -> None:
        from escpos.exceptions import Error as EscposError

        with self._lock:
            dev = self._open()
            try:
                self._check(dev)
                dev._raw(data)
            except PrinterError:
                raise
            except OSError as exc:
                raise _error_from_os(exc) from exc
            except EscposError as exc:
                raise PrinterError(OFFLINE, detail=str(exc)) from exc
            finally:
                _close(dev)

    def status(self) -> PrinterStatus:
        with self._lock:
            try:
                dev = self._open()
            except PrinterError as exc:
                return PrinterStatus(False, exc.message)
            try:
                online, paper = self._check(dev)
            except PrinterError as exc:
                return PrinterStatus(False, exc.message)
            finally:
                _close(dev)
        if paper is not None and paper & _PAPER_NEAR_END_BITS:
            return PrinterStatus(True, "Printer ready (paper low)")
        if online is None and paper is None:
            return PrinterStatus(True, f"Printer connected ({self._where()})")
        return PrinterStatus(True, "Printer ready")


    def kick_drawer(self) -> None:
        """Pulse the cash drawer on connector pin 2 (ESC p 0, python-escpos ``cashdraw``)."""
        self._print(DRAWER_KICK)


def _close(dev: Escpos | _DeviceFile) -> None:
    try:
        dev.close()
    except Exception as exc:  # closing a dead link must not hide the real outcome
        log.debug("printer close failed: %s", exc)


class DummyPrinter:
    """Keeps the bytes of every receipt (escpos ``Dummy``); for tests and the demo.

    Set ``fault`` to one of the cashier messages (``OUT_OF_PAPER`` ...) to make
    the next prints fail the way a real printer would.
    """

    def __init__(self, columns: int = 32) -> None:
        self.columns = columns
        self.jobs: list[bytes] = []
        self.fault: str | None = None
        self.kicks = 0

    @property
    def output(self) -> bytes:
        return b"".join(self.jobs)

    def print_receipt(self, receipt: Receipt) -> None:
        if self.fault:
            raise PrinterError(self.fault)
        self.jobs.append(render_escpos(receipt, self.columns))

    def print_text(self, text: str) -> None:
        if self.fault:
            raise PrinterError(self.fault)
        self.jobs.append(render_text_job(text, self.columns))

    def kick_drawer(self) -> None:
        """Records the kick (``kicks``) as a real printer would get it."""
        if self.fault:
            raise PrinterError(self.fault)
        self.kicks += 1
        self.jobs.append(DRAWER_KICK)

    def status(self) -> PrinterStatus:
        if self.fault:
            return PrinterStatus(False, self.fault)
        return PrinterStatus(True, "Printer ready (dummy)")


class NoPrinter(PrinterError):
    """Nothing was printed because no printer is configured (not a fault)."""


class NullPrinter:
    """No printer configured: receipts are shown on screen only.

    ``print_receipt`` reports that by raising :class:`NoPrinter`, so a caller
    that turns ``PrinterError`` into a message for the cashier never says "Printed".
    """

    #: The screens show the receipt instead of offering to print it (screens.printing).
    configured = False

    def print_receipt(self, receipt: Receipt) -> None:
        raise NoPrinter(NO_PRINTER)

    def print_text(self, text: str) -> None:
        raise NoPrinter(NO_PRINTER)

    def kick_drawer(self) -> None:
        """No printer, so no drawer on it: counted (``kicks``), nothing else."""
        self.kicks = getattr(self, "kicks", 0) + 1

    def status(self) -> PrinterStatus:
        return PrinterStatus(True, "no printer")


def make_printer(settings: PrinterSettings, **kw: Any) -> ReceiptPrinter:
    """The printer the settings describe (nothing is opened yet)."""
    if settings.kind == "none":
        return NullPrinter()
    return EscposPrinter(settings, **kw)

