"""Drain benchmark: time and CPU to sync 10,000 queued vends and 10,000 queued debits.

The sandbox runs in its own process (``sente-pos sandbox``) on loopback so its
CPU is not counted as ours; the terminal side is the real SyncEngine with the
real journal (WAL, synchronous=FULL) and clients. Prints figures; asserts nothing.

    python bench/bench_sync.py [--vends 10000] [--debits 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.crash_harness import meters  # noqa: E402
from pos.config import Settings  # noqa: E402
from pos.journal import Kind, State, Tender  # noqa: E402
from pos.money import Money  # noqa: E402
from pos.sandbox import data  # noqa: E402
from pos.terminal import Terminal  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sandbox(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sente_pos.cli", "sandbox", "--port", str(port),
         "--throttle-seconds",
         "0", "--daily-limit", "0"], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("sandbox did not start")


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def drain(term: Terminal, what: str, n: int) -> None:
    t0, c0 = time.perf_counter(), cpu()
    rep = await term.sync_engine.drain(max_passes=1000, limit=1000)
    wall, used = time.perf_counter() - t0, cpu() - c0
    done = len(term.journal.list(states=[State.done], kinds=[Kind.vend if what == "vends"
                                                             else Kind.card_debit],
                                 limit=10**7))
    print(f"{what:>7}: {n} queued -> {done} settled in {wall:6.1f} s wall, {used:6.1f} s CPU "
          f"(terminal side), {n / wall:6.0f}/s, {1000 * used / max(n, 1):.2f} ms CPU each; "
          f"remaining {rep.remaining}, errors {len(rep.errors)}")


async def main(args: argparse.Namespace) -> None:
    port = free_port()
    sb = start_sandbox(port)
    home = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    os.environ["SENTE_POS_HOME"] = str(home)
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        patasente={"base_url": base + "/patasente/phantom-api/", "username": data.MERCHANT_CODE,
                   "password": data.MERCHANT_PASSWORD},
        pawacard={"base_url": base + "/pawacard/v3/", "username": data.VENDOR_USERNAME,
                  "password": data.VENDOR_PASSWORD},
        sync={"concurrency": args.concurrency, "meter_throttle_seconds": 0},
    )
    term = await Terminal.open(settings, operator="bench")
    try:
        j = term.journal
        print(f"sync concurrency {args.concurrency}; sandbox in its own process on loopback")
        if args.vends:
            for m in meters(args.vends, start=10_000):
                j.create(Kind.vend, Money(1000, "KES"), tender=Tender.cash, operator="bench",
                         terminal_id="BENCH", meter=m, customer_name="Bench", offline=True,
                         state=State.queued)
            await drain(term, "vends", args.vends)
        if args.debits:
            card = data.CARD_ACTIVE
            lookup = await term.lookup_card(card.payload)  # cache the card
            assert lookup.info is not None
            for _ in range(args.debits):
                t = j.create(Kind.card_debit, Money(10, "UGX"), tender=Tender.card,
                             operator="bench", terminal_id="BENCH", card_id=card.id,
                             card_no=card.card_no, wallet=data.CURRENT, reason="bench",
                             offline=True)
                j.store_pin(t.ref, card.pin or "")
                j.transition(t.ref, State.queued)
            await drain(term, "debits", args.debits)
        size = sum(p.stat().st_size for p in home.glob("journal.db*"))
        print(f"journal on disk after both: {size / 1024 / 1024:.1f} MiB")
    finally:
        await term.aclose()
        sb.terminate()
        sb.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--vends", type=int, default=10_000)
    ap.add_argument("--debits", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=8)
    asyncio.run(main(ap.parse_args()))
