"""End-to-end use cases through the Terminal facade against the sandbox over real HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pos.config import Settings
from pos.errors import Declined, InputError
from pos.journal import Kind, State
from pos.money import Money
from pos.operators import Operator
from pos.sandbox import data
from pos.sandbox.server import SandboxServer
from pos.terminal import Terminal
from tests.screens_support import sandbox_settings


@pytest.fixture
def sb() -> Iterator[SandboxServer]:
    with SandboxServer(port=0) as server:
        yield server


def settings_for(sb: SandboxServer, **extra: object) -> Settings:
    return sandbox_settings(
        sb, terminal_id="T-TEST",
        patasente={"connect_timeout": 0.5, "read_timeout": 3.0},
        pawacard={"connect_timeout": 0.5, "read_timeout": 3.0, "poll_interval": 0.01},
        sync={"backoff_base": 0.0, "backoff_max": 0.0}, **extra)


@pytest.fixture
async def term(sb: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> AsyncIterator[Terminal]:
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    t = await Terminal.open(settings_for(sb), operator="alice")
    yield t
    await t.aclose()


def ugx(n: int) -> Money:
    return Money(n, "UGX")


def kes(n: int) -> Money:
    return Money(n * 100, "KES")


async def test_cash_vend_online_gives_token(term: Terminal, sb: SandboxServer) -> None:
    info = await term.verify_meter(data.METER_OK)
    res = await term.sell_token(data.METER_OK, kes(100), info.customer_name)
    assert res.status == "approved", res.message
    assert res.token and len(res.token) == 20
    txn = term.journal.require(res.ref)
    assert txn.state == State.done and txn.token == res.token and txn.operator == "alice"
    assert sb.state.pawacard.vend_count(res.ref) == 1
    events = [e.to_state for e in term.journal.events(res.ref)]
    assert events == [State.created, State.sending, State.done]


async def test_bad_meter_sends_nothing(term: Terminal, sb: SandboxServer) -> None:
    with pytest.raises(InputError):
        await term.sell_token(data.METER_BAD_LUHN, kes(100), "x")
    assert term.journal.list() == []
    assert sb.state.vends_performed == 0


async def test_throttle_refused_locally(term: Terminal) -> None:
    res = await term.sell_token(data.METER_OK, kes(100), "Bilbo")
    assert res.status == "approved"
    with pytest.raises(Declined, match="5 minutes"):
        await term.sell_token(data.METER_OK, kes(100), "Bilbo")


async def test_pending_vend_completes(term: Terminal, sb: SandboxServer) -> None:
    res = await term.sell_token(data.METER_PENDING, kes(50), "P")
    assert res.status == "pending"
    done = await term.wait_settled(res.ref)
    assert done.status == "approved" and done.token
    assert sb.state.pawacard.vend_count(res.ref) == 1


async def test_vend_offline_then_sync(term: Terminal, sb: SandboxServer) -> None:
    sb.stop()
    res = await term.sell_token(data.METER_OK, kes(100), "Bilbo")
    assert res.status == "offline" and res.exit_code == 3
    assert term.status().online is False
    receipt = term.receipt(res.ref)
    assert "TOKEN PENDING" in receipt.marks
    sb.start()
    term.link.pawacard.record_success()
    rep = await term.sync_now()
    assert res.ref in rep.settled
    txn = term.journal.require(res.ref)
    assert txn.state == State.done and txn.token
    assert sb.state.vends_performed == 1


async def test_lost_vend_response_vends_once(term: Terminal, sb: SandboxServer) -> None:
    sb.faults.add(provider="pawacard", endpoint="vend", mode="drop_after_commit", count=1)
    res = await term.sell_token(data.METER_OK, kes(100), "Bilbo")
    assert res.status == "approved" and res.token
    assert sb.state.vends_performed == 1


async def test_card_debit_approved_and_wrong_pin(term: Terminal, sb: SandboxServer) -> None:
    card = data.CARD_ACTIVE
    before = sb.state.patasente.balance(card)
    lookup = await term.lookup_card(card.payload)
    assert lookup.has_pin and "Current Account" in lookup.wallets
    bad = await term.pay_by_card(lookup, ugx(1000), "Current Account", "9999", "bananas")
    assert bad.status == "declined" and bad.message
    assert sb.state.patasente.balance(card) == before
    ok = await term.pay_by_card(lookup, ugx(1000), "Current Account", card.pin, "bananas")
    assert ok.status == "approved", ok.message
    assert sb.state.patasente.balance(card) == before - 1000
    assert sb.state.patasente.applied_count(ok.ref) == 1


async def test_over_balance_declined_before_sending(term: Terminal, sb: SandboxServer) -> None:
    lookup = await term.lookup_card(data.CARD_LOW.payload)
    with pytest.raises(Declined, match="Not enough"):
        await term.pay_by_card(lookup, ugx(5000), "Current Account", data.CARD_LOW.pin, "x")
    # Nothing sent; the refusal the customer saw after typing the PIN is journaled
    # (issue 13), declined with its reason.
    (row,) = term.journal.list(kinds=[Kind.card_debit])
    assert row.state == State.declined and "Not enough" in (row.last_error or "")
    assert row.sends == 0 and sb.state.patasente.applied_count(row.ref) == 0


async def test_lost_debit_response_charged_once(term: Terminal, sb: SandboxServer) -> None:
    card = data.CARD_ACTIVE
    before = sb.state.patasente.balance(card)
    sb.faults.add(provider="patasente", endpoint="debit-patasente-card", mode="drop_after_commit",
                  count=1)
    lookup = await term.lookup_card(card.payload)
    res = await term.pay_by_card(lookup, ugx(2500), "Current Account", card.pin, "soap")
    assert res.status == "approved", res.message
    assert sb.state.patasente.applied_count(res.ref) == 1
    assert sb.state.patasente.balance(card) == before - 2500


async def test_offline_debit_then_sync(term: Terminal, sb: SandboxServer) -> None:
    card = data.CARD_ACTIVE
    lookup = await term.lookup_card(card.payload)  # seen online: cached
    sb.stop()
    res = await term.pay_by_card(lookup, ugx(3000), "Current Account", card.pin, "rice")
    assert res.status == "offline"
    assert term.journal.load_pin(res.ref) == card.pin
    sb.start()
    term.link.patasente.record_success()
    rep = await term.sync_now()
    assert res.ref in rep.settled
    assert term.journal.require(res.ref).state == State.done
    assert term.journal.load_pin(res.ref) is None
    assert sb.state.patasente.applied_count(res.ref) == 1


async def test_offline_debit_wrong_pin_is_flagged(term: Terminal, sb: SandboxServer) -> None:
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    sb.stop()
    res = await term.pay_by_card(lookup, ugx(1000), "Current Account", "0000", "rice")
    assert res.status == "offline"
    sb.start()
    term.link.patasente.record_success()
    rep = await term.sync_now()
    assert res.ref in rep.declined
    txn = term.journal.require(res.ref)
    assert txn.state == State.declined_offline and txn.last_error
    assert [t.ref for t in term.journal.flagged()] == [res.ref]


async def test_offline_unknown_card_refused(term: Terminal, sb: SandboxServer) -> None:
    sb.stop()
    lookup = await term.lookup_card(data.CARD_NO_PIN.payload)
    assert lookup.offline
    with pytest.raises(Declined):
        await term.pay_by_card(lookup, ugx(1000), "Current Account", "1234", "x")


async def test_card_pays_vend_that_fails_is_refunded(term: Terminal, sb: SandboxServer) -> None:
    card = data.CARD_ACTIVE
    before = sb.state.patasente.balance(card)
    lookup = await term.lookup_card(card.payload)
    res = await term.sell_token(data.METER_FAIL, kes(100), "Fail", tender="card", card=lookup,
                                wallet="Current Account", pin=card.pin)
    assert res.status == "refunded", res.message
    assert res.refund_ref
    rep = await term.sync_now()
    assert res.refund_ref in rep.settled
    assert sb.state.patasente.balance(card) == before
    refund = term.journal.require(res.refund_ref)
    assert refund.kind == Kind.card_refund and refund.state == State.done
    receipt = term.receipt(res.ref)
    assert "REFUNDED" in receipt.marks


async def test_card_pays_vend_ok(term: Terminal, sb: SandboxServer) -> None:
    card = data.CARD_ACTIVE
    before = sb.state.patasente.balance(card)
    lookup = await term.lookup_card(card.payload)
    res = await term.sell_token(data.METER_OK, kes(100), "Bilbo", tender="card", card=lookup,
                                wallet="Current Account", pin=card.pin)
    assert res.status == "approved" and res.token
    debit = term.journal.require(res.txn.parent_ref or "")
    assert debit.kind == Kind.card_debit and debit.state == State.done
    assert sb.state.patasente.balance(card) == before - debit.amount.minor


async def test_postpaid_bill(term: Terminal, sb: SandboxServer) -> None:
    acc = await term.verify_account(data.ACCOUNT_OK)
    assert acc.customer_name
    res = await term.pay_bill(data.ACCOUNT_OK, kes(1000), acc.customer_name)
    assert res.status == "approved" and res.receipt_no


async def test_crash_after_send_is_reconciled_not_resent(sb: SandboxServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A row left 'sending' by a process that died is asked about, never re-sent: the
    counter never told anyone it was accepted, so once the settle window has passed with
    every signal saying "absent" it is cancelled (the customer walked away with nothing
    charged), and a copy the provider did apply is recorded done."""
    from tests.fakeclock import FakeDevice

    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    dev = FakeDevice(dt.datetime.now(dt.UTC))
    term = await Terminal.open(settings_for(sb), operator="alice", device=dev)
    card = data.CARD_ACTIVE
    lookup = await term.lookup_card(card.payload)
    res = await term.pay_by_card(lookup, ugx(700), "Current Account", card.pin, "tea")
    assert res.status == "approved"
    # A debit journaled and marked sending by a process that then died (its lease
    # names a pid that no longer runs), before the request reached Patasente.
    ghost = term.journal.create(Kind.card_debit, ugx(700), tender="card",
                                operator="alice", terminal_id="T-TEST", card_id=card.id,
                                card_no=card.card_no, wallet="Current Account", reason="tea")
    term.journal.transition(ghost.ref, State.sending, lease_owner=f"{dev.boot()}:999999:1")
    rep = await term.sync_now()
    assert ghost.ref in rep.pending  # asked at once (its holder is gone), not re-sent
    assert term.journal.require(ghost.ref).state == State.unknown
    dev.advance(1)  # past the settle window
    rep = await term.sync_now()
    assert ghost.ref in rep.cancelled
    assert sb.state.patasente.applied_count(ghost.ref) == 0
    assert sb.state.patasente.applied_count(res.ref) == 1
    await term.aclose()


