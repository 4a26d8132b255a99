"""CSV export of the journal for the merchant's books (one row per transaction)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from pos.journal.columns import CSV_NAMES
from pos.journal.models import Txn, iso
from pos.journal.states import Kind, State
from pos.journal.store import Journal

#: The CSV's header (pos/journal/columns.py says which columns, in which order).
COLUMNS: tuple[str, ...] = CSV_NAMES

_PAGE = 500
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """Text as a spreadsheet shows it, defused: a provider-supplied ``=cmd|...`` stays text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def txn_row(txn: Txn) -> list[str]:
    values: dict[str, Any] = {
        **{c: getattr(txn, c, None) for c in COLUMNS},
        "kind": str(txn.kind),
        "state": str(txn.state),
        "tender": str(txn.tender),
        "amount": str(txn.amount.major),
        "currency": txn.amount.currency,
        "amount_minor": txn.amount.minor,
        "created_at": iso(txn.created_at),
        "updated_at": iso(txn.updated_at),
        "settled_at": iso(txn.settled_at) if txn.settled_at else None,
    }
    return [_cell(values[c]) for c in COLUMNS]


def export_csv(
    journal: Journal,
    out: IO[str] | Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    states: Iterable[State | str] | None = None,
    kinds: Iterable[Kind | str] | None = None,
) -> int:
    """Write the selected transactions oldest first to ``out`` (a text stream or a path).

    Returns the number of data rows written.
    """
    if isinstance(out, Path):
        with out.open("w", newline="", encoding="utf-8") as fh:
            return export_csv(journal, fh, since=since, until=until, states=states, kinds=kinds)
    states = None if states is None else tuple(states)
    kinds = None if kinds is None else tuple(kinds)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    written = 0
    while True:
        page = journal.list(states=states, kinds=kinds, since=since, until=until,
                            limit=_PAGE, offset=written, newest_first=False)
        for txn in page:
            writer.writerow(txn_row(txn))
        written += len(page)
        if len(page) < _PAGE:
            return written
