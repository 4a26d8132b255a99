"""Soak version of the crash test: >= 200 SIGKILLs during cash vends, card debits,
card-paid vends and syncs, then verify.

    python bench/soak_crash.py [--kills 200] [--seed 1]

Prints the counts (runs, kills, accepted sales, journal rows, vends performed,
debits applied) and exits non-zero if any sale was lost or done twice.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.crash_harness import CrashHarness, meters  # noqa: E402
from pos.sandbox.server import SandboxServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.time()
    with SandboxServer(port=0, throttle_seconds=0, daily_limit=None) as sb, \
            tempfile.TemporaryDirectory() as tmp:
        h = CrashHarness(Path(tmp), sb, seed=args.seed)
        sb.faults.add(provider="*", endpoint="*", mode="latency", seconds=0.25, count=None)
        pool = iter(meters(args.kills * 3, start=30_000))
        i = 0
        while h.counts.kills < args.kills:
            i += 1
            roll = h.rng.random()
            if i % 25 == 0:  # the link goes down for a while: sales queue offline
                sb.stop()
                for _ in range(3):
                    h.vend(next(pool))
                sb.start()
            if i % 10 == 0:
                sb.faults.add(provider="pawacard", endpoint="vend", mode="drop_after_commit",
                              count=1)
                sb.faults.add(provider="patasente", endpoint="debit-patasente-card",
                              mode="drop_after_commit", count=1)
            if i <= 3:  # calibrate the kill windows on complete runs
                h.vend(next(pool))
                h.debit(amount="10")
                h.card_vend(next(pool))
                h.sync()
                continue
            if roll < 0.35:
                h.vend(next(pool), kill=True)
            elif roll < 0.55:
                h.debit(amount="10", kill=True)
            elif roll < 0.75:
                h.card_vend(next(pool), kill=True)
            else:
                h.sync(kill=True)
        sb.faults.clear()
        h.settle(rounds=100)
        result = h.verify()
    result["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
