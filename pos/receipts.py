"""Receipts: what a sale prints, laid out once for the screen and the 58 mm printer.

:func:`layout` turns a :class:`Receipt` into styled :class:`Block`\\ s that fit
``columns`` characters; :func:`render_text` joins them as plain text (the screen,
the tests) and ``hardware.printer`` maps the same blocks to ESC/POS, so paper and
screen never disagree. Nothing here knows about devices.
"""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pos.money import Money
from pos.text import printable

#: Marks a receipt can carry, in the order they are printed.
MARKS: tuple[str, ...] = (
    "DUPLICATE",
    "TIME NOT SYNCED",
    "OFFLINE",
    "PENDING",
    "TOKEN PENDING",
    "DECLINED",
    "REFUNDED",
    "VOIDED",
)

DEFAULT_COLUMNS = 32
FOOTER: tuple[str, ...] = ("Thank you", "Keep this receipt")

Style = Literal["header", "center", "title", "mark", "rule", "text", "total", "token", "qr"]


@dataclass
class Receipt:
    """Everything printed for one transaction. Empty fields are simply not printed."""

    merchant_name: str
    terminal_id: str
    receipt_no: int
    ref: str
    timestamp: datetime
    """Aware datetime, printed in its own zone (the caller picks local time)."""
    title: str
    """``CARD PAYMENT``, ``ELECTRICITY TOKEN``, ``ELECTRICITY BILL``, ``CARD TOP-UP``,
    ``VOID`` (pos/usecases/void_receipt.py: its total, what goes back, is negative) ..."""
    total: Money
    operator: str = ""
    lines: list[tuple[str, str]] = field(default_factory=list)
    """Extra (label, value) rows, e.g. ("Amount", "UGX 5,000")."""
    tender: str = ""
    """``CASH`` or ``CARD``."""
    card_number: str = ""
    """Masked on construction: only the last four digits ever reach paper or screen."""
    meter: str = ""
    account: str = ""
    customer_name: str = ""
    token: str = ""
    """The 20-digit electricity token; printed in groups of four."""
    units: str = ""
    charges: list[tuple[str, str]] = field(default_factory=list)
    provider_receipt_no: str = ""
    marks: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    qr_data: str = ""
    """Content of the receipt QR code; defaults to ``ref``."""
    merchant_registration: str = ""
    """Business registration number verified by the back office (Patascore KYB)."""

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None or self.timestamp.utcoffset() is None:
            raise ValueError("Receipt.timestamp must be timezone-aware")
        unknown = set(self.marks) - set(MARKS)
        if unknown:
            raise ValueError(f"Unknown receipt marks: {sorted(unknown)}")
        self.card_number = mask_card_number(self.card_number)
        self.token = "".join(ch for ch in self.token if ch.isdigit())
        if not self.qr_data:
            self.qr_data = self.ref


@dataclass(frozen=True, slots=True)
class Block:
    """A run of lines sharing one print style.

    Lines of every style but ``token`` and ``qr`` are already fitted to the
    column count; ``token`` lines are the digit groups (the printer re-flows
    them for double-width type) and ``qr`` holds the QR payload.
    """

    style: Style
    lines: tuple[str, ...]


def mask_card_number(number: str) -> str:
    """``4000123412341234`` -> ``************1234``; an already masked number is kept."""
    number = clean(number).replace(" ", "")
    if not number or "*" in number:
        return number
    if len(number) <= 4:
        return "*" * len(number)
    return "*" * (len(number) - 4) + number[-4:]


def clean(text: str) -> str:
    """Printable text only, on one line: terminal / printer escape sequences (an ESC in
    a provider's name!) are dropped whole (:func:`pos.text.printable`), any other
    control or format character becomes a space, runs of spaces one."""
    out = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in printable(text))
    return " ".join(out.split())


def token_groups(token: str) -> list[str]:
    digits = "".join(ch for ch in token if ch.isdigit())
    return [digits[i : i + 4] for i in range(0, len(digits), 4)]


def fit_groups(groups: Iterable[str], width: int) -> list[str]:
    """Pack groups, one space apart, into lines at most ``width`` wide; a group is never split."""
    lines: list[str] = []
    current = ""
    for group in groups:
        candidate = f"{current} {group}" if current else group
        if len(candidate) <= width or not current:
            current = candidate
        else:
            lines.append(current)
            current = group
    if current:
        lines.append(current)
    return lines


