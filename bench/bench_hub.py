"""Back-office (hub) benchmark on PostgreSQL: 500 terminals upload a day of sales each,
through lost connections and duplicate uploads, to two hub processes sharing one
database; then the dashboard's pages are timed with more than a million transactions.

Each simulated terminal follows the uploader's protocol (pos/hubsync.py): batches of
its journal events after a cursor, each with the rows of their transactions and a fresh
sequence number; the cursor moves only on a 200. Faults: an answer lost after the hub
stored the batch (re-sent), a request cut at a random moment in flight (the hub may or
may not have stored it; re-sent), and a stale batch sent again later with its old
sequence number. At the end every terminal's events and rows are counted in the
database against what the terminal holds: none lost, none doubled.

The history (previous days, to pass a million transactions) is bulk-loaded with COPY;
the dashboard pages are then timed over HTTP. Hub memory is each hub process's RSS.
Prints figures; asserts nothing. THE DATABASE GIVEN IS EMPTIED FIRST.

    python bench/bench_hub.py --db postgresql://user:pw@127.0.0.1:5432/benchdb \\
        [--terminals 500] [--sales 200] [--history 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from pos.hub.service import Hub  # noqa: E402
from tests.hub_support import hub_settings, reset_postgres  # noqa: E402

OWNER = ("owner", "bench-owner-1")


def rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process, MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (and its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def start_hub(db: str, home: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "SENTE_POS_HOME": str(home),
           "SENTE_POS_HUB__PATASCORE__ENABLED": "false", "SENTE_POS_HUB__UPLOAD_MAX_ITEMS": "5000"}
    proc = subprocess.Popen([sys.executable, "-m", "sente_pos.cli", "hub", "--db", db,
                             "--port", "0"],
                            env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line.split(" on ")[1].split()[0]


class Terminal:
    """One simulated counter: a day of sales as journal rows and events."""

    def __init__(self, name: str, credential: str, sales: int, day: dt.date, rng: random.Random,
                 first_ref: int) -> None:
        self.name = name
        self.credential = credential
        self.rows: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        start = dt.datetime.combine(day, dt.time(6), dt.UTC)
        eid = 0
        for i in range(sales):
            gap = 12 * 3600 // max(1, sales)
            at = start + dt.timedelta(seconds=i * gap + rng.randint(0, 30))
            ref = str(first_ref + i)
            kind = rng.choice(("vend", "vend", "postpaid", "card_debit"))
            tender = "card" if kind == "card_debit" else "cash"
            cur = "UGX" if kind == "card_debit" else "KES"
            minor = rng.randint(1, 500) * (100 if cur == "KES" else 1000)
            stamps = [at, at + dt.timedelta(milliseconds=2), at + dt.timedelta(seconds=1)]
            self.rows[ref] = {
                "ref": ref, "kind": kind, "state": "done", "amount": {"minor": minor,
                                                                       "currency": cur},
                "tender": tender, "operator": "ann", "terminal_id": name,
                "meter": "01451174955" if kind == "vend" else None,
                "account": "2233445566" if kind == "postpaid" else None,
                "card_no": "1613*****65219" if kind == "card_debit" else None,
                "token": "1234" * 5 if kind == "vend" else None, "receipt_number": i + 1,
                "created_at": stamps[0].isoformat(), "updated_at": stamps[2].isoformat(),
                "settled_at": stamps[2].isoformat(), "charges": [], "details": {},
            }
            for frm, to, when in ((None, "created", stamps[0]), ("created", "sending", stamps[1]),
                                  ("sending", "done", stamps[2])):
                eid += 1
                self.events.append({"id": eid, "ref": ref, "at": when.isoformat(), "from": frm,
                                    "to": to, "note": None, "error": None, "operator": "ann"})
        self.cursor = 0  # events acknowledged by the hub
        self.seq = 0
        self.sent_batches: list[dict[str, Any]] = []

    def next_batch(self, rng: random.Random) -> dict[str, Any] | None:
        """The next upload: the events of the next 1-10 sales after the cursor."""
        if self.cursor >= len(self.events):
            return None
        n = 3 * rng.randint(1, 10)
        evs = self.events[self.cursor:self.cursor + n]
        refs = dict.fromkeys(e["ref"] for e in evs)
        self.seq += 1
        return {"seq": self.seq, "txns": [self.rows[r] for r in refs], "events": evs,
                "z_reports": [], "status": {"online": True, "link": "online", "unsynced_count": 0,
                                            "receipt_no": int(evs[-1]["id"]) // 3}}


async def run_terminal(term: Terminal, urls: list[str], rng: random.Random,
                       clients: dict[str, httpx.AsyncClient], stats: dict[str, int],
                       sem: asyncio.Semaphore) -> None:
    headers = {"Authorization": f"Bearer {term.credential}", "Content-Type": "application/json"}
    while True:
        batch = term.next_batch(rng)
        if batch is None:
            return
        body = json.dumps(batch).encode()
        while True:
            url = rng.choice(urls)  # a load balancer in front of two hubs
            roll = rng.random()
            async with sem:
                try:
                    if roll < 0.03:  # the connection drops at a random moment in flight
                        stats["cut"] += 1
                        await asyncio.wait_for(
                            clients[url].post("api/v1/upload", content=body, headers=headers),
                            timeout=rng.uniform(0.0005, 0.02))
                        continue  # treated as lost even if it finished: sent again
                    r = await clients[url].post("api/v1/upload", content=body, headers=headers)
                except (TimeoutError, httpx.HTTPError):
                    continue
            stats["requests"] += 1
            if r.status_code != 200:
                stats["errors"] += 1
                continue
            if roll < 0.08:  # the hub stored it, the answer never arrived: sent again
                stats["lost_answers"] += 1
                continue
            term.cursor += len(batch["events"])
            term.sent_batches.append(batch)
            break
        if term.sent_batches and rng.random() < 0.05:  # an old upload arrives again, late
            old = rng.choice(term.sent_batches)
            stats["duplicates"] += 1
            async with sem:
                r = await clients[rng.choice(urls)].post(
                    "api/v1/upload", content=json.dumps(old).encode(), headers=headers)
            stats["requests"] += 1


def bulk_history(hub: Hub, terminals: list[tuple[int, str]], total: int, day: dt.date) -> float:
    """Previous days' transactions, COPYed straight into PostgreSQL (not timed as ingest)."""
    import psycopg

    url = hub.db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    t0 = time.perf_counter()
    per = total // len(terminals)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY txns (terminal_id, ref, kind, state, amount_minor, currency, tender,"
                      " operator, card_no, card_last4, meter, account, customer_name,"
                      " receipt_number, flagged, created_at, updated_at, settled_at, seq,"
                      " data_json) FROM STDIN") as copy:
            n = 0
            for tid, _name in terminals:
                for i in range(per):
                    n += 1
                    at = dt.datetime.combine(day - dt.timedelta(days=1 + i % 60), dt.time(8),
                                             dt.UTC) + dt.timedelta(seconds=(i * 37) % 36000)
                    stamp = at.isoformat(timespec="microseconds")
                    ref = f"9{n:011d}"
                    flagged = i % 5000 == 0
                    copy.write_row((tid, ref, "vend", "failed" if flagged else "done", 10000,
                                    "KES", "cash", "ann", None, None, f"37{n % 10**9:09d}",
                                    None, None, i, flagged, stamp, stamp, stamp, 0,
                                    f'{{"ref":"{ref}","history":true}}'))
        conn.commit()
        cur.execute("ANALYZE")
    return time.perf_counter() - t0


