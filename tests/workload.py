"""A workload for the worker tests: orders that bill accounts, run in several processes.

    python workload.py write TARGET SCHEMA N      append N orders (one event each)
    python workload.py work TARGET SCHEMA LEASE   run a Worker until SIGTERM

TARGET is a SQLite path or a postgresql:// URL. Every `Placed` event is counted once by the
`placed` document projection (one document per order stream) and makes the `billing` process
manager send one `Charge` to the ledger stream of its order, appending one `Charged`: after
the workers, documents, Charged events and Placed events must all count the same.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import attrs

from eventsourcing_fn import (
    Aggregate,
    DocumentProjection,
    EventStore,
    ProcessManager,
    Recorded,
    Send,
    Worker,
)
from eventsourcing_fn.storage import Storage, postgres_storage, sqlite_storage


@attrs.frozen
class Placed:
    n: int


@attrs.frozen
class Place:
    n: int


@attrs.frozen
class Charged:
    order: str


@attrs.frozen
class Charge:
    order: str


order = Aggregate("order", initial=0)


@order.evolve
def placed(state: int, event: Placed) -> int:
    return state + 1


@order.decide
def place(command: Place, state: int) -> Placed:
    return Placed(command.n)


ledger = Aggregate("ledger", initial=0)


@ledger.evolve
def charged(state: int, event: Charged) -> int:
    return state + 1


@ledger.decide
def charge(command: Charge, state: int) -> Charged:
    return Charged(command.order)


def make_counts() -> DocumentProjection[int]:
    counts = DocumentProjection("placed", doc_type=int)

    @counts.on
    def count(n: int | None, event: Placed) -> int:
        return (n or 0) + 1

    return counts


def make_billing() -> ProcessManager[Any]:
    billing = ProcessManager("billing")

    @billing.react
    def bill(state: None, event: Placed, record: Recorded[Any]) -> Send:
        return Send(ledger, f"ledger-{record.stream_id}", Charge(record.stream_id))

    return billing


def open_storage(target: str, schema: str) -> Storage:
    if "://" in target:
        return postgres_storage(target, schema=schema)
    return sqlite_storage(target)


def store_for(target: str, schema: str) -> EventStore:
    return EventStore(
        open_storage(target, schema),
        aggregates=[order, ledger],
        projections=[make_counts()],
        process_managers=[make_billing()],
        inline=False,
    )


def main(argv: list[str]) -> None:
    command, target, schema, arg = argv
    store = store_for(target, schema)
    if command == "write":
        for n in range(int(arg)):
            store.execute(order, f"o{n % 50}", Place(n), max_retries=50).unwrap()
    else:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        worker = Worker(store, lease=float(arg), poll=min(0.2, float(arg) / 3))
        print("started", flush=True)
        worker.run()
    store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
