"""Operator management (issue 13, authority): every change by an enabled supervisor, on
the security trail in the same transaction; trivial supervisor PINs and a PIN the
operator already had are refused; the terminal always keeps an enabled supervisor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pos.errors import InputError
from pos.operators import Operator, is_trivial_pin, validate_new_pin
from pos.pinguard import PinLocked, security_events
from pos.terminal import Terminal
from tests.journal_support import undo_constraints
from tests.screens_support import make_settings


@pytest.fixture
async def term(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Terminal]:
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    t = await Terminal.open(make_settings(tmp_path))
    boss = t.add_operator("boss", "supervisor", "8642")
    t.add_operator("ann", "cashier", "1111", approved_by=boss)
    yield t
    await t.aclose()


def trail(term: Terminal) -> list[tuple[str, str, str | None, str | None]]:
    return [(e.kind, e.subject, e.operator, e.detail) for e in security_events(term.journal)
            if e.kind.startswith("operator_")][2:]  # after the fixture's two adds


@pytest.mark.parametrize("pin", ["1234", "0000", "1111", "4321", "7890", "0987", "9012",
                                 "1212", "123456", "876543", "2580", "110011", "12345678"])
def test_trivial_pins(pin: str) -> None:
    assert is_trivial_pin(pin)
    with pytest.raises(InputError, match="too easy"):
        validate_new_pin(pin, "supervisor")
    assert validate_new_pin(pin, "cashier") == pin  # a cashier's PIN opens only their till


@pytest.mark.parametrize("pin", ["8642", "5831", "4826", "90210", "739146"])
def test_pins_that_are_not_trivial(pin: str) -> None:
    assert not is_trivial_pin(pin)
    assert validate_new_pin(pin, "supervisor") == pin


def test_a_supervisor_adds_an_operator_on_the_trail(term: Terminal) -> None:
    boss = term.check_supervisor("8642")
    ann = term.sign_in("ann", "1111")
    for nobody in (ann, Operator("mallory", "supervisor")):  # a cashier; not on this terminal
        with pytest.raises(InputError, match="supervisor must approve"):
            term.create_operator("joe", "cashier", "2468", nobody)
    with pytest.raises(InputError, match="too easy"):
        term.create_operator("sue", "supervisor", "1234", boss)
    with pytest.raises(InputError, match="already an operator"):
        term.create_operator("ann", "cashier", "2468", boss)
    term.create_operator("joe", "cashier", "2468", boss)
    assert [(r.name, r.role, r.disabled) for r in term.operator_list()] == [
        ("ann", "cashier", False), ("boss", "supervisor", False), ("joe", "cashier", False)]
    assert term.sign_in("joe", "2468").name == "joe"
    assert trail(term) == [("operator_added", "operator:joe", "boss", "cashier")]


def test_a_new_pin_is_not_the_old_one_and_clears_the_lock_out(term: Terminal) -> None:
    boss = term.check_supervisor("8642")
    for _ in range(3):  # ann forgot her PIN: her attempts are refused for a while
        with pytest.raises(InputError):
            term.sign_in("ann", "9999")
    with pytest.raises(PinLocked):
        term.sign_in("ann", "1111")
    with pytest.raises(InputError, match="already has"):
        term.change_operator_pin("ann", "1111", boss)
    with pytest.raises(InputError, match="already has"):  # nor through the CLI's path
        term.add_operator("ann", "cashier", "1111", approved_by=boss)
    term.change_operator_pin("ann", "3579", boss)
    assert term.sign_in("ann", "3579").name == "ann"  # the lock-out went with the old PIN
    with pytest.raises(InputError):
        term.sign_in("ann", "1111")
    assert trail(term)[-1] == ("operator_pin_changed", "operator:ann", "boss", "cashier")


def test_a_cashier_made_supervisor_chooses_a_supervisor_pin(term: Terminal) -> None:
    boss = term.check_supervisor("8642")
    with pytest.raises(InputError, match="must choose a supervisor PIN"):
        term.change_operator_role("ann", "supervisor", boss)
    with pytest.raises(InputError, match="too easy"):  # her cashier PIN 1111, for one
        term.change_operator_role("ann", "supervisor", boss, pin="1111")
    assert term.journal.operator_get("ann").role == "cashier"  # type: ignore[union-attr]
    term.change_operator_role("ann", "supervisor", boss, pin="5831")
    assert term.check_supervisor("5831").name == "ann"
    with pytest.raises(InputError):
        term.sign_in("ann", "1111")
    ann = term.check_supervisor("5831")
    with pytest.raises(InputError, match="Another supervisor"):
        term.change_operator_role("ann", "cashier", ann)
    term.change_operator_role("ann", "cashier", boss)
    with pytest.raises(InputError):
        term.check_supervisor("5831")  # a cashier approves nothing
    assert [t[0] for t in trail(term)] == ["operator_role_changed"] * 2
    assert [t[3] for t in trail(term)] == ["cashier -> supervisor, new PIN",
                                          "supervisor -> cashier"]


def test_disabled_operators_cannot_sign_in_or_approve(term: Terminal) -> None:
    boss = term.check_supervisor("8642")
    term.create_operator("sue", "supervisor", "4826", boss)
    sue = term.check_supervisor("4826")
    with pytest.raises(InputError, match="Another supervisor"):
        term.set_operator_disabled("boss", True, boss)
    term.sign_in("ann", "1111")
    term.set_operator_disabled("ann", True, boss)
    assert term.operator is None  # signed out at once
    term.set_operator_disabled("boss", True, sue)
    assert [o.name for o in term.operators()] == ["sue"]  # the sign-in screen's list
    with pytest.raises(InputError, match="disabled"):
        term.sign_in("ann", "1111")
    with pytest.raises(InputError, match="not accepted"):
        term.check_supervisor("8642")
    with pytest.raises(InputError, match="supervisor must approve"):
        term.change_operator_pin("ann", "2468", boss)  # boss's approval from before
    with pytest.raises(InputError, match="Only a supervisor"):
        term._approver(boss)  # nor for card unlocks, balances, gift PINs
    with pytest.raises(InputError, match="already disabled"):
        term.set_operator_disabled("ann", True, sue)
    term.set_operator_disabled("ann", False, sue)
    assert term.sign_in("ann", "1111").name == "ann"
    assert [(k, s, o) for k, s, o, _ in trail(term)] == [
        ("operator_added", "operator:sue", "boss"),
        ("operator_disabled", "operator:ann", "boss"),
        ("operator_disabled", "operator:boss", "sue"),
        ("operator_enabled", "operator:ann", "sue")]


def test_the_last_supervisor_stays(term: Terminal) -> None:
    boss = term.check_supervisor("8642")
    for change in (lambda: term.set_operator_disabled("boss", True, boss),
                   lambda: term.change_operator_role("boss", "cashier", boss)):
        with pytest.raises(InputError):
            change()
    assert term.check_supervisor("8642").name == "boss"


def test_a_change_and_its_trail_row_are_one_transaction(term: Terminal,
                                                         monkeypatch: Any) -> None:
    """The trail row failing to be written leaves the operator unchanged."""
    import pos.usecases.operator_admin as admin

    boss = term.check_supervisor("8642")

    def broken(*_a: Any, **_k: Any) -> None:
        raise InputError("disk said no")

    monkeypatch.setattr(admin, "record_event", broken)
    with pytest.raises(InputError, match="disk said no"):
        term.set_operator_disabled("ann", True, boss)
    assert not term.journal.operator_get("ann").disabled  # type: ignore[union-attr]
    with pytest.raises(InputError, match="disk said no"):
        term.change_operator_pin("ann", "3579", boss)
    assert term.sign_in("ann", "1111").name == "ann"


async def test_a_journal_from_before_disabled_operators_opens_with_everyone_enabled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from pos.journal.schema import _V_OPERATOR_STATE, MIGRATIONS

    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    t = await Terminal.open(make_settings(tmp_path))
    t.add_operator("boss", "supervisor", "8642")
    await t.aclose()
    conn = sqlite3.connect(tmp_path / "journal.db", isolation_level=None)
    undo_constraints(conn)  # V_CONSTRAINTS, made after this version
    conn.execute("ALTER TABLE operators DROP COLUMN disabled_at")
    for trigger in ("sales_hub_insert", "sales_hub_update", "sale_tenders_hub_insert",
                    "shifts_hub_insert", "shifts_hub_update", "cash_moves_hub_insert"):
        conn.execute(f"DROP TRIGGER {trigger}")  # and what the later V_HUB_COUNTER made
    conn.execute("DROP TABLE hub_changes")
    conn.execute(f"PRAGMA user_version = {MIGRATIONS.index(_V_OPERATOR_STATE)}")
    conn.close()
    t = await Terminal.open(make_settings(tmp_path))
    try:
        assert [(r.name, r.disabled) for r in t.operator_list()] == [("boss", False)]
        assert t.check_supervisor("8642").name == "boss"
    finally:
        await t.aclose()
