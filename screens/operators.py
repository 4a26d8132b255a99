"""Operators (supervisor only): add, disable / enable, change PIN, change role.

Reached from Settings (F3) once a supervisor approved. Each new PIN is typed by the
operator it belongs to, after the supervisor handed them the terminal, twice; the
rules (pos/usecases/operator_admin.py) refuse trivial supervisor PINs, a PIN the
operator already had, and leaving the terminal without an enabled supervisor. Every
change is on the security trail with the approving supervisor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Button, Label

from pos.errors import InputError, PosError
from pos.operators import validate_operator_name
from screens.dialogs import ChoiceDialog, ConfirmDialog, Step, TextPrompt
from screens.handover import HandOverNotice
from screens.signin import _Form
from screens.widgets import Plain, PosInput, plain_label

if TYPE_CHECKING:
    from pos.operators import Operator, Role
    from pos.usecases.operator_admin import OperatorRow
    from screens.app import SentePOSApp

ADD = "\x00add"  # not an operator name: names are printable


def operator_line(row: OperatorRow) -> str:
    state = "disabled" if row.disabled else "enabled"
    return f"{row.name:<20} {row.role:<11} {state}"


class OperatorsScreen(Step[str]):
    """The operators, one button each (Enter: what to do with them); ``a`` adds one.
    Dismisses with the name picked, :data:`ADD`, or None when done."""

    BINDINGS = [Binding("escape", "cancel", "Done"), Binding("a", "add", "Add operator")]
    DEFAULT_CSS = """
    OperatorsScreen #operators-list { height: auto; max-height: 12; }
    OperatorsScreen .operator-row { height: 1; border: none; min-width: 40; }
    OperatorsScreen .operators-head { text-style: bold; padding: 0 1; }
    OperatorsScreen #operators-add { margin: 1 0 0 0; }
    OperatorsScreen.-short #operators-list { max-height: 8; }
    OperatorsScreen.-short #operators-add { margin: 0; height: 1; border: none; }
    """

    def __init__(self, rows: list[OperatorRow], note: str = "") -> None:
        super().__init__("Operators")
        self.rows = rows
        self.note = note

    def body(self) -> ComposeResult:
        yield Plain(self.note or "Enter: change PIN, role or disable.  a: add an operator.",
                    classes="step-note", id="operators-note")
        yield Label(plain_label(f"{'Name':<20} {'Role':<11} State"), classes="operators-head")
        with VerticalScroll(id="operators-list"):
            for i, row in enumerate(self.rows, start=1):
                yield Button(plain_label(operator_line(row)), id=f"operator-{i}",
                             classes="operator-row", name=row.name)
        yield Button("Add operator (a)", id="operators-add")

    def on_mount(self) -> None:
        self.query(Button).first().focus()

    @on(Button.Pressed, ".operator-row")
    def _picked(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.name)

    @on(Button.Pressed, "#operators-add")
    def action_add(self) -> None:
        self.dismiss(ADD)

    def on_key(self, event: events.Key) -> None:
        if event.key == "down":
            event.stop()
            self.focus_next()
        elif event.key == "up":
            event.stop()
            self.focus_previous()


class NewPinForm(_Form[bool]):
    """An operator's new PIN, typed twice; ``apply`` (run in a thread: scrypt) takes it
    or raises :class:`PosError`, shown here for another try."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, name: str, role: str, apply: Callable[[str], object]) -> None:
        super().__init__(f"New PIN for {name}")
        self.role = role
        self.apply = apply

    def body(self) -> ComposeResult:
        rules = "4 to 8 digits"
        if self.role == "supervisor":
            rules += "; not repeated digits, a run like 1234 or a common PIN"
        yield Plain(f"{self.step_title.removeprefix('New PIN for ')}: type your new PIN "
                    f"({rules}), then again.", classes="step-note")
        yield Label("New PIN")
        yield PosInput(password=True, id="new-pin", restrict=r"[0-9]*", max_length=8)
        yield Label("New PIN again")
        yield PosInput(password=True, id="new-pin2", restrict=r"[0-9]*", max_length=8)
        yield Plain("", id="form-error", classes="error-text")

    async def submit(self) -> None:
        pin, again = self.value("new-pin"), self.value("new-pin2")
        for id_ in ("new-pin", "new-pin2"):
            self.query_one(f"#{id_}", PosInput).value = ""
        self.query_one("#new-pin", PosInput).focus()
        if pin != again:
            raise InputError("The two PINs differ: type them again")
        await asyncio.to_thread(self.apply, pin)
        self.dismiss(True)


