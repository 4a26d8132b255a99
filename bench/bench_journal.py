"""Journal benchmark: durable write latency and on-disk size per 1,000 sales.

    python -m bench.bench_journal [--sales 1000] [--dir DIR]

A "sale" is what a card-paid or cash sale costs the journal: ``create`` (the
write-ahead row), ``transition -> sending`` (just before the request leaves)
and ``transition -> done`` with the provider's fields and our receipt number.
Every step is a ``BEGIN IMMEDIATE`` ... ``COMMIT`` with ``synchronous=FULL``,
i.e. one fsync of the WAL each. Run it on the device's own storage (an SD
card is far slower than a laptop SSD); ``--dir`` picks the directory.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pos.journal import Journal, Kind, State, Tender
from pos.money import Money


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def run(sales: int, directory: Path) -> dict[str, float]:
    path = directory / "journal.db"
    j = Journal.open(path)
    create_ms: list[float] = []
    transition_ms: list[float] = []
    ahead_ms: list[float] = []
    sale_ms: list[float] = []
    started = time.perf_counter()
    for i in range(sales):
        t0 = time.perf_counter()
        txn = j.create(Kind.vend, Money(20_000, "UGX"), tender=Tender.cash, operator="alice",
                       terminal_id="POS-001", meter="04040404040", reason="bench")
        t1 = time.perf_counter()
        j.transition(txn.ref, State.sending)
        t2 = time.perf_counter()
        j.transition(txn.ref, State.done, token=f"{66430474307561650000 + i:020d}",
                     receipt_no=f"R{i:08d}", units="28.6", customer_name="JANE DOE",
                     charges=[{"name": "VAT", "amount": "3051"}, {"name": "REA", "amount": "200"}],
                     total=Money(20_000, "UGX"), receipt_number=j.next_receipt_no())
        t3 = time.perf_counter()
        create_ms.append((t1 - t0) * 1000)
        transition_ms.append((t2 - t1) * 1000)
        ahead_ms.append((t2 - t0) * 1000)
        sale_ms.append((t3 - t0) * 1000)
    elapsed = time.perf_counter() - started
    before = _size(path)
    j.checkpoint()
    after = _size(path)
    j.close()
    per_k = 1000 / sales
    return {
        "sales": sales,
        "seconds": elapsed,
        "create_p50_ms": statistics.median(create_ms),
        "create_p99_ms": _pct(create_ms, 99),
        "transition_p50_ms": statistics.median(transition_ms),
        "transition_p99_ms": _pct(transition_ms, 99),
        "create_plus_transition_p50_ms": statistics.median(ahead_ms),
        "create_plus_transition_p99_ms": _pct(ahead_ms, 99),
        "sale_p50_ms": statistics.median(sale_ms),
        "sale_p99_ms": _pct(sale_ms, 99),
        "bytes_per_1000_sales_before_checkpoint": before * per_k,
        "bytes_per_1000_sales_after_checkpoint": after * per_k,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None,
                        help="directory for the test journal (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-journal-") as tmp:
        figures = run(args.sales, Path(tmp))
    print(f"journal benchmark: {figures['sales']} sales "
          f"(create + sending + done, synchronous=FULL) in {figures['seconds']:.1f} s")
    for key, value in figures.items():
        if key.endswith("_ms"):
            print(f"  {key:<40} {value:8.2f}")
    for key in ("bytes_per_1000_sales_before_checkpoint", "bytes_per_1000_sales_after_checkpoint"):
        print(f"  {key:<40} {figures[key] / 1024:8.0f} KiB (db + wal + shm)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