async def test_reports(term: Terminal, sb: SandboxServer) -> None:
    await term.sell_token(data.METER_OK, kes(100), "Bilbo")
    x = term.x_report()
    assert x.payload["by_kind"]["vend"]["count"] == 1
    assert x.payload["cash_expected"] == {"KES": 10000}
    sb.stop()
    await term.sell_token("01451175069" if False else data.METER_PENDING, kes(10), "Q")
    with pytest.raises(InputError, match="supervisor"):
        term.close_day()
    boss = term.add_operator("boss", "supervisor", "4455")
    z = term.close_day(override_by=boss)
    assert z.number == 1 and z.payload["override_by"] == "boss"
    assert term.journal.z_reports()[0].payload["unsynced"]


async def test_operators_and_resolving_a_flagged_item(term: Terminal, sb: SandboxServer) -> None:
    boss = term.add_operator("boss", "supervisor", "9517")
    term.add_operator("amina", "cashier", "1111", approved_by=boss)
    with pytest.raises(InputError):
        term.sign_in("amina", "2222")
    op = term.sign_in("amina", "1111")
    assert op.role == "cashier" and term.status().operator == "amina"
    with pytest.raises(InputError):
        term.check_supervisor("1111")  # a cashier's PIN is not a supervisor's
    assert term.check_supervisor("9517").name == "boss"
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    sb.stop()
    res = await term.pay_by_card(lookup, ugx(1000), "Current Account", "0000", "rice")
    assert term.journal.require(res.ref).operator == "amina"
    sb.start()
    term.link.patasente.record_success()
    await term.sync_now()
    assert term.status().flagged_count == 1
    with pytest.raises(InputError):
        term.resolve_flagged(res.ref, "", boss)
    with pytest.raises(InputError):
        term.resolve_flagged(res.ref, "cash taken", op)  # type: ignore[arg-type]
    txn = term.resolve_flagged(res.ref, "customer paid cash instead", boss)
    assert txn.state == State.resolved
    trail = term.journal.events(res.ref)
    assert trail[-1].operator == "boss" and trail[-1].note == "customer paid cash instead"
    assert term.status().flagged_count == 0


