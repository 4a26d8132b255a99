"""The ONE list of the ``txns`` table's columns, and every view of it the code needs.

Each :class:`Column` says, once, what the column is for: how :meth:`Journal.create` and
the updates write it, whether the merchant's CSV shows it (and where), and which key of a
transaction's wire form (:meth:`Txn.to_json`, what the hub stores and gives back on a
restore) carries it. The journal's insert and update code (pos/journal/txnstore.py), the
row decoder (pos/journal/codec.py), the CSV export, the archive and the hub restore read
their lists from here; a test holds this list equal to the table the migrations build
(``PRAGMA table_info(txns)``, in the same order), so a column added by a migration and
forgotten here fails the suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: How an update (``Journal.update`` / ``transition`` keyword) is encoded into the column.
#: ``None``: not updatable by keyword (set by the journal itself, or never changed).
Update = Literal["str", "int", "iso", "bool", "charges", "total", "details", "stamp", "json"]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    #: Written by :meth:`Journal.create` (the others start NULL / at their default).
    create: bool = False
    #: The keyword an update takes for it and how it is encoded (see :data:`Update`).
    update: Update | None = None
    keyword: str | None = None  # the update keyword when it is not the column's name
    #: Position in the merchant's CSV (pos/journal/export.py); None: not exported.
    csv: int | None = None
    #: The key of the wire form (Txn.to_json) that carries it; None: not on the wire.
    wire: str | None = None
    #: The :class:`Txn` field of the same name holds the stored value as it is.
    plain: bool = False


_C = Column

#: Every column of ``txns``, in the table's order (V1, then what V3 and V4 added).
TXN_COLUMNS: tuple[Column, ...] = (
    _C("ref", plain=True, create=True, csv=1, wire="ref"),
    _C("kind", create=True, csv=3, wire="kind"),
    _C("state", create=True, csv=4, wire="state"),
    _C("amount_minor", create=True, csv=8, wire="amount"),
    _C("currency", create=True, csv=7, wire="amount"),
    _C("tender", create=True, csv=5, wire="tender"),
    _C("operator", plain=True, create=True, csv=9, wire="operator"),
    _C("terminal_id", plain=True, create=True, csv=10, wire="terminal_id"),
    _C("card_id", plain=True, create=True, wire="card_id"),
    _C("card_no", plain=True, create=True, csv=11, wire="card_no"),
    _C("wallet", plain=True, create=True, update="str", csv=12, wire="wallet"),
    _C("meter", plain=True, create=True, csv=13, wire="meter"),
    _C("account", plain=True, create=True, csv=14, wire="account"),
    _C("customer_name", plain=True, create=True, update="str", csv=15, wire="customer_name"),
    _C("reason", plain=True, create=True, csv=16, wire="reason"),
    _C("parent_ref", plain=True, create=True, csv=17, wire="parent_ref"),
    _C("offline", create=True, update="bool", csv=18, wire="offline"),
    _C("provider_txn_id", plain=True, update="str", csv=19, wire="provider_txn_id"),
    _C("token", plain=True, update="str", csv=20, wire="token"),
    _C("receipt_no", plain=True, update="str", csv=21, wire="receipt_no"),
    _C("receipt_number", plain=True, update="int", csv=2, wire="receipt_number"),
    _C("units", plain=True, update="str", csv=22, wire="units"),
    _C("charges_json", update="charges", keyword="charges", wire="charges"),
    _C("total_json", update="total", keyword="total", wire="total"),
    _C("attempts", plain=True, create=True, update="int", csv=23, wire="attempts"),
    _C("next_attempt_at", create=True, update="iso", wire="next_attempt_at"),
    _C("last_error", plain=True, update="str", csv=24, wire="last_error"),
    _C("created_at", create=True, csv=0, wire="created_at"),
    _C("updated_at", create=True, csv=25, wire="updated_at"),
    _C("settled_at", csv=26, wire="settled_at"),
    _C("details_json", create=True, update="details", keyword="details", wire="details"),
    _C("lease_owner", plain=True, create=True, update="str"),
    _C("created_boot", create=True),
    _C("created_mono", create=True),
    _C("clock_synced", create=True, wire="clock_synced"),
    _C("sent_json", update="stamp", keyword="sent"),
    _C("sends", update="int", wire="sends"),
    _C("recon_json", update="json", keyword="recon", wire="reconciliation"),
    _C("accepted", create=True, update="bool", wire="accepted"),
    _C("z_period"),
    _C("archived_at"),
)

#: Column names in table order.
NAMES: tuple[str, ...] = tuple(c.name for c in TXN_COLUMNS)
#: What :meth:`Journal.create` inserts (``z_period`` is computed in the statement).
CREATE_NAMES: tuple[str, ...] = tuple(c.name for c in TXN_COLUMNS if c.create)
#: Update keyword -> (column, encoding).
UPDATES: dict[str, tuple[str, Update]] = {
    c.keyword or c.name: (c.name, c.update) for c in TXN_COLUMNS if c.update is not None}
_CSV = tuple(c.name for c in sorted((c for c in TXN_COLUMNS if c.csv is not None),
                                    key=lambda c: c.csv or 0))
#: The CSV's columns in their order: the stored ones, and ``amount`` (major units,
#: derived from amount_minor) just before ``currency``.
CSV_NAMES: tuple[str, ...] = tuple(
    name for col in _CSV for name in (("amount", col) if col == "currency" else (col,)))
#: The columns a :class:`Txn` takes as they are (the others are decoded: pos/journal/codec.py).
PLAIN_NAMES: tuple[str, ...] = tuple(c.name for c in TXN_COLUMNS if c.plain)
#: The columns a transaction's wire form carries (what a hub restore writes back).
WIRE_NAMES: tuple[str, ...] = tuple(c.name for c in TXN_COLUMNS if c.wire is not None)
