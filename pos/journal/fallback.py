"""The outcome fallback: answers that moved money but could not be written to the journal.

A request has left and the provider answered (a token came, a debit was applied),
and the journal refuses the write: the disk filled, another program holds the lock
past the busy timeout, the SD card failed a write. The answer must not be lost:
it is appended here, one JSON line each, fsynced, mode 0600 (no PIN ever goes
in), the cashier sees the result with "do not sell again", and the next start-up
replays the file into the journal before anything else is sold.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pos.journal.states import State, can_transition

log = logging.getLogger(__name__)

FILE_NAME = "outcomes-pending.jsonl"
#: Fields an outcome may carry into the journal (what apply-outcome code passes).
_FIELDS = frozenset({"token", "receipt_no", "units", "provider_txn_id", "customer_name",
                     "last_error"})


def fallback_path(journal_path: Path) -> Path:
    return journal_path.with_name(FILE_NAME)


def append(path: Path, ref: str, state: State, *, note: str | None, error: str | None,
           fields: dict[str, Any]) -> None:
    """Append one outcome durably (write, fsync); creates the file 0600."""
    line = json.dumps({
        "ref": ref, "state": str(state), "note": note, "error": error,
        "fields": {k: v for k, v in fields.items() if k in _FIELDS and v is not None},
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }, default=str, separators=(",", ":")) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> list[dict[str, Any]]:
    """The outcomes waiting (a torn last line from a power cut is skipped)."""
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            item = json.loads(raw)
        except ValueError:
            log.warning("outcome fallback: skipped a torn line")
            continue
        if isinstance(item, dict) and isinstance(item.get("ref"), str):
            out.append(item)
    return out


def replay(journal: Any, path: Path) -> list[str]:
    """Write the waiting outcomes into ``journal``; returns the refs applied.

    Each outcome applies only where the table allows it from the row's current state
    (a row that reached a final state meanwhile keeps it). The file is kept, renamed
    with a timestamp, once everything in it is in the journal.
    """
    items = read(path)
    applied: list[str] = []
    for item in items:
        ref = item["ref"]
        try:
            state = State(item["state"])
        except ValueError:
            continue
        txn = journal.get(ref)
        if txn is None or txn.state == state or not can_transition(txn.state, state):
            continue
        journal.transition(ref, state, note=(item.get("note") or "") +
                           " (recorded from the outcome fallback file)",
                           error=item.get("error"), **_fields(item.get("fields")))
        applied.append(ref)
    if items:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path.rename(path.with_name(f"{path.stem}.replayed-{stamp}{path.suffix}"))
    return applied


def _fields(raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict):
        return {}
    return {k: str(v) for k, v in raw.items() if k in _FIELDS and v is not None}


def pending_refs(path: Path) -> Iterable[str]:
    return [item["ref"] for item in read(path)]
