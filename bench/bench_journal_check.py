"""What the journal's safety checks cost: open (header + quick_check), quick_check alone,
and an online backup, for journals of growing size.

    python -m bench.bench_journal_check [--sales 10000 40000 100000] [--dir DIR]

Each journal is built from 200 real sales (create -> sending -> done) copied in bulk
with fresh refs, so its pages look like a real journal's (rows, events, indexes).
Timings are with the file in the page cache (a second read); on a Pi, a cold SD card
read (~20-40 MiB/s) bounds the first open after boot. Run it on the device's storage.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from pos.backup import make_backup
from pos.journal import Journal, Kind, State, Tender
from pos.journal.columns import NAMES
from pos.journal.health import quick_check
from pos.money import Money

#: Every column but the ref (pos/journal/columns.py), copied as it is.
_COLS = ", ".join(name for name in NAMES if name != "ref")


def build(path: Path, sales: int) -> None:
    with Journal.open(path) as j:
        for i in range(200):
            t = j.create(Kind.vend, Money(20_000, "KES"), tender=Tender.cash, operator="ann",
                         terminal_id="POS-001", meter="04040404040", reason="bench")
            j.transition(t.ref, State.sending)
            j.transition(t.ref, State.done, token=f"{66430474307561650000 + i:020d}",
                         receipt_no=f"R{i:08d}", units="28.6", customer_name="JANE DOE",
                         receipt_number=j.next_receipt_no())
    raw = sqlite3.connect(path)
    raw.execute("BEGIN")
    for k in range(1, sales // 200):
        raw.execute(f"INSERT INTO txns (ref, {_COLS}) SELECT ref || '-' || ?, {_COLS} FROM txns"
                    " WHERE ref NOT LIKE '%-%'", (k,))
        raw.execute("INSERT INTO events(ref, at, from_state, to_state, note, error, operator)"
                    " SELECT ref || '-' || ?, at, from_state, to_state, note, error, operator"
                    " FROM events WHERE ref NOT LIKE '%-%'", (k,))
    raw.execute("COMMIT")
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()


def _best(fn: object, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run(sales: int, directory: Path) -> dict[str, float]:
    path = directory / f"j{sales}" / "journal.db"
    build(path, sales)
    size_mib = path.stat().st_size / 2**20

    def open_close() -> None:
        Journal.open(path).close()

    def check() -> None:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            quick_check(conn, path)
        finally:
            conn.close()

    with Journal.open(path) as j:
        t0 = time.perf_counter()
        make_backup(j, keep=1)
        backup_ms = (time.perf_counter() - t0) * 1000
    return {"sales": sales, "mib": size_mib, "open_ms": _best(open_close),
            "quick_check_ms": _best(check), "backup_ms": backup_ms}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sales", type=int, nargs="+", default=[10_000, 40_000, 100_000])
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(f"{'sales':>8} {'MiB':>7} {'open ms':>8} {'quick_check ms':>15} "
              f"{'ms/MiB':>7} {'backup ms':>10}")
        for n in args.sales:
            r = run(n, Path(tmp))
            print(f"{r['sales']:>8} {r['mib']:>7.1f} {r['open_ms']:>8.1f} "
                  f"{r['quick_check_ms']:>15.1f} {r['quick_check_ms'] / r['mib']:>7.2f} "
                  f"{r['backup_ms']:>10.1f}")


if __name__ == "__main__":
    main()
