"""What the counter sells: the Patasente company products (``get-company-products``,
document 002) kept in the journal for offline selling, plus the merchant's quick keys
from the settings, and a look-up by barcode (keyboard-wedge scanner) or typed code."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pos.errors import InputError, LinkDown, PosError
from pos.money import Money

if TYPE_CHECKING:
    from pos.config import Settings
    from pos.journal import Journal
    from pos.providers.models import Product
    from pos.usecases.context import Context


@dataclass(frozen=True, slots=True)
class Item:
    """One thing that can go in the basket."""

    name: str
    price: Money
    product_id: int | None = None  # the Patasente product, when it is one
    barcode: str = ""
    units: str | None = None

    @property
    def code(self) -> str:
        """What a cashier types to find it: the product number, or the barcode."""
        return str(self.product_id) if self.product_id is not None else self.barcode


@dataclass(frozen=True)
class Catalogue:
    """The products (cached) and quick keys, with the moment the products were fetched."""

    products: tuple[Item, ...]
    quick_keys: tuple[Item, ...]
    fetched_at: dt.datetime | None
    offline: bool = False  # the provider could not be asked: the cached list is shown

    def find(self, code: str) -> Item:
        """The item whose barcode or product number is ``code`` (quick keys first)."""
        code = code.strip()
        if not code:
            raise InputError("Type or scan a product code")
        for item in (*self.quick_keys, *self.products):
            if item.barcode and item.barcode == code:
                return item
        for item in (*self.quick_keys, *self.products):
            if item.product_id is not None and str(item.product_id) == code:
                return item
        raise InputError(f"No product with code {code[:20]}")

    def all_items(self) -> tuple[Item, ...]:
        """Quick keys, then the catalogue's products not already on a quick key."""
        keyed = {i.product_id for i in self.quick_keys if i.product_id is not None}
        return (*self.quick_keys, *(p for p in self.products if p.product_id not in keyed))


def quick_keys(settings: Settings) -> tuple[Item, ...]:
    cur = settings.card_currency
    return tuple(Item(k.name, Money(k.price, cur), k.product_id, k.barcode)
                 for k in settings.counter.quick_keys)


def store_products(journal: Journal, products: list[Product], at: dt.datetime) -> None:
    """Replace the cached catalogue with what the provider answered, in one transaction."""
    from pos.journal.models import iso

    with journal.transaction() as conn:
        conn.execute("DELETE FROM products")
        conn.executemany(
            "INSERT INTO products(product_id, name, price_minor, currency, units, fetched_at)"
            " VALUES (?,?,?,?,?,?)",
            [(p.id, p.name[:64], p.unit_price.minor, p.unit_price.currency, p.units, iso(at))
             for p in products])


def cached_products(journal: Journal) -> tuple[tuple[Item, ...], dt.datetime | None]:
    rows = journal.query("SELECT * FROM products ORDER BY name")
    items = tuple(Item(r["name"], Money(r["price_minor"], r["currency"]), r["product_id"],
                       units=r["units"]) for r in rows)
    fetched = max((dt.datetime.fromisoformat(r["fetched_at"]) for r in rows), default=None)
    return items, fetched


async def load(ctx: Context, *, refresh: bool = True) -> Catalogue:
    """The catalogue: fetched from Patasente when the link allows (and cached), else the
    cached copy. A provider that fails is never a reason not to sell the quick keys."""
    offline = False
    if refresh:
        link = ctx.link.patasente
        if link.should_try():
            try:
                products = await ctx.patasente.company_products()
            except LinkDown as exc:
                link.record_failure(str(exc))
                offline = True
            except PosError:
                offline = True  # an odd answer: keep the cached list
            else:
                link.record_success()
                usable = [p for p in products if p.unit_price.currency == ctx.card_currency]
                store_products(ctx.journal, usable, ctx.clock())
        else:
            offline = True
    items, fetched = cached_products(ctx.journal)
    return Catalogue(items, quick_keys(ctx.settings), fetched, offline)
