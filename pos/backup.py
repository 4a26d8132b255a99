"""Backups of the journal, and restoring one after the journal is damaged.

A backup is an online SQLite backup (``Connection.backup``: a consistent copy while
the terminal keeps selling) written to ``backups/`` in the data directory, mode 0600
from its first byte, checked with ``quick_check`` and fsynced before it gets its name,
so a file named ``journal-000042-....db`` is always a whole, checked journal. Names
carry a sequence number and rotation keeps the highest ``keep``: a Pi whose clock came
up in 1970 still removes the oldest backups, not the newest.

When: after ``backup.every_hours`` of trading (that much time since the last backup,
measured like the PIN lock-outs so a clock step does not trigger or suppress one, and
the journal changed meanwhile), and at every day close (``reports.close_day``).

Restore (``sente-pos journal restore NAME``) only replaces a journal that is damaged or
missing, only with a backup of this terminal's journal (its id), approved by a
supervisor of that backup; the damaged file is moved to ``damaged/``, never deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pos.errors import InputError, PosError
from pos.journal.health import (
    JournalDamaged,
    backup_dir,
    check_header,
    read_marker,
    traded_evidence,
    verify_file,
    write_marker,
)
from pos.journal.models import from_iso, iso
from pos.pinguard import Stamp, record_event

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pos.config import Settings
    from pos.journal import Journal
    from pos.operators import Operator

log = logging.getLogger(__name__)

DEFAULT_KEEP = 14
_NAME = re.compile(r"^journal-(\d{6,})-(\d{8}T\d{6}Z)(?:-([a-z0-9]+))?\.db$")
#: Receipt numbers skipped after a restore when the damaged journal's own counter
#: cannot be read: numbers issued after the backup must never be issued again.
RECEIPT_GAP = 1000


@dataclass(frozen=True)
class Backup:
    path: Path
    seq: int
    taken_at: datetime
    """Wall time when it was taken (as the terminal's clock said)."""
    reason: str
    size: int

    @property
    def name(self) -> str:
        return self.path.name

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "seq": self.seq, "taken_at": iso(self.taken_at),
                "reason": self.reason, "bytes": self.size}

    def line(self) -> str:
        return (f"{self.seq:>6}  {self.name}  {self.size // 1024:>7} KiB  "
                f"{self.reason or 'scheduled'}")


