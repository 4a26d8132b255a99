"""Library output never reaches the counter's screen.

C libraries write warnings straight to file descriptors 1 and 2: OpenCV's
``[ WARN:0@0.01] global cap_v4l.cpp ... can't open camera by index`` when there is
no camera, libv4l, zbar's decoder asserts. Python's ``sys.stderr`` does not see them,
so while the TUI owns the terminal they are drawn over it.

:func:`library_output_to_log` points fds 1 and 2 at a pipe whose lines go to the log
(``sente_pos.native``) while the TUI runs, and gives Textual (which draws on
``sys.__stderr__`` and sizes itself from ``sys.__stdout__``) private duplicates of the
terminal. OpenCV's own log is off too
(hardware.cvlog).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
from collections.abc import Iterator

log = logging.getLogger("sente_pos.native")

#: A line longer than this is cut in the log (a library dumping a buffer).
MAX_LINE = 2000


def _drain(fd: int) -> None:
    """Log each line written to the pipe, until every writer has closed it."""
    with io.open(fd, "rb", buffering=0, closefd=True) as pipe:  # noqa: UP020 (a raw fd)
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                _log_line(line)
        if pending:
            _log_line(pending)


def _log_line(raw: bytes) -> None:
    text = raw.decode("utf-8", "replace").rstrip()
    if text:
        log.warning("library output: %s", text[:MAX_LINE])


def _tty_copy(fd: int, like: object) -> io.TextIOWrapper:
    """A text stream on a duplicate of ``fd`` with the encoding of the stream ``like``."""
    return io.TextIOWrapper(io.FileIO(os.dup(fd), "w", closefd=True), line_buffering=True,
                            encoding=getattr(like, "encoding", None) or "utf-8",
                            errors=getattr(like, "errors", None) or "replace")


@contextlib.contextmanager
def library_output_to_log(*, force: bool = False) -> Iterator[None]:
    """While the block runs, what anything writes to fds 1 and 2 is logged, not shown;
    ``sys.__stdout__`` / ``sys.__stderr__`` (and ``sys.stdout`` / ``sys.stderr``) are the
    terminal still, for Textual and for the traceback of a crash.

    Only when stderr is a terminal (``force`` for tests): a headless command's stderr is
    its error line, and under systemd's journal it is the log already."""
    if not force and not os.isatty(2):
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = (sys.__stdout__, sys.__stderr__, sys.stdout, sys.stderr)
    out_copy = _tty_copy(1, sys.__stdout__)
    err_copy = _tty_copy(2, sys.__stderr__)
    keep_1, keep_2 = os.dup(1), os.dup(2)
    read_end, write_end = os.pipe()
    reader = threading.Thread(target=_drain, args=(read_end,), name="library-output",
                              daemon=True)
    reader.start()
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.__stdout__ = sys.stdout = out_copy  # type: ignore[misc]
    sys.__stderr__ = sys.stderr = err_copy  # type: ignore[misc]
    try:
        yield
    finally:
        for stream in (out_copy, err_copy):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(keep_1, 1)
        os.dup2(keep_2, 2)
        os.close(keep_1)
        os.close(keep_2)
        sys.__stdout__, sys.__stderr__, sys.stdout, sys.stderr = saved  # type: ignore[misc]
        reader.join(2.0)  # EOF once fds 1 and 2 no longer hold the pipe
        for stream in (out_copy, err_copy):
            with contextlib.suppress(Exception):
                stream.close()
