"""python-escpos' printer database, parsed once per machine instead of once per process.

Importing ``escpos.capabilities`` parses its 1 MB printer database (~150-200 ms on a
laptop, far more on a Pi) and pickles the result into
``$ESCPOS_CAPABILITIES_PICKLE_DIR`` or, when that is unset, into a new temporary
directory every time (they pile up). The wiring points the variable at the cache
directory (:func:`use_cache_dir`); :func:`load_capabilities`, called before the first
escpos import, works around two defects of python-escpos 3.1:

- it calls ``mkdtemp()`` even when the variable is set (the default argument of
  ``environ.get`` is evaluated first), so an empty directory was still left per process;
- it trusts whatever pickle it finds: one cut short by a power cut or a full disk, or
  being written by another process at that moment, fails the import and with it every
  receipt. Such a pickle is removed and rebuilt.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

ENV = "ESCPOS_CAPABILITIES_PICKLE_DIR"
MODULE = "escpos.capabilities"

log = logging.getLogger(__name__)
_lock = threading.Lock()


def use_cache_dir(directory: Path) -> None:
    """Point python-escpos at ``directory`` (unless the variable is set already); cheap:
    nothing is created or imported until the first print."""
    os.environ.setdefault(ENV, str(directory))


def load_capabilities() -> None:
    """Import ``escpos.capabilities`` from the cache: no parse and no temporary directory
    when the cache is good, one rebuild when it is not, escpos' own temporary directory
    when the cache cannot be used at all."""
    if MODULE in sys.modules:
        return
    with _lock:
        if MODULE in sys.modules:
            return
        directory = os.environ.get(ENV)
        if directory and _usable(Path(directory)) and _load_cached(directory):
            return
        os.environ.pop(ENV, None)  # escpos' own way: parse into a new temporary directory
        importlib.import_module(MODULE)


def _load_cached(directory: str) -> bool:
    for _attempt in range(2):
        try:
            _import_into(directory)
            return True
        except ImportError:
            raise
        except OSError as exc:  # the pickle cannot be written or read (disk full, mode)
            log.warning("python-escpos capabilities cache in %s cannot be used (%s)",
                        directory, exc)
            _remove_pickles(Path(directory))
            return False
        except Exception as exc:  # a pickle cut short or half written: any unpickling error
            log.warning("python-escpos capabilities cache in %s unreadable (%s: %s); "
                        "rebuilding it", directory, type(exc).__name__, exc)
            _remove_pickles(Path(directory))
    return False


def _usable(directory: Path) -> bool:
    """Ours and writable by nobody else: a pickle is code, never loaded from a directory
    another user could write."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = directory.stat()
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            why = "not owned by this user, or writable by others"
        elif not os.access(directory, os.W_OK | os.X_OK):
            why = "not writable"
        else:
            return True
    except OSError as exc:
        why = exc.strerror or str(exc)
    log.warning("python-escpos capabilities cache %s cannot be used (%s): parsing the "
                "printer database in a temporary directory", directory, why)
    return False


def _import_into(directory: str) -> None:
    """Import the module with ``tempfile.mkdtemp`` answering ``directory`` to the one
    argument-less call escpos makes while it loads (in this thread, during the import;
    every other caller gets the real function)."""
    import tempfile

    real = tempfile.mkdtemp
    me = threading.get_ident()

    def mkdtemp(*args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs and threading.get_ident() == me:
            return directory
        return real(*args, **kwargs)

    tempfile.mkdtemp = mkdtemp
    try:
        module = importlib.import_module(MODULE)
    finally:
        tempfile.mkdtemp = real
    module.mkdtemp = real  # type: ignore[attr-defined]  # it bound our stand-in


def _remove_pickles(directory: Path) -> None:
    for path in directory.glob("*.capabilities.pickle"):
        with contextlib.suppress(OSError):
            path.unlink()
