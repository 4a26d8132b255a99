"""PawaCard client against the sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from pos.config import PawaCardSettings
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
from pos.providers.http import FAST_RETRY
from pos.providers.models import VendStatus
from pos.providers.pawacard import PawaCardClient
from pos.refs import new_ref
from pos.sandbox import data

KES = "KES"


def kes(major: int) -> Money:
    return Money(major * 100, KES)


def settings_for(url: str, password: str = data.VENDOR_PASSWORD) -> PawaCardSettings:
    return PawaCardSettings(
        base_url=url,
        username=data.VENDOR_USERNAME,
        password=SecretStr(password),
        connect_timeout=2.0,
        read_timeout=5.0,
        poll_interval=0.01,
        max_polls=10,
    )


@pytest.fixture
async def pawa(sandbox) -> AsyncIterator[PawaCardClient]:
    async with PawaCardClient(settings_for(sandbox.pawacard_url), retry=FAST_RETRY) as client:
        yield client


async def until(predicate, timeout: float = 10.0) -> None:
    """Wait for the sandbox to get somewhere (it works in its own thread)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "timed out waiting"
        await asyncio.sleep(0.02)


def count(sandbox, endpoint: str) -> int:
    return sandbox.state.request_counts[f"pawacard/{endpoint}"]


def total_requests(sandbox) -> int:
    return sum(sandbox.state.request_counts.values())


# ------------------------------------------------------------------ login / balance
async def test_balance_logs_in_once(sandbox, pawa: PawaCardClient) -> None:
    assert await pawa.balance() == kes(data.VENDOR_FLOAT)
    await pawa.balance()
    assert count(sandbox, "login") == 1
    assert count(sandbox, "balance") == 2


async def test_wrong_password_is_auth_error_without_the_password(sandbox) -> None:
    async with PawaCardClient(settings_for(sandbox.pawacard_url, "s3cret-pw"),
                              retry=FAST_RETRY) as client:
        with pytest.raises(AuthError) as info:
            await client.balance()
    assert "s3cret-pw" not in str(info.value) and "s3cret-pw" not in repr(info.value)
    assert "s3cret-pw" not in repr(client)


async def test_expired_key_relogs_in_and_repeats(sandbox, pawa: PawaCardClient) -> None:
    await pawa.balance()
    sandbox.state.expire_tokens()
    assert await pawa.balance() == kes(data.VENDOR_FLOAT)
    assert count(sandbox, "login") == 2


async def test_expired_key_on_vend_vends_once(sandbox, pawa: PawaCardClient) -> None:
    await pawa.balance()
    sandbox.state.expire_tokens()
    ref = new_ref()
    out = await pawa.vend(data.METER_OK, kes(100), "Bilbo Baggins", ref)
    assert out.status is VendStatus.VENDED
    assert sandbox.state.pawacard.vend_count(ref) == 1
    assert count(sandbox, "login") == 2


# ------------------------------------------------------------------ verify
async def test_verify_meter(pawa: PawaCardClient) -> None:
    info = await pawa.verify_meter(data.METER_OK)
    assert info.customer_name == "Bilbo Baggins" and info.meter == data.METER_OK


async def test_bad_luhn_sends_nothing(sandbox, pawa: PawaCardClient) -> None:
    with pytest.raises(InputError, match="check digit"):
        await pawa.verify_meter(data.METER_BAD_LUHN)
    with pytest.raises(InputError):
        await pawa.vend(data.METER_BAD_LUHN, kes(50), "X", new_ref())
    assert total_requests(sandbox) == 0


async def test_unknown_meter_is_declined_with_provider_message(pawa: PawaCardClient) -> None:
    with pytest.raises(Declined) as info:
        await pawa.verify_meter(data.METER_UNKNOWN)
    assert info.value.provider == "PawaCard" and info.value.message


