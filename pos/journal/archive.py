"""Archiving settled rows of a long-lived journal to compressed files (issue 15).

Files: ``archive/journal-YYYY-MM.jsonl.gz`` beside the journal, one per month of the
rows' creation, mode 0600. Each line is one journal row with its event trail::

    {"v": 1, "txn": {<every column of txns>}, "events": [{<every column of events>}, ...]}

so a support person reads them with ``zcat archive/journal-2025-03.jsonl.gz | jq``
(or ``zgrep REF archive/*.gz``), and :func:`restore` puts a file's rows back. A file
grows by one gzip member per archive step (concatenated members are one valid gzip
stream).

Which rows (:func:`eligible_where`): settled (done, declined, cancelled, resolved) and
unchanged for ``cutoff``; of a closed Z period; no refund check scheduled
(``next_attempt_at``), no sealed PIN, not a card part of a basket sale; with a hub, every
event acknowledged (``hub.event_cursor``) and no change after its last event. A row goes
only with its whole family (its parent, their children: a payment, its vend, its
refund, its void), so a refund or a void is never separated from what it refunds.

Crash safety: each step appends its rows to the files and fsyncs them, THEN deletes
the rows in ONE journal transaction that also records each file's new committed
length (meta ``archive.file:<name>``). A kill before the commit leaves the rows in the
journal and an unfinished tail after the recorded length, which :func:`recover` cuts
off (after checking that every row it can read there is still in the journal; anything
else is kept aside in ``archive/unmatched/``, never deleted). A kill after the commit
leaves the file complete. So nothing is lost and no row is in both places once
recovered. Totals are untouched: the kept totals count archived rows (schema
V_GROWTH), and the Z history stays in ``z_reports``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gzip
import json
import logging
import os
import re
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pos.errors import InputError, PosError
from pos.journal.codec import parents_first
from pos.journal.columns import NAMES
from pos.journal.models import iso
from pos.journal.states import FINAL_STATES

if TYPE_CHECKING:
    from pos.journal.store import Journal

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DIR_NAME = "archive"
META_FILE = "archive.file:"
META_RESTORED = "archive.restored:"
_NAME = re.compile(r"^journal-\d{4}-\d{2}\.jsonl\.gz$")
#: Rows per archive step (one append per file, one journal transaction).
STEP_ROWS = 2_000
_IN_CHUNK = 500  # under SQLite's bound-parameter limit


class ArchiveError(PosError):
    """The archive cannot be written or read (a full disk, a damaged file)."""


@dataclasses.dataclass
class ArchiveReport:
    dry_run: bool
    cutoff: str
    rows: int = 0
    files: dict[str, int] = dataclasses.field(default_factory=dict)
    held_by_family: int = 0
    more: bool = False
    recovered: list[str] = dataclasses.field(default_factory=list)
    freed_pages: int = 0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def archive_dir(journal_path: Path) -> Path:
    return Path(journal_path).parent / DIR_NAME


def file_name(created_at: str) -> str:
    return f"journal-{created_at[:7]}.jsonl.gz"


def eligible_where(hub_cursor: int | None) -> str:
    """The SQL condition (on ``t``) a row must meet by itself; parameters ``:cutoff``,
    ``:scan`` (settled before the last Z: see _select), ``:open`` and, with a hub,
    ``:cursor``."""
    final = ",".join(f"'{s}'" for s in sorted(FINAL_STATES))
    cond = (
        f"t.state IN ({final}) AND t.archived_at IS NULL"
        " AND t.settled_at IS NOT NULL AND t.settled_at < :cutoff AND t.settled_at <= :scan"
        " AND t.created_at < :cutoff AND t.updated_at < :cutoff"
        " AND t.z_period IS NOT NULL AND t.z_period < :open"
        " AND t.next_attempt_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM pins p WHERE p.ref = t.ref)"
        " AND t.ref NOT IN (SELECT txn_ref FROM sale_tenders WHERE txn_ref IS NOT NULL)"
    )
    if hub_cursor is not None:
        cond += (" AND COALESCE((SELECT MAX(e.id) FROM events e WHERE e.ref = t.ref), 0)"
                 " <= :cursor AND t.updated_at <= COALESCE((SELECT MAX(e.at) FROM events e"
                 " WHERE e.ref = t.ref), '')")
    return cond


# ------------------------------------------------------------------ the manifest
def committed(journal: Journal) -> dict[str, dict[str, Any]]:
    """Each archive file's committed length and row count (meta ``archive.file:*``)."""
    rows = journal.query("SELECT key, value FROM meta WHERE key >= ? AND key < ?",
                         (META_FILE, META_FILE[:-1] + chr(ord(META_FILE[-1]) + 1)))
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        try:
            out[r["key"][len(META_FILE):]] = json.loads(r["value"])
        except ValueError:
            continue
    return out


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One archive run at a time (the TUI after a Z and the CLI may both start one)."""
    directory.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    from pos.config import fsync_dir

    fsync_dir(path)


# ------------------------------------------------------------------ recovery
def _tail_refs(data: bytes) -> tuple[list[str], bool]:
    """The refs of the complete lines in an unfinished tail, and whether it all decoded."""
    text = b""
    whole = True
    try:
        while data:
            d = zlib.decompressobj(wbits=31)
            text += d.decompress(data)
            if not d.eof:
                whole = False
                break
            data = d.unused_data
    except zlib.error:
        whole = False
    refs = []
    lines = text.split(b"\n")
    for line in lines[:-1] if not text.endswith(b"\n") else lines:
        if not line.strip():
            continue
        try:
            refs.append(str(json.loads(line)["txn"]["ref"]))
        except (ValueError, KeyError, TypeError):
            whole = False
    return refs, whole


def recover(journal: Journal) -> list[str]:
    """Finish or undo what a killed archive run left (see the module docstring). Returns
    what it did, one line per file."""
    directory = archive_dir(journal.path)
    if not directory.is_dir():
        return []
    done: list[str] = []
    for key, value in [(r["key"], r["value"]) for r in journal.query(
            "SELECT key, value FROM meta WHERE key LIKE 'archive.restored:%'")]:
        name = key[len(META_RESTORED):]
        src, dst = directory / name, directory / value
        if src.exists() and not dst.exists():
            os.replace(src, dst)
            _fsync_dir(directory)
            done.append(f"{name}: restore finished ({value})")
        journal.meta_delete(key)
    manifest = committed(journal)
    for path in sorted(directory.iterdir()):
        if not _NAME.match(path.name):
            continue
        length = int(manifest.get(path.name, {}).get("bytes", 0))
        size = path.stat().st_size
        if size <= length:
            continue  # complete (shorter than recorded: doctor reports it)
        with open(path, "rb") as f:
            f.seek(length)
            tail = f.read()
        # Uncommitted by the protocol, so its rows are still in the journal; a row that
        # is not (a journal put back from an older backup) is kept aside all the same.
        refs, _whole = _tail_refs(tail)
        present = _present(journal, refs)
        if len(present) != len(set(refs)):
            keep = directory / "unmatched"
            keep.mkdir(mode=0o700, exist_ok=True)
            aside = keep / f"{path.name}.{length}.{size}"
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, tail)
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_dir(keep)
            log.warning("archive %s: an unfinished tail kept aside in %s", path.name, aside)
        with open(path, "r+b") as f:
            f.truncate(length)
            os.fsync(f.fileno())
        if length == 0:
            path.unlink()
            _fsync_dir(directory)
        done.append(f"{path.name}: unfinished step of {len(refs)} rows undone "
                    "(they are still in the journal)")
    return done


def _present(journal: Journal, refs: Iterable[str]) -> set[str]:
    refs = list(dict.fromkeys(refs))
    found: set[str] = set()
    for i in range(0, len(refs), _IN_CHUNK):
        part = refs[i:i + _IN_CHUNK]
        found |= {r["ref"] for r in journal.query(
            f"SELECT ref FROM txns WHERE ref IN ({','.join('?' * len(part))})", part)}
    return found


# ------------------------------------------------------------------ selection
def _family_closed(journal: Journal, rows: list[sqlite3.Row], where: str,
                   params: dict[str, Any]) -> tuple[list[sqlite3.Row], int]:
    """``rows`` (each eligible by itself) with whole families only: a row whose parent
    or child (transitively) is not eligible is held back; eligible relatives outside
    ``rows`` are added. Returns the rows and how many were held back."""
    by_ref: dict[str, sqlite3.Row] = {r["ref"]: r for r in rows}
    links: dict[str, set[str]] = {}
    frontier = set(by_ref)
    known: dict[str, sqlite3.Row | None] = dict(by_ref)
    for _ in range(6):  # families are shallow (payment -> vend / refund / void)
        if not frontier:
            break
        refs = list(frontier)
        frontier = set()
        related: list[sqlite3.Row] = []
        for i in range(0, len(refs), _IN_CHUNK):
            part = refs[i:i + _IN_CHUNK]
            marks = ",".join("?" * len(part))
            related += journal.query(
                f"SELECT * FROM txns WHERE parent_ref IN ({marks})"
                f" OR ref IN (SELECT parent_ref FROM txns WHERE ref IN ({marks})"
                " AND parent_ref IS NOT NULL)", [*part, *part])
        for r in related:
            links.setdefault(r["ref"], set())
            if r["parent_ref"]:
                links.setdefault(r["parent_ref"], set()).add(r["ref"])
                links[r["ref"]].add(r["parent_ref"])
            if r["ref"] not in known:
                known[r["ref"]] = r
                frontier.add(r["ref"])
    extra = [ref for ref in known if ref not in by_ref]
    ok = set(by_ref)
    for i in range(0, len(extra), _IN_CHUNK):
        part = extra[i:i + _IN_CHUNK]
        marks = ",".join(f":r{j}" for j in range(len(part)))
        ok |= {r["ref"] for r in journal.query(
            f"SELECT t.ref FROM txns t WHERE t.ref IN ({marks}) AND {where}",
            {**params, **{f"r{j}": ref for j, ref in enumerate(part)}})}
    # Families: connected parts of the parent links; each goes whole or not at all.
    seen: set[str] = set()
    out: list[sqlite3.Row] = []
    held = 0
    for ref in known:
        if ref in seen:
            continue
        family, stack = [], [ref]
        seen.add(ref)
        while stack:
            cur = stack.pop()
            family.append(cur)
            for nxt in links.get(cur, ()):
                if nxt not in seen and nxt in known:
                    seen.add(nxt)
                    stack.append(nxt)
        if all(m in ok for m in family):
            out += [known[m] for m in family]  # type: ignore[misc]
        else:
            held += sum(1 for m in family if m in by_ref)
    return out, held


def _select(journal: Journal, cutoff: datetime, hub_cursor: int | None,
            limit: int) -> tuple[list[sqlite3.Row], int, bool]:
    where = eligible_where(hub_cursor)
    # Only rows settled before the last Z can be of a closed period and settled before
    # it: the scan of the settled index stops there, instead of walking the open
    # period's rows (all of a journal that never closed a day) on every step.
    last = journal.last_z()
    if last is None:
        return [], 0, False
    params: dict[str, Any] = {"cutoff": iso(cutoff), "scan": iso(last.created_at),
                              "open": journal.open_period(),
                              "cursor": hub_cursor if hub_cursor is not None else 0}
    rows = journal.query(f"SELECT t.* FROM txns t INDEXED BY txns_settled WHERE {where}"
                         " ORDER BY t.settled_at LIMIT :limit", {**params, "limit": limit})
    more = len(rows) >= limit
    picked, held = _family_closed(journal, rows, where, params)
    return picked, held, more


# ------------------------------------------------------------------ writing
def _record(txn: sqlite3.Row, events: list[sqlite3.Row]) -> bytes:
    row = dict(txn)
    row.pop("archived_at", None)
    return (json.dumps({"v": FORMAT_VERSION, "txn": row, "events": [dict(e) for e in events]},
                       separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def _events(journal: Journal, refs: list[str]) -> dict[str, list[sqlite3.Row]]:
    out: dict[str, list[sqlite3.Row]] = {r: [] for r in refs}
    for i in range(0, len(refs), _IN_CHUNK):
        part = refs[i:i + _IN_CHUNK]
        for e in journal.query(f"SELECT * FROM events WHERE ref IN"
                               f" ({','.join('?' * len(part))}) ORDER BY id", part):
            out[e["ref"]].append(e)
    return out


def _append(path: Path, data: bytes) -> int:
    """Append ``data`` durably; returns the new length."""
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if new:
        _fsync_dir(path.parent)
    return size


def _step(journal: Journal, rows: list[sqlite3.Row], now: datetime) -> dict[str, int]:
    """Write ``rows`` (whole families) to their files, then delete them in one commit."""
    directory = archive_dir(journal.path)
    refs = [r["ref"] for r in rows]
    events = _events(journal, refs)
    groups: dict[str, list[sqlite3.Row]] = {}
    for r in rows:
        groups.setdefault(file_name(r["created_at"]), []).append(r)
    manifest = committed(journal)
    lengths: dict[str, int] = {}
    for name, part in groups.items():
        body = b"".join(_record(r, events[r["ref"]]) for r in part)
        try:
            lengths[name] = _append(directory / name, gzip.compress(body, mtime=0))
        except OSError as exc:
            raise ArchiveError(f"The archive {directory / name} cannot be written "
                               f"({exc.strerror or exc}); nothing was removed") from exc
    stamp = iso(now)
    try:
        with journal.transaction() as conn:
            marks = ",".join("?" * len(refs))
            now_rows = {r["ref"]: r["updated_at"] for r in conn.execute(
                f"SELECT ref, updated_at FROM txns WHERE ref IN ({marks})", refs)}
            if any(now_rows.get(r["ref"]) != r["updated_at"] for r in rows):
                raise _Changed()
            conn.execute(f"UPDATE txns SET archived_at = ? WHERE ref IN ({marks})",
                         [stamp, *refs])
            conn.execute(f"DELETE FROM events WHERE ref IN ({marks})", refs)
            conn.execute(f"DELETE FROM txns WHERE ref IN ({marks})", refs)
            for name, part in groups.items():
                old = manifest.get(name, {})
                entry = {"bytes": lengths[name], "rows": int(old.get("rows", 0)) + len(part),
                         "first": min([old.get("first") or "9", *(r["created_at"] for r in part)]),
                         "last": max([old.get("last") or "", *(r["created_at"] for r in part)]),
                         "updated_at": stamp}
                conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key)"
                             " DO UPDATE SET value = excluded.value",
                             (META_FILE + name, json.dumps(entry, sort_keys=True)))
    except _Changed:
        recover(journal)  # a row changed meanwhile: undo the appends, try next time
        return {}
    return {name: len(part) for name, part in groups.items()}


class _Changed(Exception):
    pass


def run(journal: Journal, *, cutoff: datetime, now: datetime, hub_cursor: int | None,
        dry_run: bool = False, max_rows: int | None = None,
        step_rows: int = STEP_ROWS) -> ArchiveReport:
    """Archive the eligible rows created and settled before ``cutoff`` (see the module
    docstring); ``hub_cursor``: the hub's acknowledged event id, None without a hub;
    ``max_rows``: stop after about this many (a scheduled run), None: all."""
    report = ArchiveReport(dry_run=dry_run, cutoff=iso(cutoff))
    journal.verified()
    if dry_run:
        rows, held, more = _select(journal, cutoff, hub_cursor,
                                   max_rows if max_rows is not None else 10**9)
        report.rows, report.held_by_family, report.more = len(rows), held, more
        for r in rows:
            name = file_name(r["created_at"])
            report.files[name] = report.files.get(name, 0) + 1
        return report
    with _locked(archive_dir(journal.path)):
        report.recovered = recover(journal)
        while max_rows is None or report.rows < max_rows:
            want = step_rows if max_rows is None else min(step_rows, max_rows - report.rows)
            rows, held, more = _select(journal, cutoff, hub_cursor, want)
            report.held_by_family = max(report.held_by_family, held)
            if not rows:
                report.more = False
                break
            written = _step(journal, rows, now)
            if not written:
                report.more = True
                break
            for name, n in written.items():
                report.files[name] = report.files.get(name, 0) + n
            report.rows += sum(written.values())
            report.more = more
            if not more:
                break
    return report


# ------------------------------------------------------------------ reading back
def read(path: Path, length: int | None = None) -> Iterator[dict[str, Any]]:
    """The records of an archive file (up to its committed ``length``, if given)."""
    with open(path, "rb") as f:
        data = f.read() if length is None else f.read(length)
    try:
        text = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"The archive {path.name} is damaged ({exc})") from exc
    for line in text.splitlines():
        if line.strip():
            rec = json.loads(line)
            if rec.get("v") != FORMAT_VERSION:
                raise ArchiveError(f"{path.name}: unknown archive format {rec.get('v')!r}")
            yield rec


def _with_parents(journal: Journal, directory: Path, name: str,
                  records: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The records of file ``name`` and of every other archive file that holds a parent
    they need (a family is archived whole, but its rows go to the files of their own
    months: a refund made on the 1st of April is in April's file, its sale in March's).
    Raises, changing nothing, if a parent is neither in the journal nor in a file."""
    manifest = committed(journal)
    names, out = [name], list(records)
    while True:
        have = {r["txn"]["ref"] for r in out}
        need = {r["txn"]["parent_ref"] for r in out if r["txn"].get("parent_ref")} - have
        need -= _present(journal, need)
        if not need:
            return names, out
        found = False
        for other in sorted(manifest):
            if other in names or not (directory / other).exists():
                continue
            recs = list(read(directory / other, manifest[other].get("bytes")))
            if any(r["txn"]["ref"] in need for r in recs):
                names.append(other)
                out += recs
                found = True
        if not found:
            shown = ", ".join(sorted(need)[:5])
            raise InputError(f"{name}: the rows it holds refer to {len(need)} parent rows "
                             f"({shown}) that are neither in the journal nor in an archive "
                             "file; nothing was restored")


