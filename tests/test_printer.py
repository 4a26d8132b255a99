"""Receipt layout (text and ESC/POS) and the printers' error paths.

The network printer tests talk to a fake ESC/POS printer on 127.0.0.1 that
answers the real-time status requests (DLE EOT n) the way a real one does.
Set ``UPDATE_GOLDEN=1`` to rewrite the golden files after a deliberate change.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.printer import (
    NOT_FOUND,
    OFFLINE,
    OUT_OF_PAPER,
    DummyPrinter,
    EscposPrinter,
    NoPrinter,
    NullPrinter,
    PrinterError,
    PrinterStatus,
    ReceiptPrinter,
    _error_from_lp,
    make_printer,
    render_escpos,
)
from pos.config import PrinterSettings
from pos.errors import PosError
from pos.money import Money
from pos.receipts import MARKS, Receipt, mask_card_number, render_text

GOLDEN = Path(__file__).parent / "golden"
EAT = timezone(timedelta(hours=3))
TOKEN = "66430474307561657038"


def vend_receipt(**changes: object) -> Receipt:
    fields: dict[str, object] = dict(
        merchant_name="Sente Shop",
        terminal_id="POS-001",
        receipt_no=42,
        ref="171234500042",
        timestamp=datetime(2024, 5, 1, 14, 3, 22, tzinfo=EAT),
        title="ELECTRICITY TOKEN",
        total=Money(300_000, "KES"),
        operator="Alice",
        tender="CARD",
        card_number="4000123412341234",
        meter="01234567890",
        customer_name="JOHN DOE",
        token=TOKEN,
        units="12.5 kWh",
        charges=[("Fixed charge", "KES 150.00"), ("VAT", "KES 24.00")],
        provider_receipt_no="RCT-998877",
        marks={"OFFLINE"},
        notes=[],
    )
    fields.update(changes)
    return Receipt(**fields)  # type: ignore[arg-type]


def _golden(name: str, data: bytes) -> bytes:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    return path.read_bytes()


# -- ESC/POS bytes -------------------------------------------------------------


def test_vend_receipt_matches_golden_bytes() -> None:
    data = render_escpos(vend_receipt(), 32)
    assert data == _golden("vend_receipt.escpos", data)


def test_vend_receipt_text_matches_golden() -> None:
    text = render_text(vend_receipt(), 32)
    assert text == _golden("vend_receipt.txt", text.encode()).decode()


def test_escpos_stream_structure() -> None:
    data = render_escpos(vend_receipt(), 32)
    assert data.startswith(b"\x1b@")  # ESC @ initialise
    assert data.endswith(b"\x1dV\x00")  # GS V 0 full cut
    # Token LARGE: ESC ! 0x30 (double width + height) right before the groups,
    # re-flowed to 16 columns because each character is twice as wide.
    big = data.index(b"\x1b!0")
    assert data.index(b"6643 0474 3075\n6165 7038\n") > big
    assert data.index(b"\x1b!\x00", big) > data.index(b"6165 7038")
    # OFFLINE mark printed inverted (GS B 1 ... GS B 0).
    on, off = data.index(b"\x1dB\x01"), data.index(b"\x1dB\x00")
    assert on < data.index(b"OFFLINE") < off
    # Native QR (GS ( k) holding the ref: store data fn 80, print fn 81.
    assert b"\x1d(k\x0f\x001P0171234500042" in data
    assert b"\x1d(k\x03\x001Q0" in data
    # The card number never reaches the printer in clear.
    assert b"4000123412341234" not in data
    assert b"************1234" in data


def test_escpos_lines_fit_paper() -> None:
    data = render_escpos(vend_receipt(merchant_name="A" * 70, notes=["x " * 40]), 32)
    for line in _printable_lines(data):
        assert len(line) <= 32, line


_COMMAND = re.compile(rb"\x1b@|\x1b[!Eadt].|\x1d[BV].")


def _printable_lines(data: bytes) -> list[str]:
    """The text our stream prints, with the commands we emit taken out."""
    text = data.split(b"\x1d(k")[0] + data.split(b"\x1d(k\x03\x001Q0")[1]  # skip the QR
    assert not re.search(rb"[\x00-\x09\x0b-\x1f]", _COMMAND.sub(b"", text))  # all known
    return [line.decode("cp437") for line in _COMMAND.sub(b"", text).split(b"\n")]


# -- text layout -----------------------------------------------------------------


def test_text_layout_token_and_rows() -> None:
    text = render_text(vend_receipt(), 32)
    lines = text.splitlines()
    assert all(len(line) <= 32 for line in lines)
    assert "    6643 0474 3075 6165 7038" in lines  # token centred on its own line
    assert "Meter                01234567890" in lines
    assert "Card            ************1234" in lines
    assert "TOTAL               KES 3,000.00" in lines
    assert "Date         2024-05-01 14:03:22" in lines
    assert lines[0].strip() == "Sente Shop"
    assert lines[1].strip() == "Terminal POS-001"
    assert lines[-1].strip() == "Keep this receipt"


def test_token_wraps_by_groups_on_narrow_paper() -> None:
    lines = render_text(vend_receipt(), 20).splitlines()
    i = lines.index("TOKEN".center(20).rstrip())
    assert [line.strip() for line in lines[i + 1 : i + 3]] == ["6643 0474 3075 6165", "7038"]


@pytest.mark.parametrize("mark", MARKS)
def test_each_mark_is_a_banner(mark: str) -> None:
    lines = render_text(vend_receipt(marks={mark}), 32).splitlines()
    assert [line for line in lines if line.startswith("*")] == [f" {mark} ".center(32, "*")]


def test_marks_print_in_fixed_order() -> None:
    text = render_text(vend_receipt(marks={"REFUNDED", "DUPLICATE", "PENDING"}), 32)
    assert text.index(" DUPLICATE ") < text.index(" PENDING ") < text.index(" REFUNDED ")


def test_long_names_wrap_and_values_move_below() -> None:
    receipt = vend_receipt(
        merchant_name="Kampala Road Supermarket and General Merchandise Ltd",
        customer_name="NAKAWA OKELLO MUKASA BYARUHANGA",
        notes=["Card credited back UGX 5,000 (ref 123456789012)"],
    )
    lines = render_text(receipt, 32).splitlines()
    assert all(len(line) <= 32 for line in lines)
    assert lines[0].strip() == "Kampala Road Supermarket and"
    assert lines[1].strip() == "General Merchandise Ltd"
    i = lines.index("Customer")
    assert lines[i + 1] == " NAKAWA OKELLO MUKASA BYARUHANGA"
    assert "Card credited back UGX 5,000" in lines
    assert "(ref 123456789012)" in lines


def test_empty_fields_are_not_printed() -> None:
    receipt = Receipt(
        merchant_name="Sente Shop",
        terminal_id="POS-001",
        receipt_no=7,
        ref="171234500007",
        timestamp=datetime(2024, 5, 1, 9, 0, tzinfo=UTC),
        title="CARD PAYMENT",
        total=Money(5_000, "UGX"),
        lines=[("Wallet", "Current Account")],
    )
    text = render_text(receipt, 32)
    for absent in ("Meter", "TOKEN", "Units", "Operator", "Paid by", "*"):
        assert absent not in text
    assert "TOTAL                  UGX 5,000" in text.splitlines()
    assert "Wallet           Current Account" in text.splitlines()


def test_control_characters_never_reach_paper() -> None:
    # ESC @ (initialise) is an escape sequence: dropped whole; GS and NUL are dropped.
    receipt = vend_receipt(customer_name="EVIL\x1b@\x1dV\x00NAME\nTWO\x1b]0;t\x07")
    assert "EVILVNAME TWO" in render_text(receipt, 32)
    data = render_escpos(receipt, 32)
    assert b"EVILVNAME TWO" in data
    assert b"]0;t" not in data and b"\x07" not in data
    assert data.count(b"\x1b@") == 1  # only our own initialise
    assert data.count(b"\x1dV") == 1  # only our own cut


def test_receipt_rejects_naive_time_and_unknown_marks() -> None:
    with pytest.raises(ValueError, match="timezone"):
        vend_receipt(timestamp=datetime(2024, 5, 1, 14, 3))
    with pytest.raises(ValueError, match="marks"):
        vend_receipt(marks={"PAID MAYBE"})


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("4000123412341234", "************1234"),
        ("4000 1234 1234 1234", "************1234"),
        ("****1234", "****1234"),
        ("123", "***"),
        ("", ""),
    ],
)
def test_mask_card_number(number: str, masked: str) -> None:
    assert mask_card_number(number) == masked
    assert vend_receipt(card_number=number).card_number == masked


_text = st.text(st.characters(codec="utf-8"), max_size=80)


@settings(max_examples=150, deadline=None)
@given(
    columns=st.integers(16, 48),
    merchant=_text,
    customer=_text,
    lines=st.lists(st.tuples(_text, _text), max_size=4),
    notes=st.lists(_text, max_size=3),
    marks=st.sets(st.sampled_from(MARKS)),
    token=st.text("0123456789", max_size=24),
    minor=st.integers(-(10**12), 10**12),
)
def test_no_line_exceeds_columns(
    columns: int,
    merchant: str,
    customer: str,
    lines: list[tuple[str, str]],
    notes: list[str],
    marks: set[str],
    token: str,
    minor: int,
) -> None:
    receipt = vend_receipt(
        merchant_name=merchant,
        customer_name=customer,
        lines=lines,
        notes=notes,
        marks=marks,
        token=token,
        total=Money(minor, "UGX"),
    )
    for line in render_text(receipt, columns).splitlines():
        assert len(line) <= columns


# -- printers -------------------------------------------------------------------


def test_dummy_printer_keeps_bytes_and_simulates_faults() -> None:
    printer = DummyPrinter()
    assert isinstance(printer, ReceiptPrinter)
    printer.print_receipt(vend_receipt())
    assert printer.output == render_escpos(vend_receipt(), 32)
    printer.fault = OUT_OF_PAPER
    with pytest.raises(PrinterError, match="out of paper"):
        printer.print_receipt(vend_receipt())
    assert printer.status().ok is False
    assert len(printer.jobs) == 1


def test_null_printer_and_factory() -> None:
    printer = make_printer(PrinterSettings(kind="none"))
    assert isinstance(printer, NullPrinter)
    assert printer.status().ok and printer.status().message == "no printer"
    # Reported, so the cashier is never told "Printed" when nothing was.
    with pytest.raises(NoPrinter) as info:
        printer.print_receipt(vend_receipt())
    assert info.value.message == "No printer: receipt shown on screen"
    assert isinstance(info.value, PrinterError)


def test_factory_opens_nothing_at_start_up() -> None:
    # Nothing listens on this port: building the printer must still succeed.
    with _refusing_port() as port:
        printer = make_printer(PrinterSettings(kind="network", host="127.0.0.1", port=port))
        assert isinstance(printer, EscposPrinter)


def test_file_printer_writes_the_golden_stream(tmp_path: Path) -> None:
    out = tmp_path / "spool.bin"
    printer = make_printer(PrinterSettings(kind="file", file_path=str(out)))
    printer.print_receipt(vend_receipt())
    printer.print_receipt(vend_receipt(receipt_no=43))
    first = render_escpos(vend_receipt(), 32)
    assert out.read_bytes() == first + render_escpos(vend_receipt(receipt_no=43), 32)
    assert printer.status().ok


@pytest.mark.parametrize("path", ["/dev/usb/lp-sente-absent", "{tmp}/no/such/dir/lp0"])
def test_absent_printer_is_a_clear_error(path: str, tmp_path: Path) -> None:
    path = path.format(tmp=tmp_path)
    printer = make_printer(PrinterSettings(kind="file", file_path=path))
    with pytest.raises(PrinterError) as info:
        printer.print_receipt(vend_receipt())
    assert info.value.message == NOT_FOUND
    assert isinstance(info.value, PosError)
    assert printer.status().ok is False
    assert printer.status().message == NOT_FOUND
    assert not Path("/dev/usb/lp-sente-absent").exists()  # never creates device nodes


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (0x18, None),  # PSELECD | PERRORP: on-line, no error
        (0x38, OUT_OF_PAPER),  # + POUTPA
        (0x30, OUT_OF_PAPER),  # paper out with the error line asserted
        (0x00, None),  # select/error lines reported loosely by cheap printers: print anyway
        (0xFF, None),  # garbage
        (None, None),  # not a printer device (plain file): unknown
    ],
)
def test_usblp_status_bits(status: int | None, message: str | None) -> None:
    error = _error_from_lp(status)
    assert (error.message if error else None) == message


# -- a fake network printer that answers DLE EOT n ----------------------------------


class FakeNetworkPrinter:
    """A TCP ESC/POS printer on 127.0.0.1: answers status queries, keeps the rest."""

    def __init__(self, online: int = 0x12, paper: int = 0x12, answer: bool = True) -> None:
        self.online, self.paper, self.answer = online, paper, answer
        self.received = bytearray()
        self.queries: list[bytes] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._server.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                while True:
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        break
                    if not chunk:
                        break
                    if chunk in (b"\x10\x04\x01", b"\x10\x04\x04"):
                        self.queries.append(chunk)
                        if self.answer:
                            conn.sendall(bytes([self.online if chunk[2] == 1 else self.paper]))
                    else:
                        self.received += chunk

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._server.close()

    def printer(self) -> EscposPrinter:
        settings = PrinterSettings(kind="network", host="127.0.0.1", port=self.port)
        return EscposPrinter(settings, timeout=2, status_timeout=0.3)


@pytest.fixture
def fake() -> Iterator[FakeNetworkPrinter]:
    server = FakeNetworkPrinter()
    yield server
    server.close()


def _wait_for(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """The fake printer's thread may still be reading when the client has closed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)


