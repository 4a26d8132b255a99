"""The journal: search (live, as the cashier types) and filter, a transaction's event
trail, DUPLICATE reprint, resolving flagged items and voids (supervisor), with the
voided state, its refund row and the VOID receipt. S lists the basket sales
(screens/journal_sales.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import textwrap
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static

from pos.errors import PosError
from pos.journal import Kind, State
from pos.text import MAX_REASON, printable, validate_free_text
from screens.dialogs import ChoiceDialog, ConfirmDialog, Step, TextPrompt
from screens.printing import has_printer, print_in_background
from screens.receipt import ReceiptScreen
from screens.widgets import Plain, PosInput, ReceiptView

if TYPE_CHECKING:
    from pos.journal import Txn
    from pos.usecases.voids import Voidability, VoidMark
    from screens.app import SentePOSApp

FILTERS = {"a": None, "f": "flagged", "u": "unsynced", "d": "done", "x": "declined",
           "s": "sales"}
FILTER_NAMES = {None: "all", "flagged": "flagged", "unsynced": "unsynced", "done": "done",
                "declined": "declined", "sales": "basket sales"}
#: The "state" of the list that shows basket sales (a cash-only one has no journal row).
SALES = "sales"


#: The search runs this long after the last key press (a query per pause, not per key).
SEARCH_DEBOUNCE = 0.15
#: Shorter terms are not searched as the cashier types, only on Enter: the full-text
#: index answers from three characters (pos/journal/search.py); a rarer one- or
#: two-character term scans every row (~0.2 s at 100k rows, bench_journal_search.py).
LIVE_MIN_CHARS = 3
#: Kinds a cashier may expect to void: the detail says why not when they cannot be.
_VOID_KINDS = {Kind.card_debit, Kind.vend, Kind.postpaid}


#: The list's columns (key, heading). Below 80 columns (a 480x320 console) only
#: :data:`NARROW_COLUMNS` are shown, the time without its date for today's rows: the
#: amount must stay on the screen; the detail (Enter) has everything.
COLUMNS = (("when", "When"), ("ref", "Ref"), ("kind", "Kind"), ("state", "State"),
           ("amount", "Amount"), ("who", "Card/meter"))
NARROW_COLUMNS = ("when", "ref", "state", "amount")
#: Narrower than this, the list shows :data:`NARROW_COLUMNS` (the app's ``-narrow``).
WIDE_FROM = 80
#: Rows read at a time: as many as the screen has lines (at least :data:`PAGE_ROWS`), so
#: a page fills any screen; the next is read when the cursor comes within
#: :data:`PAGE_AHEAD` rows of the last one. A page of 200 made the journal's first paint
#: 1.7x an empty one's (issue 15, 1M rows): each row drawn costs ~1.5 ms here.
PAGE_ROWS = 20
PAGE_AHEAD = 5


def when_cell(at: dt.datetime, narrow: bool, today: dt.date | None) -> str:
    """The When column: date and time; narrow, today's time alone or an older date."""
    local = at.astimezone()
    if not narrow:
        return local.strftime("%m-%d %H:%M")
    return local.strftime("%H:%M" if local.date() == today else "%m-%d")


def txn_row(txn: Txn, mark: VoidMark | None = None, *, narrow: bool = False,
            today: dt.date | None = None) -> tuple[Text, ...]:
    """A table row; cells are plain Text (a str cell would be parsed as markup) cleaned
    of control characters (a card number or meter may come from a provider).
    ``mark``: the row's void (``voids.VoidMark``): its state reads ``voided`` & co.
    ``narrow``: the :data:`NARROW_COLUMNS` only; a row of ``today`` shows its time
    alone, an older one its date."""
    return row_cells(txn.created_at, narrow, today, ref=txn.ref, kind=str(txn.kind),
                     state=mark.label if mark is not None else str(txn.state),
                     amount=txn.amount.format(),
                     who=txn.card_no or txn.meter or txn.account or "")


