"""Catalog: removing a category removes all of its products, through a process manager.

A category does not know its products and a product only knows its category's id. The process
manager `contents` remembers, per category, the products in it; when the category is removed it
sends `RemoveProduct` to each, in the same transaction. A product added to a category that is
not live (removed, or never created) is taken off again at once, so a late arrival cannot
outlive its category. A document projection keeps a listing per category for reading.

    python -m examples.catalog [STORE] [--schema NAME]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from eventsourcing_fn import (
    Aggregate,
    DocumentProjection,
    EventStore,
    ProcessManager,
    Recorded,
    Send,
)
from eventsourcing_fn.storage import Storage

from ._story import storage_from, told

# -- categories and products -----------------------------------------------------------------


@attrs.frozen
class CategoryCreated:
    name: str


@attrs.frozen
class CategoryRemoved:
    pass


@attrs.frozen
class ProductAdded:
    name: str
    category_id: str


@attrs.frozen
class ProductRemoved:
    category_id: str


@attrs.frozen
class CreateCategory:
    name: str


@attrs.frozen
class RemoveCategory:
    pass


@attrs.frozen
class AddProduct:
    name: str
    category_id: str


@attrs.frozen
class RemoveProduct:
    pass


@attrs.frozen
class Category:
    name: str | None = None
    removed: bool = False


@attrs.frozen
class Product:
    name: str | None = None
    category_id: str | None = None
    removed: bool = False


class AlreadyExists(Exception):
    """The category or product exists already."""


class NotFound(Exception):
    """No such category or product."""


# Removed categories and products take no further commands (StreamClosedError).
category = Aggregate("category", initial=Category(), terminal=lambda c: c.removed)
product = Aggregate("product", initial=Product(), terminal=lambda p: p.removed)


@category.evolve
def category_created(state: Category, event: CategoryCreated) -> Category:
    return Category(event.name)


@category.evolve
def category_removed(state: Category, event: CategoryRemoved) -> Category:
    return attrs.evolve(state, removed=True)


@category.decide
def create_category(command: CreateCategory, state: Category) -> CategoryCreated:
    if state.name is not None:
        raise AlreadyExists(state.name)
    return CategoryCreated(command.name)


@category.decide
def remove_category(command: RemoveCategory, state: Category) -> CategoryRemoved:
    if state.name is None:
        raise NotFound()
    return CategoryRemoved()


@product.evolve
def product_added(state: Product, event: ProductAdded) -> Product:
    return Product(event.name, event.category_id)


@product.evolve
def product_removed(state: Product, event: ProductRemoved) -> Product:
    return attrs.evolve(state, removed=True)


@product.decide
def add_product(command: AddProduct, state: Product) -> ProductAdded:
    if state.name is not None:
        raise AlreadyExists(state.name)
    return ProductAdded(command.name, command.category_id)


@product.decide
def remove_product(command: RemoveProduct, state: Product) -> ProductRemoved:
    if state.category_id is None:
        raise NotFound()
    return ProductRemoved(state.category_id)


# -- the cascade -----------------------------------------------------------------------------


def category_of(event: object, record: Recorded[Any]) -> str:
    """Product events name their category; a category's own events are on its stream."""
    return (
        event.category_id if isinstance(event, ProductAdded | ProductRemoved) else record.stream_id
    )


@attrs.frozen
class Contents:
    """What the cascade remembers of one category: whether it is live, and its products."""

    live: bool = False
    products: tuple[str, ...] = ()


contents = ProcessManager("contents", initial=Contents(), key=category_of)


@contents.on
def category_live(state: Contents, event: CategoryCreated | CategoryRemoved) -> Contents:
    return attrs.evolve(state, live=isinstance(event, CategoryCreated))


@contents.on
def product_in(state: Contents, event: ProductAdded, record: Recorded[Any]) -> Contents:
    return attrs.evolve(state, products=(*state.products, record.stream_id))


@contents.on
def product_out(state: Contents, event: ProductRemoved, record: Recorded[Any]) -> Contents:
    return attrs.evolve(state, products=tuple(p for p in state.products if p != record.stream_id))


@contents.react
def remove_products(state: Contents, event: CategoryRemoved) -> Iterator[Send]:
    for product_id in state.products:
        yield Send(product, product_id, RemoveProduct())


@contents.react
def no_orphans(state: Contents, event: ProductAdded, record: Recorded[Any]) -> Iterator[Send]:
    if not state.live:
        yield Send(product, record.stream_id, RemoveProduct())


# -- listings for reading --------------------------------------------------------------------


@attrs.frozen
class Item:
    product_id: str
    name: str


@attrs.frozen
class Listing:
    name: str
    items: tuple[Item, ...] = ()


listings = DocumentProjection("listings", doc_type=Listing, key=category_of)


@listings.on
def listing_opens(doc: Listing | None, event: CategoryCreated) -> Listing:
    return Listing(event.name)


@listings.on
def listing_closes(doc: Listing | None, event: CategoryRemoved) -> None:
    return None


@listings.on
def listed(doc: Listing | None, event: ProductAdded, record: Recorded[Any]) -> Listing | None:
    if doc is None:  # no such category (any longer): nothing to list it in
        return None
    return attrs.evolve(doc, items=(*doc.items, Item(record.stream_id, event.name)))


@listings.on
def unlisted(doc: Listing | None, event: ProductRemoved, record: Recorded[Any]) -> Listing | None:
    if doc is None:
        return None
    return attrs.evolve(doc, items=tuple(i for i in doc.items if i.product_id != record.stream_id))


def catalog(storage: Storage | None = None) -> EventStore:
    """A store with categories, products, the cascade and the listings."""
    return EventStore(
        storage,
        aggregates=[category, product],
        projections=[listings],
        process_managers=[contents],
    )


# -- the story -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Fill two categories, remove one, and watch its products go with it."""
    about = "Removing a category removes its products."
    with storage_from(argv, "catalog", about) as storage, catalog(storage) as store:
        ids: dict[str, str] = {}
        for name in ("books", "garden"):
            ids[name] = store.execute(category, None, CreateCategory(name)).unwrap().stream_id
        for name, where in [("Dune", "books"), ("Emma", "books"), ("Rake", "garden")]:
            ids[name] = (
                store.execute(product, None, AddProduct(name, ids[where])).unwrap().stream_id
            )
        print("created books and garden; added Dune and Emma to books, Rake to garden")
        _show(store, ids)
        steps: list[tuple[str, Aggregate[Any], str | None, object]] = [
            ("remove books", category, ids["books"], RemoveCategory()),
            ("add Ulysses to books", product, None, AddProduct("Ulysses", ids["books"])),
            ("remove books again", category, ids["books"], RemoveCategory()),
        ]
        for what, aggregate, stream_id, command in steps:
            print(f"{what:<21} -> {told(store.execute(aggregate, stream_id, command))}")
        _show(store, ids)
        gone = [n for n in ("Dune", "Emma", "Rake") if store.load(product, ids[n]).state.removed]
        print(f"products removed: {gone}")
    return 0


def _show(store: EventStore, ids: dict[str, str]) -> None:
    docs = store.documents(listings)
    for name in ("books", "garden"):
        listing = docs.get(ids[name])
        items = ", ".join(i.name for i in listing.items) if listing else "(removed)"
        print(f"  listing {name}: {items}")


if __name__ == "__main__":
    raise SystemExit(main())
