"""Operator management: a supervisor adds, disables / enables operators, changes their
PIN or role. Every change is one journal transaction with its row on the security trail
(``security_events``: kind, ``operator:<name>``, the approving supervisor, when).

Rules a change cannot get past, checked inside that transaction:
- the approver is an enabled supervisor of this terminal;
- a supervisor's PIN is not trivial (pos.operators.is_trivial_pin), a changed PIN is not
  the one the operator had, and a cashier made supervisor types a new PIN that passes;
- the terminal keeps at least one enabled supervisor (no one can lock everyone out);
- a supervisor does not disable or demote themselves (another supervisor does it).
Operators are disabled, never deleted: their names stay on the journal's rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pos.errors import InputError
from pos.operators import (
    PIN_KEY_PURPOSE,
    Operator,
    Role,
    hash_pin,
    validate_new_pin,
    validate_operator_name,
)
from pos.pinguard import record_event

if TYPE_CHECKING:
    from pos.journal import Journal
    from pos.journal.models import Operator as OperatorRecord


@dataclass(frozen=True, slots=True)
class OperatorRow:
    """One line of the operators screen (never the PIN hash)."""

    name: str
    role: Role
    disabled: bool
    updated_at: datetime


def _key(journal: Journal) -> bytes | None:
    vault = journal.vault
    return vault.derive_key(PIN_KEY_PURPOSE) if vault is not None else None


def list_operators(journal: Journal) -> list[OperatorRow]:
    """Every operator, enabled and disabled, by name."""
    return [OperatorRow(o.name, o.role, o.disabled, o.updated_at)  # type: ignore[arg-type]
            for o in journal.operators()]


def _record(journal: Journal, name: str) -> OperatorRecord:
    rec = journal.operator_get(name)
    if rec is None:
        raise InputError(f"No operator called {name!r}")
    return rec


def _approver(journal: Journal, supervisor: Operator) -> None:
    rec = journal.operator_get(supervisor.name) if supervisor.is_supervisor else None
    if rec is None or rec.role != "supervisor" or rec.disabled:
        raise InputError("A supervisor must approve changes to operators")


def _enabled_supervisors(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT COUNT(*) FROM operators WHERE role = 'supervisor'"
                       " AND disabled_at IS NULL").fetchone()
    return int(row[0])


def _trail(at: datetime, kind: str, name: str, by: str, detail: str, *,
           keep_a_supervisor: bool = False, clear_tries: bool = False
           ) -> Callable[[sqlite3.Connection], None]:
    """What goes with the change, in its transaction: the checks that must see the
    changed table, the security trail row, a cleared PIN lock-out."""
    def also(conn: sqlite3.Connection) -> None:
        if keep_a_supervisor and _enabled_supervisors(conn) < 1:
            raise InputError("The terminal must keep at least one enabled supervisor: "
                             "add another supervisor first")
        if clear_tries:  # a new PIN: the lock-out of the forgotten one goes with it
            conn.execute("DELETE FROM pin_tries WHERE subject = ?", (f"operator:{name}",))
        record_event(conn, at, kind, f"operator:{name}", by, detail)
    return also


def add(journal: Journal, name: str, role: Role, pin: str, supervisor: Operator,
        at: datetime) -> Operator:
    """A new operator with the PIN they typed."""
    _approver(journal, supervisor)
    name = validate_operator_name(name, role)
    existing = journal.operator_get(name)
    if existing is not None:
        hint = ": enable them instead" if existing.disabled else ""
        raise InputError(f"There is already an operator called {name}{hint}")
    validate_new_pin(pin, role)
    journal.operator_put(name, role, hash_pin(pin, _key(journal)),
                         also=_trail(at, "operator_added", name, supervisor.name, role))
    return Operator(name, role)


def change_pin(journal: Journal, name: str, pin: str, supervisor: Operator,
               at: datetime) -> Operator:
    """A new PIN for ``name`` (typed by them); their PIN lock-out, if any, is cleared."""
    _approver(journal, supervisor)
    rec = _record(journal, name)
    key = _key(journal)
    validate_new_pin(pin, rec.role, previous_hash=rec.pin_hash, key=key)  # type: ignore[arg-type]
    journal.operator_update(name, pin_hash=hash_pin(pin, key), also=_trail(
        at, "operator_pin_changed", name, supervisor.name, rec.role, clear_tries=True))
    return Operator(name, rec.role)  # type: ignore[arg-type]


def change_role(journal: Journal, name: str, role: Role, supervisor: Operator,
                at: datetime, *, pin: str | None = None) -> Operator:
    """Make ``name`` a cashier or a supervisor. A new supervisor types a new PIN (``pin``)
    that passes the supervisor rules: their cashier PIN may be a trivial one."""
    _approver(journal, supervisor)
    rec = _record(journal, name)
    if role not in ("cashier", "supervisor"):
        raise InputError("Role is cashier or supervisor")
    if rec.role == role:
        raise InputError(f"{name} is already a {role}")
    detail = f"{rec.role} -> {role}"
    if role == "supervisor":
        if pin is None:
            raise InputError(f"{name} must choose a supervisor PIN")
        key = _key(journal)
        validate_new_pin(pin, "supervisor")
        journal.operator_update(name, role=role, pin_hash=hash_pin(pin, key), also=_trail(
            at, "operator_role_changed", name, supervisor.name, detail + ", new PIN",
            clear_tries=True))
        return Operator(name, role)
    if name == supervisor.name:
        raise InputError("Another supervisor must change your own role")
    journal.operator_update(name, role=role, also=_trail(
        at, "operator_role_changed", name, supervisor.name, detail, keep_a_supervisor=True))
    return Operator(name, role)


def set_disabled(journal: Journal, name: str, disabled: bool, supervisor: Operator,
                 at: datetime) -> OperatorRow:
    """Disable (cannot sign in or approve) or enable ``name`` again."""
    _approver(journal, supervisor)
    rec = _record(journal, name)
    if rec.disabled == disabled:
        raise InputError(f"{name} is already {'disabled' if disabled else 'enabled'}")
    if disabled and name == supervisor.name:
        raise InputError("Another supervisor must disable you")
    kind = "operator_disabled" if disabled else "operator_enabled"
    journal.operator_update(name, disabled=disabled, also=_trail(
        at, kind, name, supervisor.name, rec.role, keep_a_supervisor=disabled))
    after = _record(journal, name)
    return OperatorRow(after.name, after.role, after.disabled,  # type: ignore[arg-type]
                       after.updated_at)
