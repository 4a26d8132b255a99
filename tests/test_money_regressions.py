"""Regression tests from a review of the money paths.

Each test first proved a bug (it failed before the fix); the docstrings keep the
bug as it was found, where it was and the fix proposed, which is what the code
now does. Every test talks to the provider sandbox over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pos.cardqr import make_payload
from pos.config import Settings
from pos.errors import InputError, PosError
from pos.journal import Kind, State
from pos.meter import luhn_check_digit
from pos.money import Money
from pos.providers.models import VendStatus
from pos.providers.pawacard import parse_vend
from pos.sandbox import data
from pos.sandbox.server import SandboxServer
from pos.terminal import Terminal
from tests.fakeclock import FakeDevice
from tests.screens_support import sandbox_settings
from tests.waiting import eventually


@pytest.fixture
def sb() -> Iterator[SandboxServer]:
    with SandboxServer(port=0) as server:
        yield server


def settings_for(sb: SandboxServer, *, sync: dict[str, Any] | None = None) -> Settings:
    return sandbox_settings(
        sb, terminal_id="T-REVIEW",
        patasente={"connect_timeout": 0.5, "read_timeout": 3.0},
        pawacard={"connect_timeout": 0.5, "read_timeout": 3.0, "poll_interval": 0.01},
        sync={"backoff_base": 0.0, "backoff_max": 0.0, **(sync or {})})


async def _open(sb: SandboxServer, home: Path, monkeypatch: pytest.MonkeyPatch,
                device: Any = None, **kw: Any) -> Terminal:
    monkeypatch.setenv("SENTE_POS_HOME", str(home))
    # Retries wait 0.01 s here (sandbox_settings), not the production 0.3 s.
    return await Terminal.open(settings_for(sb, **kw), operator="alice", device=device)


@pytest.fixture
async def term(sb: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> AsyncIterator[Terminal]:
    t = await _open(sb, tmp_path, monkeypatch)
    yield t
    await t.aclose()


@pytest.fixture
def device() -> FakeDevice:
    import datetime as dt

    return FakeDevice(dt.datetime.now(dt.UTC))


@pytest.fixture
async def clocked(sb: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  device: FakeDevice) -> AsyncIterator[Terminal]:
    """A terminal on a device clock the test moves (past a settle window, say)."""
    t = await _open(sb, tmp_path, monkeypatch, device=device)
    yield t
    await t.aclose()


def ugx(n: int) -> Money:
    return Money(n, "UGX")


def kes(n: int) -> Money:
    return Money(n * 100, "KES")


# --------------------------------------------------------------------------- 1
async def test_unknown_card_debit_declined_at_sync_is_flagged(clocked: Terminal, device: FakeDevice,
        sb: SandboxServer) -> None:
    """BUG (high): an online debit whose outcome was unknown at the counter, refused at
    sync, ends ``declined`` -- final and NOT flagged -- so the merchant never learns that
    the goods left unpaid.

    At the counter the cashier was told "No clear answer ... do not charge the card
    again" (status pending, exit 3) and the customer left. At sync the query shows the
    ref absent, the debit is resent and refused; ``pos/sync.py`` ``_send`` calls
    ``finish(ctx, txn, refused_state(txn))`` and ``refused_state`` (pos/usecases/settle.py
    :38) only flags rows with ``offline=True``. Invariant 7: "a debit declined at sync
    is flagged to the merchant, never silently dropped".

    Fix: a refusal decided by the sync engine (or by any reconciliation after the
    counter reported pending/offline) must be flagged: make ``refused_state`` return
    ``declined_offline`` when ``txn.offline`` OR the row has been ``unknown`` / ``queued``
    (e.g. keep ``details["told_pending"]=True`` when the counter returns "pending"), and
    use it in ``_reconcile_then_send`` as well.
    """
    card = data.CARD_ACTIVE
    lookup = await clocked.lookup_card(card.payload)
    # Both sends are cut before the provider acts: the counter cannot know the outcome.
    sb.faults.add(provider="patasente", endpoint="debit-patasente-card", mode="drop_before",
                  count=1)
    res = await clocked.pay_by_card(lookup, ugx(1000), "Current Account", "9999", "rice")
    assert res.status == "pending" and res.exit_code == 3  # "do not charge again"
    device.advance(1)  # past the settle window: absent means absent
    await clocked.sync_now(probe=True)  # the lost answer marked the link down: probe it
    txn = clocked.journal.require(res.ref)
    assert txn.state != State.done  # the card was never charged (wrong PIN)
    assert txn.is_flagged, f"unpaid goods silently dropped: state {txn.state}"
    assert res.ref in [t.ref for t in clocked.journal.flagged()]


async def test_unknown_cash_vend_failing_at_sync_is_flagged(clocked: Terminal, device: FakeDevice,
        sb: SandboxServer) -> None:
    """BUG (high): a cash vend whose outcome was unknown at the counter ("Do not sell
    again", exit 3 -- the cash is in the drawer) and which then fails at sync ends
    ``declined``, not flagged: nobody is told the customer is owed the cash back.

    Same root cause as above: ``apply_vend_outcome`` (pos/usecases/settle.py:70) picks
    ``State.failed`` only when the row was ``pending`` and otherwise
    ``refused_state(txn)``, which flags only ``offline`` rows. A cash sale that was in
    ``unknown`` / ``sending`` when the decline arrives (reconcile -> absent -> resend ->
    declined) is silently final.

    Fix: in ``apply_vend_outcome`` a decline reached for a row that was ever
    ``unknown`` (or is being resent by sync) must be ``failed`` (flagged), like a
    pending vend that fails.
    """
    sb.faults.add(provider="pawacard", endpoint="vend", mode="drop_before", count=1)
    res = await clocked.sell_token(data.METER_FAIL, kes(100), "Sam")
    assert res.status == "pending" and res.exit_code == 3
    device.advance(1)  # past the settle window: absent means absent
    await clocked.sync_now(probe=True)  # the lost answer marked the link down: probe it
    txn = clocked.journal.require(res.ref)
    assert txn.state != State.done and not txn.token
    assert txn.is_flagged, f"cash taken, no token, not flagged: state {txn.state}"


# --------------------------------------------------------------------------- 2
async def test_failed_vend_mentioning_token_is_not_sent_twice(term: Terminal,
                                                              sb: SandboxServer) -> None:
    """BUG (high): a vend refused with a message containing the word "token" is taken
    for a refused vendor key: the client logs in again and sends ``/vend`` a second time,
    with no query by ref in between.

    ``key_rejected`` (pos/providers/pawacard.py:50,68) matches ``status`` 1, no
    ``transaction`` object and ``\\b(key|login|token|...|session)\\b`` in ``msg``. A
    token-vending API's failures naturally talk about tokens (the sandbox's elec001:
    "Vend failed, the token could not be generated"), so ``_authed_once`` (line 264)
    re-sends the money request. The sandbox is idempotent by ref so the end state looks
    right, but against a provider that is not (or that retries a failed vend) this is a
    second money request without a query showing the first absent (invariant 2).

    Fix: never treat an answer that carries a ``code`` (elec000/001/003/100) or a
    ``transaction`` as a key refusal, and match the key refusal narrowly (e.g.
    ``invalid key|login again|unauthori[sz]ed``, not the bare word "token"); better,
    for ``/vend`` and ``/postpaidbill`` rely on HTTP 401 only and resolve anything else
    through ``/transaction``.
    """
    logins_before = sb.state.pawacard.logins
    res = await term.sell_token(data.METER_FAIL, kes(100), "Sam")
    assert res.status == "declined"
    assert sb.state.pawacard.vend_count(res.ref) == 1, "the vend was sent twice"
    assert sb.state.pawacard.logins <= logins_before + 1


# --------------------------------------------------------------------------- 3
async def test_card_in_another_currency_changes_nothing(term: Terminal,
                                                        sb: SandboxServer) -> None:
    """BUG (medium): a card whose QR names a currency other than the terminal's card
    currency (e.g. a USD card on a UGX terminal) passes every pre-check, is journaled and
    marked ``sending``, and only then ``PatasenteClient._wire`` raises InputError. The
    row is left in ``sending`` for ever: the sync engine takes it after the lease,
    finds the ref absent, "resends", hits the same InputError and backs off, again and
    again; it counts as unsynced money and blocks the day close.

    Where: pos/usecases/cards.py ``pay_by_card`` (the ``transition(... sending)`` at
    line 89 comes before the currency check in pos/providers/patasente.py ``_wire``);
    the same for ``voids.void`` and ``top_up``. Invariant 8: bad input changes nothing.

    Fix: check ``amount.currency == ctx.patasente.currency`` in ``_precheck`` (before
    ``journal.create``); and, belt and braces, catch ``InputError`` after ``sending``
    in ``pay_by_card`` / ``void`` and move the row ``sending -> declined`` (nothing left).
    """
    card = data.CARD_ACTIVE
    usd = make_payload(card.card_no, card.expiry, "USD", 0, card.card_type, card.id)
    lookup = await term.lookup_card(usd)
    with contextlib.suppress(InputError):  # a clear message is fine ...
        await term.pay_by_card(lookup, Money(1000, "USD"), "Current Account", card.pin, "x")
    # ... but nothing may be left for the sync engine to chew on.
    assert term.status().unsynced_count == 0, [
        (t.ref, t.state) for t in term.journal.list(states=[State.sending, State.unknown])]


# --------------------------------------------------------------------------- 4
async def test_void_refuses_the_debit_behind_a_delivered_token(term: Terminal,
                                                               sb: SandboxServer) -> None:
    """BUG (medium): the card debit that paid for an electricity token can be voided
    after the token was delivered: the card is credited back and the customer keeps
    the power for free.

    ``voids.void`` (pos/usecases/voids.py:22-30) only refuses when the target is not a
    settled ``card_debit`` or already has a ``card_refund`` child; it never looks at the
    debit's ``vend`` / ``postpaid`` child, although its own message says "a delivered
    token cannot be taken back". Voiding while the vend is still pending is as bad: if
    the vend then completes, token + credit.

    Fix: in ``void``, refuse a ``card_debit`` that has a ``vend``/``postpaid`` child
    (``details["for"]`` is also set on such debits) unless that child ended failed /
    declined / cancelled -- in which case the automatic refund already covers it.
    """
    card = data.CARD_ACTIVE
    boss = term.add_operator("boss", "supervisor", "9517")
    lookup = await term.lookup_card(card.payload)
    res = await term.sell_token(data.METER_OK, kes(100), "Bilbo", tender="card", card=lookup,
                                wallet="Current Account", pin=card.pin)
    assert res.status == "approved" and res.token
    debit_ref = res.txn.parent_ref
    assert debit_ref
    before = sb.state.patasente.balance(card)
    with pytest.raises(InputError):
        await term.void(debit_ref, boss, "customer changed mind")
    assert sb.state.patasente.balance(card) == before, "card credited, token kept"


# --------------------------------------------------------------------------- 5
async def test_wait_settled_while_background_sync_settles_it(term: Terminal,
                                                              sb: SandboxServer) -> None:
    """BUG (medium-high): the cashier's "Token pending: asking PawaCard again..." poll
    (``wait_settled``) crashes with IllegalTransition ``done -> done`` when the
    background sync settled the same vend between two of its polls -- the token exists
    but the cashier sees an error and may sell again.

    ``electricity.wait_settled`` (pos/usecases/electricity.py:211-235) keeps its own
    ``txn`` between polls; ``apply_vend_outcome`` -> ``finish`` compares the stale
    ``txn.state`` (pending) with ``done`` and calls ``journal.transition(done)`` on a row
    that is already ``done``. The TUI runs exactly this: ``screens/electricity.py
    settle_pending`` while ``App.kick_sync`` drains every 15 s, and a pending row is due
    at once. (The same race, reversed, makes the sync engine log an IllegalTransition.)

    Fix: re-read the row (``journal.require(ref)``) before each poll and before
    applying an outcome, and make ``finish`` a no-op when the fresh row is already in
    a final state with the same outcome (or take the row's state inside the
    transition's write transaction and skip when it is already there).
    """
    res = await term.sell_token(data.METER_PENDING, kes(50), "Frodo")
    assert res.status == "pending"
    polls = sb.state.request_counts["pawacard/transaction"]
    waiter = asyncio.create_task(term.wait_settled(res.ref, interval=0.4, max_polls=5))
    # The waiter has polled once (still pending): it sleeps between polls from now on.
    await eventually(lambda: sb.state.request_counts["pawacard/transaction"] > polls,
                     what="the waiter's first poll")
    for _ in range(20):  # the background sync polls meanwhile and settles it
        await term.sync_now()
        if term.journal.require(res.ref).state == State.done:
            break
        await asyncio.sleep(0.02)
    assert term.journal.require(res.ref).state == State.done
    try:
        done = await waiter
    except PosError as exc:
        pytest.fail(f"the cashier got an error for a delivered token: {exc}")
    assert done.status == "approved" and done.token


# --------------------------------------------------------------------------- 6
async def test_crash_during_card_debit_for_a_token_leaves_a_vend_or_refund(
        sb: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BUG (high): card pays for electricity, the terminal dies (power cut) while the card
    debit is in flight. After restart the sync engine reconciles the debit as ``done``
    (the card WAS charged) but no vend row was ever journaled, so the customer gets no
    token, no refund is owed by anything, and nothing is flagged.

    ``_sell_by_card`` (pos/usecases/electricity.py:190-200) journals the vend child
    only after ``pay_by_card`` returns; ``owed_refunds`` only looks at failed vend rows.
    The debit's ``details`` say what it was for (``for``/``target``/``price``) but
    nothing reads them. Invariant 1 (write-ahead) is kept for each row but not for the
    two-step sale, and invariant 4 (vend fails -> refund) is lost.

    Fix: journal the vend child (state ``created``/``queued`` waiting on its parent)
    BEFORE sending the debit, in the same write transaction as the debit row; or make
    sync treat a ``done`` card_debit with ``details["for"]`` in (vend, postpaid) and no
    child as "vend owed" (queue it) or, at the least, queue its refund.

    (The crash is simulated by cancelling the sale while the debit request is in flight:
    like SIGKILL, nothing after the ``await`` runs.)
    """
    term = await _open(sb, tmp_path, monkeypatch, sync={"sending_lease_seconds": 0.2})
    try:
        card = data.CARD_ACTIVE
        before = sb.state.patasente.balance(card)
        lookup = await term.lookup_card(card.payload)
        slow = sb.faults.add(provider="patasente", endpoint="debit-patasente-card",
                             mode="latency", seconds=0.5, count=1)
        sale = asyncio.create_task(term.sell_token(
            data.METER_OK, kes(100), "Bilbo", tender="card", card=lookup,
            wallet="Current Account", pin=card.pin))
        # The debit request has left the terminal: it is at the provider, 0.5 s from done.
        await eventually(lambda: slow.hits == 1, what="the debit request")
        sale.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sale
        # The provider finishes the debit (by then the 0.2 s lease, taken before the
        # request left, has run out).
        await eventually(lambda: sb.state.patasente.balance(card) < before, what="the debit")
        charged = before - sb.state.patasente.balance(card)
        assert charged > 0, "precondition: the card was charged"
        await term.sync_now()
        await term.sync_now()
        debits = term.journal.list(kinds=[Kind.card_debit])
        assert len(debits) == 1 and debits[0].state == State.done
        children = term.journal.children(debits[0].ref)
        kinds = {c.kind for c in children}
        assert kinds & {Kind.vend, Kind.card_refund}, (
            "card charged: no vend and no refund journaled for it")
    finally:
        await term.aclose()


# --------------------------------------------------------------------------- 7
_COMPLETE_UNDER_STATUS_1 = [
    pytest.param(
        {"status": 1, "msg": "success",
         "transaction": {"status": 1, "token": "66430474307561657038",
                         "stdTokenRctNum": "RADIXOVS010VS224392", "totalAmount": "200",
                         "transactionId": 252, "ref": "370474587102"}},
        False, id="prepaid"),
    pytest.param(
        {"status": 1, "msg": "success",
         "transaction": {"status": 1, "rctNum": "151172056109030422", "amount": "1000",
                         "transactionId": 3, "ref": "370474587102"}},
        True, id="postpaid"),
]


@pytest.mark.parametrize(("answer", "postpaid"), _COMPLETE_UNDER_STATUS_1)
def test_status_1_with_complete_transaction_is_vended(answer: dict[str, Any],
                                                      postpaid: bool) -> None:
    """BUG (medium): ``status`` 1 whose ``transaction.status`` is 1 (complete) is refused
    as "unexpected" by ``parse_vend`` (pos/providers/pawacard.py:156,170 require
    ``ok_status`` for a complete transaction), although the documents -- and DESIGN.md --
    say ``status`` 1 is only "failed or pending" and "the real state is inside
    ``transaction.status``" (the document itself answers ``"status": 1, "msg":
    "success"`` for a pending bill, so the top-level status is not reliable).

    Consequence: the vend / bill is raised as ProviderError, becomes OutcomeUnknown,
    and every later ``/transaction`` poll fails the same way: the token (or the paid
    bill) is never recorded and the row stays ``unknown`` for ever.

    Fix: when a ``transaction`` object is present, decide on ``transaction.status``
    alone (0/5 pending, 1 complete -- VENDED with the token for prepaid, with the
    receipt for postpaid -- 2 failed), whatever the top-level ``status``.
    """
    out = parse_vend(answer, "370474587102", "KES", postpaid=postpaid)
    assert out.status == VendStatus.VENDED
    if not postpaid:
        assert out.token == "66430474307561657038"


# --------------------------------------------------------------------------- 8
async def test_refund_found_failed_by_reconciliation_is_flagged(term: Terminal,
                                                                sb: SandboxServer) -> None:
    """BUG (medium): an automatic refund (card credited back after a failed card-paid
    vend) whose answer was lost, and which Patasente then lists as failed, ends
    ``declined`` -- final, not flagged. The customer paid, got no token and no refund,
    and nobody is told.

    ``SyncEngine._reconcile_then_send`` (pos/sync.py:400) maps a found row matching
    ``FAILED_ROW`` to ``refused_state(txn)``, i.e. ``declined`` for a refund (refunds are
    not ``offline``), while ``_send`` rightly flags a refused refund as ``failed``
    ("A refund the provider refuses must reach a person").

    Fix: in ``_reconcile_then_send`` use the same rule as ``_send``: ``failed`` for a
    ``card_refund`` (and ``declined_offline``/flagged for anything sync decides).
    """
    card = data.CARD_ACTIVE
    lookup = await term.lookup_card(card.payload)
    res = await term.sell_token(data.METER_FAIL, kes(100), "Sam", tender="card", card=lookup,
                                wallet="Current Account", pin=card.pin)
    assert res.status == "refunded" and res.refund_ref
    refund = term.journal.require(res.refund_ref)
    # The credit's answers are lost (nothing done): the refund's outcome is unknown ...
    sb.faults.add(provider="patasente", endpoint="credit-patasente-card", mode="drop_before",
                  count=2)
    await term.sync_now()
    assert term.journal.require(refund.ref).state == State.unknown
    # ... and Patasente's list shows that credit as failed.
    with sb.state.lock:
        sb.state.patasente.add_transaction({
            "id": 99001, "currency_format": "UGX", "amount": str(refund.amount.minor),
            "transaction_id": "00099001", "transaction_status": "Failed",
            "payment_reason": f"{refund.reason} ref:{refund.ref}",
            "card_transaction_type": "credit", "patasente_card_no": card.card_no,
            "created_at": "2026-01-01 10:00:00",
        })
    await term.sync_now()
    after = term.journal.require(refund.ref)
    assert after.state != State.done
    assert after.is_flagged, f"refund owed to the customer silently dropped: {after.state}"


# --------------------------------------------------------------------------- 9
class _RefuseNthConnect:
    """A real HTTP transport to the sandbox that refuses the connection of the n-th
    request whose path contains ``needle`` (the link dropping between two sends)."""

    def __init__(self, needle: str, nth: int) -> None:
        import httpx

        self._inner = httpx.AsyncHTTPTransport()
        self.needle, self.nth, self.seen = needle, nth, 0

    async def handle_async_request(self, request: Any) -> Any:
        import httpx

        if self.needle in request.url.path:
            self.seen += 1
            if self.seen == self.nth:
                raise httpx.ConnectError("connection refused", request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_link_drop_on_the_resend_is_not_accepted_as_never_sent(
        term: Terminal, sb: SandboxServer) -> None:
    """BUG (medium-high): when the FIRST debit request left and its answer was lost, and
    the SECOND send (after the search showed the ref absent) cannot connect,
    ``PatasenteClient._money`` re-raises ``ProviderUnavailable`` ("nothing was sent").
    ``pay_by_card`` then takes the sale as never sent: ``_requeue_after_connect_failure``
    puts it ``queued``/offline ("Accepted offline"). A queued row is sent by sync with no
    query by ref first, and ``void`` cancels it as "Voided before it was sent" -- while
    the first request may still be applied at Patasente (late, after the search).

    Where: pos/providers/patasente.py ``_money`` (``except (ProviderUnavailable, ...):
    raise`` also on ``sends == 2``); the same in pos/providers/pawacard.py ``_money``,
    feeding ``electricity._send``'s "link down: accepted offline".

    Fix: in both ``_money`` loops, a ``ProviderUnavailable`` on the second send must be
    raised as ``OutcomeUnknown`` (the first one left); only a connect failure on the
    very first send means "nothing sent".

    (The connect failure is injected with an httpx transport in front of the real
    loopback HTTP to the sandbox; the first send is cut by a sandbox fault.)
    """
    from pos.providers.patasente import PatasenteClient

    card = data.CARD_ACTIVE
    lookup = await term.lookup_card(card.payload)  # online: the card is cached
    await term.ctx.patasente.aclose()
    term.ctx.patasente = PatasenteClient(
        term.settings.patasente, term.settings.card_currency,
        transport=_RefuseNthConnect("debit-patasente-card", 2))  # type: ignore[arg-type]
    sb.faults.add(provider="patasente", endpoint="debit-patasente-card", mode="drop_before",
                  count=1)
    res = await term.pay_by_card(lookup, ugx(1500), "Current Account", card.pin, "sugar")
    txn = term.journal.require(res.ref)
    assert res.status != "offline" and txn.state != State.queued, (
        f"a debit that left the terminal was accepted as never sent: {res.status}, "
        f"{txn.state} -- sync will resend it without a query, void will cancel it")


async def test_balance_signal_places_movements_by_the_boot_clock(
        clocked: Terminal, device: FakeDevice, sb: SandboxServer) -> None:
    """BUG (soak with clock steps): the balance signal placed this terminal's other
    movements on the card before or after the balance reading by the WALL clock.

    A top-up is sent while the clock runs 3 h ahead; the clock is corrected; a debit of
    the same amount loses its answer before Patasente applied it. The top-up (already in
    the balance read before the debit) was taken for a later movement, so the unchanged
    balance read as "the debit and the top-up both happened": ``maybe``, and after the
    window the debit went to a supervisor for nothing instead of being sent again.

    Fix: the reading keeps its boot-relative stamp; movements are ordered by the boot
    clock within a boot (by wall time only where both were synchronised, else the
    signal is inconclusive).
    """
    from pos.operators import Operator

    card = data.CARD_ACTIVE
    lookup = await clocked.lookup_card(card.payload)
    device.step(3 * 3600)  # the clock runs ahead ...
    top = await clocked.top_up(lookup, ugx(1000), "float", Operator("boss", "supervisor"))
    assert top.status == "approved"
    device.advance(5)
    device.step(-3 * 3600)  # ... and NTP corrects it
    lookup = await clocked.lookup_card(card.payload)
    sb.faults.add(provider="patasente", endpoint="debit-patasente-card", mode="drop_before",
                  count=1)
    res = await clocked.pay_by_card(lookup, ugx(1000), "Current Account", card.pin, "rice")
    assert res.status == "pending"
    device.advance(60)  # past the settle window
    await clocked.sync_now(probe=True)
    txn = clocked.journal.require(res.ref)
    assert txn.state == State.done, txn.state
    assert sb.state.patasente.applied_count(res.ref) == 1


async def test_history_window_reaches_a_send_made_under_a_clock_ahead(
        clocked: Terminal, device: FakeDevice, sb: SandboxServer) -> None:
    """BUG (clock steps): the history signal asked for the card's transactions from the
    day before the WALL time the debit left. Sent with the clock two days ahead (then
    corrected), the window began a day in the future: no rows, "absent". With a search
    that does not look inside reasons that is two "absent" answers: only the balance
    signal kept the applied debit from being sent again (it went to a supervisor for
    nothing; with the balance unreadable, the card would have paid twice).

    Fix: the window starts at the earliest time the request can have left, by the boot
    clock too (now less the boot-relative time since it left)."""
    card = data.CARD_ACTIVE
    lookup = await clocked.lookup_card(card.payload)
    device.step(2 * 86400)  # a stale-then-wrong clock: two days ahead
    sb.faults.add(provider="patasente", endpoint="get-prepaid-transactions",
                  mode="search_blind", count=None, seconds=3600)
    sb.faults.add(provider="patasente", endpoint="debit-patasente-card", mode="drop",
                  when="after", count=1)  # applied, the answer lost
    res = await clocked.pay_by_card(lookup, ugx(1000), "Current Account", card.pin, "rice")
    assert res.status == "pending"
    device.advance(5)
    device.step(-2 * 86400)  # NTP corrects it
    for _ in range(3):
        device.advance(60)
        await clocked.sync_now(probe=True)
    assert sb.state.patasente.applied_count(res.ref) == 1, "the card paid twice"
    assert clocked.journal.require(res.ref).state == State.done


async def test_cash_handed_back_for_a_failed_cash_vend_is_taken_off_once(
        clocked: Terminal, device: FakeDevice, sb: SandboxServer) -> None:
    """BUG (drawer): a cash token that failed at sync is flagged with its cash in the
    drawer. The supervisor hands the cash back (resolve with cash, "refunded"): the row
    left the cash-kept states AND the refund move was taken off, so the drawer was
    expected to hold the sale's amount less than it did (X, Z and the shift's cash-up).

    Fix: cash leaves the drawer only by a recorded cash move; a resolved cash sale's
    cash stays counted as taken."""
    boss = clocked.add_operator("boss", "supervisor", "9517")
    await clocked.open_shift(Money(0, "KES"))
    sb.faults.add(provider="pawacard", endpoint="vend", mode="drop_before", count=1)
    res = await clocked.sell_token(data.METER_FAIL, kes(100), "Sam")
    assert res.status == "pending"
    device.advance(1)
    await clocked.sync_now(probe=True)
    assert clocked.journal.require(res.ref).is_flagged
    assert clocked.x_report().payload["cash_expected"] == {"KES": 10_000}
    assert clocked.x_report().payload["cash_owed_back"] == {"KES": 10_000}
    assert clocked.shift_report().expected("KES") == kes(100)
    clocked.resolve_flagged_cash(res.ref, "refunded", boss)
    assert clocked.journal.require(res.ref).state == State.resolved
    x = clocked.x_report().payload
    assert x["cash_expected"].get("KES", 0) == 0, x["cash_expected"]
    assert x["cash_owed_back"].get("KES", 0) == 0
    assert clocked.shift_report().expected("KES") == kes(0)


async def test_sync_now_sends_a_queued_sale_at_once_when_the_link_is_back(
        term: Terminal, sb: SandboxServer) -> None:
    """BUG (found by the full-day test): a token sold offline was tried by the
    background sync while the link was down and put off (back-off); when the link came
    back, the cashier's "Sync now" left it queued until the back-off ran out -- the
    customer waits at the counter for a token the link could fetch at once. Two causes:
    the failed attempt counted as a sale to the meter (PawaCard's one-per-5-minutes
    rule put the token off although no request got through), and the pass that put it
    off marked the link up (the status bar said ONLINE in the middle of the outage).

    Fix: a connection that failed is no sale to the meter; only an answer heard marks
    the link up; and a person asking for a sync makes every queued row (never sent, or its
    connection provably failed) due now; rows whose answer is unknown keep their
    settle window."""
    meter = "0145117496" + luhn_check_digit("0145117496")
    sb.stop()
    res = await term.sell_token(meter, kes(300), "")
    assert res.status == "offline"
    for _ in range(3):  # the background sync tries while the link is down
        await term.sync_now(probe=True)
    queued = term.journal.require(res.ref)
    assert queued.state == State.queued
    # A pass that sent nothing (the row put off) heard nothing: the link stays down.
    assert not term.link.pawacard.online, "a sync that reached nobody marked PawaCard up"
    sb.start()
    rep = await term.sync_now(probe=True)
    assert res.ref in rep.settled, rep
    assert term.journal.require(res.ref).state == State.done
