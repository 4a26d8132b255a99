"""A year of trade on one SD card (issue 15): every figure as the journal grows.

    nice python bench/bench_growth.py [--sizes 0,10000,100000,1000000] [--dir DIR]

Builds journals of each size through the journal's API (``Journal.create`` /
``transition`` / ``update``, one transaction per batch of 2,000 sales via
``Journal.batch`` so a million sales build in minutes) with one sale a minute of
clock time, all in one open Z period (the worst case: a merchant who never closed
the day). Mixed in: card payments, card-paid tokens, failed card-paid tokens with
their refunds, flagged items (0.1% still flagged, 0.4% resolved) and 50 sales still
queued for sync (scheduled an hour ahead, so a sync pass has nothing due).

Then, per size: each CLI command as a fresh process (median of 3): ``report x``,
``journal --search METER``, ``journal --status flagged``, ``sync`` (nothing due), and
``report z`` three times (each closes a day; its day-close backup, a copy of the whole
journal, is made by a process it leaves running): as text, timed to the moment the Z is
on the screen, to the process's exit and, after that, to the backup's file being named;
then with ``--json``; then with ``--json --wait`` (the backup made before the one
document is printed, the command's behaviour before it detached); in process (median):
the X report, the status bar's tick (``Terminal.status``), an idle sync pass, each
screen's first paint through Pilot (home, journal, reports), and a sale's write
(``Journal.create`` of a cash vend, p50 of 300); first, the integrity check's cost
(``quick_check``, open, open to the first write: the first open of the copy runs the
check, as the first command after a boot; the second trusts the verified stamp that
check left, as every later command of the boot). Built journals are kept in DIR and
reused (``--rebuild`` to redo).
Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pos.journal import Journal, Kind, State, Tender  # noqa: E402
from pos.money import Money  # noqa: E402

BATCH = 2_000
METER = "0145117{:04d}"
QUEUED = 50


class BuildClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def build(path: Path, n: int) -> None:
    """``n`` sales into a new journal at ``path`` (see the module docstring)."""
    end = datetime.now(UTC)
    clock = BuildClock(end - timedelta(minutes=n + 1))
    journal = Journal.open(path, clock=clock)
    common: dict[str, Any] = {"operator": "ann", "terminal_id": "T-BENCH"}
    try:
        for start in range(0, n, BATCH):
            with journal.batch():
                for i in range(start, min(n, start + BATCH)):
                    clock.now += timedelta(minutes=1)
                    _sale(journal, i, n, common)
    finally:
        journal.close()


def _sale(journal: Journal, i: int, n: int, common: dict[str, Any]) -> None:
    meter = METER.format(i % 10_000)
    pick = i % 1000
    if i >= n - QUEUED:  # the sync queue: accepted offline, not due yet
        t = journal.create(Kind.vend, Money(5000, "UGX"), tender=Tender.cash, meter=meter,
                           customer_name=f"Customer {i}", state=State.queued, offline=True,
                           **common)
        journal.update(t.ref, next_attempt_at=datetime.now(UTC) + timedelta(hours=1, minutes=50))
        return
    if pick < 1:  # still flagged
        t = journal.create(Kind.vend, Money(5000, "UGX"), tender=Tender.cash, meter=meter,
                           state=State.queued, offline=True, **common)
        journal.transition(t.ref, State.expired)
        return
    if pick < 5:  # flagged, then resolved by a supervisor
        t = journal.create(Kind.vend, Money(5000, "UGX"), tender=Tender.cash, meter=meter,
                           state=State.queued, offline=True, **common)
        journal.transition(t.ref, State.expired)
        journal.transition(t.ref, State.resolved, note="cash refunded", operator="boss")
        return
    if pick < 300:  # card payment
        _debit(journal, i, common)
        return
    if pick < 340:  # card-paid token (10 of them fail and are refunded)
        debit = _debit(journal, i, common)
        v = journal.create(Kind.vend, debit.amount, tender=Tender.card, meter=meter,
                           parent_ref=debit.ref, customer_name=f"Customer {i}", **common)
        journal.transition(v.ref, State.sending)
        if pick < 310:
            journal.transition(v.ref, State.failed, error="vend failed")
            r = journal.create(Kind.card_refund, debit.amount, tender=Tender.card,
                               card_id=debit.card_id, card_no=debit.card_no,
                               parent_ref=debit.ref, state=State.queued,
                               details={"vend_ref": v.ref}, **common)
            journal.transition(r.ref, State.sending)
            journal.transition(r.ref, State.done)
            journal.refund_checked(v.ref, None)
        else:
            journal.transition(v.ref, State.done, token=f"{i:020d}", units="12.3")
        return
    t = journal.create(Kind.vend, Money(5000 + i % 7 * 1000, "UGX"), tender=Tender.cash,
                       meter=meter, customer_name=f"Customer {i}", **common)
    journal.transition(t.ref, State.sending)
    journal.transition(t.ref, State.done, token=f"{i:020d}", units="12.3",
                       receipt_no=f"R{i}")


def _debit(journal: Journal, i: int, common: dict[str, Any]) -> Any:
    d = journal.create(Kind.card_debit, Money(3000 + i % 5 * 500, "UGX"), tender=Tender.card,
                       card_id=100 + i % 500, card_no=f"1613********{i % 10_000:04d}",
                       wallet="Current Account", reason="goods", **common)
    journal.transition(d.ref, State.sending)
    return journal.transition(d.ref, State.done)


# ----------------------------------------------------------------- timing
def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ, SENTE_POS_HOME=str(home), PYTHONPATH=str(ROOT))
    dead = "http://127.0.0.1:9/"
    env.update(SENTE_POS_PATASENTE__BASE_URL=dead + "patasente/phantom-api/",
               SENTE_POS_PAWACARD__BASE_URL=dead + "pawacard/v3/",
               SENTE_POS_PATASENTE__CONNECT_TIMEOUT="0.5",
               SENTE_POS_PAWACARD__CONNECT_TIMEOUT="0.5",
               SENTE_POS_JOURNAL__ARCHIVE_AFTER_DAYS="0")  # timed apart (archive_after_z)
    return env


def cli(home: Path, *args: str, stdin: str = "", runs: int = 3) -> float:
    """Median wall time of ``sente-pos ARGS`` as a fresh process, in ms."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", "from sente_pos.startup import main; main()",
                               *args], env=_env(home), input=stdin, capture_output=True,
                              text=True, check=False)
        times.append((time.perf_counter() - t0) * 1000)
        if proc.returncode not in (0, 3):
            print(f"  ! {' '.join(args)} exit {proc.returncode}: {proc.stderr.strip()[:200]}",
                  file=sys.stderr)
    return statistics.median(times)


