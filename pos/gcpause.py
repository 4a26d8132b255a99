"""Start-up without the cyclic garbage collector (see sente_pos.startup for why): the
entry point pauses collection, a CLI command or the TUI's first frame resumes it."""

from __future__ import annotations

import gc


def pause_gc() -> None:
    gc.disable()


def resume_gc() -> None:
    """Turn collection back on (a no-op unless :func:`pause_gc` turned it off)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
