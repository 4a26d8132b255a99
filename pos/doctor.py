"""``sente-pos doctor``: one line per check; camera, printer, links with clock skew, disk,
journal integrity, permissions of secret files."""

from __future__ import annotations

import datetime as dt
import email.utils
import shutil
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pos.config import Settings

MAX_SKEW_SECONDS = 120
MIN_FREE_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False

    def to_json(self) -> dict[str, object]:
        return {"check": self.name, "ok": self.ok, "warning": self.warning, "detail": self.detail}

    def line(self) -> str:
        mark = "ok  " if self.ok and not self.warning else ("warn" if self.ok else "FAIL")
        return f"[{mark}] {self.name:<10} {self.detail}"


def check_link(name: str, base_url: str, timeout: float = 5.0) -> Check:
    """Reachable, and the provider's clock (HTTP Date) close to ours."""
    import httpx

    started = time.time()
    try:
        with httpx.Client(timeout=timeout) as client:
            resp = client.get(base_url)
    except httpx.HTTPError as exc:
        return Check(name, False, f"unreachable: {type(exc).__name__}")
    rtt = (time.time() - started) * 1000
    date = resp.headers.get("date")
    if not date:
        return Check(name, True, f"reachable (HTTP {resp.status_code}, {rtt:.0f} ms); "
                     "no Date header to check the clock", warning=True)
    try:
        theirs = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return Check(name, True, f"reachable ({rtt:.0f} ms); unreadable Date header",
                     warning=True)
    skew = (dt.datetime.now(dt.UTC) - theirs).total_seconds()
    ok = abs(skew) <= MAX_SKEW_SECONDS
    return Check(name, ok, f"reachable (HTTP {resp.status_code}, {rtt:.0f} ms), clock skew "
                 f"{skew:+.0f} s" + ("" if ok else " -- set the clock (NTP)"))


def check_clock(journal_path: Path) -> Check:
    """NTP state of the wall clock, the last step the sync engine saw, and whether the
    clock is behind the newest journal row (a Pi without RTC after a power cut)."""
    import datetime as dt
    import json
    import sqlite3

    from pos.clock import kernel_synchronised

    notes: list[str] = []
    ok = True
    if kernel_synchronised():
        notes.append("synchronised (NTP)")
    else:
        notes.append("NOT synchronised: receipts say TIME NOT SYNCED until NTP sets it")
        ok = False
    if journal_path.exists():
        try:
            conn = sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True, timeout=2)
            try:
                newest = conn.execute("SELECT MAX(created_at) FROM txns").fetchone()[0]
                step = conn.execute(
                    "SELECT value FROM meta WHERE key = 'clock.last_step'").fetchone()
            finally:
                conn.close()
        except sqlite3.DatabaseError:
            newest, step = None, None
        now = dt.datetime.now(dt.UTC)
        if newest and now < dt.datetime.fromisoformat(newest) - dt.timedelta(minutes=2):
            notes.append(f"behind the journal's newest row ({newest[:19]} UTC)")
            ok = False
        if step:
            try:
                last = json.loads(step[0])
                notes.append(f"last step seen {float(last['seconds']):+.0f} s at "
                             f"{str(last['at']['wall'])[:19]} UTC")
            except (ValueError, KeyError, TypeError):
                pass
    # A wrong clock never stops a sale (ages and schedules do not depend on it): a warning.
    return Check("clock", True, "; ".join(notes), warning=not ok)


def check_disk(home: Path) -> Check:
    usage = shutil.disk_usage(home)
    free_mb = usage.free // (1024 * 1024)
    ok = usage.free >= MIN_FREE_BYTES
    return Check("disk", ok, f"{free_mb} MB free in {home}" + ("" if ok else " -- too little"))


