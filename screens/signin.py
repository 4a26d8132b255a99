"""Operator sign-in, first-run supervisor creation, and the supervisor PIN check."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Label, Static

from pos.errors import InputError, PosError
from pos.operators import Operator
from screens.dialogs import Step
from screens.widgets import Plain, PosInput

if TYPE_CHECKING:
    from pos.terminal import Terminal

T = TypeVar("T")


class _Form(Step[T]):
    """A step whose inputs are submitted in order; the last one runs :meth:`submit`."""

    def on_mount(self) -> None:
        first = self.query(Input).first()
        first.focus()

    def error(self, message: str) -> None:
        self.query_one("#form-error", Static).update(message)

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        inputs = list(self.query(Input))
        idx = inputs.index(event.input)
        if idx + 1 < len(inputs):
            inputs[idx + 1].focus()
            return
        self._submit()

    @work(group="form", exclusive=True, exit_on_error=False)
    async def _submit(self) -> None:
        """PIN checks run scrypt in a thread: the screen stays live meanwhile."""
        try:
            await self.submit()
        except PosError as exc:
            self.error(exc.message)

    def value(self, id_: str) -> str:
        return self.query_one(f"#{id_}", Input).value

    async def submit(self) -> None:
        raise NotImplementedError


class SignInScreen(_Form[Operator]):
    """Who is at the counter. Cannot be dismissed without signing in."""

    BINDINGS = [Binding("escape", "cancel", show=False)]
    TITLE_TEXT = "Sign in"

    def __init__(self, terminal: Terminal, *, locked: bool = False) -> None:
        super().__init__()
        self.terminal = terminal
        self.locked = locked

    def body(self) -> ComposeResult:
        names = ", ".join(op.name for op in self.terminal.operators())
        note = "Locked after being idle. " if self.locked else ""
        yield Plain(f"{note}Operators: {names}", classes="step-note")
        hint = self.app.sign_in_hint
        if hint:
            yield Plain(hint, classes="step-note")
        yield Label("Name")
        yield PosInput(id="signin-name")
        yield Label("PIN")
        yield PosInput(password=True, id="signin-pin")
        yield Plain("", id="form-error", classes="error-text")

    def action_cancel(self) -> None:
        """Escape does not skip sign-in."""

    async def submit(self) -> None:
        pin_input = self.query_one("#signin-pin", Input)
        pin = pin_input.value
        pin_input.value = ""
        try:
            operator = await self.terminal.sign_in_async(self.value("signin-name").strip(), pin)
        except InputError:
            pin_input.focus()
            raise
        self.dismiss(operator)


class CreateSupervisorScreen(_Form[Operator]):
    """First run: there are no operators yet, so the first one is a supervisor."""

    BINDINGS = [Binding("escape", "cancel", show=False)]
    TITLE_TEXT = "First run: create the supervisor"

    def __init__(self, terminal: Terminal) -> None:
        super().__init__()
        self.terminal = terminal

    def body(self) -> ComposeResult:
        yield Static("The supervisor approves top-ups, refunds, voids, settings and day close.",
                     classes="step-note")
        yield Label("Supervisor name")
        yield PosInput(id="sup-name")
        yield Label("PIN (4 to 8 digits)")
        yield PosInput(password=True, id="sup-pin")
        yield Label("PIN again")
        yield PosInput(password=True, id="sup-pin2")
        yield Plain("", id="form-error", classes="error-text")

    def action_cancel(self) -> None:
        """Escape does not skip creating the supervisor."""

    async def submit(self) -> None:
        name = self.value("sup-name").strip()
        pin, pin2 = self.value("sup-pin"), self.value("sup-pin2")
        for id_ in ("sup-pin", "sup-pin2"):
            self.query_one(f"#{id_}", Input).value = ""
        if not name:
            raise InputError("Enter a name")
        if pin != pin2:
            self.query_one("#sup-pin", Input).focus()
            raise InputError("The two PINs differ: type them again")
        self.terminal.add_operator(name, "supervisor", pin)
        self.dismiss(self.terminal.sign_in(name, pin))


class SupervisorPinScreen(_Form[Operator]):
    """A supervisor approves ``reason`` with their PIN; returns the Operator or None."""

    def __init__(self, terminal: Terminal, reason: str) -> None:
        super().__init__(f"Supervisor approval: {reason}")
        self.terminal = terminal

    def body(self) -> ComposeResult:
        yield Label("Supervisor PIN")
        yield PosInput(password=True, id="supervisor-pin")
        yield Plain("", id="form-error", classes="error-text")

    async def submit(self) -> None:
        pin_input = self.query_one("#supervisor-pin", Input)
        pin = pin_input.value
        pin_input.value = ""
        self.dismiss(await self.terminal.check_supervisor_async(pin))
