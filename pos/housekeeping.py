"""Housekeeping of a long-lived journal (issue 15): when to archive, and the space policy.

- Archiving (:mod:`pos.journal.archive`): rows settled more than
  ``journal.archive_after_days`` ago, after each Z (at most
  ``journal.archive_rows_per_run``, in steps of :data:`AFTER_Z_STEP_ROWS`, once the Z
  is shown and its backup made) and on ``sente-pos journal archive``. Age is measured
  from the earlier of now and the journal's newest row, so a clock stepped years ahead
  after a cold boot does not make this week's sales look old. With a hub enrolled, only what the hub
  acknowledged (its event cursor) leaves the journal: the back office keeps them too.
- Space: after archiving, free pages beyond :data:`KEEP_FREE_PAGES` go back to the file
  system by incremental vacuum (a journal made with ``auto_vacuum = INCREMENTAL``); the
  rest SQLite reuses for new rows, so an archived journal stops growing. A journal from
  before that setting is converted once by ``--compact`` (one full VACUUM, when asked;
  never on the counter's path).
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from typing import TYPE_CHECKING, Any

from pos.errors import InputError
from pos.journal import archive

if TYPE_CHECKING:
    from pos.config import Settings
    from pos.journal import Journal

log = logging.getLogger(__name__)

#: Free pages kept in the file after archiving (16 MiB at 4 KiB pages: about two weeks
#: of a busy counter's rows), so new sales reuse them instead of growing the file again.
KEEP_FREE_PAGES = 4096
#: Rows per archive step in the run after a Z. That run goes on while the counter sells
#: (after the Z is shown: the TUI's worker, the CLI after printing it), and a sale waits
#: for the step in progress: ~0.7 ms a row at 1,000,000 rows here, so ~0.35 s at most.
AFTER_Z_STEP_ROWS = 500


def hub_cursor(journal: Journal, settings: Settings) -> int | None:
    """The hub's acknowledged event id when this terminal is enrolled, else None."""
    from pos import hubsync

    if hubsync.load_credential(settings.home) is None:
        return None
    return int(journal.meta_get(hubsync.META_EVENTS, "0") or 0)


def cutoff(journal: Journal, days: int, now: dt.datetime) -> dt.datetime:
    newest = journal.newest_created_at()
    base = min(now, newest) if newest is not None else now
    return base - dt.timedelta(days=days)


def archive_due(journal: Journal, settings: Settings, *, now: dt.datetime,
                dry_run: bool = False, max_rows: int | None = None,
                step_rows: int = archive.STEP_ROWS) -> archive.ArchiveReport:
    """Archive what is due now (see the module docstring)."""
    days = settings.journal.archive_after_days
    if days <= 0:
        raise InputError("Archiving is off (journal.archive_after_days = 0)")
    report = archive.run(journal, cutoff=cutoff(journal, days, now), now=now,
                         hub_cursor=hub_cursor(journal, settings), dry_run=dry_run,
                         max_rows=max_rows, step_rows=step_rows)
    if report.rows and not dry_run:
        report.freed_pages = journal.release_free_pages(KEEP_FREE_PAGES)
        journal.checkpoint()
    return report


def after_z(journal: Journal, settings: Settings, now: dt.datetime) -> dict[str, Any] | None:
    """The scheduled run after a day close: what it archived (None: nothing). Never
    raises: a problem is logged and the next Z tries again."""
    if settings.journal.archive_after_days <= 0:
        return None
    try:
        report = archive_due(journal, settings, now=now,
                             max_rows=settings.journal.archive_rows_per_run,
                             step_rows=AFTER_Z_STEP_ROWS)
    except Exception as exc:  # housekeeping never breaks a day close
        log.warning("archiving after the Z failed: %s", exc)
        return {"error": str(exc)}
    if not report.rows:
        return None
    log.info("archived %d rows to %s", report.rows, ", ".join(report.files))
    return report.to_json()


def compact(journal: Journal) -> dict[str, Any]:
    """Convert a journal to incremental auto-vacuum with one full VACUUM (asked for)."""
    info = journal.pages()
    size = info["page_size"] * info["page_count"]
    if info["auto_vacuum"] == 2:
        return {"compacted": False, "reason": "already incremental"}
    free = shutil.disk_usage(journal.path.parent).free
    if free < 2.2 * size:
        raise InputError(f"Compacting needs about {2.2 * size / 2**20:.0f} MiB free next to "
                         f"the journal; there are {free / 2**20:.0f} MiB")
    journal.compact()
    after = journal.pages()
    return {"compacted": True, "bytes_before": size,
            "bytes_after": after["page_size"] * after["page_count"]}
