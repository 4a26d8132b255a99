"""The CLI's card-paid electricity sale shows the card's amount before the PIN (issue 13,
point 4, as the counter does): one quote per sale, shown on stderr -- the amount in the
card's currency, the rate, the sale amount, until when it holds -- before the PIN is read
from stdin, and that quote debited; one gone stale at the PIN is fetched again and shown
again, and a new PIN read for it.

``sente-pos vend`` runs in its own process against the sandbox over loopback HTTP; the
test writes the PIN only once the amount is on stderr (the code before read the PIN
first, then fetched the quote: these tests time out waiting for the amount there)."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pos.money import Money
from pos.sandbox import data
from pos.sandbox.server import SandboxServer
from tests.test_local_faults import ROOT, cli_env

pytestmark = pytest.mark.sandbox(throttle_seconds=0, daily_limit=None)

QUOTES = "patasente/convert-currency"
DEBITS = "patasente/debit-patasente-card"
CARD = data.CARD_ACTIVE


class Sale:
    """``sente-pos vend ... --card ... --json`` with stdin and stderr as pipes."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sente_pos.cli", *args, "--json"], env=env, cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_charge(self, timeout: float = 30.0) -> list[str] | None:
        """The next amount shown (its lines, up to the rate's expiry), or None once the
        process has closed stderr."""
        block: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError("no card amount shown; stderr so far:\n"
                                     + "\n".join(self.seen + block)) from None
            if line is None:
                return None
            self.seen.append(line)
            block.append(line)
            if line.startswith("The rate holds"):
                return block

    def pin(self, pin: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(pin + "\n")
        self.proc.stdin.flush()

    def finish(self) -> tuple[int, dict[str, Any]]:
        import json

        out, _ = self.proc.communicate(timeout=60)
        lines = out.strip().splitlines()
        return self.proc.returncode, (json.loads(lines[-1]) if lines else {})

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def vend(env: dict[str, str]) -> Sale:
    return Sale(env, "vend", data.METER_OK, "--amount", "150", "--card", CARD.payload,
                "--wallet", data.CURRENT)


def test_the_card_amount_rate_and_sale_are_shown_before_the_pin_and_debited(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    """KES 150 of electricity from a UGX card at 28.5 UGX per KES: UGX 4,275 shown,
    with the rate and the sale amount, before the PIN; that amount debited; one quote."""
    before = sandbox.state.patasente.balance(CARD)
    sale = vend(cli_env(sandbox, tmp_path / "home"))
    try:
        shown = " ".join(sale.next_charge() or [])
        assert f"pays UGX 4,275 from {data.CURRENT}" in shown, shown
        assert "Sale: KES 150.00" in shown and "Rate: 1 KES = 28.5 UGX" in shown, shown
        assert "The rate holds 120 s, until " in shown, shown
        # Shown while the PIN is still unread: nothing debited, one quote asked.
        assert sandbox.state.request_counts[DEBITS] == 0
        assert sandbox.state.request_counts[QUOTES] == 1
        sale.pin(CARD.pin)
        rc, doc = sale.finish()
    finally:
        sale.kill()
    assert rc == 0 and doc["status"] == "approved", doc
    assert doc["quote"]["charge"] == Money(4_275, "UGX").to_json()
    assert doc["quote"]["rate"] == "1 KES = 28.5 UGX"
    assert sandbox.state.request_counts[QUOTES] == 1  # shown and debited: one quote
    assert sandbox.state.request_counts[DEBITS] == 1
    assert sandbox.state.patasente.balance(CARD) == before - 4_275
    assert CARD.pin not in " ".join(sale.seen)


def test_a_quote_expired_at_the_pin_is_renewed_and_shown_again_before_a_new_pin(
        sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rate moves (28.5 -> 30) and the first quote expires while the customer dithers:
    the PIN typed for UGX 4,275 debits nothing; UGX 4,500 is shown as renewed, a new PIN is
    read, and the one debit is UGX 4,500."""
    hold = 1.0
    env = cli_env(sandbox, tmp_path / "home",
                  SENTE_POS_PATASENTE__QUOTE_SECONDS=str(hold))
    before = sandbox.state.patasente.balance(CARD)
    sale = vend(env)
    try:
        first = " ".join(sale.next_charge() or [])
        seen_at = time.monotonic()
        assert "pays UGX 4,275" in first and "renewed" not in first, first
        monkeypatch.setitem(data.UGX_PER_UNIT, "KES", "30")
        # The child fetched its quote before printing it: once ``hold`` has passed here,
        # it is older than ``hold`` there. This waits out the rate's life, not a process.
        time.sleep(max(0.0, seen_at + hold + 0.05 - time.monotonic()))
        sale.pin(CARD.pin)
        shown = []
        while (block := sale.next_charge()) is not None:
            # (On a loaded machine the renewed quote can expire too: each is answered.)
            shown.append(" ".join(block))
            sale.pin(CARD.pin)
        rc, doc = sale.finish()
    finally:
        sale.kill()
    assert shown, "the expired quote was not shown again"
    assert all("The exchange rate was renewed" in text and "pays UGX 4,500" in text
               and "Rate: 1 KES = 30 UGX" in text for text in shown), shown
    assert rc == 0 and doc["status"] == "approved", doc
    assert doc["quote"]["charge"] == Money(4_500, "UGX").to_json()
    assert sandbox.state.request_counts[DEBITS] == 1
    assert sandbox.state.request_counts[QUOTES] == 1 + len(shown)
    assert sandbox.state.patasente.balance(CARD) == before - 4_500


def test_a_card_that_cannot_pay_is_refused_before_the_quote_and_the_pin(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    """An expired card: refused at once (exit 2), no quote, no PIN read, nothing journaled."""
    card = data.CARD_EXPIRED
    sale = Sale(cli_env(sandbox, tmp_path / "home"), "vend", data.METER_OK, "--amount", "150",
                "--card", card.payload, "--wallet", data.CURRENT)
    try:
        assert sale.next_charge() is None  # it ended without showing an amount
        rc, doc = sale.finish()
    finally:
        sale.kill()
    assert rc == 2 and "cannot pay" in doc["error"], doc
    assert sandbox.state.request_counts[QUOTES] == 0
    assert sandbox.state.request_counts[DEBITS] == 0
