"""An app for the command-line tests: the bank account with a projection, documents and a
process manager that closes an account once it is emptied. In memory: `--store` points the
command line at a real store."""

from __future__ import annotations

import attrs
from bank import Close, Deposited, Opened, Withdrawn, account

from eventsourcing_fn import (
    DocumentProjection,
    EventStore,
    ProcessManager,
    Projection,
    Recorded,
    Send,
)
from eventsourcing_fn.storage import Storage

totals = Projection("totals", initial=0)


@totals.on
def add(total: int, event: Deposited) -> int:
    return total + event.amount


@attrs.frozen
class Owner:
    name: str


owners = DocumentProjection("owners", doc_type=Owner)


@owners.on
def opened(doc: Owner | None, event: Opened) -> Owner | None:
    return Owner(event.owner)


closer = ProcessManager("closer", initial=0, key=lambda event, record: record.stream_id)


@closer.on
def deposited(balance: int, event: Deposited) -> int:
    return balance + event.amount


@closer.on
def withdrawn(balance: int, event: Withdrawn) -> int:
    return balance - event.amount


@closer.react
def close_when_empty(balance: int, event: Withdrawn, record: Recorded[Withdrawn]) -> Send | None:
    return Send(account, record.stream_id, Close()) if balance == 0 else None


def definitions(storage: Storage | None = None, *, inline: bool = True) -> EventStore:
    """The app's definitions over `storage` (memory when None)."""
    return EventStore(
        storage,
        aggregates=[account],
        projections=[totals, owners],
        process_managers=[closer],
        inline=inline,
    )


store = definitions()
not_a_store = "a string"
