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
1-4 ms per MiB here, warm; 3.3 s for a 1 GiB journal; an SD card read cold is the bound
on a Pi, ~20-40 MiB/s). Up to :data:`INLINE_CHECK_MAX_BYTES` it runs at open; a larger
journal is checked by a thread started at open, and the first write (the first sale)
waits for its verdict, so the counter opens at once and still never writes into a
damaged file.

When the whole-file check runs (issue 15): when it can find something SQLite would not.
Pages go bad on an SD card when it loses power or wears out; a power cut, a kernel crash
or a watchdog reset is a new boot. So a passed check leaves a *verified stamp*
(``journal.verified`` next to the journal, 0600, written atomically) keyed on the boot
(``/proc/sys/kernel/random/boot_id``), the file's identity (``st_dev``, ``st_ino``: a
restored or replaced journal is another file) and the journal's id. A later open in the
same boot, of the same file, less than :data:`STAMP_MAX_AGE_SECONDS` after that check
began, skips the check: every CLI command after the first no longer pays it. A process
killed within a boot (SIGKILL, OOM) is not an unclean stop of the file: the page cache
survives it and SQLite's WAL recovery (``synchronous = FULL``) makes every commit whole
or absent; an unclean stop of the device is a new boot and the stamp no longer matches.
The stamp is not trusted (a full check runs) when it is missing, malformed, not a
regular file of ours with mode 0600, of another boot, file or journal, older than a day,
dated ahead of the boot clock, or when the boot id cannot be read. The long-running TUI
re-checks a stamp older than a day in a background thread (:meth:`Journal.recheck_if_stale`)
without blocking the sale in progress; damage it finds stops selling as at open.

Between checks, damage in a page the counter uses is still found: SQLite verifies every
page it reads and raises SQLITE_CORRUPT (or NOTADB); the journal then marks itself
damaged (every later write refused, the TUI shows the blocking screen) and deletes the
stamp, so the next open runs the full check. What is not caught until the next check is
damage in a page nothing reads, which a sale cannot depend on; the day-close backup
copies the file and checks the copy, so a backup is never of a damaged journal.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import struct
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from pos.errors import PosError

#: Journals up to this size are checked page by page at open; larger ones in a thread.
INLINE_CHECK_MAX_BYTES = 64 * 1024 * 1024
SQLITE_MAGIC = b"SQLite format 3\x00"
#: A verified stamp older than this (boot clock) is checked again.
STAMP_MAX_AGE_SECONDS = 24 * 3600.0
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
_STAMP_VERSION = 1
_STAMP_MAX_BYTES = 4096
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


log = logging.getLogger(__name__)


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


# ------------------------------------------------------------ verified stamp
def stamp_path(journal: Path) -> Path:
    return journal.with_suffix(".verified")


def boot_id() -> str | None:
    """This boot's id, or None where the kernel does not say (then no stamp is trusted)."""
    try:
        text = BOOT_ID_PATH.read_text().strip()
    except OSError:
        return None
    return text or None


def boot_clock() -> float:
    """Seconds since boot, counting suspend (the same clock in every process of a boot)."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(clock) if clock is not None else time.monotonic()


def write_stamp(journal: Path, journal_id: str, checked_at: float) -> None:
    """Record that ``journal`` passed its check begun at ``checked_at`` (boot clock)."""
    from pos.config import write_secret_file

    boot = boot_id()
    if boot is None:
        return
    st = os.stat(journal)
    data = {"v": _STAMP_VERSION, "boot_id": boot, "dev": st.st_dev, "ino": st.st_ino,
            "journal_id": journal_id, "checked_at": checked_at}
    write_secret_file(stamp_path(journal), json.dumps(data, sort_keys=True).encode() + b"\n")


def forget_stamp(journal: Path) -> None:
    """Drop the stamp: the next open checks the whole file."""
    try:
        stamp_path(journal).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not remove the verified stamp %s: %s", stamp_path(journal), exc)


def stamp_age(journal: Path, journal_id: str) -> float | None:
    """Seconds since the check recorded by a stamp that is trusted (see the module
    docstring), or None: no trusted stamp, check the file."""
    path = stamp_path(journal)
    boot = boot_id()
    if boot is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o600
                or st.st_uid != os.geteuid() or st.st_size > _STAMP_MAX_BYTES):
            return None
        raw = os.read(fd, _STAMP_MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        data = json.loads(raw)
        live = os.stat(journal)
    except (ValueError, OSError):
        return None
    if not isinstance(data, dict) or set(data) != {"v", "boot_id", "dev", "ino",
                                                   "journal_id", "checked_at"}:
        return None
    checked_at = data["checked_at"]
    if (data["v"] != _STAMP_VERSION or data["boot_id"] != boot
            or type(data["dev"]) is not int or data["dev"] != live.st_dev
            or type(data["ino"]) is not int or data["ino"] != live.st_ino
            or data["journal_id"] != journal_id
            or type(checked_at) not in (int, float)):
        return None
    age = boot_clock() - float(checked_at)
    if not 0.0 <= age < STAMP_MAX_AGE_SECONDS:
        return None
    return age