def wrap(text: str, columns: int) -> list[str]:
    """Wrap on spaces, breaking words longer than a line."""
    return textwrap.wrap(clean(text), columns, break_long_words=True, break_on_hyphens=False) or []


def row(label: str, value: str, columns: int) -> list[str]:
    """``Label            value``; when both do not fit, the value goes right-aligned below."""
    label, value = clean(label), clean(value)
    if not value:
        return wrap(label, columns)
    if not label:
        return [line.rjust(columns) for line in wrap(value, columns)]
    if len(label) + 1 + len(value) <= columns:
        return [label + " " * (columns - len(label) - len(value)) + value]
    return wrap(label, columns) + [line.rjust(columns) for line in wrap(value, columns)]


def _rows(pairs: Iterable[tuple[str, str]], columns: int) -> tuple[str, ...]:
    out: list[str] = []
    for label, value in pairs:
        if clean(value):
            out.extend(row(label, value, columns))
    return tuple(out)


def layout(receipt: Receipt, columns: int = DEFAULT_COLUMNS) -> list[Block]:
    """The receipt as styled blocks, top to bottom."""
    if columns < 16:
        raise ValueError("A receipt needs at least 16 columns")
    r = receipt
    blocks: list[Block] = [
        Block("header", tuple(wrap(r.merchant_name, columns))),
        *([Block("center", tuple(wrap(f"Reg. No. {r.merchant_registration}", columns)))]
          if clean(r.merchant_registration) else []),
        Block("center", tuple(wrap(f"Terminal {r.terminal_id}", columns))),
        Block("rule", ("-" * columns,)),
        Block("title", tuple(wrap(r.title.upper(), columns))),
    ]
    blocks.extend(Block("mark", (mark,)) for mark in MARKS if mark in r.marks)
    blocks.append(Block("rule", ("-" * columns,)))
    blocks.append(
        Block(
            "text",
            _rows(
                [
                    ("Receipt No.", str(r.receipt_no)),
                    ("Date", r.timestamp.strftime("%Y-%m-%d %H:%M:%S")),
                    ("Ref", r.ref),
                    ("Operator", r.operator),
                ],
                columns,
            ),
        )
    )
    details = _rows(
        [
            ("Meter", r.meter),
            ("Account", r.account),
            ("Customer", r.customer_name),
            ("Card", r.card_number),
            *r.lines,
        ],
        columns,
    )
    if details:
        blocks.append(Block("rule", ("-" * columns,)))
        blocks.append(Block("text", details))
    if r.token:
        blocks.append(Block("center", ("TOKEN",)))
        blocks.append(Block("token", tuple(token_groups(r.token))))
    after_token = _rows(
        [("Units", r.units), *r.charges, ("Provider receipt", r.provider_receipt_no)],
        columns,
    )
    if after_token:
        blocks.append(Block("text", after_token))
    blocks.append(Block("rule", ("-" * columns,)))
    blocks.append(Block("total", tuple(row("TOTAL", r.total.format(), columns))))
    tender = _rows([("Paid by", r.tender.upper())], columns)
    if tender:
        blocks.append(Block("text", tender))
    notes = tuple(line for note in r.notes for line in wrap(note, columns))
    if notes:
        blocks.append(Block("rule", ("-" * columns,)))
        blocks.append(Block("text", notes))
    blocks.append(Block("rule", ("-" * columns,)))
    if clean(r.qr_data):
        blocks.append(Block("qr", (clean(r.qr_data),)))
    blocks.append(Block("center", tuple(line for text in FOOTER for line in wrap(text, columns))))
    return blocks


def text_lines(block: Block, columns: int) -> list[str]:
    """A block as plain text lines (no trailing spaces)."""
    if block.style in ("header", "center", "title"):
        lines = [line.center(columns) for line in block.lines]
    elif block.style == "mark":
        lines = [f" {mark} ".center(columns, "*") for mark in block.lines]
    elif block.style == "token":
        lines = [line.center(columns) for line in fit_groups(block.lines, columns)]
    elif block.style == "qr":
        lines = []  # the ref is printed as a row; screens draw their own QR
    else:
        lines = list(block.lines)
    return [line.rstrip() for line in lines]


def render_text(receipt: Receipt, columns: int = DEFAULT_COLUMNS) -> str:
    """The receipt as plain text, no line longer than ``columns``."""
    out: list[str] = []
    for block in layout(receipt, columns):
        out.extend(text_lines(block, columns))
    return "\n".join(out) + "\n"