def check_journal(path: Path) -> Check:
    """Missing after trading, empty, not SQLite, or failing integrity_check: what is wrong
    and what to do (the terminal refuses to sell until a backup is restored)."""
    from pos.journal.health import JournalDamaged, check_header, traded_evidence

    fix = (" -- selling is stopped. Run `sente-pos journal restore` to list the backups, "
           "then `sente-pos journal restore NAME` with a supervisor PIN on stdin; the "
           "damaged file is kept in damaged/.")
    if not path.exists():
        why = traded_evidence(path)
        if why:
            return Check("journal", False, f"{path} is missing but this terminal has "
                         f"traded ({why})" + fix)
        return Check("journal", True, f"{path} not created yet", warning=True)
    try:
        check_header(path)
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            found = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(5)")]
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        finally:
            conn.close()
    except JournalDamaged as exc:
        return Check("journal", False, f"{path} {exc.what}" + fix)
    except sqlite3.Error as exc:
        return Check("journal", False, f"cannot read {path}: {exc}" + fix)
    if found != ["ok"]:
        return Check("journal", False, "integrity " + "; ".join(found)[:200] + fix)
    return Check("journal", True, f"integrity ok, journal_mode {mode}")


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def check_storage(settings: Settings) -> Check:
    """The journal's size, WAL, free pages, rows, the archive, and the free space of its
    file system (a warning under ``journal.free_warning_mb`` or twice the journal)."""
    import json

    from pos.journal import archive

    path = settings.journal_path
    if not path.exists():
        return Check("storage", True, f"{path} not created yet", warning=True)
    wal = path.with_name(path.name + "-wal")
    size = path.stat().st_size
    wal_size = wal.stat().st_size if wal.exists() else 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = int(conn.execute("SELECT COUNT(*) FROM txns").fetchone()[0])
            free_pages, page, vacuum = (int(conn.execute(f"PRAGMA {p}").fetchone()[0])
                                        for p in ("freelist_count", "page_size",
                                                  "auto_vacuum"))
            manifest = {r[0][len(archive.META_FILE):]: json.loads(r[1]) for r in conn.execute(
                "SELECT key, value FROM meta WHERE key LIKE 'archive.file:%'")}
        finally:
            conn.close()
    except (sqlite3.Error, ValueError) as exc:
        return Check("storage", False, f"cannot read {path}: {exc}")
    found = archive.files(path, manifest)
    arch_bytes = sum(f.size for f in found if f.size > 0)
    arch_rows = sum(f.rows for f in found)
    bad = [f.name for f in found if not f.consistent]
    free = shutil.disk_usage(path.parent).free
    floor = max(settings.journal.free_warning_mb * 2**20, 2 * (size + wal_size))
    parts = [f"journal {_mib(size)} ({rows:,} rows, {_mib(free_pages * page)} free pages,"
             f" auto_vacuum {'incremental' if vacuum == 2 else 'off' if vacuum == 0 else 'full'})",
             f"WAL {_mib(wal_size)}",
             f"archive {_mib(arch_bytes)} ({arch_rows:,} rows in {len(found)} files)",
             f"{_mib(free)} free on its file system"]
    warn = free < floor
    if warn:
        parts.append(f"-- under {_mib(floor)}: archive (`sente-pos journal archive`) or "
                     "free space")
    if bad:
        warn = True
        parts.append("archive files not as recorded (the next archive run repairs an "
                     "unfinished one): " + ", ".join(bad))
    return Check("storage", True, "; ".join(parts), warning=warn)


def check_backups(home: Path, every_hours: float) -> Check:
    """The backups a restore would use: how many, the newest."""
    from pos.backup import backups

    found = backups(home)
    if not found:
        return Check("backups", True, f"none yet in {home / 'backups'} (one is made every "
                     f"{every_hours:g} h of trading and at each day close)", warning=True)
    newest = found[-1]
    return Check("backups", True, f"{len(found)} kept; newest #{newest.seq} {newest.name} "
                 f"({newest.size // 1024} KiB)")


def check_permissions(home: Path) -> Check:
    problems = []
    if home.exists() and stat.S_IMODE(home.stat().st_mode) & 0o077:
        problems.append(f"{home} is not 0700")
    for name in ("config.toml", "device.key"):
        p = home / name
        if p.exists() and stat.S_IMODE(p.stat().st_mode) & 0o077:
            problems.append(f"{name} is {oct(stat.S_IMODE(p.stat().st_mode))}, not 0600")
    if problems:
        return Check("secrets", False, "; ".join(problems))
    return Check("secrets", True, "data dir 0700, secret files 0600")


def run_checks(settings: Settings, *, camera: Callable[[], Check] | None = None,
               printer: Callable[[], Check] | None = None) -> list[Check]:
    home = settings.home
    checks: list[Check] = []
    if camera is not None:
        checks.append(camera())
    if printer is not None:
        checks.append(printer())
    checks.append(check_link("patasente", settings.patasente.base_url,
                             settings.patasente.connect_timeout + 2))
    checks.append(check_link("pawacard", settings.pawacard.base_url,
                             settings.pawacard.connect_timeout + 2))
    if home.exists():
        checks.append(check_disk(home))
    else:
        checks.append(Check("disk", True, f"{home} not created yet", warning=True))
    checks.append(check_journal(settings.journal_path))
    checks.append(check_storage(settings))
    checks.append(check_clock(settings.journal_path))
    checks.append(check_backups(home, settings.backup.every_hours))
    checks.append(check_permissions(home))
    return checks
