"""Crash harness: the real CLI in subprocesses against the sandbox, killed with SIGKILL.

Used by ``tests/test_crash_safety.py`` (short) and ``bench/soak_crash.py``
(>= 200 kills). After the kills, a final sync runs to completion and
:meth:`CrashHarness.verify` checks the sandbox's own counters against the
journal: every accepted sale performed exactly once, none lost, nothing the
provider did unknown to the terminal, no debit applied twice.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pos.journal import Journal, Kind, State
from pos.meter import luhn_check_digit
from pos.sandbox import data
from pos.sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parent.parent


def meters(n: int, start: int = 200) -> list[str]:
    """``n`` distinct Luhn-valid 11-digit meters that vend normally in the sandbox."""
    out = []
    for i in range(start, start + n):
        body = f"0777{i:06d}"
        out.append(body + luhn_check_digit(body))
    return out


#: libfaketime, when installed (Debian: faketime): clock steps for the soak.
FAKETIME_LIB = next((str(p) for p in (
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/lib/faketime/libfaketime.so.1")) if p.exists()), None)


@dataclass
class Counts:
    runs: int = 0
    kills: int = 0
    clock_steps: int = 0
    accepted: list[str] = field(default_factory=list)  # refs the CLI reported (exit 0/3)
    refund_sales: list[str] = field(default_factory=list)  # card-paid vends that failed
    voids: list[str] = field(default_factory=list)  # void credits the CLI reported
    exits: dict[int, int] = field(default_factory=dict)
    capped: list[str] = field(default_factory=list)  # sent to a person by the sends cap

    def to_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "kills": self.kills, "accepted": len(self.accepted),
                "exits": self.exits, "clock_steps": self.clock_steps,
                "to_a_person_by_the_sends_cap": self.capped}


class CrashHarness:
    def __init__(self, workdir: Path, sb: SandboxServer, *, seed: int = 1) -> None:
        self.sb = sb
        self.home = workdir / "home"
        self.rng = random.Random(seed)
        self.counts = Counts()
        self._durations: dict[str, list[float]] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENTE_POS_")}
        env.update(sb.env())
        env.update({
            "SENTE_POS_HOME": str(self.home),
            "SENTE_POS_PATASENTE__READ_TIMEOUT": "1.5",
            "SENTE_POS_PAWACARD__READ_TIMEOUT": "1.5",
            "SENTE_POS_PATASENTE__CONNECT_TIMEOUT": "0.5",
            "SENTE_POS_PAWACARD__CONNECT_TIMEOUT": "0.5",
            # Requests that move no money: 3 attempts as in production, not its waits.
            "SENTE_POS_PATASENTE__RETRY_WAIT": "0.01",
            "SENTE_POS_PAWACARD__RETRY_WAIT": "0.01",
            "SENTE_POS_PAWACARD__POLL_INTERVAL": "0.05",
            "SENTE_POS_PAWACARD__MAX_POLLS": "2",
            "SENTE_POS_SYNC__SENDING_LEASE_SECONDS": "0.3",
            "SENTE_POS_SYNC__ABANDON_CREATED_AFTER": "0",
            "SENTE_POS_SYNC__BACKOFF_BASE": "0.02",
            "SENTE_POS_SYNC__BACKOFF_MAX": "0.2",
            "SENTE_POS_SYNC__METER_THROTTLE_SECONDS": "0",
            # A lost answer settles in harness time (production: 180 s / 25 s).
            "SENTE_POS_RECONCILE__SETTLE_SECONDS": "1.0",
            "SENTE_POS_RECONCILE__CONFIRM_SECONDS": "0.6",
            "SENTE_POS_RECONCILE__CONFIRM_INTERVAL": "0.1",
            # The sends cap is a person's safety net for a provider that hides what it
            # applied (5 sends: at least 15 minutes of settle windows in production; the
            # fault matrix tests it). Here the window is 180x shorter and a process dies
            # every round, so the cap would stand in for the recovery under test.
            "SENTE_POS_RECONCILE__MAX_SENDS": "25",
            "SENTE_POS_OFFLINE__VEND_MAX_COUNT": "100000",
            "SENTE_POS_OFFLINE__VEND_MAX_AMOUNT": "100000000",
            "SENTE_POS_OFFLINE__MAX_COUNT": "100000",
            "SENTE_POS_OFFLINE__MAX_TOTAL": "100000000",
            "SENTE_POS_OFFLINE__PER_CARD_MAX_TOTAL": "100000000",
            "SENTE_POS_OFFLINE__PER_CARD_MAX_CONSECUTIVE": "100000",
            "PYTHONPATH": str(ROOT),
        })
        self.env = env

    # ------------------------------------------------------------ running
    def kill_time(self, command: str) -> float:
        """A kill moment spread over the command's real work, not only its start-up.

        The window is calibrated on this machine from the command's completed runs
        (the fastest one), so kills land in Python start-up, journal writes,
        requests in flight and the recording of answers alike. The fastest, not the
        median: on a loaded machine (tests in parallel) one slow calibration run would
        put most kills after the command had already finished.
        """
        seen = self._durations.get(command, [])
        typical = min(seen) if seen else 1.5
        return self.rng.uniform(0.55, 1.05) * typical

    #: Wall-clock steps a run may be made under (libfaketime): NTP correcting a Pi's
    #: stale clock, a clock set ahead by hand. The boot-relative clock is never faked.
    CLOCK_STEPS = ("+3h", "-3h", "+2d", "-1d", "+30d")

    def cli(self, *args: str, stdin: str | None = None, kill_after: float | None = None,
            timeout: float = 60.0, command: str | None = None,
            clock_step: str | None = None,
            kill_when: Callable[[], bool] | None = None) -> tuple[int | None, str]:
        """Run ``sente-pos ARGS``; SIGKILL it after ``kill_after`` seconds if still running,
        or as soon as ``kill_when()`` holds (a request reached the sandbox: the kill then
        lands at that point of the work however loaded the machine is).

        ``clock_step``: run it with the wall clock moved (libfaketime's FAKETIME, e.g.
        "+2d"), the boot-relative clocks left alone."""
        started = time.monotonic()
        env = self.env
        if clock_step is not None and FAKETIME_LIB is not None:
            env = {**env, "LD_PRELOAD": FAKETIME_LIB, "FAKETIME": clock_step,
                   "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_DONT_RESET": "1"}
            self.counts.clock_steps += 1
        proc = subprocess.Popen(
            [sys.executable, "-m", "sente_pos.cli", *args], env=env, cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.counts.runs += 1
        if kill_when is not None:
            return self._run_until(proc, stdin, kill_when, timeout, command or args[0], started)
        try:
            out, _err = proc.communicate(input=stdin or "",
                                         timeout=kill_after if kill_after is not None else timeout)
        except subprocess.TimeoutExpired:
            if kill_after is None:
                proc.kill()
                proc.communicate()
                raise
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            self.counts.kills += 1
            return None, ""
        self.counts.exits[proc.returncode] = self.counts.exits.get(proc.returncode, 0) + 1
        self._durations.setdefault(command or args[0], []).append(time.monotonic() - started)
        return proc.returncode, out

    def _run_until(self, proc: subprocess.Popen[str], stdin: str | None,
                   kill_when: Callable[[], bool], timeout: float, command: str,
                   started: float) -> tuple[int | None, str]:
        deadline = started + timeout
        pending: str | None = stdin or ""
        while True:
            try:  # output is read meanwhile: a full pipe never stalls the command
                out, _err = proc.communicate(input=pending, timeout=0.005)
                break
            except subprocess.TimeoutExpired:
                pending = None  # sent with the first call
            if kill_when():
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
                self.counts.kills += 1
                return None, ""
            if time.monotonic() > deadline:
                proc.kill()
                proc.communicate()
                raise subprocess.TimeoutExpired(proc.args, timeout)
        self.counts.exits[proc.returncode] = self.counts.exits.get(proc.returncode, 0) + 1
        self._durations.setdefault(command, []).append(time.monotonic() - started)
        return proc.returncode, out

    def _accepted(self, rc: int | None, out: str) -> None:
        if rc in (0, 3) and out.strip():
            doc = json.loads(out.strip().splitlines()[-1])
            if doc.get("ref"):
                self.counts.accepted.append(doc["ref"])

    def vend(self, meter: str, amount: str = "100", kill: bool = False) -> None:
        kill_after = self.kill_time("vend") if kill else None
        rc, out = self.cli("vend", meter, "--amount", amount, "--name", "Crash Test",
                           "--no-wait", "--json", kill_after=kill_after)
        self._accepted(rc, out)

    def debit(self, amount: str = "100", kill: bool = False) -> None:
        kill_after = self.kill_time("card") if kill else None
        card = data.CARD_ACTIVE
        rc, out = self.cli("card", "debit", card.payload, "--amount", amount, "--wallet",
                           data.CURRENT, "--reason", "crash test", "--json",
                           stdin=f"{card.pin}\n", kill_after=kill_after)
        self._accepted(rc, out)

    def card_vend(self, meter: str, amount: str = "10", kill: bool = False,
                  kill_when: Callable[[], bool] | None = None) -> None:
        """Card pays for electricity: debit, then vend (refund if the vend fails).
        ``kill``: at a calibrated moment; ``kill_when``: once that holds (see ``cli``)."""
        kill_after = self.kill_time("vend-card") if kill else None
        card = data.CARD_ACTIVE
        rc, out = self.cli("vend", meter, "--amount", amount, "--name", "Crash Test",
                           "--card", card.payload, "--wallet", data.CURRENT, "--no-wait",
                           "--json", stdin=f"{card.pin}\n", kill_after=kill_after,
                           command="vend-card", kill_when=kill_when)
        self._accepted(rc, out)

    SUPERVISOR = ("boss", "5831")

    def add_supervisor(self) -> None:
        name, pin = self.SUPERVISOR
        rc, _ = self.cli("operator", "add", name, "--role", "supervisor", "--json",
                         stdin=f"{pin}\n")
        assert rc == 0, "could not add the supervisor"

    def refund_sale(self, kill: bool = False) -> None:
        """A card-paid vend that fails at PawaCard: the card must be credited back once."""
        kill_after = self.kill_time("vend-card") if kill else None
        card = data.CARD_ACTIVE
        rc, out = self.cli("vend", data.METER_FAIL, "--amount", "10", "--name", "Crash Test",
                           "--card", card.payload, "--wallet", data.CURRENT, "--no-wait",
                           "--json", stdin=f"{card.pin}\n", kill_after=kill_after,
                           command="vend-card")
        if rc in (0, 2, 3) and out.strip():
            doc = json.loads(out.strip().splitlines()[-1])
            if doc.get("status") in ("refunded", "pending", "declined") and doc.get("ref"):
                self.counts.refund_sales.append(doc["ref"])

    def void(self, ref: str, kill: bool = False) -> None:
        """A supervisor voids a settled card payment: credited back once, or not at all."""
        kill_after = self.kill_time("void") if kill else None
        rc, out = self.cli("void", ref, "--reason", "soak", "--json",
                           stdin=f"{self.SUPERVISOR[1]}\n", kill_after=kill_after,
                           command="void")
        if rc in (0, 3) and out.strip():
            doc = json.loads(out.strip().splitlines()[-1])
            if doc.get("ref") == ref:  # a sale still queued: cancelled, never sent
                if ref in self.counts.accepted:
                    self.counts.accepted.remove(ref)
            elif doc.get("ref"):
                self.counts.voids.append(doc["ref"])

    def sync(self, kill: bool = False, clock_step: str | None = None) -> dict[str, Any] | None:
        kill_after = self.kill_time("sync") if kill else None
        rc, out = self.cli("sync", "--json", kill_after=kill_after, clock_step=clock_step)
        if rc is None or not out.strip():
            return None
        return json.loads(out.strip().splitlines()[-1])

    def settle(self, rounds: int = 40) -> dict[str, Any] | None:
        """Sync until nothing is outstanding (leases of killed senders expire first)."""
        rep = None
        for _ in range(rounds):
            rep = self.sync()
            if rep is not None and rep.get("remaining") == 0 and not rep.get("busy"):
                return rep
            time.sleep(0.35)
        return rep

    # ------------------------------------------------------------ checking
    def verify(self) -> dict[str, Any]:
        """Compare the journal with the sandbox's own record. Returns counts; raises on a breach."""
        journal = Journal.open(self.home / "journal.db")
        try:
            rows = journal.list(limit=1_000_000)
        finally:
            journal.close()
        by_ref = {t.ref: t for t in rows}
        pawa = self.sb.state.pawacard.transactions
        pata = self.sb.state.patasente
        problems: list[str] = []
        for ref in pawa:
            if ref not in by_ref:
                problems.append(f"PawaCard vended {ref}, unknown to the journal (lost)")
        for op in pata.applied:
            if op.ref and op.ref not in by_ref:
                problems.append(f"Patasente applied {op.ref}, unknown to the journal (lost)")
        done = cancelled = 0
        # Sent to a person by the sends cap (reconcile.max_sends) after every attempt was
        # interrupted, and never applied: nothing lost (a supervisor sees it), nothing
        # done twice. Counted and printed, not a failure; anything else left is.
        capped = {t.ref for t in rows if t.state == State.review
                  and (t.last_error or "").startswith("still absent after")
                  and pata.applied_count(t.ref) == 0 and t.ref not in pawa}
        self.counts.capped = sorted(capped)
        for t in rows:
            if t.ref in capped:
                continue
            if t.kind in (Kind.vend, Kind.postpaid) and t.parent_ref in capped \
                    and t.state in (State.queued, State.created):
                continue  # waits for its card payment, which a person decides
            if t.kind == Kind.vend:
                # Delivered = the provider completed it (a failed vend is recorded too).
                performed = t.ref in pawa and pawa[t.ref].status == 1
                calls = self.sb.state.pawacard.vend_count(t.ref)
                if t.state == State.done:
                    done += 1
                    if not performed or pawa[t.ref].token != t.token:
                        problems.append(f"{t.ref} done in the journal, token differs/not vended")
                elif t.state in (State.cancelled, State.declined, State.failed,
                                 State.declined_offline):
                    cancelled += 1  # nothing delivered (failed ones are flagged / refunded)
                    if performed:
                        problems.append(f"{t.ref} {t.state} in the journal but vended")
                else:
                    problems.append(f"{t.ref} left {t.state} ({t.last_error})")
                if calls > 1 and performed and t.state != State.done:
                    problems.append(f"{t.ref} vend requested {calls} times")
            elif t.kind == Kind.card_debit:
                n = pata.applied_count(t.ref)
                if n > 1:
                    problems.append(f"{t.ref} debited {n} times")
                if t.state == State.done:
                    done += 1
                    if n != 1:
                        problems.append(f"{t.ref} done but applied {n} times")
                elif t.state in (State.cancelled, State.declined):
                    cancelled += 1
                    if n:
                        problems.append(f"{t.ref} {t.state} but applied")
                else:
                    problems.append(f"{t.ref} left {t.state} ({t.last_error})")
            elif t.kind == Kind.card_refund:
                n = pata.applied_count(t.ref)
                if n > 1 or (t.state == State.done) != (n == 1):
                    problems.append(f"refund {t.ref} {t.state} but credited {n} times")
                void = "void_of" in (t.details or {})
                # A void killed before Patasente credited it was never accepted: cancelled
                # (the supervisor sees it and voids again); an automatic refund is always
                # accepted and must end done.
                if t.state != State.done and not (void and t.state == State.cancelled):
                    problems.append(f"refund {t.ref} left {t.state} ({t.last_error})")
        # Card pays for electricity: a charged card ends with power delivered or money back.
        for t in rows:
            if t.kind != Kind.card_debit or t.state != State.done:
                continue
            if (t.details or {}).get("for") not in ("vend", "postpaid"):
                continue
            kids = [by_ref[k.ref] for k in rows if k.parent_ref == t.ref]
            delivered = [k for k in kids if k.kind in (Kind.vend, Kind.postpaid)
                         and k.state == State.done]
            refunded = [k for k in kids if k.kind == Kind.card_refund and k.state == State.done]
            if not delivered and any(k.ref in capped for k in kids):
                continue  # the refund owed is with a person (see capped)
            if len(delivered) + len(refunded) != 1:
                problems.append(f"card charged by {t.ref}: {len(delivered)} delivered, "
                                f"{len(refunded)} refunded")
        for ref in self.counts.accepted:
            t = by_ref.get(ref)
            if ref in capped or (t is not None and t.parent_ref in capped):
                continue
            if t is None or t.state != State.done:
                problems.append(f"accepted sale {ref} not done ({t.state if t else 'missing'})")
        for ref in self.counts.voids:
            t = by_ref.get(ref)
            if ref in capped:
                continue
            if t is None or t.state != State.done or pata.applied_count(ref) != 1:
                problems.append(f"accepted void {ref} not credited once "
                                f"({t.state if t else 'missing'})")
        if problems:
            raise AssertionError("\n".join(problems[:20]))
        return {**self.counts.to_json(), "journal_rows": len(rows), "done": done,
                "voids": len(self.counts.voids), "refund_sales": len(self.counts.refund_sales),
                "refunds_credited": len([t for t in rows if t.kind == Kind.card_refund
                                         and t.state == State.done]),
                "never_sent": cancelled, "vends_performed": self.sb.state.vends_performed,
                "debits_applied": len([o for o in pata.applied if o.kind == "debit"])}