def backups(home: Path) -> list[Backup]:
    """The backups in ``home/backups``, oldest (lowest sequence number) first."""
    bdir = backup_dir(home / "journal.db")
    out: list[Backup] = []
    if not bdir.is_dir():
        return out
    for p in bdir.iterdir():
        m = _NAME.match(p.name)
        if m is None or not p.is_file():
            continue
        taken = datetime.strptime(m.group(2), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        out.append(Backup(p, int(m.group(1)), taken, m.group(3) or "", p.stat().st_size))
    return sorted(out, key=lambda b: b.seq)


def make_backup(journal: Journal, home: Path | None = None, *, keep: int = DEFAULT_KEEP,
                reason: str = "", now: datetime | None = None) -> Backup:
    """Back the journal up now (see the module docstring); removes all but ``keep``."""
    home = home or journal.path.parent
    bdir = backup_dir(home / "journal.db")
    bdir.mkdir(mode=0o700, exist_ok=True)
    with _one_at_a_time(bdir):
        return _make_backup(journal, home, bdir, keep=keep, reason=reason, now=now)


@contextlib.contextmanager
def _one_at_a_time(bdir: Path) -> Iterator[None]:
    """One backup at a time per data directory (the TUI's scheduled one, a day close's
    in a ``journal backup`` process): the next waits, then numbers its file after it."""
    import fcntl

    fd = os.open(bdir / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _make_backup(journal: Journal, home: Path, bdir: Path, *, keep: int, reason: str,
                 now: datetime | None) -> Backup:
    existing = backups(home)
    seq = (existing[-1].seq + 1) if existing else 1
    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    tag = re.sub(r"[^a-z0-9]", "", reason.lower())[:16]
    name = f"journal-{seq:06d}-{stamp:%Y%m%dT%H%M%SZ}" + (f"-{tag}" if tag else "") + ".db"
    tmp = bdir / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    try:
        journal.backup(tmp)
        verify_file(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        final = bdir / name
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    from pos.config import fsync_dir

    fsync_dir(bdir)
    _note_backup(journal, seq)
    for old in backups(home)[:-keep]:
        old.path.unlink(missing_ok=True)
    log.info("journal backed up to %s", final)
    return Backup(final, seq, stamp, tag, final.stat().st_size)


# ------------------------------------------------------------------ schedule
def _fingerprint(journal: Journal) -> str:
    """Changes whenever anything is journaled (sales, security trail, Z, operators)."""
    with journal.transaction() as conn:
        row = conn.execute(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM events),"
            " (SELECT COALESCE(MAX(id), 0) FROM security_events),"
            " (SELECT COUNT(*) FROM z_reports),"
            " (SELECT COALESCE(MAX(updated_at), '') FROM operators)").fetchone()
    return "/".join(str(v) for v in row)


def _note_backup(journal: Journal, seq: int) -> None:
    stamp = Stamp.now()
    journal.meta_set("backup_last", "|".join(
        [str(seq), iso(stamp.wall), stamp.boot, repr(stamp.mono), _fingerprint(journal)]))


def backup_due(journal: Journal, every_hours: float) -> bool:
    """Whether ``every_hours`` of trading have passed since the last backup."""
    if every_hours <= 0:
        return False
    last = journal.meta_get("backup_last")
    if last is None:
        return True
    try:
        _, wall, boot, mono, fingerprint = last.split("|", 4)
        then = Stamp(from_iso(wall), boot, float(mono))  # type: ignore[arg-type]
    except ValueError:
        return True
    if fingerprint == _fingerprint(journal):
        return False  # nothing journaled since: nothing to lose
    return Stamp.now().seconds_since(then) >= every_hours * 3600


def backup_if_due(journal: Journal, settings: Settings) -> Backup | None:
    """The scheduled backup: taken when due; a failure is logged, never raised (a
    backup must not stop a sale), and retried at the next call."""
    try:
        if backup_due(journal, settings.backup.every_hours):
            return make_backup(journal, settings.home, keep=settings.backup.keep)
    except (OSError, sqlite3.Error, PosError) as exc:
        log.warning("scheduled journal backup failed: %s", exc)
    return None


# ------------------------------------------------------------------ restore
def find_backup(home: Path, which: str) -> Backup:
    """A backup by sequence number, file name or path."""
    found = backups(home)
    for b in found:
        if which in (str(b.seq), b.name, str(b.path)) or (
                which.isdigit() and int(which) == b.seq):
            return b
    raise InputError(f"No backup {which!r} in {backup_dir(home / 'journal.db')}"
                     + ("; run `sente-pos journal restore` to list them" if found else
                        " (there are none)"))


def journal_state(path: Path) -> str | None:
    """Why the journal at ``path`` is unusable, or None if it is sound."""
    if not path.exists():
        why = traded_evidence(path)
        return f"missing ({why})" if why else None
    try:
        verify_file(path)
    except JournalDamaged as exc:
        return exc.what
    return None


def _meta(path: Path, key: str) -> str | None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


@dataclass(frozen=True)
class Restored:
    backup: Backup
    damaged_kept: list[Path]
    receipt_no: int
    supervisor: str

    def to_json(self) -> dict[str, Any]:
        return {"backup": self.backup.to_json(),
                "damaged_kept": [str(p) for p in self.damaged_kept],
                "next_receipt_after": self.receipt_no, "supervisor": self.supervisor}


def restore(settings: Settings, which: str, supervisor_pin: str) -> Restored:
    """Replace the damaged journal with backup ``which`` (see the module docstring)."""
    from pos.journal import Journal
    from pos.terminal import check_supervisor_pin
    from pos.vault import Vault

    home = settings.home
    live = home / "journal.db"
    problem = journal_state(live)
    if problem is None:
        raise InputError(f"The journal {live} is not damaged: there is nothing to restore")
    chosen = find_backup(home, which)
    try:
        verify_file(chosen.path)
    except JournalDamaged as exc:
        raise InputError(f"Backup {chosen.name} is damaged too ({exc.what}); choose an "
                         "older one") from exc
    mine, theirs = read_marker(live), _meta(chosen.path, "journal_id")
    if mine and theirs and mine != theirs:
        raise InputError(f"Backup {chosen.name} is of another journal (id {theirs}, this "
                         f"terminal's is {mine}): not restored")

    # The candidate is a copy: the backup itself is never changed. It is kept between
    # attempts, so wrong supervisor PINs are counted there (pos/pinguard.py) across runs.
    candidate = home / "journal.db.restore"
    if _meta(candidate, "restore_source") != chosen.name:
        for side in ("", "-wal", "-shm"):
            Path(f"{candidate}{side}").unlink(missing_ok=True)
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        shutil.copyfile(chosen.path, candidate)
        check_header(candidate)
    journal = Journal.open(candidate, vault=Vault.open(home / "device.key"), marker=False)
    try:
        journal.meta_set("restore_source", chosen.name)
        approver: Operator = check_supervisor_pin(journal, settings, supervisor_pin)
        receipt_no = _carry_receipt_numbers(journal, live)
        kept = _move_aside(live, home)
        with journal.transaction() as conn:
            record_event(conn, datetime.now(UTC), "journal_restored", "journal",
                         approver.name, f"from {chosen.name}; damaged journal ({problem}) "
                         f"kept as {', '.join(p.name for p in kept) or 'nothing (missing)'};"
                         f" receipt numbers continue after {receipt_no}")
        journal.checkpoint()
        journal_id = journal.meta_get("journal_id")
    finally:
        journal.close()
    os.replace(candidate, live)
    from pos.config import fsync_dir

    fsync_dir(home)
    if journal_id:
        write_marker(live, journal_id)
    return Restored(chosen, kept, receipt_no, approver.name)


def _carry_receipt_numbers(journal: Journal, damaged: Path) -> int:
    """Our receipt numbers never repeat: continue after the damaged journal's counter
    when it can still be read, else leave a gap of :data:`RECEIPT_GAP`."""
    ours = int(journal.meta_get("receipt_no", "0") or 0)
    theirs = _meta(damaged, "receipt_no") if damaged.exists() else None
    after = max(ours, int(theirs)) if theirs and theirs.isdigit() else ours + RECEIPT_GAP
    journal.meta_set("receipt_no", str(after))
    return after


def _move_aside(live: Path, home: Path) -> list[Path]:
    """Move the damaged journal (and its -wal / -shm) to ``damaged/``; never delete."""
    kept: list[Path] = []
    target_dir = home / "damaged"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for side in ("", "-wal", "-shm"):
        src = Path(f"{live}{side}")
        if src.exists():
            target_dir.mkdir(mode=0o700, exist_ok=True)
            dest = target_dir / f"journal-{stamp}.db{side}"
            os.replace(src, dest)
            kept.append(dest)
    return kept