def row_cells(at: dt.datetime, narrow: bool, today: dt.date | None,
              **cells: str) -> tuple[Text, ...]:
    """The list's cells of a row made at ``at`` (:data:`COLUMNS`; :data:`NARROW_COLUMNS`
    when ``narrow``), each a plain Text cleaned of control characters."""
    cells["when"] = when_cell(at, narrow, today)
    keys = NARROW_COLUMNS if narrow else tuple(key for key, _ in COLUMNS)
    return tuple(Text(printable(cells[key])) for key in keys)


class JournalScreen(Step[None]):
    """The list: the search box has the focus and filters as the cashier types; Enter
    opens the highlighted row, Down goes to the list, where A/F/U/D/X filter and /
    goes back to the search."""

    BINDINGS = [
        Binding("escape", "cancel", "Back"),
        Binding("a", "filter('a')", "All"),
        Binding("f", "filter('f')", "Flagged"),
        Binding("u", "filter('u')", "Unsynced"),
        Binding("d", "filter('d')", "Done"),
        Binding("x", "filter('x')", "Declined"),
        Binding("s", "filter('s')", "Sales"),
        Binding("slash", "to_search", "Search"),
        Binding("down", "to_table", "List", show=False),
    ]

    def __init__(self, state: str | None = None) -> None:
        super().__init__("Journal")
        self.state = state
        self.search = ""
        self._pending: Timer | None = None
        self._columns_narrow: bool | None = None  # the columns shown: None before any
        self._loaded = 0  # rows of the list read so far (the next page's offset)
        self._more = False  # the last page was full: there may be more

    def body(self) -> ComposeResult:
        yield PosInput(placeholder="Search ref, card, meter, account, name...",
                       id="journal-search")
        yield Static("", id="journal-filter", classes="step-note")
        yield DataTable(id="journal-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.reload()
        self.query_one("#journal-search", Input).focus()

    def on_resize(self) -> None:
        if self._narrow() != self._columns_narrow:
            self.reload()

    def _narrow(self) -> bool:
        return self.app.size.width < WIDE_FROM

    def reload(self) -> None:
        table: DataTable[Text] = self.query_one("#journal-table", DataTable)
        narrow = self._narrow()
        if narrow != self._columns_narrow:
            table.clear(columns=True)
            for key, heading in COLUMNS:
                if not narrow or key in NARROW_COLUMNS:
                    table.add_column(heading, key=key)
            self._columns_narrow = narrow
        else:
            table.clear()
        self._loaded = 0
        self._more = False
        self._load_page()

    def _load_page(self) -> None:
        """The next :data:`PAGE_ROWS` rows under those shown (the first page on a reload):
        what the screen paints does not grow with the journal."""
        app = self.app
        table: DataTable[Text] = self.query_one("#journal-table", DataTable)
        narrow = bool(self._columns_narrow)
        today = app.now().astimezone().date()
        search = self.search or None
        shown = set(table.rows)  # rows journaled meanwhile shift the pages: never twice
        if self.state == SALES:
            from screens.journal_sales import sale_row

            sales = app.terminal.recent_sales(search=search, limit=self.page_rows(),
                                              offset=self._loaded)
            for sale in sales:
                if sale.id not in shown:
                    table.add_row(*sale_row(sale, narrow=narrow, today=today), key=sale.id)
            got = len(sales)
        else:
            txns = app.terminal.journal_list(state=self.state, search=search,
                                             limit=self.page_rows(), offset=self._loaded)
            marks = app.terminal.void_marks(txns)
            for txn in txns:
                if txn.ref not in shown:
                    table.add_row(*txn_row(txn, marks.get(txn.ref), narrow=narrow,
                                           today=today), key=txn.ref)
            got = len(txns)
        self._loaded += got
        self._more = got == self.page_rows()
        self._hint(table.row_count)

    def page_rows(self) -> int:
        return max(PAGE_ROWS, self.app.size.height)

    @on(DataTable.RowHighlighted, "#journal-table")
    def _near_the_end(self, event: DataTable.RowHighlighted) -> None:
        table = event.data_table
        if self._more and event.cursor_row >= table.row_count - PAGE_AHEAD:
            self._load_page()

    def _hint(self, shown: int) -> None:
        name = str(FILTER_NAMES.get(self.state, self.state))
        count = f"{shown}+" if self._more else str(shown)  # more below: loaded on the way
        if self._narrow():  # one line on a 480x320 console too
            text = f"{name.capitalize()}: {count}  Enter opens, Down: list (A F U D X S)"
        else:
            text = (f"Showing {name}: {count}   "
                    "Enter opens; Down to the list, where A F U D X S filter")
        self.query_one("#journal-filter", Static).update(text)

    def action_filter(self, key: str) -> None:
        if isinstance(self.focused, Input):
            return
        self.state = FILTERS[key]
        self.reload()

    def action_to_search(self) -> None:
        self.query_one("#journal-search", Input).focus()

    def action_to_table(self) -> None:
        table = self.query_one("#journal-table", DataTable)
        if self.focused is not table:  # an empty list too: its A F U D X S filter
            table.focus()

    @on(Input.Changed, "#journal-search")
    def _typed(self, event: Input.Changed) -> None:
        """Live search, debounced: the query runs once the typing pauses."""
        if self._pending is not None:
            self._pending.stop()
        self._pending = self.set_timer(SEARCH_DEBOUNCE, self._apply_search)

    def _apply_search(self, *, live: bool = True) -> None:
        self._pending = None
        term = self.query_one("#journal-search", Input).value.strip()
        if live and 0 < len(term) < LIVE_MIN_CHARS:
            self.query_one("#journal-filter", Static).update(
                f"Type {LIVE_MIN_CHARS} characters to search as you type, or press Enter")
            return
        if term != self.search:
            self.search = term
            self.reload()
        elif live:
            self._hint(self.query_one("#journal-table", DataTable).row_count)

    @on(Input.Submitted, "#journal-search")
    def _search(self, event: Input.Submitted) -> None:
        """Enter: search now (no wait for the pause) and open the highlighted row."""
        if self._pending is not None:
            self._pending.stop()
        self._apply_search(live=False)
        table = self.query_one("#journal-table", DataTable)
        if table.row_count:
            row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
            self._open_ref(row_key.value)

    @on(DataTable.RowSelected, "#journal-table")
    def _open(self, event: DataTable.RowSelected) -> None:
        self._open_ref(event.row_key.value)

    def _open_ref(self, ref: str | None) -> None:
        if ref and self.state == SALES:
            from screens.journal_sales import SaleDetailScreen

            self.app.push_screen(SaleDetailScreen(ref), lambda _: self.reload())
        elif ref:
            self.app.push_screen(JournalDetailScreen(ref), lambda _: self.reload())


class VoidableDetail(Step[None]):
    """What a journal row's detail and a basket sale's share: Void (O) offered only when
    it can succeed, the VOID receipt (P) once voided, G to the linked journal row. A
    subclass sets :attr:`void_ref`, :attr:`voidable`, :attr:`voided`, :attr:`linked`
    in ``body`` and names the void's target in :meth:`void_label`."""

    def __init__(self, title: str, void_ref: str) -> None:
        super().__init__(title)
        self.void_ref = void_ref  # a journal ref or a basket sale id
        self.voidable: Voidability | None = None
        self.linked: str | None = None
        self.voided = False

    def void_label(self) -> str:
        raise NotImplementedError

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "void":
            return self.voidable is not None and self.voidable.ok
        if action == "void_receipt":
            return self.voided
        if action == "linked":
            return self.linked is not None
        return True

    async def _refresh_detail(self) -> None:
        await self.recompose()
        self.refresh_bindings()

    def action_void_receipt(self) -> None:
        self.app.push_screen(VoidReceiptScreen(self.void_ref, duplicate=True))

    def action_linked(self) -> None:
        if self.linked:
            self.app.push_screen(JournalDetailScreen(self.linked), self._back_from_linked)

    def _back_from_linked(self, _: object) -> None:
        self.run_worker(self._refresh_detail())

    def action_void(self) -> None:
        self.app.run_worker(self._void(), group="journal", exit_on_error=False)

    async def _void(self) -> None:
        await run_void(self.app, self.void_ref, self.void_label(), self._refresh_detail)


class JournalDetailScreen(VoidableDetail):
    """One row: its fields, its void (voided, by whom, the refund row: G opens it), its
    event trail; Void (O) is offered only when the void can succeed."""

    BINDINGS = [
        Binding("escape", "cancel", "Back"),
        Binding("r", "reprint", "Reprint DUPLICATE"),
        Binding("v", "view", "Receipt"),
        Binding("s", "resolve", "Resolve flagged"),
        Binding("o", "void", "Void"),
        Binding("p", "void_receipt", "Void receipt"),
        Binding("g", "linked", "Open linked"),
    ]

    def __init__(self, ref: str) -> None:
        super().__init__(f"Transaction {ref}", ref)
        self.ref = ref
        self.flagged = False

    def body(self) -> ComposeResult:
        app = self.app
        txn, events = app.terminal.journal_detail(self.ref)
        mark = app.terminal.void_marks([txn]).get(txn.ref)
        self.voidable = app.terminal.void_check(self.ref)
        details = txn.details or {}
        void_of = details.get("void_of") if txn.kind == Kind.card_refund else None
        self.linked = (mark.refund_ref if mark is not None and mark.refund_ref else None) or (
            txn.parent_ref if txn.kind == Kind.card_refund else None)
        self.voided = bool(void_of) or (mark is not None and mark.label != "refunded")
        self.flagged = txn.is_flagged
        state = str(txn.state) + (f"  ({mark.label.upper()})" if mark is not None else "")
        rows = [("Kind", str(txn.kind)), ("State", state),
                ("Amount", txn.amount.format()), ("Tender", str(txn.tender)),
                ("Operator", txn.operator), ("Card", txn.card_no or ""),
                ("Wallet", txn.wallet or ""), ("Meter", txn.meter or ""),
                ("Account", txn.account or ""), ("Customer", txn.customer_name or ""),
                ("Token", " ".join(txn.token[i:i + 4] for i in range(0, len(txn.token), 4))
                 if txn.token else ""),
                ("Offline", "yes" if txn.offline else ""), ("Last error", txn.last_error or "")]
        rows += self._void_rows(txn, mark, void_of)
        text = "\n".join(textwrap.fill(f"{k:<11}{v}", 74, subsequent_indent=" " * 11)
                         for k, v in rows if v)
        yield Plain(text, classes="summary", id="journal-fields")
        trail = ["", "Event trail:"]
        for ev in events:
            when = ev.at.astimezone().strftime("%H:%M:%S")
            extra = " ".join(x for x in (ev.remark, ev.error, ev.operator and f"by {ev.operator}")
                             if x)
            trail.append(f" {when} {ev.step} {extra}".rstrip())
        yield Plain("\n".join(trail), classes="summary", id="journal-trail")

    def _void_rows(self, txn: Txn, mark: VoidMark | None,
                   void_of: object) -> list[tuple[str, str]]:
        details = txn.details or {}
        rows: list[tuple[str, str]] = []
        if mark is not None:
            who = " ".join(x for x in (mark.by and f"by {mark.by}", mark.why and f"({mark.why})")
                           if x)
            rows.append(("Voided" if mark.label != "refunded" else "Refunded", who or "yes"))
            if mark.refund_ref:
                rows.append(("Refund", f"{mark.refund_ref} (G opens it)"))
        if void_of:
            why = str(details.get("why") or "")
            rows.append(("Void of", f"{void_of} (G opens it)"))
            rows.append(("Approved", f"by {details.get('supervisor', '')}"
                         + (f" ({why})" if why else "")))
        elif txn.kind == Kind.card_refund and txn.parent_ref:
            rows.append(("Refund of", f"{txn.parent_ref} (G opens it)"))
        sale_id = details.get("sale_id")
        if sale_id:
            rows.append(("Sale", str(sale_id)))
        if self.voidable is not None and not self.voidable.ok and mark is None and \
                txn.kind in _VOID_KINDS and txn.state != State.cancelled:
            rows.append(("Void", f"not possible: {self.voidable.why_not}"))
        return rows

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "resolve":
            return self.flagged
        return super().check_action(action, parameters)

    def action_reprint(self) -> None:
        app = self.app
        if has_printer(app):
            print_in_background(app, app.terminal.print_receipt, self.ref, duplicate=True)
        app.push_screen(ReceiptScreen(self.ref, duplicate=True))

    def action_view(self) -> None:
        self.app.push_screen(ReceiptScreen(self.ref))

    def action_resolve(self) -> None:
        app = self.app
        app.run_worker(self._resolve(), group="journal", exit_on_error=False)

    async def _resolve(self) -> None:
        app = self.app
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


    def void_label(self) -> str:
        txn, _ = self.app.terminal.journal_detail(self.ref)
        return f"{txn.kind} {txn.amount.format()} ({self.ref})"


async def run_void(app: SentePOSApp, ref: str, what: str,
                   refresh: Callable[[], Awaitable[None]]) -> None:
    """Supervisor: cancel a sale still queued, credit back a settled card payment, or void
    a basket sale (``ref`` a journal ref or a sale id; ``what`` names it in the question).
    Whether it can be done is asked first, before any PIN."""
    term = app.terminal
    can = term.void_check(ref)
    if not can.ok:
        await app.show_message("Void", can.why_not)
        return
    target = f"sale {can.sale_id}" if can.how == "sale" else ref
    if not await app.push_screen_wait(ConfirmDialog(
            "Void", f"Void {what}?\nThis will {can.describe()}.")):
        return
    supervisor = await app.ask_supervisor(f"void {target}")
    if supervisor is None:
        return
    reason = await app.push_screen_wait(TextPrompt(
        "Void", "Why? (e.g. wrong amount)",
        check=lambda v: validate_free_text(v, "reason", MAX_REASON, optional=True)))
    if reason is None:
        return
    if can.how == "sale":
        assert can.sale_id is not None  # pos.usecases.voids.check sets it for a sale
        sale = await app.busy("Voiding...", term.void_sale(can.sale_id, supervisor, reason))
        receipt_ref, message = sale.id, (f"Sale {sale.id} voided: card parts credited "
                                         "back, cash to hand back from the drawer")
        ok = True
    else:
        result = await app.busy("Voiding...", term.void(ref, supervisor, reason))
        receipt_ref, message = result.ref, result.message
        ok = result.status in ("approved", "offline", "pending")
    await refresh()
    if not ok:
        await app.show_message("Void", message, "error")
        return
    printed = await asyncio.to_thread(term.print_void_receipt, receipt_ref)
    await app.show_message("Void", f"{message}\n{printed}")
    if term.printer is None:
        await app.push_screen_wait(VoidReceiptScreen(receipt_ref))


class VoidReceiptScreen(Step[None]):
    """The VOID receipt on screen; P prints it (in a thread)."""

    BINDINGS = [Binding("escape", "cancel", "Close"), Binding("enter", "cancel", "Close"),
                Binding("p", "print", "Print")]

    def __init__(self, ref: str, *, duplicate: bool = False) -> None:
        super().__init__("Void receipt" + (" (DUPLICATE)" if duplicate else ""))
        self.ref = ref
        self.duplicate = duplicate

    def body(self) -> ComposeResult:
        from pos.receipts import render_text

        app = self.app
        receipt = app.terminal.void_receipt(self.ref, duplicate=self.duplicate)
        yield ReceiptView(render_text(receipt, app.settings.printer.columns),
                          id="void-receipt-view")

    def action_print(self) -> None:
        app = self.app
        print_in_background(app, app.terminal.print_void_receipt, self.ref,
                            duplicate=self.duplicate)


async def journal(app: SentePOSApp) -> None:
    await app.push_screen_wait(JournalScreen())
