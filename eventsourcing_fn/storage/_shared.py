"""What every backend does alike: bounds, nested transactions, expected versions, new rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import TypeVar

from ._record import NewEvent, Savepoint, StoredEvent, StreamAppend, Transaction, VersionConflict

_Tx = TypeVar("_Tx")


def refuse_negative(function: str, **bounds: int | None) -> None:
    """`ValueError` naming the first of `bounds` (positions, versions, counts) below 0."""
    for parameter, value in bounds.items():
        if value is not None and value < 0:
            raise ValueError(f"{function}({parameter}={value!r}): must be 0 or more")


def transactions(
    current: ContextVar[_Tx | None],
    outermost: Callable[[], AbstractContextManager[None]],
    savepoint_in: Callable[[_Tx], AbstractContextManager[None]],
) -> tuple[Transaction, Savepoint]:
    """A backend's `transaction` and `savepoint`, from its own two blocks.

    `outermost()` runs one transaction and sets `current` for as long as it lasts;
    `savepoint_in(tx)` runs a savepoint inside the transaction `tx`. A transaction opened inside
    another joins it; a savepoint opened outside one is a transaction of its own.
    """

    @contextmanager
    def transaction() -> Iterator[None]:
        if current.get() is not None:
            yield  # nested: join the outer transaction
            return
        with outermost():
            yield

    @contextmanager
    def savepoint() -> Iterator[None]:
        tx = current.get()
        if tx is None:
            with outermost():
                yield
            return
        with savepoint_in(tx):
            yield

    return transaction, savepoint


def check_expected(batch: StreamAppend, actual: int) -> None:
    """`VersionConflict` when the batch expects another version than the stream's `actual` one."""
    if batch.expected_version is not None and batch.expected_version != actual:
        raise VersionConflict(batch.stream_type, batch.stream_id, batch.expected_version, actual)


def stream_starts(
    batches: Sequence[StreamAppend], stream_end: Callable[[str, str], int]
) -> list[int]:
    """The version each batch appends after, every expected version checked before any write.

    `stream_end(stream_type, stream_id)` is the stream's stored version; a stream named twice is
    checked against the end its earlier batch leaves.
    """
    ends: dict[tuple[str, str], int] = {}
    starts: list[int] = []
    for batch in batches:
        key = (batch.stream_type, batch.stream_id)
        actual = ends.get(key)
        if actual is None:
            actual = stream_end(*key)
        check_expected(batch, actual)
        starts.append(actual)
        ends[key] = actual + len(batch.events)
    return starts


def stored(batch: StreamAppend, event: NewEvent, version: int, position: int) -> StoredEvent:
    """The row of one appended event."""
    return StoredEvent(
        batch.stream_type,
        batch.stream_id,
        version,
        position,
        event.type,
        event.schema_version,
        event.data,
        event.event_id,
        event.recorded_at,
        event.actor_id,
        event.correlation_id,
        event.causation_id,
        event.metadata,
    )


def numbered(
    batches: Sequence[StreamAppend], starts: Sequence[int], last_position: int
) -> list[StoredEvent]:
    """The rows of `batches` in order: versions after each batch's start, positions after
    `last_position`, one apart (for a backend whose writers serialise)."""
    rows: list[StoredEvent] = []
    position = last_position
    for batch, start in zip(batches, starts, strict=True):
        for version, event in enumerate(batch.events, start=start + 1):
            position += 1
            rows.append(stored(batch, event, version, position))
    return rows
