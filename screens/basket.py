"""The basket: quick keys (F1-F9 or a tap), product codes typed or scanned (keyboard
wedge), quantities, line discounts within the operator's rights; Enter goes to tender.

Keys: digits type a product code or barcode, ``*`` makes what was typed the quantity of
the next item (``3*18`` = three of product 18), Enter adds the code (or, with nothing
typed, goes to tender), ``+`` / ``-`` change the selected line's quantity, up / down
select a line, Delete removes it, ``d`` gives a discount, ``l`` lists the catalogue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.widgets import Button, Static

from pos.basket import Basket, DiscountNeedsSupervisor
from pos.catalogue import Catalogue, Item
from pos.errors import PosError
from screens.dialogs import ChoiceDialog, ConfirmDialog, Step
from screens.widgets import Plain, plain_label

if TYPE_CHECKING:
    from screens.app import SentePOSApp

#: How many basket lines are shown at once (80x24: the rest scrolls with up / down).
VISIBLE_LINES = 6


def quick_label(n: int, item: Item, width: int) -> str:
    """``F1 Soda 300ml 1,000`` in ``width`` cells: the name gives way (cut, ending in
    ``.``), never the key or the price. The cut falls between words where a word of
    three letters or more is left ("Soda." rather than "Soda 3.")."""
    price = item.price.format(symbol=False)
    room = max(width - len(f"F{n}  ") - len(price), 1)
    name = item.name if len(item.name) <= room else _cut(item.name, room - 1) + "."
    return f"F{n} {name} {price}"


def _cut(name: str, room: int) -> str:
    head = name[:room]
    if name[room:room + 1] not in ("", " "):
        words = head.rsplit(" ", 1)[0]
        if len(words) >= 3 and len(words) < len(head):
            head = words
    return head.rstrip(" ([-,/")


class BasketScreen(Step[bool]):
    """Build the basket; dismisses True to tender it, None when the sale is cancelled."""

    # A scanner's keys reach the code buffer like typed ones; when the app recognises the
    # burst as a scan (on its Enter), on_wedge_scan takes them back out of the buffer.
    SWALLOW_WEDGE_BURSTS = False
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("enter", "enter", "Add / Pay"),
        Binding("d", "discount", "Discount"),
        Binding("l", "list", "List"),
        Binding("delete", "remove", "Remove", show=False),
        *(Binding(f"f{i}", f"quick({i - 1})", show=False) for i in range(1, 10)),
    ]

    def __init__(self, basket: Basket, catalogue: Catalogue) -> None:
        super().__init__("Sale")
        self.basket = basket
        self.catalogue = catalogue
        self.code = ""
        self.qty = 1
        self.selected = len(basket.lines) - 1

    def body(self) -> ComposeResult:
        keys = self.catalogue.quick_keys[:9]
        with Grid(id="basket-keys"):
            for i, item in enumerate(keys, start=1):
                button = Button(plain_label(quick_label(i, item, 22)),
                                id=f"quick-{i - 1}", classes="quick-key")
                button.can_focus = False  # Enter belongs to the basket (add / pay)
                yield button
        yield Plain("", id="basket-lines", classes="basket-lines")
        yield Static("", id="basket-total", classes="basket-total")
        yield Plain("", id="basket-entry", classes="step-note")
        yield Plain("", id="basket-error", classes="error-text")

    def on_mount(self) -> None:
        self.refresh_view()
        self.call_after_refresh(self._fit_quick_keys)

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit_quick_keys)

    def _fit_quick_keys(self) -> None:
        """Each quick key's label cut to its button (60 columns give ~19 cells a key)."""
        keys = self.catalogue.quick_keys
        for button in self.query(".quick-key").results(Button):
            index = int((button.id or "quick-0").removeprefix("quick-"))
            width = button.content_size.width - 2 * button.styles.line_pad  # Button pads
            if width > 0 and index < len(keys):
                button.label = plain_label(quick_label(index + 1, keys[index], width))

    # ------------------------------------------------------------ display
    def refresh_view(self, error: str = "") -> None:
        lines = self.basket.lines
        if not lines:
            text = "Basket empty: F1-F9, or type / scan a product code"
        else:
            self.selected = min(max(self.selected, 0), len(lines) - 1)
            start = max(0, min(self.selected - VISIBLE_LINES + 1, len(lines) - VISIBLE_LINES))
            rows = []
            for i in range(start, min(len(lines), start + VISIBLE_LINES)):
                ln = lines[i]
                mark = ">" if i == self.selected else " "
                off = f" -{ln.discount_percent}%" if ln.discount.minor else ""
                rows.append(f"{mark}{ln.qty:>3} x {ln.item.name[:28]:<28}"
                            f"{ln.total.format(symbol=False):>12}{off}")
            if len(lines) > VISIBLE_LINES:
                rows.append(f"  ({len(lines)} lines)")
            text = "\n".join(rows)
        self.query_one("#basket-lines", Plain).update(text)
        b = self.basket
        total = f"TOTAL {b.total.format()}  ({b.items} items)"
        if b.discount_total.minor:
            total += f"  discount {b.discount_total.format()}"
        self.query_one("#basket-total", Static).update(total)
        qty = f"{self.qty} x " if self.qty > 1 else ""
        self.query_one("#basket-entry", Plain).update(
            f"Code: {qty}{self.code}_   Enter: add" if self.code or self.qty > 1
            else "Enter: pay   +/-: quantity   d: discount   l: list   Del: remove")
        self.query_one("#basket-error", Plain).update(error)

    # ------------------------------------------------------------ adding
    def add(self, item: Item) -> None:
        try:
            self.selected = self.basket.add(item, self.qty)
        except PosError as exc:
            self.refresh_view(exc.message)
            return
        self.qty = 1
        self.code = ""
        self.refresh_view()

    def add_code(self, code: str) -> None:
        try:
            item = self.catalogue.find(code)
        except PosError as exc:
            self.code = ""
            self.refresh_view(exc.message)
            return
        self.add(item)

    def action_quick(self, index: int) -> None:
        keys = self.catalogue.quick_keys
        if 0 <= index < len(keys):
            self.add(keys[index])

    @on(Button.Pressed, ".quick-key")
    def _quick_pressed(self, event: Button.Pressed) -> None:
        self.action_quick(int((event.button.id or "quick-0").removeprefix("quick-")))

    def on_wedge_scan(self, payload: str) -> None:
        """A barcode from the keyboard-wedge scanner (its keys also reached the buffer)."""
        if self.code.endswith(payload):
            self.code = self.code[: -len(payload)]
        self.code = ""
        self.add_code(payload)

    def action_enter(self) -> None:
        if self.code:
            self.add_code(self.code)
        elif self.basket.is_empty():
            self.refresh_view("The basket is empty")
        else:
            self.dismiss(True)

    def on_key(self, event: events.Key) -> None:
        ch = event.character
        handled = True
        if ch is not None and ch.isdigit() and len(self.code) < 20:
            self.code += ch
        elif ch == "*" and self.code:
            self.qty = max(1, min(999, int(self.code)))
            self.code = ""
        elif event.key == "backspace" and self.code:
            self.code = self.code[:-1]
        elif ch == "+" or ch == "-":
            self._change_qty(1 if ch == "+" else -1)
        elif event.key == "up":
            self.selected -= 1
        elif event.key == "down":
            self.selected += 1
        elif event.key == "backspace":
            self.action_remove()
            return
        else:
            handled = False
        if handled:
            event.stop()
            event.prevent_default()
            self.refresh_view()

    def _change_qty(self, by: int) -> None:
        if not self.basket.lines:
            return
        line = self.basket.lines[self.selected]
        try:
            self.basket.set_qty(self.selected, line.qty + by)
        except PosError as exc:
            self.refresh_view(exc.message)

    def action_remove(self) -> None:
        if self.basket.lines:
            self.basket.remove(self.selected)
            self.selected -= 1
        self.refresh_view()

    # ------------------------------------------------------------ workers
    def action_discount(self) -> None:
        if self.basket.lines:
            self.run_worker(self._discount(), group="basket-step", exclusive=True)

    async def _discount(self) -> None:
        app = self.app
        index = self.selected
        pct = await app.push_screen_wait(PercentScreen(self.basket.lines[index].item.name))
        if pct is None:
            return
        try:
            app.terminal.discount_line(self.basket, index, pct)
        except DiscountNeedsSupervisor as exc:
            supervisor = await app.ask_supervisor(f"approve {pct}% off")
            if supervisor is None:
                self.refresh_view(exc.message)
                return
            try:
                app.terminal.discount_line(self.basket, index, pct, supervisor)
            except PosError as again:
                self.refresh_view(again.message)
                return
        except PosError as exc:
            self.refresh_view(exc.message)
            return
        self.refresh_view()

    def action_list(self) -> None:
        self.run_worker(self._list(), group="basket-step", exclusive=True)

    async def _list(self) -> None:
        app = self.app
        items = self.catalogue.all_items()[:9]
        choices = [(str(i), f"{it.name}  {it.price.format()}") for i, it in enumerate(items)]
        note = "Cached list (offline)" if self.catalogue.offline else ""
        picked = await app.push_screen_wait(ChoiceDialog("Products", choices, note))
        if picked is not None:
            self.add(items[int(picked)])

    def action_cancel(self) -> None:
        if self.basket.is_empty():
            self.dismiss(None)
            return
        self.run_worker(self._cancel(), group="basket-step", exclusive=True)

    async def _cancel(self) -> None:
        app = self.app
        if await app.push_screen_wait(ConfirmDialog("Cancel sale", "Empty the basket?",
                                                    "Cancel sale", "Keep")):
            self.dismiss(None)


