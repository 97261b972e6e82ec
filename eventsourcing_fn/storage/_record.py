"""The storage record: rows in their stored form and the plain callables a backend provides."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID

import attrs

# Rows are made once per event on every write and read: named tuples, built in a quarter of the
# time of a frozen attrs class and with one object instead of two. A stored row is its new event
# with the stream, version and position in front: `StoredEvent._make((st, sid, v, p, *new))`.


class NewEvent(NamedTuple):
    """An event serialized for appending: the store fills every field but version and position."""

    type: str
    schema_version: int
    data: str  # JSON text of the payload
    event_id: UUID
    recorded_at: datetime  # aware, UTC
    actor_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    metadata: str = "{}"  # JSON text of a dict


@attrs.frozen
class StreamAppend:
    """Events for one stream, appended after `expected_version` (None: after whatever is there)."""

    stream_type: str
    stream_id: str
    expected_version: int | None
    events: Sequence[NewEvent]


class StoredEvent(NamedTuple):
    """An event row as a backend returns it: a `NewEvent` plus its stream version and position."""

    stream_type: str
    stream_id: str
    version: int
    position: int
    type: str
    schema_version: int
    data: str
    event_id: UUID
    recorded_at: datetime
    actor_id: str | None
    correlation_id: str | None
    causation_id: str | None
    metadata: str


@attrs.frozen
class StoredSnapshot:
    """A serialized aggregate state taken after `version` events of a stream."""

    stream_type: str
    stream_id: str
    version: int
    snapshot_version: int
    data: str


@attrs.frozen
class Checkpoint:
    """How far a component has read the log, with its serialized state (None when stateless)."""

    name: str
    position: int
    state: str | None = None


# One named Protocol per callable of the record: its parameter names are part of the contract,
# so callers may pass them by keyword and a backend can be written from these docstrings alone.
# Every position, version and count a callable takes is 0 or more: a negative one raises
# `ValueError` naming the parameter.


class Append(Protocol):
    def __call__(self, batches: Sequence[StreamAppend]) -> Sequence[StoredEvent]:
        """Append every batch's events, all or none, and return their rows in the order given.

        Each batch's `expected_version` is checked first (a stream named twice is checked
        against the end its earlier batch leaves); any mismatch raises `VersionConflict` and
        appends nothing. A stream's events get the versions after its last one; positions
        increase across the log.
        """
        ...


class ReadStream(Protocol):
    def __call__(
        self, stream_type: str, stream_id: str, after: int, up_to: int | None
    ) -> Sequence[StoredEvent]:
        """One stream's rows with `after < version <= up_to` (no upper bound when None), in
        version order; none for a stream never appended to."""
        ...


class ReadAll(Protocol):
    def __call__(self, after: int, limit: int) -> Sequence[StoredEvent]:
        """Up to `limit` committed rows with position above `after`, in position order, and never
        one that a transaction still running could commit a lower position before: a reader that
        goes on from the last position it saw misses nothing and sees nothing twice."""
        ...


class ReadCommitted(Protocol):
    def __call__(self, after: int, limit: int) -> Sequence[StoredEvent]:
        """Like `ReadAll`, but every committed row: a transaction still running may later commit
        rows below the last one returned."""
        ...


class LastPosition(Protocol):
    def __call__(self) -> int:
        """The highest position of any committed row, 0 for an empty log (a transaction still
        running may later commit rows below it)."""
        ...


class CountAfter(Protocol):
    def __call__(self, position: int) -> int:
        """How many committed rows have a position above `position`."""
        ...


class WaitForEvents(Protocol):
    def __call__(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for rows appended by any storage on the same database;
        True when woken by one before the time is up."""
        ...


class LockStream(Protocol):
    def __call__(self, stream_type: str, stream_id: str) -> None:
        """Inside a transaction, make other writers of this stream wait until it ends."""
        ...


class ReadSnapshot(Protocol):
    def __call__(
        self, stream_type: str, stream_id: str, up_to: int | None
    ) -> StoredSnapshot | None:
        """The stream's snapshot with the highest version at or below `up_to` (any when None),
        or None."""
        ...


class WriteSnapshot(Protocol):
    def __call__(self, snapshot: StoredSnapshot) -> None:
        """Keep a snapshot, replacing one of the same stream and version."""
        ...


class ReadCheckpoint(Protocol):
    def __call__(self, name: str) -> Checkpoint | None:
        """The named component's checkpoint, or None; inside a transaction it is held as
        `ReadCheckpoints` holds it."""
        ...


class WriteCheckpoint(Protocol):
    def __call__(self, checkpoint: Checkpoint) -> None:
        """Keep a component's checkpoint, replacing the one of the same name."""
        ...


class ReadCheckpoints(Protocol):
    def __call__(self, names: Sequence[str]) -> dict[str, Checkpoint]:
        """`{name: checkpoint}` of those named that exist.

        Inside a transaction each named checkpoint is held until the transaction ends (taken in
        sorted name order, so two holders never deadlock): transactions that fold the same
        component serialise, and none loses another's update.
        """
        ...


