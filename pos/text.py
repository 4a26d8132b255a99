"""Text that crosses the terminal's edges: what providers send us is made printable
before a person sees it, and what the cashier types for a provider is checked.

A provider's customer name, wallet name or decline message is data from the
network. Written raw to the kiosk's terminal, an ESC sequence in it can retitle the
window, make the screen blink, move the cursor over the amount or, on some
terminals, answer back as typed input; on an ESC/POS printer ESC and GS start
printer commands (cut, feed, a different code page). Rich and Textual pass ESC
through (they drop only a few C0 controls), so we clean first.
"""

from __future__ import annotations

import re

from pos.errors import InputError

# ECMA-48 / ISO 6429 sequences, in their 7-bit (ESC ...) and 8-bit (C1) forms:
# - CSI: ESC [ or 0x9b, parameters 0x30-0x3f, intermediates 0x20-0x2f, a final 0x40-0x7e;
# - OSC, DCS, SOS, PM, APC: ESC ] P X ^ _ (or 0x9d 0x90 0x98 0x9e 0x9f) up to the string
#   terminator ST (ESC \\ or 0x9c) or BEL, or to the end of the text when unterminated;
# - any other escape: ESC, intermediates, one final byte.
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|$)"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?",
    re.DOTALL,
)
# Line breaks of every kind (CR LF, VT, FF, NEL, LINE / PARAGRAPH SEPARATOR) and tab.
_BREAKS = re.compile(r"\r\n|[\n\r\x0b\x0c\x85\u2028\u2029]")
# What is left to drop: C0 and C1 controls, DEL, and the bidirectional overrides and
# isolates that make a terminal show text in another order than it is stored
# ("Trojan Source"). Tab is mapped to a space before this runs.
_BIDI = "\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROLS = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_CONTROLS_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI}]")


def printable(text: object, *, one_line: bool = True) -> str:
    """``text`` with every terminal control removed: ESC / CSI / OSC sequences whole (not
    just the ESC byte), other C0 and C1 controls, DEL and bidi overrides.

    Plain spaces are kept as they are. Tabs become spaces; line breaks become spaces
    when ``one_line`` (a label, a table cell), or ``\\n`` otherwise (a message box).
    ``None`` is the empty string."""
    if text is None:
        return ""
    s = str(text)
    if s.isascii() and s.isprintable():
        return s  # the common case, at no cost
    s = _SEQUENCE.sub("", s)
    s = _BREAKS.sub(" " if one_line else "\n", s.replace("\t", " "))
    return (_CONTROLS if one_line else _CONTROLS_BUT_NEWLINE).sub("", s)


def printable_lines(text: object) -> str:
    """:func:`printable` keeping line breaks (as ``\\n``): for multi-line messages."""
    return printable(text, one_line=False)


#: Longest payment reason, and customer / wallet name, the terminal sends to a provider.
MAX_REASON, MAX_NAME = 100, 64


def validate_free_text(text: str, field: str, max_len: int, *, optional: bool = False) -> str:
    """What the cashier typed for a provider (a payment reason, a customer name):
    trimmed; refused with a clear message when it is empty (unless ``optional``), too
    long, or holds a control character (including a line break: these are one-line
    fields, sent in a query string or a JSON string that a provider shows in its own
    statements)."""
    value = text.strip()
    if not value:
        if optional:
            return ""
        raise InputError(f"The {field} is empty")
    for ch in value:
        if _CONTROLS.match(ch) or _BREAKS.match(ch):
            raise InputError(f"The {field} contains a control character "
                             f"(U+{ord(ch):04X}); type it again without it")
    if len(value) > max_len:
        raise InputError(f"The {field} is too long ({len(value)} characters; at most "
                         f"{max_len})")
    return value
