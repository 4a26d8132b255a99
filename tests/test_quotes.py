"""One quote per card-paid sale, its expiry, the receipt that shows it, and card refusals
after a PIN left in the journal (issue 13, points 4 and 5). Against the sandbox over HTTP."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from pos.errors import Declined, InputError, QuoteExpired
from pos.journal import State
from pos.money import Money
from pos.receipts import render_text
from pos.sandbox import data
from pos.usecases.quotes import Quote

pytestmark = pytest.mark.sandbox(throttle_seconds=0, daily_limit=None)

QUOTES = "patasente/convert-currency"


def kes(n: int) -> Money:
    return Money(n * 100, "KES")


def ugx(n: int) -> Money:
    return Money(n, "UGX")


def later(term, seconds: float, monkeypatch) -> None:
    """The boot clock moves on ``seconds`` (the wall clock may say anything)."""
    real = term.ctx.device.mono
    monkeypatch.setattr(term.ctx.device, "mono", lambda: real() + seconds)


def rows(term, kind: str = "card_debit"):
    return [t for t in term.journal_list() if t.kind == kind]


# ----------------------------------------------------------------- the quote
def test_rate_text_reads_one_unit_of_the_weaker_currency():
    q = Quote(kes(150), ugx(4_275), 108)
    assert q.converted and q.rate_text() == "1 KES = 28.5 UGX"
    assert Quote(ugx(3_690), Money(100, "USD"), 1).rate_text() == "1 USD = 3,690 UGX"
    assert Quote(kes(7), ugx(200), 1).rate_text() == "1 KES = 28.57 UGX"
    same = Quote(ugx(500), ugx(500), 1)
    assert not same.converted and same.rate_text() == "" and same.rate is None


async def test_one_quote_is_shown_and_debited(term, sandbox):
    before = sandbox.state.patasente.balance(data.CARD_ACTIVE)
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    quote = await term.quote(lookup, kes(150))
    assert quote.charge == ugx(4_275) and sandbox.state.request_counts[QUOTES] == 1
    res = await term.sell_token(data.METER_OK, kes(150), "Bilbo", tender="card", card=lookup,
                                wallet=data.CURRENT, pin=data.CARD_ACTIVE.pin, quote=quote)
    assert res.status == "approved", res.message
    assert sandbox.state.request_counts[QUOTES] == 1  # not fetched again by the sale
    (debit,) = rows(term)
    assert debit.amount == quote.charge
    assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == before - 4_275


async def test_the_debit_is_the_quote_shown_even_when_the_rate_moved(term, sandbox,
                                                                      monkeypatch):
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    quote = await term.quote(lookup, kes(150))
    monkeypatch.setitem(data.UGX_PER_UNIT, "KES", "40")  # the market moves, within the quote
    res = await term.sell_token(data.METER_OK, kes(150), "Bilbo", tender="card", card=lookup,
                                wallet=data.CURRENT, pin=data.CARD_ACTIVE.pin, quote=quote)
    assert res.status == "approved"
    assert rows(term)[0].amount == ugx(4_275)


async def test_an_expired_quote_debits_nothing(term, sandbox, monkeypatch):
    before = sandbox.state.patasente.balance(data.CARD_ACTIVE)
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    quote = await term.quote(lookup, kes(150))
    assert term.quote_fresh(quote)
    later(term, term.settings.patasente.quote_seconds + 1, monkeypatch)
    assert not term.quote_fresh(quote)
    with pytest.raises(QuoteExpired):
        await term.sell_token(data.METER_OK, kes(150), "Bilbo", tender="card", card=lookup,
                              wallet=data.CURRENT, pin=data.CARD_ACTIVE.pin, quote=quote)
    assert term.journal_list() == []  # not a refusal: the screen shows the new rate
    assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == before


async def test_a_wall_clock_step_does_not_expire_a_quote(term, sandbox, monkeypatch):
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    quote = await term.quote(lookup, kes(150))
    device = term.ctx.device
    wall = device.wall
    monkeypatch.setattr(device, "wall", lambda: wall() + dt.timedelta(hours=3))
    monkeypatch.setattr(device, "synced", lambda: False)
    assert term.quote_fresh(quote)


async def test_a_quote_for_another_sale_is_refused(term, sandbox):
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    quote = await term.quote(lookup, kes(150))
    with pytest.raises(InputError, match="another sale"):
        await term.sell_token(data.METER_OK, kes(200), "Bilbo", tender="card", card=lookup,
                              wallet=data.CURRENT, pin=data.CARD_ACTIVE.pin, quote=quote)
    assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == \
        data.CARD_ACTIVE.balance


async def test_without_a_quote_the_sale_fetches_one_once(term, sandbox):
    """The headless path (CLI): one conversion, made by the sale itself."""
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    res = await term.pay_bill(data.ACCOUNT_OK, kes(1_000), "Bilbo", tender="card",
                              card=lookup, wallet=data.CURRENT, pin=data.CARD_ACTIVE.pin)
    assert res.status == "approved", res.message
    assert sandbox.state.request_counts[QUOTES] == 1
    assert rows(term)[0].amount == ugx(28_500)


# ---------------------------------------------------------------- the receipt
@pytest.mark.parametrize("kind", ["vend", "postpaid"])
async def test_receipt_of_a_card_paid_sale_shows_card_amount_and_rate(term, sandbox, kind):
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    quote = await term.quote(lookup, kes(150))
    if kind == "vend":
        res = await term.sell_token(data.METER_OK, kes(150), "Bilbo", tender="card",
                                    card=lookup, wallet=data.CURRENT,
                                    pin=data.CARD_ACTIVE.pin, quote=quote)
    else:
        res = await term.pay_bill(data.ACCOUNT_OK, kes(150), "Bilbo", tender="card",
                                  card=lookup, wallet=data.CURRENT, pin=data.CARD_ACTIVE.pin,
                                  quote=quote)
    assert res.status == "approved", res.message
    for ref in (res.ref, res.txn.parent_ref):  # the token / bill, and its card debit
        receipt = term.receipt(ref)
        text = render_text(receipt, 32)
        assert "*" in receipt.card_number and receipt.card_number in text  # masked
        assert "UGX 4,275" in text, text
        assert "1 KES = 28.5 UGX" in text, text
        assert "KES 150.00" in text, text
        assert "Paid by" in text and "CARD" in text


# ---------------------------------------------- refusals after a PIN: journaled
async def test_meter_throttle_refusal_of_a_card_sale_is_journaled(term, sandbox):
    cash = await term.sell_token(data.METER_OK, kes(100), "Bilbo")
    assert cash.status == "approved"
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    quote = await term.quote(lookup, kes(150))
    with pytest.raises(Declined, match="5 minutes"):
        await term.sell_token(data.METER_OK, kes(150), "Bilbo", tender="card", card=lookup,
                              wallet=data.CURRENT, pin=data.CARD_ACTIVE.pin, quote=quote)
    (row,) = rows(term)
    assert row.state == State.declined and "5 minutes" in (row.last_error or "")
    assert row.amount == ugx(4_275) and row.card_id == data.CARD_ACTIVE.id
    assert data.METER_OK in (row.reason or "")
    assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == data.CARD_ACTIVE.balance


async def test_expired_card_refused_after_the_pin_is_journaled(term, sandbox):
    lookup = await term.lookup_card(data.CARD_EXPIRED.payload)
    assert lookup.problems
    with pytest.raises(Declined):
        await term.pay_by_card(lookup, ugx(1_000), data.CURRENT, data.CARD_EXPIRED.pin,
                               "POS sale")
    (row,) = rows(term)
    assert row.state == State.declined and row.last_error
    assert row.card_id == data.CARD_EXPIRED.id and row.sends == 0


async def test_amount_over_the_card_limit_after_the_pin_is_journaled(term, sandbox):
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    limit = term.settings.limits.card_max
    with pytest.raises(InputError, match="over the most"):
        await term.pay_by_card(lookup, ugx(limit + 1), data.CURRENT, data.CARD_ACTIVE.pin,
                               "POS sale")
    (row,) = rows(term)
    assert row.state == State.declined and "over the most" in (row.last_error or "")


async def test_offline_limit_refusal_after_the_pin_is_journaled_without_the_pin(term,
                                                                             sandbox):
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    term.link.patasente.record_failure("test: link down")  # next probe in 5 s
    assert not term.link.patasente.should_try()
    over = term.settings.offline.max_amount + 1
    with pytest.raises(Declined):
        await term.pay_by_card(lookup, ugx(over), data.CURRENT, data.CARD_ACTIVE.pin, "sale")
    (row,) = rows(term)
    assert row.state == State.declined and not row.offline
    db = sqlite3.connect(term.journal.path)
    try:
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    assert f"'{data.CARD_ACTIVE.pin}'" not in dump


async def test_a_refusal_before_any_pin_is_not_journaled(term, sandbox):
    """The cashier's own mistake (no PIN typed yet) changes nothing, as before."""
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    with pytest.raises(InputError):
        await term.pay_by_card(lookup, ugx(10**9), data.CURRENT, None, "POS sale")
    assert rows(term) == []


async def test_a_basket_card_part_refused_after_the_pin_is_journaled(term, sandbox):
    """More than remains to pay, found only once the customer typed the PIN (the sale was
    paid meanwhile on a second screen): declined row, nothing sent."""
    from pos.catalogue import Item

    basket = term.new_basket()
    basket.add(Item("Sugar 1kg", ugx(4_500), 18))
    sale = term.begin_sale(basket)
    lookup = await term.lookup_card(data.CARD_ACTIVE.payload)
    with pytest.raises(InputError, match="remains"):
        await term.sale_pay_card(sale.id, lookup, ugx(9_000), data.CURRENT,
                                 data.CARD_ACTIVE.pin)
    (row,) = rows(term)
    assert row.state == State.declined and row.details["sale_id"] == sale.id
    assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == data.CARD_ACTIVE.balance