async def test_verify_timeout_is_retried_then_link_down(
    sandbox, pawa: PawaCardClient
) -> None:
    with pytest.raises(LinkDown) as info:
        await pawa.verify_meter(data.METER_TIMEOUT)
    assert not isinstance(info.value, Declined)
    assert count(sandbox, "verify") == FAST_RETRY.attempts


async def test_verify_recovers_from_a_500(sandbox, pawa: PawaCardClient) -> None:
    sandbox.faults.add(provider="pawacard", endpoint="verify", mode="http500", count=1)
    assert (await pawa.verify_meter(data.METER_OK)).customer_name == "Bilbo Baggins"
    assert count(sandbox, "verify") == 2


# ------------------------------------------------------------------ vend
async def test_vend_token(sandbox, pawa: PawaCardClient) -> None:
    ref = new_ref()
    out = await pawa.vend(data.METER_OK, kes(200), "Bilbo Baggins", ref)
    assert out.status is VendStatus.VENDED
    assert out.token and len(out.token) == 20 and out.token.isdigit()
    assert len(out.token_groups.split()) == 5
    assert out.receipt_no and out.ref == ref
    assert out.total_amount == kes(200)
    assert sandbox.state.pawacard.vend_count(ref) == 1
    again = await pawa.transaction(ref)
    assert again.status is VendStatus.VENDED and again.token == out.token


async def test_vend_failed(pawa: PawaCardClient) -> None:
    out = await pawa.vend(data.METER_FAIL, kes(50), "Samwise Gamgee", new_ref())
    assert out.status is VendStatus.DECLINED and out.code == "elec001"
    out = await pawa.vend(data.METER_FAIL_KPLC, kes(50), "M B", new_ref())
    assert out.status is VendStatus.DECLINED and out.code == "elec003"


async def test_pending_vend_completes_via_poll(sandbox, pawa: PawaCardClient) -> None:
    ref = new_ref()
    out = await pawa.vend(data.METER_PENDING, kes(100), "Frodo Baggins", ref)
    assert out.status is VendStatus.PENDING
    done = await pawa.poll(ref, interval=0.01, max_polls=10)
    assert done.status is VendStatus.VENDED and done.token
    assert sandbox.state.pawacard.vend_count(ref) == 1


async def test_poll_gives_up_while_still_pending(sandbox, pawa: PawaCardClient) -> None:
    ref = new_ref()
    sandbox.faults.add(provider="pawacard", endpoint="vend", mode="pending", polls=50)
    assert (await pawa.vend(data.METER_OK, kes(100), "B", ref)).status is VendStatus.PENDING
    out = await pawa.poll(ref, interval=0.0, max_polls=3)
    assert out.status is VendStatus.PENDING
    assert count(sandbox, "transaction") == 3


#: Every form a lost answer takes, at both moments (nothing done / committed). The
#: client sends a vend ONCE and ends OutcomeUnknown: whether it is sent again is
#: reconciliation's decision (tests/test_fault_matrix.py).
LOST_FORMS = [
    (mode, when) for mode in ("drop", "reset", "http500", "http502", "http503", "http504",
                              "html", "empty", "badjson", "trickle", "huge", "elec100")
    for when in ("before", "after")
] + [("http429", "before"), ("redirect", "before"), ("hang", "before"), ("slow", "after"),
     ("nested", "after")]


def fast_settings(url: str) -> PawaCardSettings:
    return settings_for(url).model_copy(
        update={"read_timeout": 0.5, "deadline": 1.5, "max_answer_bytes": 100_000})


@pytest.mark.parametrize(("mode", "when"), LOST_FORMS)
async def test_lost_vend_answer_is_sent_once_and_unknown(sandbox, mode: str, when: str) -> None:
    ref = new_ref()
    async with PawaCardClient(fast_settings(sandbox.pawacard_url), retry=FAST_RETRY) as pawa:
        await pawa.balance()
        sandbox.faults.add(provider="pawacard", endpoint="vend", mode=mode, when=when,
                           count=1, seconds=2.0 if mode == "slow" else 0.3)
        with pytest.raises(OutcomeUnknown) as info:
            await pawa.vend(data.METER_OK, kes(150), "Bilbo Baggins", ref)
    assert info.value.ref == ref and info.value.exit_code == 3
    if mode == "slow":
        await until(lambda: count(sandbox, "vend") == 1)
    assert count(sandbox, "vend") == 1  # never sent again by the client
    assert sandbox.state.pawacard.vend_count(ref) == (1 if when == "after" else 0)


