"""What the constraints migration (schema V_CONSTRAINTS, issue 14) costs on a journal
that already holds trade: the one validation pass over txns and events plus the
triggers, all in the one migration transaction; and what the triggers add to a sale.

    python -m bench.bench_migrate_constraints [--sales 10000 100000] [--dir DIR]

The journal is built as bench/bench_journal_check.py builds it (200 real sales copied
in bulk), then put back to the previous schema version and opened (= migrated).
Timings are with the file in the page cache; on a Pi, a cold SD card read bounds it.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.bench_journal_check import build
from pos.journal import Journal, Kind, State, Tender, schema
from pos.money import Money

_TRIGGERS = ("txns_check_insert", "txns_check_update", "events_check_insert",
             "txns_ref_fixed", "txns_parent_kept")


def _drop(path: Path, version: int | None = None) -> None:
    """Take V_CONSTRAINTS's triggers and table away (and set ``version``, if given)."""
    conn = sqlite3.connect(path, isolation_level=None)
    for trigger in _TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    conn.execute("DROP TABLE IF EXISTS constraint_offenders")
    if version is not None:
        conn.execute(f"PRAGMA user_version = {version}")
    conn.close()


def _sales_ms(path: Path, n: int = 200) -> float:
    with Journal.open(path) as j:
        t0 = time.perf_counter()
        for _ in range(n):
            t = j.create(Kind.vend, Money(20_000, "KES"), tender=Tender.cash, operator="ann",
                         terminal_id="POS-001", meter="04040404040")
            j.transition(t.ref, State.sending)
            j.transition(t.ref, State.done, token="12345678901234567890")
        return (time.perf_counter() - t0) * 1000 / n


def run(sales: int, directory: Path) -> None:
    path = directory / f"m{sales}" / "journal.db"
    build(path, sales)
    _drop(path)  # the triggers gone, the version kept: no migration at the next open
    without = _sales_ms(path)
    _drop(path, schema.MIGRATIONS.index(schema._V_CONSTRAINTS))
    size_mib = path.stat().st_size / 2**20
    t0 = time.perf_counter()
    with Journal.open(path) as j:
        migrated_ms = (time.perf_counter() - t0) * 1000
        assert j.pragma("user_version") == schema.SCHEMA_VERSION
        offenders = len(j.constraint_offenders())
    with_triggers = _sales_ms(path)
    print(f"{sales:>8} sales  {size_mib:7.1f} MiB  open + migration {migrated_ms:8.1f} ms"
          f"  offenders {offenders}  one sale (create, sending, done) {without:5.2f} ms"
          f" without the triggers, {with_triggers:5.2f} ms with them")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sales", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for n in args.sales:
            run(n, Path(tmp))


if __name__ == "__main__":
    main()
