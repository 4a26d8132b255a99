"""Provider text is cleaned before it reaches the console or the printer; text we send
is validated (issue 10, item 8).

The screens are driven with Textual's Pilot against the sandbox over real HTTP; the
sandbox is made to answer with ESC sequences in a customer name, a wallet name and a
decline message. What is checked is what Textual would write to the terminal: the
text of every rendered segment must hold no control character at all (Textual's own
cursor moves and colours are separate control segments)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pos.errors import InputError
from pos.sandbox import data
from pos.sandbox import patasente as patasente_sandbox
from pos.text import printable, printable_lines, validate_free_text
from screens.cards import CardSummaryScreen, HandOverScreen
from screens.dialogs import ChoiceDialog, ConfirmDialog
from screens.electricity import NumberScreen
from screens.entry import AmountScreen
from screens.home import HomeScreen
from screens.receipt import ResultScreen
from tests.screens_support import app_for, screen_text, wait_screen
from tests.test_screens_card_payment import pay, scan

pytestmark = pytest.mark.sandbox(throttle_seconds=0, daily_limit=None)

TITLE = "\x1b]0;owned\x07"  # OSC 0: set the window title
BLINK = "\x1b[5m"  # SGR 5: blink
CLEAR = "\x1b[2J\x1b[H"  # clear the screen, cursor home
EVIL_NAME = f"JANE {TITLE}DOE{BLINK}\x9b31m\x07"
EVIL_WALLET = f"Current{CLEAR} Account\u202e"
EVIL_DECLINE = f"Card {BLINK}blocked{TITLE}\x1bPq#0;2;0;0;0\x1b\\ by the bank"


# ---------------------------------------------------------------- the functions
@pytest.mark.parametrize(("raw", "shown"), [
    (EVIL_NAME, "JANE DOE"),
    (EVIL_WALLET, "Current Account"),
    (EVIL_DECLINE, "Card blocked by the bank"),
    ("tab\there\r\nnext", "tab here next"),
    ("8-bit CSI \x9b2J and OSC \x9d0;t\x9c end", "8-bit CSI  and OSC  end"),
    ("unterminated \x1b]0;title", "unterminated "),
    ("lone ESC at the end \x1b", "lone ESC at the end "),
    ("DEL\x7f NUL\x00 BEL\x07", "DEL NUL BEL"),
    ("Ünïcödé 你好 and  two  spaces", "Ünïcödé 你好 and  two  spaces"),
])
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_printable_lines_keeps_line_breaks_only() -> None:
    assert printable_lines("one\r\ntwo\x1b[2J\nthree\u2028four\tfive") == \
        "one\ntwo\nthree\nfour five"
    assert printable(None) == ""


def test_validate_free_text() -> None:
    assert validate_free_text("  POS sale 42 ", "reason", 50) == "POS sale 42"
    assert validate_free_text("  ", "customer name", 50, optional=True) == ""
    for bad, why in [("a\x01b", "U+0001"), ("line\nbreak", "U+000A"), ("ta\tb", "U+0009"),
                     ("esc\x1b[5m", "U+001B"), ("\u202eevil", "U+202E"), ("c1\x9b", "U+009B")]:
        with pytest.raises(InputError,
                           match=f"reason contains a control character.*{re.escape(why)}"):
            validate_free_text(bad, "reason", 50)
    with pytest.raises(InputError, match="empty"):
        validate_free_text(" ", "reason", 50)
    with pytest.raises(InputError, match="too long"):
        validate_free_text("x" * 51, "reason", 50)


# ---------------------------------------------------------------- the screens
def raw_controls(app: Any) -> list[str]:
    """Every text segment Textual would write for the current screen that holds a
    control character (there must be none)."""
    update = app.screen._compositor.render_update(full=True,
                                                  screen_stack=app._background_screens)
    bad = []
    for line in update.strips:
        for strip in line:
            for seg in strip:
                if seg.control is None and any(
                        ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f or 0x202a <= ord(ch) <= 0x202e
                        for ch in seg.text):
                    bad.append(seg.text)
    return bad


async def test_customer_name_with_escapes_is_shown_clean(term, sandbox, monkeypatch):
    monkeypatch.setitem(data.METER_NAMES, data.METER_OK, EVIL_NAME)
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("2")
        await wait_screen(pilot, NumberScreen)
        await pilot.press(*data.METER_OK, "enter")
        await wait_screen(pilot, ConfirmDialog)
        assert "Name: JANE DOE" in screen_text(app)
        assert raw_controls(app) == []
        await pilot.press("1")
        await wait_screen(pilot, AmountScreen)
        assert "JANE DOE" in screen_text(app)
        assert raw_controls(app) == []
        await pilot.press("escape")
        await wait_screen(pilot, HomeScreen)


async def test_wallet_name_with_escapes_is_shown_clean(term, sandbox):
    card = sandbox.state.patasente.card(data.CARD_ACTIVE)
    card.wallets = (EVIL_WALLET, data.CREDIT)
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pilot.press("1")
        await scan(pilot, data.CARD_ACTIVE.payload)
        await wait_screen(pilot, CardSummaryScreen)
        assert "Current Account" in screen_text(app)
        assert raw_controls(app) == []
        await pilot.press("enter")
        await wait_screen(pilot, AmountScreen)
        await pilot.press(*"500", "enter")
        await wait_screen(pilot, ChoiceDialog)
        assert "1  Current Account" in screen_text(app)
        assert raw_controls(app) == []
        await pilot.press("1")
        await wait_screen(pilot, HandOverScreen)
        assert "from Current Account" in screen_text(app)
        assert raw_controls(app) == []
        await pilot.press("escape")
        await wait_screen(pilot, HomeScreen)
    assert term.journal_list() == []  # cancelled before the PIN: nothing sent


async def test_decline_message_with_escapes_is_shown_clean(term, sandbox, monkeypatch):
    monkeypatch.setattr(patasente_sandbox, "_usable", lambda state, card: EVIL_DECLINE)
    app = app_for(term.settings, term)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_screen(pilot, HomeScreen)
        await pay(pilot, data.CARD_ACTIVE, "3000", pin="1234")
        await wait_screen(pilot, ResultScreen)
        text = screen_text(app)
        assert "DECLINED" in text and "Card blocked by the bank" in text
        assert raw_controls(app) == []


# ---------------------------------------------------------------- the printer
async def test_printer_gets_no_provider_escapes(term, sandbox, monkeypatch):
    from hardware.printer import DummyPrinter

    monkeypatch.setitem(data.METER_NAMES, data.METER_OK, EVIL_NAME)
    from pos.money import Money

    info = await term.verify_meter(data.METER_OK)
    res = await term.sell_token(data.METER_OK, Money(500, term.settings.pawacard.currency),
                                info.customer_name)
    printer = DummyPrinter()
    term.printer = printer
    assert term.print_receipt(res.ref) == "Printed"
    out = printer.output
    assert b"JANE DOE" in out
    for raw in (b"\x1b]", b"owned\x07", b"\x1b[5m", b"\x9b", b"\x07"):
        assert raw not in out
    # Only our own initialise and cut reach the printer, once each.
    assert out.count(b"\x1b@") == 1 and out.count(b"\x1dV") == 1


# ---------------------------------------------------------------- the CLI
def _cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sente_pos.cli", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def cli_env(sandbox, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTE_POS_")}
    env.update(sandbox.env())
    env["SENTE_POS_HOME"] = str(tmp_path / "cli-home")
    return env


@pytest.mark.parametrize("args", [
    ["card", "debit", data.CARD_ACTIVE.payload, "--amount", "100", "--reason", "sale\x1b[2J"],
    ["card", "debit", data.CARD_ACTIVE.payload, "--amount", "100", "--reason", "two\nlines"],
    ["card", "debit", data.CARD_ACTIVE.payload, "--amount", "100", "--wallet", "Cur\x01rent"],
    ["vend", data.METER_OK, "--amount", "500", "--name", "JANE\x1b]0;t\x07"],
])
def test_cli_refuses_control_characters_it_would_send(cli_env, sandbox, args) -> None:
    before = sandbox.state.patasente.balance(data.CARD_ACTIVE)
    done = _cli(cli_env, *args, stdin="1234\n")
    assert done.returncode == 2, done
    assert "control character" in done.stderr
    assert "\x1b" not in done.stderr
    assert sandbox.state.patasente.balance(data.CARD_ACTIVE) == before
    assert sandbox.state.vends_performed == 0


def test_cli_text_output_is_clean(cli_env, sandbox, monkeypatch) -> None:
    card = sandbox.state.patasente.card(data.CARD_ACTIVE)
    wallets, card.wallets = card.wallets, (EVIL_WALLET,)
    shown = _cli(cli_env, "card", "show", data.CARD_ACTIVE.payload)
    assert "wallets: Current Account" in shown.stdout, shown
    card.wallets = wallets
    monkeypatch.setattr(patasente_sandbox, "_usable", lambda state, card: EVIL_DECLINE)
    debit = _cli(cli_env, "card", "debit", data.CARD_ACTIVE.payload, "--amount", "100",
                 stdin="1234\n")
    assert debit.returncode == 2, debit
    assert "Card blocked by the bank" in debit.stdout + debit.stderr
    as_json = _cli(cli_env, "card", "debit", data.CARD_ACTIVE.payload, "--amount", "100",
                   "--json", stdin="1234\n")
    for out in (shown.stdout, shown.stderr, debit.stdout, debit.stderr, as_json.stdout):
        assert not any((ord(ch) < 0x20 and ch != "\n") or 0x7f <= ord(ch) <= 0x9f for ch in out)
