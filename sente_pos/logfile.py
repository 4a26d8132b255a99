"""A size-capped rotating log file that several processes share.

The TUI and the headless commands (``sente-pos sync`` from a timer, ``report z``) write
the same ``sente-pos.log``. The standard library's RotatingFileHandler assumes one
writer: when another process rotates the file away, it keeps writing into the renamed
backup, and once that backup is deleted its records go into a file no directory names
any more (lost, and the space held until it rotates itself). This subclass follows the
file by name (like WatchedFileHandler), rotates under an ``flock`` so that two
processes never rotate the same file twice (``.sente-pos.log.lock``), and creates its
files 0600.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from io import TextIOWrapper
from logging.handlers import RotatingFileHandler
from pathlib import Path


class SharedRotatingFileHandler(RotatingFileHandler):
    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        # Opened now (not on the first record), so an unwritable directory is found at
        # start-up and the caller can fall back to the system log.
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        base = Path(self.baseFilename)
        self._lock_path = base.with_name(f".{base.name}.lock")  # not matched by `*.log*`

    def _open(self) -> TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)

    def handleError(self, record: logging.LogRecord) -> None:
        """A write or a rotation that fails (the SD card remounted read-only, full) loses
        the record quietly: the stdlib prints a traceback to stderr, which is the
        kiosk's screen. ``sente-pos doctor`` reports the disk."""

    def _moved_away(self) -> bool:
        """Whether the name no longer leads to the file we hold (another process rotated)."""
        if self.stream is None:
            return False
        try:
            named = os.stat(self.baseFilename)
        except FileNotFoundError:
            return True
        held = os.fstat(self.stream.fileno())
        return (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino)

    def _reopen(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.stream = self._open()

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if self._moved_away():
            self._reopen()
        return bool(super().shouldRollover(record))

    def doRollover(self) -> None:
        with self._rotation_lock():
            if self._moved_away():  # another process rotated while we waited for the lock
                self._reopen()
                return
            super().doRollover()
            if self.stream is None:
                self.stream = self._open()

    @contextmanager
    def _rotation_lock(self) -> Iterator[None]:
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:  # cannot create the lock file: rotate unlocked, still capped
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock
