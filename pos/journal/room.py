"""Room to write: the reserve file beside the journal, so the answer to a request
already sent can always be recorded, even on a full disk."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from pos.journal.db import JournalUnwritable

log = logging.getLogger(__name__)


class Reserve:
    def __init__(self, journal_path: Path) -> None:
        self._journal_path = journal_path

    @property
    def reserve_path(self) -> Path:
        return self._journal_path.with_name(self._journal_path.name + ".reserve")

    def ensure_room(self, min_free_bytes: int, reserve_bytes: int) -> None:
        """Refuse to start a sale the journal could not record (JournalUnwritable "full").

        Beside the journal lies a reserve file of ``reserve_bytes``; when the disk
        fills, :meth:`Journal.transition` deletes it and retries, so the answer to a
        request already sent always has room. A sale starts only while the reserve is
        in place and ``min_free_bytes`` are free besides.
        """
        free = shutil.disk_usage(self._journal_path.parent).free
        reserve = self.reserve_path
        if reserve_bytes > 0 and not reserve.exists() and free >= reserve_bytes + min_free_bytes:
            tmp = reserve.with_name(reserve.name + ".new")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.posix_fallocate(fd, 0, reserve_bytes)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, reserve)
            except OSError:
                tmp.unlink(missing_ok=True)
            free = shutil.disk_usage(self._journal_path.parent).free
        if free < min_free_bytes or (reserve_bytes > 0 and not reserve.exists()):
            raise JournalUnwritable(
                f"The terminal's storage is nearly full ({free // 1_000_000} MB free): no "
                "new sale can start until space is freed (see sente-pos doctor).",
                reason="full")

    def release_reserve(self) -> bool:
        """Free the reserve file (the disk is full and an answer must be recorded)."""
        try:
            self.reserve_path.unlink()
        except FileNotFoundError:
            return False
        log.warning("journal: disk full, reserve released to record an answer")
        return True