def time_pages(url: str, paths: list[str], rounds: int) -> dict[str, tuple[float, float]]:
    with httpx.Client(base_url=url, timeout=120) as c:
        page = c.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        c.post("/login", data={"username": OWNER[0], "password": OWNER[1], "csrf": csrf.group(1)})
        out = {}
        for path in paths:
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                r = c.get(path)
                r.read()
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, (path, r.status_code)
            times.sort()
            out[path] = (statistics.median(times), times[int(len(times) * 0.95) - 1])
        return out


async def ingest(terms: list[Terminal], urls: list[str], seed: int, concurrency: int
                 ) -> tuple[float, dict[str, int]]:
    stats = {"requests": 0, "errors": 0, "lost_answers": 0, "cut": 0, "duplicates": 0}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    clients = {u: httpx.AsyncClient(base_url=u, timeout=60, limits=limits) for u in urls}
    sem = asyncio.Semaphore(concurrency)
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(run_terminal(t, urls, random.Random(seed * 1000 + i), clients,
                                            stats, sem) for i, t in enumerate(terms)))
    finally:
        for c in clients.values():
            await c.aclose()
    return time.perf_counter() - t0, stats


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--db", default=os.environ.get("SENTE_POS_TEST_PG_URL", ""))
    p.add_argument("--terminals", type=int, default=500)
    p.add_argument("--sales", type=int, default=200, help="sales per terminal in the day")
    p.add_argument("--history", type=int, default=1_000_000, help="earlier transactions")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    if not args.db.startswith("postgresql"):
        print("needs --db postgresql://... (or SENTE_POS_TEST_PG_URL)", file=sys.stderr)
        return 2
    reset_postgres(args.db)
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-hub-{os.getpid()}"
    home.mkdir(parents=True, exist_ok=True)
    hub = Hub.open(hub_settings(args.db))
    mid = hub.accounts.create_merchant("Bench Traders", "PVT-BENCH001", kyb=False)
    hub.accounts.add_user(mid, *OWNER, "owner")
    shop = hub.accounts.shop_id(mid, None)
    procs = [start_hub(args.db, home), start_hub(args.db, home)]
    urls = [u for _, u in procs]
    try:
        day = dt.datetime.now(dt.UTC).date()
        rng = random.Random(args.seed)
        terms = []
        t0 = time.perf_counter()
        for i in range(args.terminals):
            name = f"POS-{i + 1:04d}"
            code = hub.accounts.create_code(mid, shop, name, "bench")
            if i < 10:  # a few over HTTP; the rest directly (the enrol rate limit per
                #          client address would otherwise hold the bench back, by design)
                r = httpx.post(urls[i % 2] + "api/v1/enrol", json={"code": code}, timeout=30)
                cred = r.json()["credential"]
            else:
                cred = hub.store.enrol(code, f"bench-{i}")["credential"]
            terms.append(Terminal(name, cred, args.sales, day, rng, 10**11 + i * 10**6))
        enrol_s = time.perf_counter() - t0
        print(f"enrolled {len(terms)} terminals in {enrol_s:.1f} s")
        cpu0 = [cpu_s(proc.pid) for proc, _ in procs]
        me0 = time.process_time()
        wall, stats = asyncio.run(ingest(terms, urls, args.seed, args.concurrency))
        hub_cpu = sum(cpu_s(proc.pid) for proc, _ in procs) - sum(cpu0)
        bench_cpu = time.process_time() - me0
        events = sum(len(t.events) for t in terms)
        rows = sum(len(t.rows) for t in terms)
        print(f"day of sales: {rows:,} transactions, {events:,} events in {wall:.1f} s: "
              f"{events / wall:,.0f} events/s, {(rows + events) / wall:,.0f} rows/s, "
              f"{stats['requests'] / wall:,.0f} uploads/s")
        print("  faults: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
        print(f"  CPU: hubs {hub_cpu:.1f} s ({hub_cpu / max(1, stats['requests']) * 1000:.1f} ms"
              f" per upload), simulated terminals {bench_cpu:.1f} s, wall {wall:.1f} s on "
              f"{os.cpu_count()} cores (PostgreSQL has the rest)")
        # Lost or doubled? Count what the hub holds per terminal.
        from sqlalchemy import func, select

        from pos.hub import schema as t

        with hub.db.read() as conn:
            ev = dict(conn.execute(select(t.terminals.c.name, func.count()).join(
                t.events, t.events.c.terminal_id == t.terminals.c.id).group_by(
                t.terminals.c.name)).all())
            tx = dict(conn.execute(select(t.terminals.c.name, func.count()).join(
                t.txns, t.txns.c.terminal_id == t.terminals.c.id).group_by(
                t.terminals.c.name)).all())
            done = conn.execute(select(func.count()).select_from(t.txns).where(
                t.txns.c.state == "done")).scalar_one()
            ids = {(r.terminal_id, r.event_id) for r in conn.execute(
                select(t.events.c.terminal_id, t.events.c.event_id))}
        lost = sum(max(0, len(x.events) - ev.get(x.name, 0)) for x in terms)
        doubled = sum(max(0, ev.get(x.name, 0) - len(x.events)) for x in terms)
        print(f"  events lost {lost}, doubled {doubled} (distinct keys {len(ids):,} of "
              f"{events:,}); transactions {sum(tx.values()):,} of {rows:,}, done {done:,}")
        for (proc, url) in procs:
            now, peak = rss_mib(proc.pid)
            print(f"  hub {url}: RSS {now:.0f} MiB (peak {peak:.0f} MiB) after ingest")
        with hub.db.read() as conn:
            ids_map = [(r.id, r.name) for r in conn.execute(select(t.terminals.c.id,
                                                                   t.terminals.c.name))]
        secs = bulk_history(hub, ids_map, args.history, day)
        with hub.db.read() as conn:
            total = conn.execute(select(func.count()).select_from(t.txns)).scalar_one()
        print(f"history: {args.history:,} earlier transactions COPYed in {secs:.1f} s; "
              f"the hub now holds {total:,} transactions")
        pages = ["/", "/sales", "/flagged", "/z", "/search?q=5219", "/search?q=01451174955",
                 f"/search?q={terms[0].events[0]['ref']}"]
        timed = time_pages(urls[0], pages, args.rounds)
        print(f"dashboard with {total:,} transactions ({args.rounds} requests each):")
        for path, (med, p95) in timed.items():
            print(f"  {path:<28} median {med:7.1f} ms  p95 {p95:7.1f} ms")
        for (proc, url) in procs:
            now, peak = rss_mib(proc.pid)
            print(f"  hub {url}: RSS {now:.0f} MiB (peak {peak:.0f} MiB) after the pages")
    finally:
        for proc, _ in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        asyncio.run(hub.aclose())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
