"""Settling a money request whose answer was lost: ask, never guess (DESIGN.md 2, 9, 10).

One exactly-once rule serves both providers. After a lost answer nothing is sent
again until the provider has been asked, by more than one documented signal where
the documents allow it, and every signal agrees that nothing happened AND the
settle window has passed since the request left (a slow provider may still be
working on it; Patasente does not de-duplicate by ref, and the PawaCard document
does not say that a vend is idempotent by ref). When the signals disagree, or a
transaction carrying our ref is not the one we sent (another amount, another
meter: a fleet's refs collided), a person decides: the row goes to ``review``
with what each signal said.

Signals:

* PawaCard: ``/transaction`` (``/postpaidtransaction``) by ref, asked again over
  the window -- a 104 one second after a lost answer is not proof of absence.
* Patasente: (1) ``get-prepaid-transactions?search=<ref>`` -- the document only
  says "search query", so it may not look inside reasons; (2) the merchant's
  prepaid transactions since the send, read WITHOUT a search term and matched on
  card, type and amount -- independent of how search works, and of a reason the
  server rewrote (the document's own credit example reads "Funds transferred to
  card"); (3) the card's balance from ``get-patasente-card`` against the balance
  recorded before the request.

A row the cashier was never told was accepted (the terminal died mid-request)
and that the provider never applied is cancelled, never sent again: the customer
was not told it went through, and may have paid another way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pos.clock import Stamp, elapsed
from pos.errors import PosError
from pos.journal import Kind, State, Txn
from pos.money import Money
from pos.providers.models import PrepaidTransaction, VendOutcome, VendStatus
from pos.refs import REF_TAG
from pos.usecases.context import Context

log = logging.getLogger(__name__)

POWER_KINDS = frozenset({Kind.vend, Kind.postpaid})
CARD_MONEY_KINDS = frozenset({Kind.card_debit, Kind.card_credit, Kind.card_refund})
#: Patasente transaction statuses that mean the debit / credit did not go through.
FAILED_ROW = re.compile(r"fail|declin|revers|cancel|reject", re.I)
_ANY_REF = re.compile(re.escape(REF_TAG) + r"(\d+)")
#: The providers' own timestamps carry no zone; both sit in East Africa Time.
EAT = dt.timezone(dt.timedelta(hours=3))
#: Slack around a send when matching the provider's own timestamps to it.
_TIME_SLACK = dt.timedelta(minutes=10)
#: How far back a request sent under an unsynchronised clock in an earlier boot is looked for.
_UNSYNCED_REACH = dt.timedelta(days=30)


class Verdict(StrEnum):
    applied = "applied"  # a transaction with our ref, as we sent it, went through
    failed = "failed"  # a transaction with our ref is recorded as failed
    pending = "pending"  # the provider is still working on it
    absent = "absent"  # this signal sees nothing of it
    maybe = "maybe"  # something that could be it, without our ref
    conflict = "conflict"  # our ref, but not what we sent: not ours to settle
    unknown = "unknown"  # the signal could not be read (link down, odd answer)
    inconclusive = "inconclusive"  # read, but it cannot tell (other activity, too long)


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    verdict: Verdict
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "verdict": str(self.verdict), "detail": self.detail}


@dataclass
class Evidence:
    signals: list[Signal] = field(default_factory=list)
    vend: VendOutcome | None = None  # PawaCard's answer when it settles the row
    row: PrepaidTransaction | None = None  # Patasente's row carrying our ref
    #: How many signals must say "absent" before a resend: PawaCard has one documented
    #: question (asked again over the window); Patasente's ref search is not documented
    #: to look inside reasons, so an independent signal must agree with it.
    absent_needed: int = 1

    def verdicts(self) -> set[Verdict]:
        return {s.verdict for s in self.signals}

    def describe(self) -> str:
        return "; ".join(f"{s.name}: {s.verdict}{' (' + s.detail + ')' if s.detail else ''}"
                         for s in self.signals)


class Action(StrEnum):
    applied = "applied"  # record it as done
    failed = "failed"  # record the refusal
    pending = "pending"  # the provider is still at it: poll
    wait = "wait"  # ask again later
    resend = "resend"  # nothing happened and the window has passed: send again, same ref
    cancel = "cancel"  # nothing happened and nobody was told it would: never send again
    review = "review"  # a person decides


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    evidence: Evidence
    #: Whether this question counts against the item's attempts cap: a wait inside the
    #: settle window or a pending vend does not (the window and the age cap bound them);
    #: a question that cannot be answered after the window does.
    counts: bool = False


# ------------------------------------------------------------------ deciding
def decide(txn: Txn, ev: Evidence, *, waited: float, settle_seconds: float,
           max_sends: int) -> Decision:
    """What to do with ``txn`` given what the signals said, ``waited`` seconds after it
    last left (a lower bound: see pos.clock.elapsed)."""
    verdicts = ev.verdicts()
    if Verdict.conflict in verdicts:
        return Decision(Action.review, "a transaction carrying this ref is not the one "
                        "sent: " + ev.describe(), ev)
    if Verdict.applied in verdicts and Verdict.failed in verdicts:
        return Decision(Action.review, "the signals disagree: " + ev.describe(), ev)
    if Verdict.applied in verdicts:
        return Decision(Action.applied, ev.describe(), ev)
    if Verdict.failed in verdicts:
        return Decision(Action.failed, ev.describe(), ev)
    if Verdict.pending in verdicts:
        return Decision(Action.pending, ev.describe(), ev)
    window_open = waited < settle_seconds
    if Verdict.maybe in verdicts:
        if window_open:
            return Decision(Action.wait, "not found by ref yet: " + ev.describe(), ev)
        return Decision(Action.review, "not found by ref, but " + ev.describe(), ev)
    absent = sum(1 for sig in ev.signals if sig.verdict is Verdict.absent)
    if Verdict.unknown in verdicts or absent < ev.absent_needed:
        return Decision(Action.wait, "cannot tell yet: " + ev.describe(), ev,
                        counts=not window_open)
    # Every signal that can tell: absent.
    if txn.state == State.pending:
        return Decision(Action.review, "the provider said pending, now knows nothing of it: "
                        + ev.describe(), ev)
    if window_open:
        return Decision(Action.wait, f"absent so far ({waited:.0f} s of {settle_seconds:.0f} s)",
                        ev)
    if not txn.accepted:
        return Decision(Action.cancel, "interrupted before the provider applied it; the "
                        "counter never accepted it, so it is not sent again", ev)
    if txn.sends >= max_sends:
        return Decision(Action.review, f"still absent after {txn.sends} sends: "
                        + ev.describe(), ev)
    return Decision(Action.resend, "absent at the provider: " + ev.describe(), ev)


async def assess(ctx: Context, txn: Txn) -> Decision:
    """Ask the provider about ``txn`` and decide (nothing is written)."""
    ev = await gather(ctx, txn)
    waited = elapsed(txn.sent, ctx.device.stamp()) if txn.sent else float("inf")
    s = ctx.settings.reconcile
    return decide(txn, ev, waited=waited, settle_seconds=s.settle_seconds, max_sends=s.max_sends)


def record(ctx: Context, txn: Txn, decision: Decision) -> dict[str, Any]:
    """The reconciliation trail kept on the row (the last few observations)."""
    obs = {"at": ctx.clock().astimezone(dt.UTC).isoformat(timespec="seconds"),
           "action": str(decision.action),
           "signals": [s.to_json() for s in decision.evidence.signals]}
    history = list((txn.recon or {}).get("observations", []))[-4:]
    return {"asked": int((txn.recon or {}).get("asked", 0)) + 1,
            "observations": [*history, obs], "reason": decision.reason[:500]}


# ------------------------------------------------------------------ asking
async def gather(ctx: Context, txn: Txn) -> Evidence:
    if txn.kind in POWER_KINDS:
        return await _ask_pawacard(ctx, txn)
    if txn.kind in CARD_MONEY_KINDS:
        return await _ask_patasente(ctx, txn)
    raise ValueError(f"{txn.kind} is not a money request")


async def _ask_pawacard(ctx: Context, txn: Txn) -> Evidence:
    ev = Evidence()
    name = "status by ref"
    try:
        out = await ctx.pawacard.status(txn.ref, postpaid=txn.kind == Kind.postpaid)
    except PosError as exc:
        ev.signals.append(Signal(name, Verdict.unknown, exc.message[:120]))
        return ev
    target = txn.account if txn.kind == Kind.postpaid else txn.meter
    mismatch = _vend_mismatch(out, txn.ref, target, txn.amount, txn.customer_name)
    if out.status is VendStatus.ABSENT:
        ev.signals.append(Signal(name, Verdict.absent, out.message[:120]))
    elif mismatch:
        ev.signals.append(Signal(name, Verdict.conflict, mismatch))
    elif out.status is VendStatus.VENDED:
        ev.vend = out
        ev.signals.append(Signal(name, Verdict.applied, out.message[:120]))
    elif out.status is VendStatus.PENDING:
        ev.vend = out
        ev.signals.append(Signal(name, Verdict.pending, out.message[:120]))
    elif out.status is VendStatus.DECLINED and out.status_code == "103":
        # "Bad reference number" in answer to a status query says nothing about the sale.
        ev.signals.append(Signal(name, Verdict.unknown, out.message[:120]))
    elif out.status is VendStatus.DECLINED:
        ev.vend = out
        ev.signals.append(Signal(name, Verdict.failed, out.message[:120]))
    else:
        ev.signals.append(Signal(name, Verdict.unknown, str(out.status)))
    return ev


def _vend_mismatch(out: VendOutcome, ref: str, target: str | None, amount: Money,
                   name: str | None) -> str:
    """Why a status answer for our ref is not our sale ("" when it may be).

    Document 003's answers carry what they carry: the postpaid ones ``accountNo`` and
    ``amount``; the prepaid ones neither (``totalAmount`` may include charges: the
    document's own example answers 200 to a vend of 50, so it is not compared), but the
    ``customerName`` the sale was sent with.
    """
    if out.ref and out.ref != ref:
        return f"answer names ref {out.ref[:20]}"
    if out.target and target and out.target.replace(" ", "") != target:
        return f"answer names {out.target[:20]}, not {target}"
    if out.amount is not None and out.amount.currency == amount.currency and \
            out.amount != amount:
        return f"answer says {out.amount.format()}, not {amount.format()}"
    if name and out.customer_name and _name_key(name) != _name_key(out.customer_name):
        return f"answer names {out.customer_name[:30]!r}, not {name[:30]!r}"
    return ""


def _name_key(name: str) -> str:
    return " ".join(name.casefold().split())


async def _ask_patasente(ctx: Context, txn: Txn) -> Evidence:
    ev = Evidence(absent_needed=2)
    kind = "debit" if txn.kind == Kind.card_debit else "credit"
    client = ctx.patasente
    # 1. The ref search.
    try:
        row = await client.find_by_ref(txn.ref, kind=kind)
    except PosError as exc:
        ev.signals.append(Signal("search by ref", Verdict.unknown, exc.message[:120]))
    else:
        ev.signals.append(_row_signal("search by ref", row, txn, ev))
    # 2. The history since the send, without a search term.
    ev.signals.append(await _history_signal(ctx, txn, kind, ev))
    # 3. The card's balance against the one recorded before the request.
    balance = await _balance_signal(ctx, txn, kind)
    if balance is not None:
        ev.signals.append(balance)
    return ev


def _row_signal(name: str, row: PrepaidTransaction | None, txn: Txn, ev: Evidence) -> Signal:
    if row is None:
        return Signal(name, Verdict.absent)
    if row.amount != txn.amount:
        return Signal(name, Verdict.conflict, f"row {row.transaction_id} is "
                      f"{row.amount.format()}, not {txn.amount.format()}")
    if row.card_no and txn.card_no and not same_card(row.card_no, txn.card_no):
        return Signal(name, Verdict.conflict, f"row {row.transaction_id} is card {row.card_no}")
    ev.row = row
    if FAILED_ROW.search(row.status or ""):
        return Signal(name, Verdict.failed, f"row {row.transaction_id}: {row.status}")
    return Signal(name, Verdict.applied, f"row {row.transaction_id}: {row.status or 'recorded'}")


async def _history_signal(ctx: Context, txn: Txn, kind: str, ev: Evidence) -> Signal:
    name = "card history"
    sent = earliest_wall(ctx, txn)
    trusted = txn.sent is not None and txn.sent.synced
    since = (sent.astimezone(EAT) - dt.timedelta(days=1)).date()
    try:
        rows, complete = await ctx.patasente.history(since, max_rows=1000)
    except PosError as exc:
        return Signal(name, Verdict.unknown, exc.message[:120])
    ours = _refs_of_this_terminal(ctx)
    candidates: list[PrepaidTransaction] = []
    for row in rows:
        if row.card_transaction_type not in (None, kind):
            continue
        if row.card_no and txn.card_no and not same_card(row.card_no, txn.card_no):
            continue
        carried = _ANY_REF.findall(row.payment_reason)
        if txn.ref in carried:
            return _row_signal(name, row, txn, ev)
        if row.amount != txn.amount:
            continue
        if any(r in ours for r in carried):
            continue  # another of this terminal's own requests
        if trusted and (when := _provider_time(row.created_at)) is not None and \
                when < sent - _TIME_SLACK - dt.timedelta(hours=3):
            continue  # older than the send (3 h of slack: the zone is not stated)
        candidates.append(row)
    if candidates:
        ids = ", ".join(r.transaction_id or "?" for r in candidates[:3])
        return Signal(name, Verdict.maybe, f"{len(candidates)} {kind}(s) of "
                      f"{txn.amount.format()} on this card without our ref: {ids}")
    if not complete:
        return Signal(name, Verdict.inconclusive, f"more than {len(rows)} rows since {since}")
    return Signal(name, Verdict.absent, f"{len(rows)} rows since {since}")


def _refs_of_this_terminal(ctx: Context) -> set[str]:
    """Refs of recent card requests in the journal (a row carrying one is accounted for)."""
    rows = ctx.journal.list(kinds=list(CARD_MONEY_KINDS), limit=500)
    return {t.ref for t in rows}


async def _balance_signal(ctx: Context, txn: Txn, kind: str) -> Signal | None:
    """The card's balance now against the one read before the request, corrected for the
    card's other movements this terminal made since (other terminals' are not known:
    a mismatch is inconclusive, never proof)."""
    before = (txn.details or {}).get("balance_before")
    if not isinstance(before, dict) or txn.card_id is None:
        return None
    name = "card balance"
    from pos.cardqr import CardRef

    ref = CardRef(number=txn.card_no or "", expiry_month=1, expiry_year=2099,
                  currency=txn.amount.currency, digit=0, card_type="", card_id=txn.card_id,
                  raw="")
    try:
        info = await ctx.patasente.get_card(ref)
    except PosError as exc:
        return Signal(name, Verdict.unknown, exc.message[:120])
    wallet = str(before.get("wallet") or txn.wallet or "")
    now = info.available_in(wallet)
    try:
        was = Money(int(before["minor"]), str(before["currency"]))
        read_at = dt.datetime.fromisoformat(str(before.get("at") or txn.created_at.isoformat()))
    except (KeyError, TypeError, ValueError):
        return None
    read = Stamp.from_json(before.get("stamp")) or Stamp(read_at, 0.0, "", False)
    if now.currency != was.currency or now.currency != txn.amount.currency:
        return Signal(name, Verdict.inconclusive, "another currency")
    own = _own_movements(ctx, txn, read)
    if own is None:
        return Signal(name, Verdict.inconclusive, "this terminal's other movements on the "
                      "card are not settled yet")
    moved = now.minor - was.minor - own
    expected = -txn.amount.minor if kind == "debit" else txn.amount.minor
    if moved == 0:
        return Signal(name, Verdict.absent, f"{now.format()}: as before, less this "
                      "terminal's other movements")
    if moved == expected:
        return Signal(name, Verdict.maybe, f"{was.format()} -> {now.format()}")
    return Signal(name, Verdict.inconclusive,
                  f"{was.format()} -> {now.format()} (other activity)")


def _own_movements(ctx: Context, txn: Txn, read: Stamp) -> int | None:
    """Net minor units this terminal moved on the card after the balance was ``read``
    (other rows than ``txn``); None while one of them is unsettled (its effect is not
    known) or cannot be placed before or after the reading (another boot, a clock that
    was not synchronised: the wall clock may have stepped between them)."""
    net = 0
    for other in ctx.journal.list(kinds=list(CARD_MONEY_KINDS), limit=500):
        if other.ref == txn.ref or other.card_id != txn.card_id or other.sent is None:
            continue
        order = _after(other.sent, read)
        if order is None:
            return None
        if not order:
            continue  # left before the balance was read: already in it
        if other.needs_sync or other.state in (State.review, State.sending):
            return None
        if other.state != State.done:
            continue
        net += -other.amount.minor if other.kind == Kind.card_debit else other.amount.minor
    return net


def _after(moment: Stamp, read: Stamp) -> bool | None:
    """Whether ``moment`` came after ``read``: by the boot-relative clock within one boot,
    by the wall clock only where both readings were synchronised; None when it cannot
    be told."""
    if moment.boot and moment.boot == read.boot:
        return moment.mono >= read.mono
    if moment.synced and read.synced:
        return moment.wall >= read.wall
    return None


def earliest_wall(ctx: Context, txn: Txn) -> dt.datetime:
    """The earliest wall-clock time the request can have left at, in today's clock:
    the recorded times, and (same boot) now less the boot-relative time since. A clock
    that was ahead when the request left cannot hide it from a window that starts here."""
    times = [txn.created_at]
    if txn.sent is not None:
        times.append(txn.sent.wall)
        now = ctx.device.stamp()
        if txn.sent.boot == now.boot:
            times.append(now.wall - dt.timedelta(seconds=max(0.0, now.mono - txn.sent.mono)))
        elif not txn.sent.synced:  # before this boot, by how much nobody knows
            times.append(now.wall - dt.timedelta(seconds=now.mono) - _UNSYNCED_REACH)
    return min(t if t.tzinfo else t.replace(tzinfo=dt.UTC) for t in times)


def _provider_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.strip()[:19]).replace(tzinfo=EAT)
    except ValueError:
        return None


def same_card(a: str, b: str) -> bool:
    """Whether two masked card numbers can be one card: the digits both show agree.

    The QR shows ``1613*****65219``, a transaction row ``1613********12365219``:
    masks differ in length, so the visible leading and trailing digits are compared.
    """
    def parts(s: str) -> tuple[str, str]:
        s = "".join(ch for ch in s if ch.isdigit() or ch == "*")
        if "*" not in s:
            return s[:4], s[-4:]
        return s[: s.index("*")], s[s.rindex("*") + 1:]

    (pa, sa), (pb, sb) = parts(a), parts(b)
    n = min(len(pa), len(pb))
    m = min(len(sa), len(sb))
    return pa[:n] == pb[:n] and (m == 0 or sa[-m:] == sb[-m:])


async def confirm(ctx: Context, txn: Txn, *, seconds: float | None = None) -> Decision:
    """Ask, with the customer at the counter, until the answer settles or ``seconds``
    (the ``confirm_seconds`` setting) are up. Nothing is ever re-sent here."""
    s = ctx.settings.reconcile
    budget = s.confirm_seconds if seconds is None else seconds
    loop = asyncio.get_running_loop()
    end = loop.time() + budget
    while True:
        decision = await assess(ctx, txn)
        if decision.action in (Action.applied, Action.failed, Action.review, Action.pending):
            return decision
        if loop.time() + s.confirm_interval > end:
            return decision
        await asyncio.sleep(s.confirm_interval)
