"""Patasente client against the sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from pos.cardqr import parse_card_qr
from pos.config import PatasenteSettings
from pos.errors import (
    AuthError,
    Declined,
    InputError,
    LinkDown,
    NoAnswer,
    OutcomeUnknown,
    ProviderUnavailable,
    RateLimited,
)
from pos.money import Money
from pos.providers.http import FAST_RETRY, Transient
from pos.providers.models import CardOpStatus
from pos.providers.patasente import PatasenteClient
from pos.refs import new_ref
from pos.sandbox import data

DEBIT = "debit-patasente-card"


def ugx(n: int) -> Money:
    return Money(n, "UGX")


def settings_for(url: str, password: str = data.MERCHANT_PASSWORD) -> PatasenteSettings:
    return PatasenteSettings(
        base_url=url,
        username=data.MERCHANT_EMAIL,
        password=SecretStr(password),
        connect_timeout=2.0,
        read_timeout=5.0,
    )


@pytest.fixture
async def pata(sandbox) -> AsyncIterator[PatasenteClient]:
    async with PatasenteClient(settings_for(sandbox.patasente_url), retry=FAST_RETRY) as client:
        yield client


async def until(predicate, timeout: float = 10.0) -> None:
    """Wait for the sandbox to get somewhere (it works in its own thread)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "timed out waiting"
        await asyncio.sleep(0.02)


def count(sandbox, endpoint: str) -> int:
    return sandbox.state.request_counts[f"patasente/{endpoint}"]


def balance(sandbox, card: data.DemoCard) -> int:
    return sandbox.state.patasente.balance(card)


def card_ref(card: data.DemoCard):
    return parse_card_qr(card.payload)


# ------------------------------------------------------------------ login / queries
async def test_login_once_then_company_details(sandbox, pata: PatasenteClient) -> None:
    cd = await pata.company_details()
    assert cd.merchant_code == data.MERCHANT_CODE and cd.currency == "UGX"
    await pata.wallet_balance()
    assert count(sandbox, "login") == 1


async def test_wrong_password(sandbox) -> None:
    async with PatasenteClient(settings_for(sandbox.patasente_url, "hunter2-x"),
                               retry=FAST_RETRY) as client:
        with pytest.raises(AuthError) as info:
            await client.company_details()
    assert "hunter2-x" not in str(info.value)


async def test_expired_token_relogs_in(sandbox, pata: PatasenteClient) -> None:
    await pata.company_details()
    sandbox.state.expire_tokens()
    await pata.company_details()
    assert count(sandbox, "login") == 2


async def test_wallet_balance(pata: PatasenteClient) -> None:
    wb = await pata.wallet_balance()
    assert wb.amount == ugx(474_561)  # "474561.0023449999" rounded
    assert wb.prepaid_float == ugx(data.MERCHANT_PREPAID_FLOAT)
    assert wb.account_no == data.MERCHANT_ACCOUNT_NO


async def test_get_card(pata: PatasenteClient) -> None:
    info = await pata.get_card(card_ref(data.CARD_ACTIVE))
    assert info.card_id == data.CARD_ACTIVE.id
    assert info.wallets == data.CARD_ACTIVE.wallets
    assert info.has_pin is True and info.status == "active"
    assert info.current_balance == ugx(data.CARD_ACTIVE.balance)
    assert info.available_credit == ugx(data.CARD_ACTIVE.available_credit)
    no_pin = await pata.get_card(card_ref(data.CARD_NO_PIN))
    assert no_pin.has_pin is False


async def test_get_unknown_card_is_declined(pata: PatasenteClient) -> None:
    ref = parse_card_qr("1613*****99999&11/29&UGX&0&Debit Card&999")
    with pytest.raises(Declined) as info:
        await pata.get_card(ref)
    assert info.value.provider == "Patasente" and info.value.message


async def test_products_and_conversion(pata: PatasenteClient) -> None:
    products = await pata.company_products()
    assert [p.name for p in products] == [p[1] for p in data.PRODUCTS]
    assert products[0].unit_price == ugx(data.PRODUCTS[0][2])
    usd = await pata.convert_currency("UGX", "USD", ugx(36_900))
    assert usd == Money(1000, "USD")


