"""The ``sente-pos`` entry point: start-up without the cyclic garbage collector.

Start-up creates several hundred thousand objects (modules, classes, the first
screen) that all stay alive, so the collector's ~140 passes over them during
start-up find nothing and cost ~40 ms of a ~400 ms cold start (more on a Pi).
Collection is paused from the first line until start-up is done: a CLI command
resumes it once its modules are loaded, the TUI once its first frame is drawn.
Resuming also freezes what exists by then (``gc.freeze``), so later collections
no longer walk the start-up objects and the counter's pauses stay short.

This module imports nothing heavy: it is what the console script loads first.
"""

from __future__ import annotations

from pos.gcpause import pause_gc, resume_gc

__all__ = ["main", "pause_gc", "resume_gc"]


def main() -> int:
    pause_gc()
    from sente_pos.cli import main as cli_main

    return cli_main()