def test_network_printer_checks_status_then_prints(fake: FakeNetworkPrinter) -> None:
    printer = fake.printer()
    printer.print_receipt(vend_receipt())
    expected = render_escpos(vend_receipt(), 32)
    _wait_for(lambda: len(fake.received) >= len(expected))
    assert bytes(fake.received) == expected
    assert fake.queries == [b"\x10\x04\x01", b"\x10\x04\x04"]
    assert printer.status().message == "Printer ready"


def test_network_printer_out_of_paper(fake: FakeNetworkPrinter) -> None:
    fake.paper = 0x72  # DLE EOT 4: paper roll end (bits 5-6) + fixed bits
    printer = fake.printer()
    with pytest.raises(PrinterError) as info:
        printer.print_receipt(vend_receipt())
    assert info.value.message == OUT_OF_PAPER == "Printer is out of paper"
    assert printer.status().ok is False
    assert printer.status().message == OUT_OF_PAPER
    assert fake.received == b""  # nothing half-printed


def test_network_printer_offline_with_paper_out_says_paper(fake: FakeNetworkPrinter) -> None:
    fake.online, fake.paper = 0x1A, 0x72  # off-line because the roll ran out
    with pytest.raises(PrinterError, match="out of paper"):
        fake.printer().print_receipt(vend_receipt())


