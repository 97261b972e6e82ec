"""The storage record: rows in their stored form and the plain callables a backend provides."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any
from uuid import UUID

import attrs


@attrs.frozen
class NewEvent:
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


@attrs.frozen
class StoredEvent:
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


# Appends every stream's events atomically, checking each expected version; returns the rows
# in the order given. Raises `VersionConflict` when an expected version does not match.
Append = Callable[[Sequence[StreamAppend]], Sequence[StoredEvent]]
# (stream_type, stream_id, after_version, up_to_version or None) -> rows in version order.
ReadStream = Callable[[str, str, int, int | None], Sequence[StoredEvent]]
# (after_position, limit) -> up to `limit` rows with position > after, in position order, never
# one that a concurrent writer could still commit before it (gap safety).
ReadAll = Callable[[int, int], Sequence[StoredEvent]]
# (after_position, limit) -> like ReadAll, but every committed row, without gap safety: rows of
# transactions still running may later commit below the last one returned.
ReadCommitted = Callable[[int, int], Sequence[StoredEvent]]
# (name, owner, seconds) -> take or renew the lease on `name` for `owner`, lasting `seconds`
# from now; True when `owner` holds it after the call. Inside a transaction it commits (or rolls
# back) with it, and the transaction may not sit idle for longer than the lease lasts.
Lease = Callable[[str, str, float], bool]
# (name, owner): give the lease up, if `owner` holds it.
Release = Callable[[str, str], None]
# after_position -> how many committed events come after it.
CountAfter = Callable[[int], int]
# timeout -> wait up to `timeout` seconds for events appended by anyone; True when woken early.
WaitForEvents = Callable[[float], bool]
# () -> the highest position of any committed event, 0 when there is none (no gap safety: a
# transaction still running may commit events below it).
LastPosition = Callable[[], int]
# (stream_type, stream_id, up_to_version or None) -> the newest snapshot at or below it.
ReadSnapshot = Callable[[str, str, int | None], StoredSnapshot | None]
WriteSnapshot = Callable[[StoredSnapshot], None]
ReadCheckpoint = Callable[[str], Checkpoint | None]
WriteCheckpoint = Callable[[Checkpoint], None]
# names -> {name: checkpoint} of those that exist. Inside a transaction each named checkpoint is
# held until the transaction ends (taken in sorted name order, so two holders never deadlock):
# transactions that fold the same component serialise, and none loses another's update.
ReadCheckpoints = Callable[[Sequence[str]], dict[str, Checkpoint]]
WriteCheckpoints = Callable[[Sequence[Checkpoint]], None]
# (projection, key) -> document JSON text or None.
GetDocument = Callable[[str, str], str | None]
# (projection, key, JSON text or None to delete).
PutDocument = Callable[[str, str, str | None], None]
# projection -> every (key, JSON text) in key order.
AllDocuments = Callable[[str], Sequence[tuple[str, str]]]
# (projection, keys) -> {key: JSON text} of the documents that exist, in one round trip.
GetDocuments = Callable[[str, Sequence[str]], dict[str, str]]
# (projection, [(key, JSON text or None to delete)]) in one statement or batch.
PutDocuments = Callable[[str, Sequence[tuple[str, str | None]]], None]
ClearDocuments = Callable[[str], None]
# (stream_type, stream_id): serialise writers of this stream until the transaction ends.
LockStream = Callable[[str, str], None]
# A context manager for one storage transaction; nested calls join the outer one.
Transaction = Callable[[], AbstractContextManager[None]]
# Inside a transaction, a savepoint: the block's writes are undone alone if it raises, and the
# transaction goes on. Outside one, a transaction of its own.
Savepoint = Callable[[], AbstractContextManager[None]]
# The DB-API connection of the current transaction (sqlite3 or psycopg), or outside one a
# connection for queries; None for a storage without SQL.
Connection = Callable[[], AbstractContextManager[Any]]
Close = Callable[[], None]


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


@attrs.frozen
class Storage:
    """A storage backend: a record of plain callables. Wrap one with `attrs.evolve`."""

    name: str
    append: Append
    read_stream: ReadStream
    read_all: ReadAll
    read_snapshot: ReadSnapshot
    write_snapshot: WriteSnapshot
    read_checkpoint: ReadCheckpoint
    write_checkpoint: WriteCheckpoint
    get_document: GetDocument
    put_document: PutDocument
    all_documents: AllDocuments
    clear_documents: ClearDocuments
    lock_stream: LockStream
    transaction: Transaction
    close: Close
    read_checkpoints: ReadCheckpoints
    write_checkpoints: WriteCheckpoints
    get_documents: GetDocuments
    put_documents: PutDocuments
    savepoint: Savepoint
    last_position: LastPosition
    read_committed: ReadCommitted
    lease: Lease
    release: Release
    count_after: CountAfter
    wait_for_events: WaitForEvents
    connection: Connection | None = None

    def iter_all(self, after: int = 0, batch: int = 1000) -> Iterator[StoredEvent]:
        """Every row after `after` in position order, read in batches."""
        while rows := self.read_all(after, batch):
            yield from rows
            after = rows[-1].position
