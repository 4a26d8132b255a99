"""``sente-pos journal --ref`` and ``sente-pos void`` as a user runs them (the console
script in its own process) on a journal the sandbox filled."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pos.journal import Kind
from pos.money import Money
from pos.sandbox import data
from tests.test_cli import ROOT, _exe

pytestmark = [pytest.mark.sandbox(throttle_seconds=0, daily_limit=None),
              pytest.mark.counter(supervisor=True)]


def run(term, sandbox, *args: str, stdin: str = "") -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTE_POS_")}
    env.update(sandbox.env(), SENTE_POS_HOME=str(Path(term.settings.home)))
    p = subprocess.run([*_exe(), *args], env=env, input=stdin, capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    return p.returncode, p.stdout, p.stderr


async def voided_payment(term) -> tuple[str, str]:
    boss = term.check_supervisor("8642")
    card = data.CARD_ACTIVE
    lookup = await term.lookup_card(card.payload)
    paid = await term.pay_by_card(lookup, Money(3000, "UGX"), data.CURRENT, card.pin, "shoes")
    res = await term.void(paid.ref, boss, "wrong size")
    assert res.status == "approved", res.message
    return paid.ref, res.ref


@pytest.mark.slow
async def test_journal_ref_text_prints_the_event_trail(term, sandbox):
    """BUG (issue 13): ``journal --ref`` in text mode printed one line, no event trail."""
    paid, refund = await voided_payment(term)
    rc, out, err = run(term, sandbox, "journal", "--ref", paid)
    assert rc == 0, err
    assert "event trail:" in out
    lines = out.splitlines()
    trail = lines[lines.index("event trail:") + 1:]
    events = term.journal.events(paid)
    assert len(trail) == len(events) >= 3
    # The creation event names the state it began in, once ("- -> created created" before).
    assert trail[0].split()[2:] == ["created", "by", "ann"], trail[0]
    assert "sending -> done" in trail[-1]
    assert "(VOIDED)" in out and f"refund     {refund}" in out
    assert "voided     by boss (wrong size)" in out
    rc, out, _ = run(term, sandbox, "journal", "--ref", refund)
    assert rc == 0 and f"parent     {paid}" in out and "-> done" in out
    # JSON keeps its shape: a list of one row with its events, and now its void.
    rc, out, _ = run(term, sandbox, "journal", "--ref", paid, "--json")
    (row,) = json.loads(out)
    assert row["ref"] == paid and [e["to"] for e in row["events"]] == [
        str(e.to_state) for e in events]
    assert row["void"] == {"label": "voided", "refund_ref": refund, "by": "boss",
                           "why": "wrong size"}
    rc, out, err = run(term, sandbox, "journal", "--ref", "000000000000")
    assert rc == 2 and "No transaction with ref 000000000000" in err


async def test_journal_ref_finds_a_row_past_the_list_limit(term, sandbox):
    old = await term.sell_token(data.METER_OK, Money(10_000, "KES"), "Bilbo")
    for _ in range(3):
        term.journal.create(Kind.vend, Money(100, "KES"), operator="ann",
                            terminal_id="POS-001", meter=data.METER_OK)
    rc, out, _ = run(term, sandbox, "journal", "--ref", old.ref, "--limit", "1")
    assert rc == 0 and f"ref        {old.ref}" in out and "sending -> done" in out


@pytest.mark.slow
async def test_void_refused_before_the_supervisor_pin_is_read(term, sandbox):
    """BUG (issue 13): ``void`` read the supervisor's PIN, then said the row cannot be
    voided. Now the refusal comes first (exit 2), with no PIN asked or read."""
    token = await term.sell_token(data.METER_OK, Money(10_000, "KES"), "Bilbo")
    rc, out, err = run(term, sandbox, "void", token.ref)  # nothing on stdin
    assert rc == 2
    assert "cannot be taken back" in err and "PIN" not in err
    # A voidable row still needs the PIN, then voids.
    paid, _ = await voided_payment(term)
    rc, out, err = run(term, sandbox, "void", paid, "--json", stdin="8642\n")
    assert rc == 2 and "already voided" in json.loads(out)["error"]
    card = data.CARD_ACTIVE
    lookup = await term.lookup_card(card.payload)
    fresh = await term.pay_by_card(lookup, Money(2000, "UGX"), data.CURRENT, card.pin, "hat")
    rc, out, err = run(term, sandbox, "void", fresh.ref, "--reason", "no")
    assert rc == 2 and "PIN" in err  # voidable: the PIN is asked
    rc, out, err = run(term, sandbox, "void", fresh.ref, "--reason", "no", stdin="8642\n")
    assert rc == 0, err
    assert any(c.kind == Kind.card_refund for c in term.journal.children(fresh.ref))