def cli_z_text(home: Path) -> tuple[float, float]:
    """``report z`` as text, a fresh process: ms until the Z report is on stdout (its
    closing rule), and ms until the process exits (after the backup)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", "from sente_pos.startup import main; main()",
                             "report", "z", "--override", "--allow-empty"], env=_env(home),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("8642\n")
    proc.stdin.close()
    shown = None
    rules = 0
    for line in proc.stdout:
        if line.strip() and set(line.strip()) == {"-"}:
            rules += 1
            if rules == 2 and shown is None:  # the title's rule, then the closing one
                shown = (time.perf_counter() - t0) * 1000
    proc.wait()
    exited = (time.perf_counter() - t0) * 1000
    if proc.returncode != 0 or shown is None:
        print(f"  ! report z (text) exit {proc.returncode}", file=sys.stderr)
    return shown if shown is not None else exited, exited


def median_ms(fn: Any, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


#: Paints are timed polling every 2 ms: the tests' back-off (to 100 ms) rounds them up.
PAINT_POLL = 0.002


async def in_process(home: Path) -> dict[str, float]:
    from pos.clock import DeviceClock
    from pos.terminal import Terminal
    from screens.home import HomeScreen
    from screens.journal import JournalScreen
    from screens.reports import ReportScreen
    from tests.screens_support import app_for, make_settings, wait_screen

    os.environ["SENTE_POS_HOME"] = str(home)
    out: dict[str, float] = {}
    term = await Terminal.open(make_settings(home), device=DeviceClock(synced=lambda: True))
    try:
        if term.journal.operator_get("ann") is None:
            boss = term.add_operator("boss", "supervisor", "8642")
            term.add_operator("ann", "cashier", "1111", approved_by=boss)
        term.sign_in("ann", "1111")
        out["x_report()"] = median_ms(term.x_report)
        out["status bar tick"] = median_ms(term.status, 20)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            await term.sync_engine.run_once()
            times.append((time.perf_counter() - t0) * 1000)
        out["idle sync pass"] = statistics.median(times)
        app = app_for(term.settings, term)
        async with app.run_test(size=(80, 24)) as pilot:
            t0 = time.perf_counter()
            await wait_screen(pilot, HomeScreen, poll=PAINT_POLL)
            out["paint: home"] = (time.perf_counter() - t0) * 1000
            for key, cls, name in (("5", JournalScreen, "journal"),
                                   ("6", ReportScreen, "reports")):
                samples = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    await pilot.press(key)
                    await wait_screen(pilot, cls, poll=PAINT_POLL)
                    samples.append((time.perf_counter() - t0) * 1000)
                    await pilot.press("escape")
                    await wait_screen(pilot, HomeScreen)
                out[f"paint: {name}"] = statistics.median(samples)
        writes = []
        for i in range(300):
            t0 = time.perf_counter()
            term.journal.create(Kind.vend, Money(5000, "UGX"), tender=Tender.cash,
                                meter=METER.format(i), operator="ann", terminal_id="T-BENCH")
            writes.append((time.perf_counter() - t0) * 1000)
        out["sale write p50"] = statistics.median(writes)
    finally:
        await term.aclose()
    return out


def integrity(home: Path) -> dict[str, float]:
    """What a short-lived command pays for the journal's integrity check (pos/journal/
    health.py): ``quick_check`` alone, and open-to-first-write (the write waits for the
    background check of a journal over INLINE_CHECK_MAX_BYTES)."""
    import sqlite3

    from pos.journal import health

    out: dict[str, float] = {}
    path = home / "journal.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    t0 = time.perf_counter()
    health.quick_check(conn, path)
    out["quick_check"] = (time.perf_counter() - t0) * 1000
    conn.close()
    t0 = time.perf_counter()
    journal = Journal.open(path)
    out["open"] = (time.perf_counter() - t0) * 1000
    journal.meta_set("bench.touch", "1")
    out["open to first write (first open: checks)"] = (time.perf_counter() - t0) * 1000
    journal.close()
    t0 = time.perf_counter()
    journal = Journal.open(path)
    journal.meta_set("bench.touch", "2")
    out["open to first write (stamped)"] = (time.perf_counter() - t0) * 1000
    journal.close()
    return out


def not_due(home: Path) -> None:
    """The sync queue's next attempt an hour from now: the build scheduled it from the
    build's wall clock, so a journal built hours ago had its 50 queued sales due (each
    sync then tried the providers: 131 s at 1,000,000, not an idle pass)."""
    journal = Journal.open(home / "journal.db")
    try:
        later = datetime.now(UTC) + timedelta(hours=1)
        for t in journal.list(states=[State.queued], limit=10 * QUEUED):
            journal.update(t.ref, next_attempt_at=later)
    finally:
        journal.close()


def measure(home: Path) -> dict[str, float]:
    out: dict[str, float] = integrity(home)  # first: the copy's first open checks it
    not_due(home)
    out["cli: report x"] = cli(home, "report", "x", "--json")
    out["cli: journal --search"] = cli(home, "journal", "--search", "01451175000", "--json")
    out["cli: journal --status flagged"] = cli(home, "journal", "--status", "flagged",
                                               "--json")
    out["cli: sync (nothing due)"] = cli(home, "sync", "--json")
    out.update(asyncio.run(in_process(home)))
    size = sum(p.stat().st_size for p in home.glob("journal.db*"))
    out["journal MiB"] = size / 2**20
    from pos.backup import backups

    def backed_up(count: int) -> float:
        """ms until the day close's background backup is named (``count`` backups)."""
        t0 = time.perf_counter()
        while len(backups(home)) < count:
            time.sleep(0.01)
        return (time.perf_counter() - t0) * 1000

    made = len(backups(home))
    shown, exited = cli_z_text(home)
    out["cli: report z: Z shown"] = shown
    out["cli: report z: process exit"] = exited
    out["report z: its backup, after the exit"] = backed_up(made + 1)
    out["cli: report z --json"] = cli(home, "report", "z", "--override", "--allow-empty",
                                      "--json", stdin="8642\n", runs=1)
    backed_up(made + 2)
    out["cli: report z --json --wait (backup first)"] = cli(
        home, "report", "z", "--override", "--allow-empty", "--json", "--wait",
        stdin="8642\n", runs=1)
    out.update(archive_after_z(home))
    return out