class WriteCheckpoints(Protocol):
    def __call__(self, checkpoints: Sequence[Checkpoint]) -> None:
        """Keep many checkpoints at once, replacing those of the same names."""
        ...


class GetDocument(Protocol):
    def __call__(self, projection: str, key: str) -> str | None:
        """The JSON text of one document of a projection, or None."""
        ...


class PutDocument(Protocol):
    def __call__(self, projection: str, key: str, data: str | None) -> None:
        """Keep a document's JSON text, replacing the one of the same key; None deletes it."""
        ...


class GetDocuments(Protocol):
    def __call__(self, projection: str, keys: Sequence[str]) -> dict[str, str]:
        """`{key: JSON text}` of the documents among `keys` that exist, in one round trip."""
        ...


class PutDocuments(Protocol):
    def __call__(self, projection: str, items: Sequence[tuple[str, str | None]]) -> None:
        """Keep or (for None) delete many documents of a projection, in one statement or batch."""
        ...


class AllDocuments(Protocol):
    def __call__(self, projection: str) -> Sequence[tuple[str, str]]:
        """Every `(key, JSON text)` of a projection, in key (code point) order."""
        ...


class ClearDocuments(Protocol):
    def __call__(self, projection: str) -> None:
        """Delete every document of a projection."""
        ...


class Lease(Protocol):
    def __call__(self, name: str, owner: str, seconds: float) -> bool:
        """Take or renew the lease `name` for `owner`, lasting `seconds` from now; True when
        `owner` holds it after the call.

        Inside a transaction it commits or rolls back with it, and the transaction may not sit
        idle for longer than the lease lasts.
        """
        ...


class Release(Protocol):
    def __call__(self, name: str, owner: str) -> None:
        """Give the lease `name` up, if `owner` holds it."""
        ...


class Transaction(Protocol):
    def __call__(self) -> AbstractContextManager[None]:
        """A block whose writes commit together when it ends, or are all undone if it raises;
        a transaction opened inside one joins it."""
        ...


class Savepoint(Protocol):
    def __call__(self) -> AbstractContextManager[None]:
        """Inside a transaction, a block whose writes alone are undone if it raises (the
        transaction goes on); outside one, a transaction of its own."""
        ...


class Connection(Protocol):
    def __call__(self) -> AbstractContextManager[Any]:
        """The DB-API connection (sqlite3 or psycopg) of the current transaction, so SQL run on
        it commits or rolls back with the transaction; outside one, a connection for queries."""
        ...


class Close(Protocol):
    def __call__(self) -> None:
        """Release the connections this storage opened."""
        ...


class VersionConflict(Exception):
    """Raised by `append` when a stream's version is not the expected one."""

    def __init__(self, stream_type: str, stream_id: str, expected: int | None, actual: int) -> None:
        super().__init__(
            f"stream {stream_type}/{stream_id!r}: expected version {expected}, found {actual}"
        )
        self.stream_type = stream_type
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class OrderConflict(VersionConflict):
    """Raised by `append` when the stream's last event comes later in the log than this
    transaction's own events would: appending would show readers the stream out of version
    order. The expected version matched; the same append in a new transaction succeeds."""

    def __init__(self, stream_type: str, stream_id: str, expected: int | None, actual: int) -> None:
        super().__init__(stream_type, stream_id, expected, actual)
        self.args = (
            f"stream {stream_type}/{stream_id!r}: version {actual} was appended by a transaction"
            " that began after this one; retry in a new transaction",
        )


@attrs.frozen(kw_only=True)
class Storage:
    """A storage backend: a record of plain callables. Wrap one with `attrs.evolve`."""

    name: str
    append: Append
    read_stream: ReadStream
    read_all: ReadAll
    read_committed: ReadCommitted
    last_position: LastPosition
    count_after: CountAfter
    wait_for_events: WaitForEvents
    lock_stream: LockStream
    read_snapshot: ReadSnapshot
    write_snapshot: WriteSnapshot
    read_checkpoint: ReadCheckpoint
    write_checkpoint: WriteCheckpoint
    read_checkpoints: ReadCheckpoints
    write_checkpoints: WriteCheckpoints
    get_document: GetDocument
    put_document: PutDocument
    get_documents: GetDocuments
    put_documents: PutDocuments
    all_documents: AllDocuments
    clear_documents: ClearDocuments
    lease: Lease
    release: Release
    transaction: Transaction
    savepoint: Savepoint
    connection: Connection | None = None  # None for a storage without SQL
    close: Close

    def iter_all(self, after: int = 0, batch: int = 1000) -> Iterator[StoredEvent]:
        """Every row after `after` in position order, read `batch` rows at a time."""
        if batch < 1:
            raise ValueError(f"iter_all(batch={batch!r}): read at least one row at a time")
        while rows := self.read_all(after, batch):
            yield from rows
            after = rows[-1].position
