"""The journal screen's live search: what one keystroke costs at N rows.

    nice python bench/bench_journal_search.py [--rows 100000] [--dir DIR]

Builds (once, kept in DIR) a journal of ``--rows`` sales with bench/bench_growth.py's
mix, then types four searches a cashier types, one character at a time: a ref, a
meter number, a card's last four digits and a customer's name. Per keystroke it times
(median / p95 / max over all keystrokes of that search):

* ``query``: ``Terminal.journal_list(search=...)`` (FTS5 trigram; terms shorter than
  three characters use LIKE) plus ``Terminal.void_marks`` (the voided state, one
  indexed query) -- the domain work of a keystroke;
* ``reload``: the screen's whole ``JournalScreen.reload()`` in a Pilot at 80x24 (the
  query, then the DataTable refilled with up to 200 rows).

The screen waits ``SEARCH_DEBOUNCE`` after the last key before it searches, so fast
typing runs one query per pause, not per key; the figures are for the worst case, a
query after every key. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_growth import build  # noqa: E402


def _stats(ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):7.2f} {p95:7.2f} {ordered[-1]:7.2f}"


async def run(home: Path) -> None:
    from pos.clock import DeviceClock
    from pos.terminal import Terminal
    from screens.home import HomeScreen
    from screens.journal import JournalScreen
    from tests.screens_support import app_for, make_settings, wait_screen

    os.environ["SENTE_POS_HOME"] = str(home)
    term = await Terminal.open(make_settings(home), device=DeviceClock(synced=lambda: True))
    try:
        if term.journal.operator_get("ann") is None:
            boss = term.add_operator("boss", "supervisor", "8642")
            term.add_operator("ann", "cashier", "1111", approved_by=boss)
        term.sign_in("ann", "1111")
        term.journal.ensure_search_index()
        ref = term.journal.list(limit=1, offset=5000)[0].ref
        searches = {"ref": ref, "meter": "01451170042", "card last four": "0042",
                    "customer name": "Customer 4242"}
        print(f"rows: {term.journal.query('SELECT count(*) AS n FROM txns')[0]['n']:,}")
        print(f"{'search (per keystroke, ms)':<28}{'median':>8}{'p95':>8}{'max':>8}"
              f"   {'reload median':>13}{'p95':>8}{'max':>8}")
        app = app_for(term.settings, term, background=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_screen(pilot, HomeScreen)
            await pilot.press("5")
            screen = await wait_screen(pilot, JournalScreen)
            for name, text in searches.items():
                query_ms: list[float] = []
                reload_ms: list[float] = []
                for n in range(1, len(text) + 1):
                    prefix = text[:n]
                    for _ in range(3):
                        t0 = time.perf_counter()
                        txns = term.journal_list(search=prefix)
                        term.void_marks(txns)
                        query_ms.append((time.perf_counter() - t0) * 1000)
                        screen.search = prefix
                        t0 = time.perf_counter()
                        screen.reload()
                        reload_ms.append((time.perf_counter() - t0) * 1000)
                print(f"{name:<28}{_stats(query_ms)}   {_stats(reload_ms)}")
    finally:
        await term.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "sente-search")
    args = ap.parse_args()
    home = args.dir / str(args.rows)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "journal.db").exists():
        t0 = time.perf_counter()
        build(home / "journal.db", args.rows)
        print(f"built {args.rows:,} sales in {time.perf_counter() - t0:.1f} s")
    asyncio.run(run(home))


if __name__ == "__main__":
    main()