def archive_after_z(home: Path) -> dict[str, float]:
    """The scheduled archive run after that Z (rows older than 400 days of the closed
    period, at most ``journal.archive_rows_per_run``), as ``Terminal.close_day`` runs it."""
    from pos import housekeeping
    from tests.screens_support import make_settings

    os.environ["SENTE_POS_HOME"] = str(home)
    settings = make_settings(home)
    journal = Journal.open(home / "journal.db")
    try:
        journal.verified()
        t0 = time.perf_counter()
        rep = housekeeping.after_z(journal, settings, datetime.now(UTC))
        ms = (time.perf_counter() - t0) * 1000
    finally:
        journal.close()
    rows = rep.get("rows", 0) if rep else 0
    return {"archive after Z": ms, "archive after Z: rows": float(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="0,10000,100000,1000000")
    ap.add_argument("--dir", default="/tmp/sente-bench-growth")
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    base = Path(args.dir)
    results: dict[int, dict[str, float]] = {}
    for n in [int(s) for s in args.sizes.split(",")]:
        built = base / f"built-{n}"
        if args.rebuild or not (built / "journal.db").exists():
            shutil.rmtree(built, ignore_errors=True)
            built.mkdir(parents=True)
            t0 = time.perf_counter()
            build(built / "journal.db", n)
            print(f"built {n:,} sales in {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)
        home = base / f"run-{n}"  # a copy: the run adds sales and closes a day
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(built, home)
        os.chmod(home, 0o700)
        results[n] = measure(home)
        shutil.rmtree(home, ignore_errors=True)
        print(f"measured {n:,}", file=sys.stderr, flush=True)
    sizes = list(results)
    names = list(results[sizes[0]])
    print("| what | " + " | ".join(f"{n:,}" for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name in names:
        unit = "" if name in ("journal MiB", "archive after Z: rows") else " ms"
        print(f"| {name} | " + " | ".join(
            f"{results[n][name]:,.1f}{unit}" for n in sizes) + " |")


if __name__ == "__main__":
    main()
