"""The domain every workload uses, once per library.

A tally stream: `Started(name)`, then `Incremented(amount)` events. Commands: `Start` (one
`Started` and `increments` `Incremented`), `Bump` (one `Incremented`). An order stream for the
process manager: `Place` gives `Placed`. Projections over tallies: a running total (a fold), a
balance document per stream, and a counter of every event. `eventsourcing`'s side is its
idiomatic `@event` aggregate in an `Application` without snapshots or cache.
"""

from __future__ import annotations

import uuid
from typing import Any

import attrs
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate as EsAggregate
from eventsourcing.domain import event

from eventsourcing_fn import (
    Aggregate,
    DocumentProjection,
    ProcessManager,
    Projection,
    Recorded,
    Send,
)

# -- ours: the tally ------------------------------------------------------------------------------


@attrs.frozen
class Started:
    name: str


@attrs.frozen
class Incremented:
    amount: int


@attrs.frozen
class Start:
    name: str
    increments: int


@attrs.frozen
class Bump:
    pass


@attrs.frozen
class Tally:
    name: str | None = None
    count: int = 0
    total: int = 0


def started(state: Tally, event: Started) -> Tally:
    return attrs.evolve(state, name=event.name)


def incremented(state: Tally, event: Incremented) -> Tally:
    return Tally(state.name, state.count + 1, state.total + event.amount)


def start(command: Start, state: Tally) -> list[Started | Incremented]:
    return [Started(command.name), *(Incremented(i) for i in range(1, command.increments + 1))]


def bump(command: Bump, state: Tally) -> Incremented:
    return Incremented(1)


def tally_aggregate(snapshot_every: int | None = None) -> Aggregate[Tally]:
    """Ours: a frozen state, two evolve and two decide functions."""
    tally = Aggregate("tally", initial=Tally(), snapshot_every=snapshot_every)
    tally.evolve(started)
    tally.evolve(incremented)
    tally.decide(start)
    tally.decide(bump)
    return tally


# -- ours: the order and its process manager ------------------------------------------------------


@attrs.frozen
class Place:
    amount: int


@attrs.frozen
class Placed:
    amount: int


def placed(state: int, event: Placed) -> int:
    return state + 1


def place(command: Place, state: int) -> Placed:
    return Placed(command.amount)


def order_aggregate() -> Aggregate[int]:
    order = Aggregate("order", initial=0)
    order.evolve(placed)
    order.decide(place)
    return order


def fulfilment(tally: Aggregate[Tally]) -> ProcessManager[None]:
    """Stateless: each Placed order sends one Bump to the tally stream of the same id."""
    manager: ProcessManager[None] = ProcessManager("fulfilment")

    def bump_tally(state: None, event: Placed, record: Recorded[Any]) -> Send:
        return Send(tally, record.stream_id, Bump())

    manager.react(bump_tally)
    return manager


# -- ours: projections over tallies ---------------------------------------------------------------


@attrs.frozen
class Balance:
    """The document of one tally stream."""

    name: str
    count: int = 0
    total: int = 0


def add_amount(total: int, event: Incremented) -> int:
    return total + event.amount


def open_balance(doc: Balance | None, event: Started) -> Balance | None:
    return Balance(event.name)


def credit_balance(doc: Balance | None, event: Incremented) -> Balance | None:
    assert doc is not None, "a stream starts with Started"
    return Balance(doc.name, doc.count + 1, doc.total + event.amount)


def count_event(count: int, event: object) -> int:
    return count + 1


def totals_projection(name: str = "totals") -> Projection[int]:
    """A fold of the whole log into one value: the sum of every amount."""
    totals = Projection(name, initial=0)
    totals.on(add_amount)
    return totals


def balances_projection(name: str = "balances") -> DocumentProjection[Balance]:
    """One document per stream (the default key: the stream id)."""
    balances = DocumentProjection(name, doc_type=Balance)
    balances.on(open_balance)
    balances.on(credit_balance)
    return balances


def counter_projection(name: str = "counter") -> Projection[int]:
    """An `object` handler: every event of every type and aggregate."""
    counter = Projection(name, initial=0)
    counter.on(count_event)
    return counter


# -- theirs: the same tally in `eventsourcing` ----------------------------------------------------


class EsTally(EsAggregate):
    """Theirs: the idiomatic `eventsourcing` aggregate with `@event` methods."""

    @event("Started")
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.total = 0

    @event("Incremented")
    def increment(self, amount: int) -> None:
        self.count += 1
        self.total += amount


class EsTallies(Application[uuid.UUID]):
    is_snapshotting_enabled = False