@pytest.mark.parametrize(("mode", "when"), [f for f in LOST_FORMS if f[0] != "nested"])
async def test_no_money_request_fails_as_link_down(sandbox, mode: str, when: str) -> None:
    """Every form of a link failure is LinkDown for a query: "offline for this sale"."""
    # A trickle ends at the deadline, on each of the three attempts: 0.8 s suffices.
    fast = fast_settings(sandbox.pawacard_url).model_copy(update={"deadline": 0.8})
    async with PawaCardClient(fast, retry=FAST_RETRY) as pawa:
        await pawa.balance()
        sandbox.faults.add(provider="pawacard", endpoint="verify", mode=mode, when=when,
                           count=None, seconds=3.0 if mode == "slow" else 0.3)
        with pytest.raises(LinkDown):
            await pawa.verify_meter(data.METER_OK)


async def test_odd_numbers_still_give_the_token(sandbox, pawa: PawaCardClient) -> None:
    for mode in ("odd_total", "odd_id"):
        ref = new_ref()
        sandbox.faults.add(provider="pawacard", endpoint="vend", mode=mode, count=1)
        out = await pawa.vend(data.METER_OK, kes(150), "Bilbo Baggins", ref)
        assert out.status is VendStatus.VENDED and out.token and len(out.token) == 20
        assert (out.total_amount is None) == (mode == "odd_total")
        assert (out.transaction_id is None) == (mode == "odd_id")
        sandbox.clock.advance(301)


async def test_unknown_meter_vend_is_a_decline(sandbox, pawa: PawaCardClient) -> None:
    """Document 003: elec100 "did not pass the Luhn validation" is a meter Kenya Power does
    not know -- a decline, not "fetch the response again"."""
    out = await pawa.vend(data.METER_UNKNOWN, kes(50), "X", new_ref())
    assert out.status is VendStatus.DECLINED and out.unknown_target and out.code == "elec100"
    assert sandbox.state.pawacard.vends_performed == 0


async def test_a_4xx_without_a_message_is_a_refusal(sandbox, pawa: PawaCardClient) -> None:
    await pawa.balance()
    sandbox.faults.add(provider="pawacard", endpoint="vend", mode="http4xx", count=1)
    with pytest.raises(Declined) as info:
        await pawa.vend(data.METER_OK, kes(50), "B", new_ref())
    assert "HTTP 404" in info.value.message
    assert sandbox.state.pawacard.vends_performed == 0


async def test_throttle_is_declined_and_flagged(sandbox, pawa: PawaCardClient) -> None:
    assert (await pawa.vend(data.METER_OK, kes(50), "B", new_ref())).status is VendStatus.VENDED
    out = await pawa.vend(data.METER_OK, kes(50), "B", new_ref())
    assert out.status is VendStatus.DECLINED and out.throttled
    sandbox.clock.advance(301)
    assert (await pawa.vend(data.METER_OK, kes(50), "B", new_ref())).status is VendStatus.VENDED


async def test_daily_limit(pawa: PawaCardClient) -> None:
    out = await pawa.vend(data.METER_DAILY_LIMIT, kes(50), "Peregrin Took", new_ref())
    assert out.status is VendStatus.DECLINED and not out.throttled
    assert out.raw.get("status") in (105, "105")


async def test_unknown_ref_is_absent(pawa: PawaCardClient) -> None:
    assert (await pawa.transaction(new_ref())).status is VendStatus.ABSENT
    assert (await pawa.postpaid_transaction(new_ref())).status is VendStatus.ABSENT