class PercentScreen(Step[int]):
    """A discount in whole percent (keypad digits, Enter)."""

    def __init__(self, item: str) -> None:
        super().__init__(f"Discount on {item[:30]}")
        self.text = ""

    def body(self) -> ComposeResult:
        yield Static("0 %", id="percent-display", classes="amount-display")
        yield Plain("", id="percent-error", classes="error-text")

    def on_key(self, event: events.Key) -> None:
        ch = event.character
        if ch is not None and ch.isdigit() and len(self.text) < 3:
            self.text += ch
        elif event.key == "backspace":
            self.text = self.text[:-1]
        elif event.key == "enter":
            event.stop()
            value = int(self.text or "0")
            if value > 100:
                self.query_one("#percent-error", Plain).update("At most 100%")
                return
            self.dismiss(value)
            return
        else:
            return
        event.stop()
        self.query_one("#percent-display", Static).update(f"{self.text or '0'} %")


async def basket_sale(app: SentePOSApp) -> None:
    """Home choice "Sale": the basket, then tender (screens/tender.py), receipt."""
    from screens.tender import tender

    term = app.terminal
    catalogue = await app.busy("Loading products...", term.catalogue())
    basket = term.new_basket()
    while True:
        if not await app.push_screen_wait(BasketScreen(basket, catalogue)):
            return
        try:
            sale = term.begin_sale(basket)
        except PosError as exc:
            await app.show_message("Sale", exc.message, "warning")
            continue
        if await tender(app, sale.id):
            return
        # Back to the basket (nothing was paid): the cashier changes it or cancels.
