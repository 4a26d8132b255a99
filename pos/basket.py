"""The cart: lines with quantities and line discounts, totals in the sale currency, and
the short text the card issuer sees as the payment reason.

Pure domain (no journal, no provider): :mod:`pos.usecases.sale` journals a basket when
it is tendered. All amounts are integer minor units (:class:`pos.money.Money`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pos.catalogue import Item
from pos.errors import InputError
from pos.money import Money

#: Most lines and most of one line a basket takes (a typo of 1000 is not a sale).
MAX_LINES = 60
MAX_QTY = 999
#: Longest reason the basket gives the provider: the provider's field takes
#: ``pos.text.MAX_REASON`` (100) characters, and `` ref:<12 digits>`` is added to it.
MAX_BASKET_REASON = 80


class DiscountNeedsSupervisor(InputError):
    """The discount is over what this operator may give alone."""


@dataclass(frozen=True, slots=True)
class Line:
    item: Item
    qty: int
    discount: Money  # off the whole line, never more than it

    @property
    def gross(self) -> Money:
        return Money(self.item.price.minor * self.qty, self.item.price.currency)

    @property
    def total(self) -> Money:
        return self.gross - self.discount

    @property
    def discount_percent(self) -> int:
        """The discount as a whole percent of the line, rounded up (what rights judge)."""
        gross = self.gross.minor
        return 0 if gross == 0 else -(-self.discount.minor * 100 // gross)


@dataclass
class Basket:
    currency: str
    lines: list[Line] = field(default_factory=list)
    discount_by: str | None = None  # the supervisor who approved a discount over the cap

    # ---------------------------------------------------------------- lines
    def add(self, item: Item, qty: int = 1) -> int:
        """Add ``qty`` of ``item`` (to its line if it has one); the line's index."""
        if item.price.currency != self.currency:
            raise InputError(f"{item.name} is priced in {item.price.currency}, "
                             f"this sale is in {self.currency}")
        _check_qty(qty)
        for i, line in enumerate(self.lines):
            if line.item == item and line.discount.minor == 0:
                self.set_qty(i, line.qty + qty)
                return i
        if len(self.lines) >= MAX_LINES:
            raise InputError(f"A sale has at most {MAX_LINES} lines")
        self.lines.append(Line(item, qty, Money.zero(self.currency)))
        return len(self.lines) - 1

    def set_qty(self, index: int, qty: int) -> None:
        """Change a line's quantity (0 removes it); a discount keeps its percent cap."""
        line = self._line(index)
        if qty == 0:
            self.remove(index)
            return
        _check_qty(qty)
        new = replace(line, qty=qty)
        if new.discount > new.gross:
            new = replace(new, discount=new.gross)
        self.lines[index] = new

    def remove(self, index: int) -> None:
        self._line(index)
        del self.lines[index]

    def discount(self, index: int, percent: int, *, role: str, cashier_max: int,
                 supervisor_max: int, approved_by: str | None = None) -> Money:
        """Give ``percent`` off line ``index`` within the operator's rights: a cashier up
        to ``cashier_max`` percent alone; more needs ``approved_by`` (a supervisor, whose
        PIN the caller checked) up to ``supervisor_max``. The amount off, rounded down."""
        line = self._line(index)
        if not 0 <= percent <= 100:
            raise InputError("A discount is 0 to 100 percent")
        limit = cashier_max if role != "supervisor" and approved_by is None else supervisor_max
        if percent > limit:
            if role != "supervisor" and approved_by is None and percent <= supervisor_max:
                raise DiscountNeedsSupervisor(
                    f"A cashier gives at most {cashier_max}% off: a supervisor must approve "
                    f"{percent}%")
            raise InputError(f"At most {limit}% off may be given")
        off = Money(line.gross.minor * percent // 100, self.currency)
        self.lines[index] = replace(line, discount=off)
        if approved_by is not None and percent > cashier_max:
            self.discount_by = approved_by
        return off

    def _line(self, index: int) -> Line:
        if not 0 <= index < len(self.lines):
            raise InputError("No such line in the basket")
        return self.lines[index]

    # --------------------------------------------------------------- totals
    @property
    def subtotal(self) -> Money:
        return sum((line.gross for line in self.lines), Money.zero(self.currency))

    @property
    def discount_total(self) -> Money:
        return sum((line.discount for line in self.lines), Money.zero(self.currency))

    @property
    def total(self) -> Money:
        return self.subtotal - self.discount_total

    @property
    def items(self) -> int:
        return sum(line.qty for line in self.lines)

    def is_empty(self) -> bool:
        return not self.lines

    def reason(self, prefix: str = "Sale") -> str:
        """What the card issuer shows on the customer's statement: the lines, shortened
        to fit the provider's field (``MAX_BASKET_REASON``), printable ASCII only."""
        parts = [(f"{line.qty}x " if line.qty > 1 else "") + _ascii(line.item.name)
                 for line in self.lines]
        text = prefix.strip()
        for i, part in enumerate(parts):
            rest = len(parts) - i - 1
            more = f" +{rest} more" if rest else ""
            candidate = f"{text}{':' if i == 0 else ','} {part}"
            if len(candidate) + len(more) > MAX_BASKET_REASON:
                text = f"{text} +{len(parts) - i} more"
                break
            text = candidate
        return text[:MAX_BASKET_REASON]


def _check_qty(qty: int) -> None:
    if not isinstance(qty, int) or isinstance(qty, bool) or not 1 <= qty <= MAX_QTY:
        raise InputError(f"A quantity is 1 to {MAX_QTY}")


def _ascii(text: str) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text).strip() or "item"