async def test_gift_activation_and_lock_unlock(term: Terminal, sb: SandboxServer) -> None:
    gift = await term.lookup_card(data.CARD_GIFT_INACTIVE.payload)
    res = await term.activate_gift(gift, "2580")
    assert res.status == "approved", res.message
    again = await term.lookup_card(data.CARD_GIFT_INACTIVE.payload)
    assert again.status == "active" and again.has_pin
    locked = await term.lookup_card(data.CARD_LOCKED.payload)
    assert "Card is locked" in " ".join(locked.problems)
    boss = term.add_operator("boss", "supervisor", "9517")
    cashier = term.add_operator("amina", "cashier", "1111", approved_by=boss)
    for nobody in (None, cashier, Operator("mallory", "supervisor")):  # not on this terminal
        with pytest.raises(InputError):
            await term.unlock_card(locked, nobody)  # type: ignore[arg-type]
    assert (await term.lookup_card(data.CARD_LOCKED.payload)).status == "locked"
    assert await term.unlock_card(locked, boss)
    assert (await term.lookup_card(data.CARD_LOCKED.payload)).status == "active"
    assert await term.lock_card(locked)
    kinds = [t.kind for t in term.journal.list()]
    assert Kind.gift_activation in kinds and Kind.card_lock in kinds