async def _new_pin(app: SentePOSApp, name: str, role: str, apply: Callable[[str], object]) -> bool:
    """Hand-over to ``name``, then their PIN twice; whether it was taken."""
    if not await app.push_screen_wait(HandOverNotice(
            name, f"for {name} to choose their PIN",
            f"{name}: press Enter (or OK), then type your new PIN twice. The supervisor "
            "does not see it.")):
        return False
    taken = await app.push_screen_wait(NewPinForm(name, role, apply))
    return taken is True


async def _add(app: SentePOSApp, supervisor: Operator) -> str:
    term = app.terminal
    name = await app.push_screen_wait(TextPrompt(
        "Add operator", "Name (as on the sign-in screen)",
        check=lambda v: validate_operator_name(v, "cashier")))
    if name is None:
        return ""
    if any(row.name == name for row in term.operator_list()):
        await app.show_message("Add operator", f"There is already an operator called "
                               f"{name}.", "warning")
        return ""
    picked = await app.push_screen_wait(ChoiceDialog(
        f"Role of {name}", [("cashier", "Cashier"), ("supervisor", "Supervisor "
                                                    "(approves refunds, voids, unlocks)")]))
    if picked is None:
        return ""
    role: Role = "supervisor" if picked == "supervisor" else "cashier"
    if not await _new_pin(app, name, role,
                          lambda pin: term.create_operator(name, role, pin, supervisor)):
        return ""
    return f"{name} added as {role}"


async def _manage(app: SentePOSApp, supervisor: Operator, name: str) -> str:
    term = app.terminal
    row = next((r for r in term.operator_list() if r.name == name), None)
    if row is None:
        return ""
    other = "cashier" if row.role == "supervisor" else "supervisor"
    choices = [("pin", "Change PIN"), ("role", f"Make {other}"),
               ("enable" if row.disabled else "disable",
                "Enable" if row.disabled else "Disable")]
    what = await app.push_screen_wait(ChoiceDialog(f"Operator {name} ({row.role})", choices))
    try:
        if what == "pin":
            if await _new_pin(app, name, row.role,
                              lambda pin: term.change_operator_pin(name, pin, supervisor)):
                return f"PIN of {name} changed"
        elif what == "role" and other == "supervisor":
            if await _new_pin(app, name, "supervisor", lambda pin: term.change_operator_role(
                    name, "supervisor", supervisor, pin=pin)):
                return f"{name} is now a supervisor"
        elif what == "role":
            if await app.push_screen_wait(ConfirmDialog(
                    "Change role", f"Make {name} a cashier?")):
                term.change_operator_role(name, "cashier", supervisor)
                return f"{name} is now a cashier"
        elif what in ("disable", "enable"):
            disable = what == "disable"
            text = (f"Disable {name}? They can no longer sign in or approve."
                    if disable else f"Enable {name} again?")
            if await app.push_screen_wait(ConfirmDialog(f"{what.title()} operator", text)):
                term.set_operator_disabled(name, disable, supervisor)
                return f"{name} {'disabled' if disable else 'enabled'}"
    except PosError as exc:
        await app.show_message(f"Operator {name}", exc.message, "error")
    return ""


async def operators_flow(app: SentePOSApp, supervisor: Operator | None = None) -> None:
    """Manage operators; ``supervisor``: already approved (from Settings)."""
    if supervisor is None:
        supervisor = await app.ask_supervisor("manage operators")
        if supervisor is None:
            return
    note = ""
    while True:
        pick = await app.push_screen_wait(OperatorsScreen(app.terminal.operator_list(), note))
        if pick is None:
            break
        note = await (_add(app, supervisor) if pick == ADD else
                      _manage(app, supervisor, pick))
        if app.terminal.operator is None:  # the signed-in operator was disabled
            break
    if app.terminal.operator is None:
        app.ensure_operator()