async def test_prepaid_transactions_history(pata: PatasenteClient) -> None:
    rows = await pata.prepaid_transactions()
    assert {r.id for r in rows} >= {14562, 14566}


# ------------------------------------------------------------------ debit / credit
async def test_debit_with_pin(sandbox, pata: PatasenteClient) -> None:
    card = data.CARD_ACTIVE
    before = balance(sandbox, card)
    ref = new_ref()
    res = await pata.debit_card(card.id, ugx(3_000), "bananas", card.pin, data.CURRENT, ref)
    assert res.status is CardOpStatus.APPROVED and res.ref == ref and res.message
    assert balance(sandbox, card) == before - 3_000
    row = await pata.find_by_ref(ref)
    assert row is not None and row.amount == ugx(3_000)
    assert row.card_transaction_type == "debit"
    assert await pata.find_by_ref(new_ref()) is None


async def test_debit_card_without_pin(sandbox, pata: PatasenteClient) -> None:
    card = data.CARD_NO_PIN
    res = await pata.debit_card(card.id, ugx(1_000), "soap", None, data.CURRENT, new_ref())
    assert res.status is CardOpStatus.APPROVED
    assert balance(sandbox, card) == card.balance - 1_000


async def test_wrong_pin_declined_balance_unchanged(sandbox, pata: PatasenteClient,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    card = data.CARD_ACTIVE
    with pytest.raises(Declined) as info:
        await pata.debit_card(card.id, ugx(1_000), "x", "9087", data.CURRENT, new_ref())
    assert info.value.provider == "Patasente" and "PIN" in info.value.message.upper()
    assert "9087" not in str(info.value)
    assert "9087" not in caplog.text
    assert balance(sandbox, card) == card.balance
    assert count(sandbox, DEBIT) == 1


async def test_over_balance_is_declined(sandbox, pata: PatasenteClient) -> None:
    card = data.CARD_LOW
    with pytest.raises(Declined) as info:
        await pata.debit_card(card.id, ugx(5_000), "x", card.pin, data.CURRENT, new_ref())
    assert info.value.message
    assert balance(sandbox, card) == card.balance


async def test_credit_card(sandbox, pata: PatasenteClient) -> None:
    card = data.CARD_LOW
    ref = new_ref()
    res = await pata.credit_card(card.id, ugx(2_000), "Top up", ref)
    assert res.status is CardOpStatus.APPROVED
    assert balance(sandbox, card) == card.balance + 2_000
    assert sandbox.state.patasente.applied_count(ref, "credit") == 1


async def test_credit_above_face_value_is_declined(sandbox, pata: PatasenteClient) -> None:
    card = data.CARD_LOW
    with pytest.raises(Declined):
        await pata.credit_card(card.id, ugx(card.face_value), "Top up", new_ref())
    assert balance(sandbox, card) == card.balance


#: Every form a lost answer takes, at both moments (the provider did nothing / it
#: committed). A money request is sent ONCE by the client and ends OutcomeUnknown:
#: whether it is sent again is reconciliation's decision (tests/test_fault_matrix.py).
LOST_FORMS = [
    (mode, when) for mode in ("drop", "reset", "http500", "http502", "http503", "http504",
                              "html", "empty", "badjson", "trickle", "huge")
    for when in ("before", "after")
] + [("http429", "before"), ("redirect", "before"), ("hang", "before"), ("slow", "after")]


@pytest.mark.parametrize(("mode", "when"), LOST_FORMS)
async def test_lost_debit_answer_is_sent_once_and_unknown(sandbox, mode: str,
                                                          when: str) -> None:
    card = data.CARD_ACTIVE
    ref = new_ref()
    fast = settings_for(sandbox.patasente_url).model_copy(
        update={"read_timeout": 0.5, "deadline": 1.5, "max_answer_bytes": 100_000})
    async with PatasenteClient(fast, retry=FAST_RETRY) as pata:
        await pata.company_details()
        sandbox.faults.add(provider="patasente", endpoint=DEBIT, mode=mode, when=when,
                           count=1, seconds=2.0 if mode == "slow" else 0.3)
        with pytest.raises(OutcomeUnknown) as info:
            await pata.debit_card(card.id, ugx(2_000), "tea", card.pin, data.CURRENT, ref)
    assert info.value.ref == ref and card.pin not in str(info.value)
    if mode == "slow":  # the provider finishes the work after the client gave up
        await until(lambda: count(sandbox, DEBIT) == 1)
    assert count(sandbox, DEBIT) == 1
    assert sandbox.state.patasente.applied_count(ref) == (1 if when == "after" else 0)


@pytest.mark.parametrize(("mode", "when"), LOST_FORMS)
async def test_no_money_request_fails_as_link_down(sandbox, mode: str, when: str) -> None:
    """Every form of a link failure is LinkDown for a query: "offline for this sale"."""
    # A trickle ends at the deadline, on each of the three attempts: 0.8 s suffices.
    fast = settings_for(sandbox.patasente_url).model_copy(
        update={"read_timeout": 0.5, "deadline": 0.8, "max_answer_bytes": 100_000})
    async with PatasenteClient(fast, retry=FAST_RETRY) as pata:
        sandbox.faults.add(provider="patasente", endpoint="get-patasente-card", mode=mode,
                           when=when, count=None, seconds=3.0 if mode == "slow" else 0.3)
        with pytest.raises(LinkDown):
            await pata.get_card(card_ref(data.CARD_ACTIVE))


async def test_a_4xx_without_the_error_field_is_a_refusal(sandbox, pata) -> None:
    sandbox.faults.add(provider="patasente", endpoint=DEBIT, mode="http4xx", count=1)
    with pytest.raises(Declined) as info:
        await pata.debit_card(data.CARD_ACTIVE.id, ugx(100), "x", data.CARD_ACTIVE.pin,
                              data.CURRENT, new_ref())
    assert "HTTP 404" in info.value.message


async def test_expired_token_on_debit_debits_once(sandbox, pata: PatasenteClient) -> None:
    card = data.CARD_ACTIVE
    await pata.company_details()
    sandbox.state.expire_tokens()
    ref = new_ref()
    res = await pata.debit_card(card.id, ugx(1_000), "tea", card.pin, data.CURRENT, ref)
    assert res.status is CardOpStatus.APPROVED
    assert sandbox.state.patasente.applied_count(ref) == 1
    assert count(sandbox, "login") == 2


async def test_bad_amounts_send_nothing(sandbox, pata: PatasenteClient) -> None:
    with pytest.raises(InputError):
        await pata.debit_card(108, Money(100, "KES"), "x", "1234", data.CURRENT, new_ref())
    with pytest.raises(InputError):
        await pata.debit_card(108, ugx(0), "x", "1234", data.CURRENT, new_ref())
    assert sum(sandbox.state.request_counts.values()) == 0


# ------------------------------------------------------------------ card services
async def test_activate_gift_card_with_pin(sandbox, pata: PatasenteClient) -> None:
    card = data.CARD_GIFT_INACTIVE
    msg = await pata.modify_card_status(card.id, "active", pin="2580")
    assert msg
    info = await pata.get_card(card_ref(card))
    assert info.status == "active" and info.has_pin
    res = await pata.debit_card(card.id, ugx(1_000), "gift", "2580", data.CURRENT, new_ref())
    assert res.status is CardOpStatus.APPROVED


async def test_sente_card_activation_and_phone_code(sandbox, pata: PatasenteClient) -> None:
    card = data.CARD_SENTE_NEW
    act = await pata.activate_sente_card(card.id, "Jane Doe", "256700111222", None, "1470",
                                         "aGVsbG8=")
    assert act.user_id > 0 and act.message
    with pytest.raises(Declined):
        await pata.verify_phone_code(act.user_id, act.phone_number, "0000")
    assert await pata.verify_phone_code(act.user_id, act.phone_number, data.SMS_CODE)


async def test_lock_and_unlock(sandbox, pata: PatasenteClient) -> None:
    card = data.CARD_LOCKED
    assert await pata.unlock_card(card.id)
    with pytest.raises(Declined):
        await pata.unlock_card(card.id)  # "Card is already active"
    assert await pata.lock_card(card.id)
    assert (await pata.get_card(card_ref(card))).status == "locked"


# ------------------------------------------------------------------ HTTP failures
@pytest.mark.parametrize("mode", ["html", "empty", "badjson"])
async def test_garbage_answers_name_provider_and_status(sandbox, pata: PatasenteClient,
                                                        mode: str) -> None:
    """A captive portal's page, an empty or cut-short body: the link answered, not the
    provider (offline for this sale), and the message names provider and status."""
    sandbox.faults.add(provider="patasente", endpoint="get-wallet-balance", mode=mode,
                       count=None)
    with pytest.raises(NoAnswer) as info:
        await pata.wallet_balance()
    assert info.value.provider == "Patasente" and "HTTP 200" in str(info.value)
    assert info.value.detail


async def test_query_retries_a_500(sandbox, pata: PatasenteClient) -> None:
    sandbox.faults.add(provider="patasente", endpoint="get-wallet-balance", mode="http500",
                       count=2)
    assert (await pata.wallet_balance()).amount == ugx(474_561)
    assert count(sandbox, "get-wallet-balance") == 3


async def test_provider_down(sandbox) -> None:
    url = sandbox.patasente_url
    sandbox.stop()
    async with PatasenteClient(settings_for(url), retry=FAST_RETRY) as client:
        with pytest.raises(ProviderUnavailable) as info:
            await client.wallet_balance()
        assert info.value.provider == "Patasente"
        with pytest.raises(ProviderUnavailable):
            await client.debit_card(108, ugx(100), "x", "1234", data.CURRENT, new_ref())


async def test_lost_lock_answer_is_not_repeated(sandbox, pata: PatasenteClient) -> None:
    card = data.CARD_ACTIVE
    await pata.company_details()
    sandbox.faults.add(provider="patasente", endpoint="lock-sente-card",
                       mode="drop_after_commit", count=1)
    with pytest.raises(Transient):
        await pata.lock_card(card.id)
    assert count(sandbox, "lock-sente-card") == 1  # a repeat would answer "already locked"
    assert (await pata.get_card(card_ref(card))).status == "locked"


async def test_lock_failures_are_not_repeated_blindly(sandbox, pata: PatasenteClient) -> None:
    sandbox.faults.add(provider="patasente", endpoint="lock-sente-card", mode="http503",
                       count=1)
    with pytest.raises(RateLimited):  # refused: the cashier may try again
        await pata.lock_card(data.CARD_ACTIVE.id)
    sandbox.faults.add(provider="patasente", endpoint="lock-sente-card", mode="drop_before",
                       count=1)
    with pytest.raises(Transient):  # could have been sent: not repeated blindly
        await pata.lock_card(data.CARD_ACTIVE.id)
    assert await pata.lock_card(data.CARD_ACTIVE.id)


async def test_lost_credit_answer_is_never_sent_again_by_the_client(sandbox, pata) -> None:
    card = data.CARD_LOW
    ref = new_ref()
    sandbox.faults.add(provider="patasente", endpoint="credit-patasente-card",
                       mode="drop_after_commit", count=1)
    with pytest.raises(OutcomeUnknown):
        await pata.credit_card(card.id, ugx(1_000), "Refund", ref)
    assert sandbox.state.patasente.applied_count(ref, "credit") == 1
    assert count(sandbox, "credit-patasente-card") == 1


async def test_history_reads_every_page_without_a_search(sandbox, pata) -> None:
    import datetime as dt

    card = data.CARD_ACTIVE
    for i in range(7):
        await pata.debit_card(card.id, ugx(10 + i), "tea", card.pin, data.CURRENT, new_ref())
    rows, complete = await pata.history(dt.date(2020, 1, 1), page=3)
    assert complete and len(rows) == 9  # the 7 debits and the two rows of the document
    rows, complete = await pata.history(dt.date(2020, 1, 1), page=3, max_rows=5)
    assert not complete
