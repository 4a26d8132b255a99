"""A damaged journal stops selling; it is never silently replaced by an empty one.

What counts as damaged, checked when the journal is opened:

- ``journal.db`` missing while the terminal has traded: its marker ``journal.id``
  (written next to it when it was created, or at the first open of an older one), a
  backup in ``backups/`` or a ``-wal`` file is there;
- a zero-length file, a file that is not SQLite, or a header with an impossible page
  size (an SD card that lost blocks);
- ``PRAGMA quick_check`` failing (a garbage page).

Only a data directory with none of these gets a new journal, and that journal is
built under a temporary name and linked into place complete (schema and WAL mode
in), so a power cut during creation never leaves a half-made ``journal.db`` that
would later look damaged, and two processes starting at once keep one journal.

Cost: ``quick_check`` reads every page (measured with ``bench/bench_journal_check.py``:
1-4 ms per MiB here, warm; an SD card read cold is the bound on a Pi, ~20-40 MiB/s).
A journal grows ~0.8 MiB per 1,000 sales, so a year at a busy counter is ~30 MiB. Up
to :data:`INLINE_CHECK_MAX_BYTES` it runs at open (every command is a short process;
under a second on a Pi even cold); a larger journal is checked by a thread started at
open, and the first write (the first sale) waits for its verdict, so the counter opens
at once and still never writes into a damaged file.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import uuid
from collections.abc import Callable
from pathlib import Path

from pos.errors import PosError

#: Journals up to this size are checked page by page at open; larger ones in a thread.
INLINE_CHECK_MAX_BYTES = 64 * 1024 * 1024
SQLITE_MAGIC = b"SQLite format 3\x00"
#: SQLite result codes that mean the file itself is bad (not busy, full or read-only).
_CORRUPT_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


class JournalDamaged(PosError):
    """The journal is missing, empty or damaged: the terminal must not sell."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(
            f"The journal {path} {what}. Selling is stopped so that no sale or receipt "
            "number is lost. A supervisor restores the last good backup: "
            "`sente-pos journal restore` lists them, `sente-pos journal restore NAME` "
            "(supervisor PIN on stdin) puts one back and keeps the damaged file aside. "
            "`sente-pos doctor` says more."
        )
        self.path = path
        self.what = what


def marker_path(journal: Path) -> Path:
    return journal.with_suffix(".id")


def backup_dir(journal: Path) -> Path:
    return journal.parent / "backups"


def read_marker(journal: Path) -> str | None:
    try:
        return marker_path(journal).read_text().strip() or None
    except OSError:
        return None


def write_marker(journal: Path, journal_id: str) -> None:
    from pos.config import write_secret_file

    if read_marker(journal) != journal_id:
        write_secret_file(marker_path(journal), journal_id.encode() + b"\n")


def traded_evidence(journal: Path) -> str | None:
    """Why we know this data directory had a journal (None: a fresh terminal)."""
    if marker_path(journal).exists():
        return f"its marker {marker_path(journal).name} is there"
    bdir = backup_dir(journal)
    if bdir.is_dir() and any(bdir.glob("*.db")):
        return f"there are backups in {bdir}"
    for suffix in ("-wal", "-shm"):
        side = journal.with_name(journal.name + suffix)
        if side.exists():
            return f"{side.name} is there"
    return None


def is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _CORRUPT_CODES
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def check_header(path: Path) -> None:
    """O(1) checks of an existing file: not empty, SQLite, a sane page size."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError as exc:
        raise JournalDamaged(path, f"cannot be read ({exc.strerror or exc})") from exc
    if size == 0:
        raise JournalDamaged(path, "is empty (0 bytes)")
    if not head.startswith(SQLITE_MAGIC):
        raise JournalDamaged(path, "is not a SQLite database (its first bytes are wrong)")
    if len(head) < 100:
        raise JournalDamaged(path, f"is truncated ({size} bytes)")
    (page,) = struct.unpack(">H", head[16:18])
    page_size = 65536 if page == 1 else page
    if page_size < 512 or page_size & (page_size - 1):
        raise JournalDamaged(path, "has a damaged header (impossible page size)")
    if size % page_size:
        raise JournalDamaged(path, f"is truncated ({size} bytes, not whole pages)")


def quick_check(conn: sqlite3.Connection, path: Path) -> None:
    """``PRAGMA quick_check``: every page read, b-trees and records checked."""
    try:
        rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.DatabaseError as exc:
        raise JournalDamaged(path, f"fails its integrity check ({exc})") from exc
    found = [str(r[0]) for r in rows]
    if found != ["ok"]:
        raise JournalDamaged(path, "fails its integrity check: " + "; ".join(found)[:300])


def verify_file(path: Path) -> None:
    """Header and quick_check of a journal or backup file, read-only."""
    check_header(path)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise JournalDamaged(path, f"cannot be opened ({exc})") from exc
    try:
        quick_check(conn, path)
    finally:
        conn.close()


def prepare(path: Path, create: Callable[[Path], None]) -> bool:
    """Before opening ``path``: refuse a missing journal of a terminal that traded, or a
    damaged header; create a fresh journal (with ``create(tmp)``) when there is none.
    Returns whether a journal was created."""
    if path.exists():
        check_header(path)
        return False
    why = traded_evidence(path)
    if why is not None:
        raise JournalDamaged(path, f"is missing, but this terminal has a journal ({why})")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        create(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # never replaces: if another process won, use its journal
        except FileExistsError:
            return False
        from pos.config import fsync_dir

        fsync_dir(path.parent)
        return True
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)


def new_journal_id() -> str:
    return uuid.uuid4().hex
