"""The journal: search and filter, a transaction's event trail, DUPLICATE reprint,
and resolving flagged items (supervisor)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from pos.errors import PosError
from pos.text import MAX_REASON, printable, validate_free_text
from screens.dialogs import ChoiceDialog, ConfirmDialog, Step, TextPrompt
from screens.receipt import ReceiptScreen
from screens.widgets import Plain, PosInput

FILTERS = {"a": None, "f": "flagged", "u": "unsynced", "d": "done", "x": "declined"}
FILTER_NAMES = {None: "all", "flagged": "flagged", "unsynced": "unsynced", "done": "done",
                "declined": "declined"}


def txn_row(txn: Any) -> tuple[Text, ...]:
    """A table row; cells are plain Text (a str cell would be parsed as markup) cleaned
    of control characters (a card number or meter may come from a provider)."""
    local = txn.created_at.astimezone()
    who = txn.card_no or txn.meter or txn.account or ""
    cells = (local.strftime("%m-%d %H:%M"), txn.ref, str(txn.kind), str(txn.state),
             txn.amount.format(), who)
    return tuple(Text(printable(cell)) for cell in cells)


class JournalScreen(Step[None]):
    BINDINGS = [
        Binding("escape", "cancel", "Back"),
        Binding("a", "filter('a')", "All"),
        Binding("f", "filter('f')", "Flagged"),
        Binding("u", "filter('u')", "Unsynced"),
        Binding("d", "filter('d')", "Done"),
        Binding("x", "filter('x')", "Declined"),
    ]

    def __init__(self, state: str | None = None) -> None:
        super().__init__("Journal")
        self.state = state
        self.search = ""

    def body(self) -> ComposeResult:
        yield PosInput(placeholder="Search ref, card, meter, account, name...",
                       id="journal-search")
        yield Static("", id="journal-filter", classes="step-note")
        table: DataTable[Text] = DataTable(id="journal-table", cursor_type="row",
                                           zebra_stripes=True)
        table.add_columns("When", "Ref", "Kind", "State", "Amount", "Card/meter")
        yield table

    def on_mount(self) -> None:
        self.reload()
        self.query_one("#journal-table", DataTable).focus()

    def reload(self) -> None:
        app: Any = self.app
        txns = app.terminal.journal_list(state=self.state, search=self.search or None)
        table = self.query_one("#journal-table", DataTable)
        table.clear()
        for txn in txns:
            table.add_row(*txn_row(txn), key=txn.ref)
        self.query_one("#journal-filter", Static).update(
            f"Showing {FILTER_NAMES.get(self.state, self.state)}: {len(txns)}   "
            "(A all, F flagged, U unsynced, D done, X declined; Enter opens)")

    def action_filter(self, key: str) -> None:
        if isinstance(self.focused, Input):
            return
        self.state = FILTERS[key]
        self.reload()

    @on(Input.Submitted, "#journal-search")
    def _search(self, event: Input.Submitted) -> None:
        self.search = event.value.strip()
        self.reload()
        self.query_one("#journal-table", DataTable).focus()

    @on(DataTable.RowSelected, "#journal-table")
    def _open(self, event: DataTable.RowSelected) -> None:
        ref = event.row_key.value
        if ref:
            self.app.push_screen(JournalDetailScreen(ref), lambda _: self.reload())


class JournalDetailScreen(Step[None]):
    BINDINGS = [
        Binding("escape", "cancel", "Back"),
        Binding("r", "reprint", "Reprint DUPLICATE"),
        Binding("v", "view", "Receipt"),
        Binding("s", "resolve", "Resolve flagged"),
        Binding("o", "void", "Void"),
    ]

    def __init__(self, ref: str) -> None:
        super().__init__(f"Transaction {ref}")
        self.ref = ref

    def body(self) -> ComposeResult:
        app: Any = self.app
        txn, events = app.terminal.journal_detail(self.ref)
        rows = [("Kind", str(txn.kind)), ("State", str(txn.state)),
                ("Amount", txn.amount.format()), ("Tender", str(txn.tender)),
                ("Operator", txn.operator), ("Card", txn.card_no or ""),
                ("Wallet", txn.wallet or ""), ("Meter", txn.meter or ""),
                ("Account", txn.account or ""), ("Customer", txn.customer_name or ""),
                ("Token", " ".join(txn.token[i:i + 4] for i in range(0, len(txn.token), 4))
                 if txn.token else ""),
                ("Offline", "yes" if txn.offline else ""), ("Last error", txn.last_error or "")]
        text = "\n".join(f"{k:<11}{v}" for k, v in rows if v)
        yield Plain(text, classes="summary")
        trail = ["", "Event trail:"]
        for ev in events:
            when = ev.at.astimezone().strftime("%H:%M:%S")
            step = f"{ev.from_state or '-'} -> {ev.to_state}"
            extra = " ".join(x for x in (ev.note, ev.error, ev.operator and f"by {ev.operator}")
                             if x)
            trail.append(f" {when} {step} {extra}")
        yield Plain("\n".join(trail), classes="summary", id="journal-trail")

    def action_reprint(self) -> None:
        app: Any = self.app
        self.notify(app.terminal.print_receipt(self.ref, duplicate=True))
        app.push_screen(ReceiptScreen(self.ref, duplicate=True))

    def action_view(self) -> None:
        self.app.push_screen(ReceiptScreen(self.ref))

    def action_resolve(self) -> None:
        app: Any = self.app
        app.run_worker(self._resolve(), group="journal", exit_on_error=False)

    async def _resolve(self) -> None:
        app: Any = self.app
        txn, _ = app.terminal.journal_detail(self.ref)
        if not txn.is_flagged:
            await app.show_message("Resolve", "Only flagged items need resolving.")
            return
        supervisor = await app.ask_supervisor(f"resolve {self.ref}")
        if supervisor is None:
            return
        how = app.terminal.cash_resolution(txn)
        if how is not None:
            label = (f"Cash {txn.amount.format()} handed back to the customer"
                     if how == "refunded" else
                     f"Cash {txn.amount.format()} collected from the customer")
            picked = await app.push_screen_wait(ChoiceDialog(
                "Resolve flagged item", [(how, label), ("other", "Settled another way")],
                note="Cash goes through the drawer and the shift's cash-up."))
            if not picked:
                return
            if picked == how:
                try:
                    app.terminal.resolve_flagged_cash(self.ref, how, supervisor)
                except PosError as exc:
                    await app.show_message("Resolve", exc.message)
                    return
                app.notify(f"{self.ref} resolved: cash {how}")
                self.dismiss(None)
                return
        note = await app.push_screen_wait(TextPrompt(
            "Resolve flagged item", "How was it resolved? (e.g. cash collected)",
            check=lambda v: validate_free_text(v, "note", 200)))
        if not note:
            return
        app.terminal.resolve_flagged(self.ref, note, supervisor)
        app.notify(f"{self.ref} resolved")
        self.dismiss(None)


    def action_void(self) -> None:
        app: Any = self.app
        app.run_worker(self._void(), group="journal", exit_on_error=False)

    async def _void(self) -> None:
        """Supervisor: cancel a sale still queued, or credit back a settled card payment."""
        app: Any = self.app
        txn, _ = app.terminal.journal_detail(self.ref)
        if not await app.push_screen_wait(ConfirmDialog(
                "Void", f"Void {txn.kind} {txn.amount.format()} ({self.ref})?")):
            return
        supervisor = await app.ask_supervisor(f"void {self.ref}")
        if supervisor is None:
            return
        reason = await app.push_screen_wait(TextPrompt(
            "Void", "Why? (e.g. wrong amount)",
            check=lambda v: validate_free_text(v, "reason", MAX_REASON, optional=True)))
        if reason is None:
            return
        result = await app.busy("Voiding...", app.terminal.void(self.ref, supervisor, reason))
        await app.show_message("Void", result.message)
        self.dismiss(None)


async def journal(app: Any) -> None:
    await app.push_screen_wait(JournalScreen())
