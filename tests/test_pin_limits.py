"""PIN attempts are limited; operator management needs authority (issue 10, item 7)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pos import pinguard
from pos.config import SecuritySettings
from pos.errors import Declined, InputError
from pos.journal import Journal
from pos.operators import verify_pin
from pos.pinguard import PinLocked, Policy, security_events
from pos.pintries import check_card_allowed, is_wrong_pin_decline, record_card_pin
from pos.sandbox import data
from pos.terminal import Terminal
from tests.screens_support import make_settings

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)


@pytest.fixture
def boot(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The boot clock and boot id the guard reads, under the test's control."""
    state: dict[str, Any] = {"t": 5000.0}
    monkeypatch.setattr(pinguard, "_boot_clock", lambda: state["t"])
    monkeypatch.setattr(pinguard, "_BOOT_ID", "boot-1")
    return state


@pytest.fixture
async def term(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, boot: dict[str, Any]) -> Any:
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    t = await Terminal.open(make_settings(tmp_path))
    boss = t.add_operator("boss", "supervisor", "8642")
    t.add_operator("ann", "cashier", "1357", approved_by=boss)
    yield t
    await t.aclose()


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every PIN actually verified (scrypt run), in order."""
    import pos.terminal

    seen: list[str] = []
    real = pos.terminal.verify_pin

    def counting(pin: str, stored: str, key: bytes | None = None) -> bool:
        seen.append(pin)
        return real(pin, stored, key)

    monkeypatch.setattr(pos.terminal, "verify_pin", counting)
    return seen


def test_policy_grows_then_locks() -> None:
    p = Policy.operators(SecuritySettings())
    assert [p.wait_after(f) for f in range(0, 8)] == [0, 0, 1, 2, 4, 900, 1800, 3600]
    assert p.wait_after(40) == pinguard.MAX_LOCKOUT_SECONDS
    cards = Policy.cards(SecuritySettings())
    assert [cards.wait_after(f) for f in range(0, 6)] == [0, 0, 0, 3600, 3600, 3600]


def test_41_wrong_pins_are_not_checked_at_full_speed(term: Terminal, checks: list[str],
                                                      boot: dict[str, Any]) -> None:
    refused = 0
    for i in range(41):
        try:
            term.sign_in("ann", f"{2000 + i}")
        except PinLocked:
            refused += 1
        except InputError:
            pass
    assert len(checks) == 2 and refused == 39  # one free retry, then the back-off
    with pytest.raises(PinLocked, match="try again in 1 s"):
        term.sign_in("ann", "1357")  # the right PIN is not even checked
    assert len(checks) == 2
    boot["t"] += 1.0
    assert term.sign_in("ann", "1357").name == "ann"  # the wait is over: a right PIN clears
    kinds = [e.kind for e in security_events(term.journal)]
    assert kinds[-3:] == ["pin_wrong", "pin_wrong", "pin_ok_after_wrong"]


def lock_out(term: Terminal, boot: dict[str, Any], name: str = "ann") -> None:
    """Five wrong PINs, waiting out each back-off: the lock-out."""
    for i in range(5):
        with pytest.raises(InputError, match="Wrong operator or PIN"):
            term.sign_in(name, f"{4000 + i}")
        boot["t"] += 60
    with pytest.raises(PinLocked, match=r"Too many wrong PINs for ann \(5 in a row\): "
                                        r"locked for 1[45] min"):
        term.sign_in(name, "1357")


async def test_lockout_survives_a_restart_and_clock_steps(
        term: Terminal, tmp_path: Path, boot: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    lock_out(term, boot)
    (locked,) = [e for e in security_events(term.journal) if e.kind == "pin_locked"]
    assert locked.subject == "operator:ann" and "refused for 15 min" in (locked.detail or "")
    await term.aclose()

    # A new process on the same boot, the wall clock stepped a day ahead (NTP after a
    # cold boot) and then a day back: the boot clock alone counts.
    for step in (timedelta(days=1), timedelta(days=-1)):
        monkeypatch.setattr(pinguard, "_wall_clock", lambda s=step: datetime.now(UTC) + s)
        again = await Terminal.open(make_settings(tmp_path))
        try:
            with pytest.raises(PinLocked):
                again.sign_in("ann", "1357")
        finally:
            await again.aclose()
    boot["t"] += 15 * 60
    again = await Terminal.open(make_settings(tmp_path))
    try:
        assert again.sign_in("ann", "1357").name == "ann"
    finally:
        await again.aclose()


def _stamp_guard(journal: Journal, wall: datetime) -> pinguard.PinGuard:
    return pinguard.PinGuard(journal, Policy.operators(SecuritySettings()),
                             now=pinguard.at_wall(wall))


def test_a_reboot_with_the_clock_behind_neither_unlocks_nor_locks_forever(
        tmp_path: Path, boot: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    with Journal.open(tmp_path / "j.db") as j:
        guard = _stamp_guard(j, T0)
        for _ in range(5):
            guard.record("operator:ann", ok=False)
        with pytest.raises(PinLocked):
            guard.check("operator:ann")
        # Reboot: another boot id, the boot clock from zero, the wall clock a year behind.
        monkeypatch.setattr(pinguard, "_BOOT_ID", "boot-2")
        boot["t"] = 12.0
        behind = _stamp_guard(j, T0 - timedelta(days=365))
        with pytest.raises(PinLocked) as info:
            behind.check("operator:ann")
        assert info.value.seconds == pytest.approx(900)  # no time counted, not forever
        boot["t"] += 899
        with pytest.raises(PinLocked):
            behind.check("operator:ann")
        boot["t"] += 1
        behind.check("operator:ann")  # 15 minutes of real time on this boot: over
        # Across a reboot with a right clock, wall time counts.
        guard.record("operator:bob", ok=False)
        for _ in range(4):
            guard.record("operator:bob", ok=False)
        monkeypatch.setattr(pinguard, "_BOOT_ID", "boot-3")
        _stamp_guard(j, T0 + timedelta(minutes=16)).check("operator:bob")


def test_supervisor_check_and_z_override_are_limited(term: Terminal, checks: list[str],
                                                     boot: dict[str, Any]) -> None:
    for pin in ("1111", "2222"):
        with pytest.raises(InputError, match="Supervisor PIN not accepted"):
            term.check_supervisor(pin)
    with pytest.raises(PinLocked):
        term.check_supervisor("8642")
    assert len(checks) == 2  # scrypt ran only for the allowed tries (one supervisor)
    boot["t"] += 1
    assert term.check_supervisor("8642").name == "boss"


def test_a_supervisor_clears_a_lockout(term: Terminal, boot: dict[str, Any]) -> None:
    lock_out(term, boot)
    boss = term.check_supervisor("8642")
    assert term.unlock_pin("ann", boss)
    assert term.sign_in("ann", "1357").name == "ann"
    assert [e.operator for e in security_events(term.journal, kinds=["pin_unlocked"])] == \
        ["boss"]
    with pytest.raises(InputError):
        term.unlock_pin("ann", term.sign_in("ann", "1357"))  # a cashier cannot


def test_hashes_are_keyed_and_old_ones_upgraded(term: Terminal, tmp_path: Path) -> None:
    from sente_pos.launch import DEMO_PIN_HASHES

    stored = term.journal.operator_get("ann").pin_hash  # type: ignore[union-attr]
    assert stored.startswith("scrypt-hmac$")
    # journal.db copied without the device key: the hash does not verify the right PIN,
    # so it cannot be brute-forced offline; with another device's key neither.
    assert not verify_pin("1357", stored)
    assert not verify_pin("1357", stored, os.urandom(32))
    # The demo's precomputed (old-scheme) hashes still work, and are upgraded.
    boss = term.check_supervisor("8642")
    term.add_hashed_operator("amina", "cashier", DEMO_PIN_HASHES["amina"])
    assert term.sign_in("amina", "1111").name == "amina"
    assert term.journal.operator_get("amina").pin_hash.startswith("scrypt-hmac$")  # type: ignore[union-attr]
    term.sign_out()
    assert term.sign_in("amina", "1111").name == "amina"
    assert boss.is_supervisor


def test_adding_operators_needs_a_supervisor(term: Terminal) -> None:
    ann = term.sign_in("ann", "1357")
    for approver in (None, ann):
        with pytest.raises(InputError, match="A supervisor must approve"):
            term.add_operator("boss", "supervisor", "5683", approved_by=approver)
    assert term.check_supervisor("8642").name == "boss"  # boss's PIN is unchanged
    boss = term.check_supervisor("8642")
    for trivial in ("1234", "0000", "1111", "1212", "4321", "98765", "7777"):
        with pytest.raises(InputError, match="too easy to guess"):
            term.add_operator("eve", "supervisor", trivial, approved_by=boss)
    term.add_operator("boss", "supervisor", "5683", approved_by=boss)
    assert term.check_supervisor("5683").name == "boss"
    kinds = [(e.kind, e.subject, e.operator) for e in security_events(term.journal)
             if e.kind.startswith("operator_")]
    assert kinds == [("operator_added", "operator:boss", None),
                     ("operator_added", "operator:ann", "boss"),
                     ("operator_changed", "operator:boss", "boss")]


# ------------------------------------------------------------------ card PINs
def test_three_wrong_card_pins_block_the_card_for_a_while(tmp_path: Path,
                                                          boot: dict[str, Any]) -> None:
    with Journal.open(tmp_path / "j.db") as j:
        for _ in range(2):
            check_card_allowed(j, 108, T0)
            record_card_pin(j, 108, True, T0)
        check_card_allowed(j, 108, T0)
        record_card_pin(j, 108, True, T0)
        with pytest.raises(Declined, match="refused on this terminal after 3 wrong PINs: "
                                           "try again in 60 min") as info:
            check_card_allowed(j, 108, T0 + timedelta(days=2))  # a clock step changes nothing
        assert info.value.exit_code == 2 and info.value.code == "card_pin_tries"
        check_card_allowed(j, 109, T0)  # another card is not affected
        boot["t"] += 3600
        check_card_allowed(j, 108, T0)  # one more try after the wait
        record_card_pin(j, 108, True, T0)
        with pytest.raises(Declined):
            check_card_allowed(j, 108, T0)
        boot["t"] += 3600
        record_card_pin(j, 108, False, T0)  # a right PIN clears the count
        for _ in range(2):
            record_card_pin(j, 108, True, T0)
        check_card_allowed(j, 108, T0)
        kinds = [e.kind for e in security_events(j) if e.subject == "card:108"]
        assert kinds.count("pin_locked") == 2 and "pin_ok_after_wrong" in kinds


@pytest.mark.sandbox(throttle_seconds=0)
async def test_patasentes_wrong_pin_answers_are_recognised(sandbox: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    from pos.money import Money

    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    t = await Terminal.open(make_settings(tmp_path, sandbox))
    try:
        lookup = await t.lookup_card(data.CARD_ACTIVE.payload)
        messages = []
        for _ in range(3):
            res = await t.pay_by_card(lookup, Money(1000, "UGX"), data.CURRENT, "0001", "x")
            messages.append(res.message)
        assert all(is_wrong_pin_decline(m) for m in messages), messages
        assert "locked" in messages[-1]
    finally:
        await t.aclose()
    for text in ("This card requires a PIN to complete this transaction",
                 "The PIN must be 4 digits", "Insufficient balance on card", "Card is locked",
                 ""):
        assert not is_wrong_pin_decline(text)
    assert is_wrong_pin_decline("Your PIN doesn't match our records, Please update your PIN")


# ------------------------------------------------------------------ the CLI
def _cli(home: Path, *args: str, stdin: str = "",
         extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTE_POS_")}
    env.update({"SENTE_POS_HOME": str(home), **(extra or {})})
    exe = shutil.which("sente-pos", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "sente_pos.cli"]
    return subprocess.run([*cmd, *args], input=stdin, env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_operator_add_needs_authority_and_z_override_is_limited(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = _cli(home, "operator", "add", "ann", stdin="1357\n")
    assert first.returncode == 2 and "first operator of a terminal is its supervisor" \
        in first.stderr
    easy = _cli(home, "operator", "add", "boss", "--role", "supervisor", stdin="1234\n")
    assert easy.returncode == 2 and "too easy to guess" in easy.stderr
    ok = _cli(home, "operator", "add", "boss", "--role", "supervisor", stdin="8642\n")
    assert ok.returncode == 0, ok.stderr
    # The attack: overwrite the supervisor's PIN, then use it. Refused.
    attack = _cli(home, "operator", "add", "boss", "--role", "supervisor", stdin="5683\n")
    assert attack.returncode == 2 and "Supervisor PIN not accepted" in attack.stderr
    nothing = _cli(home, "operator", "add", "ann", stdin="")
    assert nothing.returncode == 2 and "A supervisor must approve" in nothing.stderr
    added = _cli(home, "operator", "add", "ann", "--supervisor", "boss", "--json",
                 stdin="8642\n1357\n")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == {"name": "ann", "role": "cashier", "approved_by": "boss"}
    assert "8642" not in added.stdout + added.stderr and "1357" not in added.stdout

    slow = {"SENTE_POS_SECURITY__PIN_BACKOFF_SECONDS": "600",
            "SENTE_POS_SECURITY__PIN_BACKOFF_MAX_SECONDS": "600"}
    outcomes = [_cli(home, "report", "z", "--override", stdin=f"{5000 + i}\n", extra=slow)
                for i in range(4)]
    assert [o.returncode for o in outcomes] == [2, 2, 2, 2]
    # The attack above was the supervisor check's first wrong PIN (its free retry): this
    # one is checked, then every process started after it waits out the back-off.
    assert ["not accepted" in o.stderr for o in outcomes] == [True, False, False, False]
    assert all("try again in 10 min" in o.stderr for o in outcomes[1:])
    right = _cli(home, "report", "z", "--override", stdin="8642\n", extra=slow)
    assert right.returncode == 2 and "try again" in right.stderr  # the right PIN waits too
    log = _cli(home, "journal", "security", "--json")
    events = json.loads(log.stdout)
    assert [(e["kind"], e["subject"]) for e in events] == [
        ("operator_added", "operator:boss"), ("pin_wrong", "supervisor"),
        ("operator_added", "operator:ann"), ("pin_wrong", "supervisor")]
    unlock = _cli(home, "operator", "unlock", "--supervisor", "boss", stdin="8642\n")
    assert unlock.returncode == 0 and "lock-out cleared" in unlock.stdout
    z = _cli(home, "report", "z", "--override", "--allow-empty", stdin="8642\n", extra=slow)
    assert z.returncode == 0, z.stderr
