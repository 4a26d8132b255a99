"""The write-ahead journal: state machine, store, CSV export."""

from pos.journal.export import export_csv
from pos.journal.health import JournalDamaged
from pos.journal.models import CachedCard, Event, Exposure, Operator, Txn, ZReport
from pos.journal.states import (
    FINAL_STATES,
    FLAGGED_STATES,
    SYNC_STATES,
    TRANSITIONS,
    IllegalTransition,
    Kind,
    State,
    Tender,
    can_transition,
    is_final,
    is_flagged,
    needs_sync,
)
from pos.journal.store import (
    DuplicateRef,
    Journal,
    JournalReader,
    JournalUnwritable,
    UnknownTransaction,
    mask_card_no,
)

__all__ = [
    "FINAL_STATES",
    "FLAGGED_STATES",
    "SYNC_STATES",
    "TRANSITIONS",
    "CachedCard",
    "DuplicateRef",
    "Event",
    "Exposure",
    "IllegalTransition",
    "Journal",
    "JournalDamaged",
    "JournalReader",
    "JournalUnwritable",
    "Kind",
    "Operator",
    "State",
    "Tender",
    "Txn",
    "UnknownTransaction",
    "ZReport",
    "can_transition",
    "export_csv",
    "is_final",
    "is_flagged",
    "mask_card_no",
    "needs_sync",
]
