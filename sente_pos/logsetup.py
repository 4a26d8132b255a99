"""Where the app's log goes: a size-capped rotating file, or journald under systemd.

The file (``sente-pos.log``, see :mod:`pos.dirs`) is rotated at ``logs.max_mb`` with
``logs.backups`` kept, so an SD card never fills with it. When stderr is the systemd
journal (``$JOURNAL_STREAM`` names it), records go there with their syslog priority and
journald keeps and rotates them. Never to the customer's screen: the TUI draws on the
terminal, and a headless command's stderr is for its one error line. Every handler
carries the PIN / password / key redaction filter.
"""

from __future__ import annotations

import logging
import os
import sys

from pos.config import Settings

FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: journald stamps time and process itself; ``<N>`` is the record's syslog priority.
JOURNAL_FORMAT = "%(name)s: %(message)s"
NOISY = ("httpx", "httpcore", "uvicorn.access")


def setup_logging(settings: Settings | None) -> None:
    """Install the root handler once per process (a second call changes nothing)."""
    root = logging.getLogger()
    if root.handlers:
        return
    level = getattr(logging, (settings.log_level if settings else "INFO").upper(), logging.INFO)
    target = settings.logs.target if settings else "auto"
    handler = journal_handler() if target == "auto" and stderr_is_journal() else None
    if handler is None:
        handler = file_handler(settings)
        handler.setFormatter(logging.Formatter(FILE_FORMAT))
    from pos.logredact import RedactingFilter

    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def stderr_is_journal() -> bool:
    """systemd sets ``JOURNAL_STREAM=<dev>:<inode>`` of the stream it connected to the
    journal; it is inherited by children whose stderr is something else, so it counts
    only when it names our own stderr (systemd.exec(5))."""
    dev, _, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (dev.isdigit() and ino.isdigit()) or sys.stderr is None:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):  # no real file behind stderr (captured, closed)
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class JournalFormatter(logging.Formatter):
    """Prefix each record with its syslog priority (``<3>`` error ... ``<7>`` debug), which
    journald reads from a stream (``SyslogLevelPrefix=``): ``journalctl -p warning`` works."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{syslog_priority(record.levelno)}>{super().format(record)}"


def syslog_priority(levelno: int) -> int:
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    return 6 if levelno >= logging.INFO else 7


def journal_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter(JOURNAL_FORMAT))
    return handler


def file_handler(settings: Settings | None) -> logging.Handler:
    """The rotating ``sente-pos.log``; the system log (or nothing) when its directory
    cannot take it (a read-only or full SD card): the app still runs."""
    from pos.dirs import LOG_NAME, log_dir
    from sente_pos.logfile import SharedRotatingFileHandler

    max_mb = settings.logs.max_mb if settings else 5.0
    backups = settings.logs.backups if settings else 3
    try:
        directory = log_dir(settings)
        # A directory made here is 0700 (a log names sales and cards); one the merchant
        # chose (logs.dir) keeps its own mode.
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return SharedRotatingFileHandler(directory / LOG_NAME,
                                         max_bytes=int(max_mb * 1024 * 1024), backups=backups)
    except OSError:
        return _fallback_log_handler()


def _fallback_log_handler() -> logging.Handler:
    """Where the log goes when the log directory cannot take it: the system log
    (journald on the Pi) if there is one, else nowhere. Never stderr."""
    if os.path.exists("/dev/log"):
        from logging.handlers import SysLogHandler

        try:
            return SysLogHandler(address="/dev/log")
        except OSError:
            pass
    return logging.NullHandler()