def test_network_printer_offline(fake: FakeNetworkPrinter) -> None:
    fake.online = 0x1A  # DLE EOT 1 bit 3: off-line (cover open, error)
    with pytest.raises(PrinterError) as info:
        fake.printer().print_receipt(vend_receipt())
    assert info.value.message == OFFLINE
    assert fake.received == b""


def test_network_printer_paper_low_still_prints(fake: FakeNetworkPrinter) -> None:
    fake.paper = 0x1E  # near end
    printer = fake.printer()
    assert printer.status() == PrinterStatus(True, "Printer ready (paper low)")
    printer.print_receipt(vend_receipt())
    expected = render_escpos(vend_receipt(), 32)
    _wait_for(lambda: len(fake.received) >= len(expected))
    assert bytes(fake.received) == expected


def test_printer_that_never_answers_status_still_prints(fake: FakeNetworkPrinter) -> None:
    fake.answer = False
    printer = fake.printer()
    printer.print_receipt(vend_receipt())
    expected = render_escpos(vend_receipt(), 32)
    _wait_for(lambda: len(fake.received) >= len(expected))
    assert bytes(fake.received) == expected


def test_network_printer_switched_off() -> None:
    with _refusing_port() as port:
        printer = EscposPrinter(
            PrinterSettings(kind="network", host="127.0.0.1", port=port), timeout=1
        )
        with pytest.raises(PrinterError) as info:
            printer.print_receipt(vend_receipt())
        assert info.value.message == OFFLINE
        assert printer.status().ok is False


@contextlib.contextmanager
def _refusing_port() -> Iterator[int]:
    """A port that refuses connections: bound (so no parallel test can take it) and
    not listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def test_device_file_path_is_opened_without_creating(tmp_path: Path) -> None:
    # /dev/null stands in for /dev/usb/lp0: a character device that is no printer
    # (LPABORT / LPGETSTATUS answer ENOTTY), so the receipt is written unchecked.
    printer = make_printer(PrinterSettings(kind="file", file_path="/dev/null"))
    printer.print_receipt(vend_receipt())
    assert printer.status() == PrinterStatus(True, "Printer connected (/dev/null)")


@pytest.mark.parametrize(("kind", "module", "package"), [("usb", "usb", "pyusb"),
                                                        ("serial", "serial", "pyserial")])
def test_missing_driver_is_a_clear_error(kind: str, module: str, package: str) -> None:
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{package} is installed")
    printer = make_printer(PrinterSettings(kind=kind))  # type: ignore[arg-type]
    with pytest.raises(PrinterError, match=f"install {package}"):
        printer.print_receipt(vend_receipt())
    assert printer.status().ok is False


def test_report_text_prints_and_cuts() -> None:
    from hardware.printer import DummyPrinter

    p = DummyPrinter()
    p.print_text("X REPORT\nCash expected      KES 100.00\n")
    out = p.output
    assert b"X REPORT" in out and b"Cash expected      KES 100.00" in out
    assert out.startswith(b"\x1b@") and b"\x1dV" in out  # init ... cut
