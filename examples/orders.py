"""Orders: an order ships once it is paid and its stock reserved, whichever happens first.

Three aggregates each hold part of an order's life, every one in a stream named by the order id:
the order itself, its payment and its stock reservation. A process manager keyed by that id
folds what happened to each order and sends `Ship` when both halves are in. A `SqlProjection`
keeps a table of open orders, queried with plain SQL through `store.connection()`; since all of
an order's streams share its id, `replay_stream` rebuilds one order's row from them.

    python -m examples.orders [STORE] [--schema NAME]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from eventsourcing_fn import Aggregate, EventStore, ProcessManager, Recorded, Send, SqlProjection
from eventsourcing_fn.storage import Storage

from ._story import sql, storage_from, told

# -- the order, its payment, its stock reservation -------------------------------------------


@attrs.frozen
class OrderPlaced:
    customer: str
    sku: str
    quantity: int


@attrs.frozen
class OrderShipped:
    pass


@attrs.frozen
class PaymentReceived:
    amount: int


@attrs.frozen
class StockReserved:
    sku: str
    quantity: int


@attrs.frozen
class PlaceOrder:
    customer: str
    sku: str
    quantity: int = 1


@attrs.frozen
class Ship:
    pass


@attrs.frozen
class Pay:
    amount: int


@attrs.frozen
class Reserve:
    sku: str
    quantity: int


@attrs.frozen
class Order:
    placed: bool = False
    shipped: bool = False


class AlreadyPlaced(Exception):
    """The order exists already."""


class NotPlaced(Exception):
    """No such order."""


class AlreadyPaid(Exception):
    """The order is paid for already."""


order = Aggregate("order", initial=Order())
payment = Aggregate("payment", initial=0)  # the amount paid
reservation = Aggregate("reservation", initial=False)  # whether stock is reserved


@order.evolve
def placed(state: Order, event: OrderPlaced) -> Order:
    return Order(placed=True)


@order.evolve
def shipped(state: Order, event: OrderShipped) -> Order:
    return attrs.evolve(state, shipped=True)


@order.decide
def place(command: PlaceOrder, state: Order) -> OrderPlaced:
    if state.placed:
        raise AlreadyPlaced()
    if command.quantity < 1:
        raise ValueError(f"quantity must be positive, got {command.quantity}")
    return OrderPlaced(command.customer, command.sku, command.quantity)


@order.decide
def ship(command: Ship, state: Order) -> list[OrderShipped]:
    if not state.placed:
        raise NotPlaced()
    return [] if state.shipped else [OrderShipped()]


@payment.evolve
def paid(state: int, event: PaymentReceived) -> int:
    return state + event.amount


@payment.decide
def pay(command: Pay, state: int) -> PaymentReceived:
    if state:
        raise AlreadyPaid(f"{state} received already")
    if command.amount <= 0:
        raise ValueError(f"amount must be positive, got {command.amount}")
    return PaymentReceived(command.amount)


@reservation.evolve
def reserved(state: bool, event: StockReserved) -> bool:
    return True


@reservation.decide
def reserve(command: Reserve, state: bool) -> list[StockReserved]:
    return [] if state else [StockReserved(command.sku, command.quantity)]


# -- shipping: a process manager keyed by order id -------------------------------------------


@attrs.frozen
class Progress:
    """What shipping knows of one order until it ships."""

    placed: bool = False
    paid: bool = False
    reserved: bool = False


def order_id(event: object, record: Recorded[Any]) -> str:
    """The order an event is about: every stream of an order is named by its id."""
    return record.stream_id


shipping = ProcessManager("shipping", initial=Progress(), key=order_id)


@shipping.on
def progress(state: Progress, event: OrderPlaced | PaymentReceived | StockReserved) -> Progress:
    if isinstance(event, OrderPlaced):
        return attrs.evolve(state, placed=True)
    if isinstance(event, PaymentReceived):
        return attrs.evolve(state, paid=True)
    return attrs.evolve(state, reserved=True)


@shipping.on
def done(state: Progress, event: OrderShipped) -> None:
    return None  # shipped: nothing left to track


@shipping.react
def ship_when_ready(
    state: Progress, event: OrderPlaced | PaymentReceived | StockReserved, record: Recorded[Any]
) -> Iterator[Send]:
    if state.placed and state.paid and state.reserved:
        yield Send(order, record.stream_id, Ship())


# -- open orders: the user's own table -------------------------------------------------------


def create_table(conn: Any) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS open_orders ("
        " order_id TEXT PRIMARY KEY, customer TEXT, sku TEXT, quantity INTEGER,"
        " paid INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0)"
    )


def clear_table(conn: Any) -> None:
    conn.execute("DELETE FROM open_orders")


def clear_order(conn: Any, stream_id: str) -> None:
    conn.execute(sql(conn, "DELETE FROM open_orders WHERE order_id = ?"), (stream_id,))


open_orders = SqlProjection(
    "open_orders", setup=create_table, reset=clear_table, reset_stream=clear_order
)


# A payment or reservation may come before the order is placed: each writes its own columns
# of the row, whichever comes first creates it (the upsert is the same in SQLite and PostgreSQL).
@open_orders.on
def row_placed(conn: Any, event: OrderPlaced, record: Recorded[OrderPlaced]) -> None:
    conn.execute(
        sql(
            conn,
            "INSERT INTO open_orders (order_id, customer, sku, quantity) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (order_id) DO UPDATE SET customer = excluded.customer,"
            " sku = excluded.sku, quantity = excluded.quantity",
        ),
        (record.stream_id, event.customer, event.sku, event.quantity),
    )


@open_orders.on
def row_paid_or_reserved(
    conn: Any, event: PaymentReceived | StockReserved, record: Recorded[Any]
) -> None:
    column = "paid" if isinstance(event, PaymentReceived) else "reserved"  # one of two names
    conn.execute(
        sql(
            conn,
            f"INSERT INTO open_orders (order_id, {column}) VALUES (?, 1)"
            f" ON CONFLICT (order_id) DO UPDATE SET {column} = 1",
        ),
        (record.stream_id,),
    )


@open_orders.on
def row_shipped(conn: Any, event: OrderShipped, record: Recorded[OrderShipped]) -> None:
    conn.execute(sql(conn, "DELETE FROM open_orders WHERE order_id = ?"), (record.stream_id,))


def query_open_orders(store: EventStore, order_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """(order id, customer, sku, quantity, paid, reserved) of those orders placed, not shipped."""
    marks = ", ".join("?" * len(order_ids))
    with store.connection() as conn:
        rows = conn.execute(
            sql(
                conn,
                "SELECT order_id, customer, sku, quantity, paid, reserved FROM open_orders"
                f" WHERE customer IS NOT NULL AND order_id IN ({marks}) ORDER BY order_id",
            ),
            tuple(order_ids),
        ).fetchall()
    return [tuple(row) for row in rows]


def shop(storage: Storage) -> EventStore:
    """A store with the orders' aggregates, shipping and the open-orders table (SQL storage)."""
    return EventStore(
        storage,
        aggregates=[order, payment, reservation],
        projections=[open_orders],
        process_managers=[shipping],
    )