def restore(journal: Journal, name: str, *, now: datetime) -> int:
    """Put the rows of archive file ``name`` back into the journal (those not there
    already), keep the kept totals as they are (they never stopped counting them), and
    rename the file ``NAME.restored-STAMP`` so it is not read twice. A family whose
    rows went to several files (their months) comes back whole: the files holding the
    parents of the named file's rows are restored with it, parents first. Returns the
    rows put back. Archiving takes them again when next due: set
    ``archive_after_days = 0`` first to keep them."""
    directory = archive_dir(journal.path)
    path = directory / Path(name).name
    if not _NAME.match(path.name) or not path.exists():
        raise InputError(f"No archive file {name!r} in {directory}")
    with _locked(directory):
        recover(journal)
        length = committed(journal).get(path.name, {}).get("bytes")
        records = list(read(path, int(length) if length is not None else None))
        names, records = _with_parents(journal, directory, path.name, records)
        by_ref = {rec["txn"]["ref"]: rec for rec in records}
        records = [by_ref[t["ref"]] for t in parents_first(rec["txn"] for rec in records)]
        cols = set(NAMES) - {"archived_at"}
        ecols = [r["name"] for r in journal.query("PRAGMA table_info(events)")]
        stamp = now.strftime('%Y%m%dT%H%M%S')
        put = 0
        with journal.transaction() as conn:
            for rec in records:
                txn = {k: v for k, v in rec["txn"].items() if k in cols}
                cur = conn.execute(
                    f"INSERT OR IGNORE INTO txns ({','.join(txn)}) VALUES"
                    f" ({','.join('?' * len(txn))})", list(txn.values()))
                if not cur.rowcount:
                    continue
                put += 1
                # The insert trigger counted the row again: the totals already had it.
                conn.execute(
                    "UPDATE totals SET count = count - 1, amount_minor = amount_minor - ?"
                    " WHERE z_period = COALESCE(?, 0) AND state = ? AND kind = ?"
                    " AND tender = ? AND currency = ? AND operator = ?",
                    (txn["amount_minor"], txn.get("z_period"), txn["state"], txn["kind"],
                     txn["tender"], txn["currency"], txn["operator"]))
                for ev in rec["events"]:
                    e = {k: v for k, v in ev.items() if k in ecols}
                    conn.execute(f"INSERT OR IGNORE INTO events ({','.join(e)}) VALUES"
                                 f" ({','.join('?' * len(e))})", list(e.values()))
            for each in names:
                conn.execute("DELETE FROM meta WHERE key = ?", (META_FILE + each,))
                conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key)"
                             " DO UPDATE SET value = excluded.value",
                             (META_RESTORED + each, f"{each}.restored-{stamp}"))
        for each in names:
            os.replace(directory / each, directory / f"{each}.restored-{stamp}")
        _fsync_dir(directory)
        for each in names:
            journal.meta_delete(META_RESTORED + each)
    return put


@dataclasses.dataclass(frozen=True)
class ArchiveFile:
    name: str
    size: int
    rows: int
    committed: int | None

    @property
    def consistent(self) -> bool:
        return self.committed is not None and self.committed == self.size


def files(journal_path: Path, manifest: dict[str, dict[str, Any]] | None) -> list[ArchiveFile]:
    """The archive files on disk with what the journal recorded for each (doctor)."""
    directory = archive_dir(journal_path)
    out = []
    names = set(manifest or {})
    if directory.is_dir():
        names |= {p.name for p in directory.iterdir() if _NAME.match(p.name)}
    for name in sorted(names):
        p = directory / name
        entry = (manifest or {}).get(name)
        out.append(ArchiveFile(name, p.stat().st_size if p.exists() else -1,
                               int(entry["rows"]) if entry else 0,
                               int(entry["bytes"]) if entry else None))
    return out