async def test_top_up_needs_a_supervisor(term: Terminal, sb: SandboxServer) -> None:
    low = await term.lookup_card(data.CARD_LOW.payload)
    boss = term.add_operator("boss", "supervisor", "9517")
    cashier = term.add_operator("amina", "cashier", "1111", approved_by=boss)
    with pytest.raises(InputError):
        await term.top_up(low, ugx(1000), "top-up", cashier)
    before = sb.state.patasente.balance(data.CARD_LOW)
    res = await term.top_up(low, ugx(1000), "top-up", boss)
    assert res.status == "approved"
    assert sb.state.patasente.balance(data.CARD_LOW) == before + 1000


async def test_sente_kyc_activation(term: Terminal, sb: SandboxServer) -> None:
    new = await term.lookup_card(data.CARD_SENTE_NEW.payload)
    act = await term.activate_sente(new, "Ivan Yiga", "256783159235", None, "1357",
                                    "aGVsbG8=")
    assert act.user_id
    with pytest.raises(Declined):
        await term.verify_sente_code(act.user_id, act.phone_number, "0000")
    msg = await term.verify_sente_code(act.user_id, act.phone_number, data.SMS_CODE)
    assert msg
    assert (await term.lookup_card(data.CARD_SENTE_NEW.payload)).status == "active"


async def test_sente_kyc_with_a_real_size_photo(term: Terminal, sb: SandboxServer) -> None:
    """A 60 KB ID photo travels in the form body, not the URL."""
    import base64

    new = await term.lookup_card(data.CARD_SENTE_NEW.payload)
    photo = base64.b64encode(bytes(range(256)) * 240).decode()  # ~80 KB of base64
    act = await term.activate_sente(new, "Ivan Yiga", "256783159235", None, "1357", photo)
    assert act.user_id


async def test_void_card_payment_and_queued_sale(term: Terminal, sb: SandboxServer) -> None:
    card = data.CARD_ACTIVE
    boss = term.add_operator("boss", "supervisor", "9517")
    cashier = term.add_operator("amina", "cashier", "1111", approved_by=boss)
    before = sb.state.patasente.balance(card)
    lookup = await term.lookup_card(card.payload)
    paid = await term.pay_by_card(lookup, ugx(4000), "Current Account", card.pin, "shoes")
    assert sb.state.patasente.balance(card) == before - 4000
    with pytest.raises(InputError):
        await term.void(paid.ref, cashier)
    res = await term.void(paid.ref, boss, "wrong size")
    assert res.status == "approved", res.message
    assert sb.state.patasente.balance(card) == before
    assert "VOIDED" in term.receipt(paid.ref).marks
    with pytest.raises(InputError, match="already"):
        await term.void(paid.ref, boss)
    # A token already delivered cannot be voided; a queued one can.
    token = await term.sell_token(data.METER_OK, kes(100), "Bilbo")
    with pytest.raises(InputError, match="delivered"):
        await term.void(token.ref, boss)
    sb.stop()
    queued = await term.sell_token(data.METER_PENDING, kes(100), "P")
    assert queued.status == "offline"
    voided = await term.void(queued.ref, boss, "customer left")
    assert term.journal.require(voided.ref).state == State.cancelled
    sb.start()
    term.link.pawacard.record_success()
    await term.sync_now()
    assert sb.state.pawacard.vend_count(queued.ref) == 0