# -- the story -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Three orders: paid then reserved, reserved then paid, paid and still waiting for stock."""
    about = "Orders that ship once paid and reserved."
    with storage_from(argv, "orders", about) as storage, shop(storage) as store:
        ids: dict[str, str] = {}
        for label, customer, sku in [
            ("A", "ann", "book"),
            ("B", "bob", "lamp"),
            ("C", "cat", "mug"),
        ]:
            ids[label] = store.execute(order, None, PlaceOrder(customer, sku)).unwrap().stream_id
            print(f"place order {label}: {customer} buys a {sku}")
        steps: list[tuple[str, Aggregate[Any], str, object]] = [
            ("pay for A", payment, "A", Pay(20)),
            ("reserve stock for A", reservation, "A", Reserve("book", 1)),
            ("reserve stock for B", reservation, "B", Reserve("lamp", 1)),
            ("pay for B", payment, "B", Pay(35)),
            ("pay for C", payment, "C", Pay(5)),
            ("pay for A again", payment, "A", Pay(20)),
        ]
        for what, aggregate, label, command in steps:
            print(f"{what:<20} -> {told(store.execute(aggregate, ids[label], command))}")
        names = {oid: label for label, oid in ids.items()}
        rows = query_open_orders(store, list(names))
        for oid, customer, sku, quantity, is_paid, is_reserved in rows:
            state = f"paid={bool(is_paid)}, reserved={bool(is_reserved)}"
            print(f"open order {names[oid]}: {customer}, {quantity} x {sku}, {state}")
        with store.transaction(), store.connection() as conn:
            clear_order(conn, ids["C"])  # lost, say by a careless hand in the SQL shell
        store.replay_stream(open_orders, ids["C"])
        back = query_open_orders(store, list(names)) == rows
        print(f"order C's row deleted, then replayed: {'back as it was' if back else 'differs'}")
        tracked = sorted(names[k] for k in store.documents(shipping) if k in names)
        print(f"shipping still tracks: {tracked}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