async def test_bad_ref_and_currency_are_input_errors(sandbox, pawa: PawaCardClient) -> None:
    with pytest.raises(InputError):
        await pawa.vend(data.METER_OK, kes(50), "B", "abc-1")
    with pytest.raises(InputError):
        await pawa.vend(data.METER_OK, Money(5000, "UGX"), "B", new_ref())
    assert total_requests(sandbox) == 0


async def test_float_too_low(sandbox, pawa: PawaCardClient) -> None:
    out = await pawa.vend(data.METER_OK, kes(data.VENDOR_FLOAT + 1), "B", new_ref())
    assert out.status is VendStatus.DECLINED and "float too low" in out.message


# ------------------------------------------------------------------ postpaid
async def test_postpaid_verify_and_bill(sandbox, pawa: PawaCardClient) -> None:
    info = await pawa.postpaid_verify(data.ACCOUNT_OK)
    assert info.customer_name == "Bilbo Baggins" and info.balance == kes(10)
    ref = new_ref()
    out = await pawa.postpaid_bill(data.ACCOUNT_OK, kes(1000), info.customer_name, ref)
    assert out.status is VendStatus.VENDED and out.receipt_no and out.token is None
    assert (await pawa.postpaid_transaction(ref)).status is VendStatus.VENDED


async def test_postpaid_pending_then_complete(pawa: PawaCardClient) -> None:
    ref = new_ref()
    out = await pawa.postpaid_bill(data.ACCOUNT_PENDING, kes(500), "Frodo Baggins", ref)
    assert out.status is VendStatus.PENDING
    done = await pawa.poll(ref, postpaid=True, interval=0.01, max_polls=10)
    assert done.status is VendStatus.VENDED and done.receipt_no


async def test_postpaid_failed(pawa: PawaCardClient) -> None:
    out = await pawa.postpaid_bill(data.ACCOUNT_FAIL, kes(500), "Samwise Gamgee", new_ref())
    assert out.status is VendStatus.DECLINED and out.message


async def test_postpaid_unreachable_is_link_down(sandbox, pawa: PawaCardClient) -> None:
    with pytest.raises(NoAnswer):
        await pawa.postpaid_verify(data.ACCOUNT_UNREACHABLE)


# ------------------------------------------------------------------ HTTP failures
@pytest.mark.parametrize("mode", ["html", "empty", "badjson"])
async def test_garbage_answers_name_provider_and_status(sandbox, pawa: PawaCardClient,
                                                        mode: str) -> None:
    sandbox.faults.add(provider="pawacard", endpoint="balance", mode=mode, count=None)
    with pytest.raises(NoAnswer) as info:
        await pawa.balance()
    assert info.value.provider == "PawaCard" and "HTTP 200" in str(info.value)
    assert info.value.http_status == 200 and info.value.detail
    assert count(sandbox, "balance") == FAST_RETRY.attempts  # the link answered: retried


@pytest.mark.parametrize("mode", ["http429", "http503"])
async def test_rate_limited(sandbox, pawa: PawaCardClient, mode: str) -> None:
    await pawa.balance()
    sandbox.faults.add(provider="pawacard", endpoint="balance", mode=mode, count=None,
                       seconds=7)
    with pytest.raises(RateLimited) as info:
        await pawa.balance()
    assert info.value.retry_after == 7.0


async def test_provider_down(sandbox) -> None:
    url = sandbox.pawacard_url
    sandbox.stop()
    async with PawaCardClient(settings_for(url), retry=FAST_RETRY) as client:
        with pytest.raises(ProviderUnavailable) as info:
            await client.balance()
        assert info.value.provider == "PawaCard"
        with pytest.raises(ProviderUnavailable):
            await client.postpaid_transaction(new_ref())


async def test_httpx_does_not_log_requests(sandbox, pawa: PawaCardClient,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await pawa.balance()
    assert not [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]
    assert data.VENDOR_PASSWORD not in caplog.text
