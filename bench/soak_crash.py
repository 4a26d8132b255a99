"""Soak version of the crash test: >= 1,000 SIGKILLs during cash vends, card debits,
card-paid vends, refunds, voids and syncs, with every form of link failure mixed in and
wall-clock steps, then verify.

    python bench/soak_crash.py [--kills 1000] [--seed 1] [--clock-steps]

The production sending lease (300 s) is kept: a killed holder's rows are reclaimed at
once because the lease names its holder, not because the lease is short. Faults are
drawn at random from every form (drop, reset, 500/502/503/504, 429, a portal's page,
empty and cut bodies, trickle, huge, hang, slow) at both moments (before the provider
did anything, after it committed), on the money endpoints and on the questions
reconciliation asks. With ``--clock-steps`` (needs libfaketime: apt-get install
faketime) one run in eight happens with the wall clock stepped (+3 h, -3 h, +2 d, -1 d,
+30 d), the boot-relative clock untouched.

Prints the counts and exits non-zero if any sale was lost, done twice, left unsettled
or flagged for nothing; also the longest time a token the provider had issued took to
reach the journal after a kill.
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

from bench.crash_harness import FAKETIME_LIB, CrashHarness, meters  # noqa: E402
from pos.journal import Journal, Kind, State  # noqa: E402
from pos.sandbox.server import SandboxServer  # noqa: E402

FORMS = {  # mode -> moments it can strike at
    "drop": ("before", "after"), "reset": ("before", "after"), "http500": ("before", "after"),
    "http502": ("before", "after"), "http503": ("before", "after"),
    "http504": ("before", "after"), "html": ("before", "after"), "empty": ("before", "after"),
    "badjson": ("before", "after"), "trickle": ("before", "after"),
    "huge": ("before", "after"), "http429": ("before",), "redirect": ("before",),
    "hang": ("before",), "slow": ("after",),
}
MONEY = (("pawacard", "vend"), ("patasente", "debit-patasente-card"),
         ("patasente", "credit-patasente-card"))
QUESTIONS = (("pawacard", "transaction"), ("patasente", "get-prepaid-transactions"),
             ("patasente", "get-patasente-card"))


def arm_fault(h: CrashHarness, sb: SandboxServer) -> str:
    mode = h.rng.choice(list(FORMS))
    when = h.rng.choice(FORMS[mode])
    provider, endpoint = h.rng.choice(MONEY if h.rng.random() < 0.7 else QUESTIONS)
    if (provider, endpoint) in QUESTIONS:
        when = "before"  # a question does nothing at the provider
        if mode == "slow":
            mode = "hang"
    sb.faults.add(provider=provider, endpoint=endpoint, mode=mode, when=when,
                  count=h.rng.choice((1, 1, 2)), seconds=0.8 if mode == "slow" else 0.3)
    return f"{mode}@{when}:{endpoint}"


def tokens_missing(h: CrashHarness, sb: SandboxServer) -> set[str]:
    """Refs PawaCard completed whose token is not in the journal yet."""
    j = Journal.open(h.home / "journal.db")
    try:
        have = {t.ref for t in j.list(kinds=[Kind.vend], states=[State.done], limit=1_000_000)}
    finally:
        j.close()
    done = {ref for ref, t in sb.state.pawacard.transactions.items()
            if t.kind == "prepaid" and t.status == 1}
    return done - have


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--clock-steps", action="store_true")
    args = ap.parse_args()
    if args.clock_steps and FAKETIME_LIB is None:
        ap.error("--clock-steps needs libfaketime (apt-get install faketime)")
    t0 = time.time()
    faults: dict[str, int] = {}
    worst_token_delay = 0.0
    with SandboxServer(port=0, throttle_seconds=0, daily_limit=None) as sb, \
            tempfile.TemporaryDirectory() as tmp:
        h = CrashHarness(Path(tmp), sb, seed=args.seed)
        h.env["SENTE_POS_SYNC__SENDING_LEASE_SECONDS"] = "300"  # the production lease
        h.add_supervisor()
        sb.faults.add(provider="*", endpoint="*", mode="latency", seconds=0.25, count=None)
        pool = iter(meters(args.kills * 3, start=30_000))
        i = 0
        while h.counts.kills < args.kills:
            i += 1
            roll = h.rng.random()
            step = (h.rng.choice(h.CLOCK_STEPS) if args.clock_steps and h.rng.random() < 1 / 8
                    else None)
            if i % 25 == 0:  # the link goes down for a while: sales queue offline
                sb.stop()
                for _ in range(3):
                    h.vend(next(pool))
                sb.start()
            if i % 4 == 0:
                name = arm_fault(h, sb)
                faults[name.split(":")[0]] = faults.get(name.split(":")[0], 0) + 1
            if i <= 3:  # calibrate the kill windows on complete runs
                h.vend(next(pool))
                h.debit(amount="10")
                h.card_vend(next(pool))
                h.refund_sale()
                if h.counts.accepted:
                    h.void(h.counts.accepted[-2] if len(h.counts.accepted) > 1
                           else h.counts.accepted[-1])
                h.sync()
                continue
            killed_sync = False
            if roll < 0.30:
                h.vend(next(pool), kill=True)
            elif roll < 0.45:
                h.debit(amount="10", kill=True)
            elif roll < 0.60:
                h.card_vend(next(pool), kill=True)
            elif roll < 0.67:
                h.refund_sale(kill=True)
            elif roll < 0.75 and h.counts.accepted:
                h.void(h.rng.choice(h.counts.accepted), kill=True)
            else:
                h.sync(kill=True, clock_step=step)
                killed_sync = True
            if killed_sync or h.rng.random() < 0.2:
                # After a kill: how long until every token PawaCard issued is in the journal.
                started = time.monotonic()
                missing = tokens_missing(h, sb)
                while missing:
                    h.sync(clock_step=step)
                    missing = tokens_missing(h, sb) & missing
                    if time.monotonic() - started > 120:
                        break
                    if missing:
                        time.sleep(0.3)
                worst_token_delay = max(worst_token_delay, time.monotonic() - started)
        sb.faults.clear()
        h.settle(rounds=200)
        try:
            result = h.verify()
        except AssertionError as exc:  # still print every figure, and the problems
            result = {**h.counts.to_json(), "problems": str(exc).splitlines()}
        flagged = [f for f in flagged_rows(h) if f.split(" ", 1)[0] not in h.counts.capped]
    result["seconds"] = round(time.time() - t0, 1)
    result["faults_armed"] = faults
    result["worst_token_delay_s"] = round(worst_token_delay, 1)
    result["flagged"] = flagged
    print(json.dumps(result, indent=2))
    return 1 if flagged or "problems" in result or worst_token_delay > 30 else 0


def flagged_rows(h: CrashHarness) -> list[str]:
    """Everything left for a person. Nothing in this soak warrants one (no card is
    refused at sync, nothing is old enough to expire) except the sends cap after
    repeatedly interrupted attempts (printed apart): any other would be a false flag."""
    j = Journal.open(h.home / "journal.db")
    try:
        return [f"{t.ref} {t.kind} {t.state}: {t.last_error}" for t in j.flagged()]
    finally:
        j.close()


if __name__ == "__main__":
    sys.exit(main())
