"""What every backend does alike: bounds, nested transactions, expected versions, new rows,
the narrow stream read that loading uses, and a first-come-first-served writer lock."""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from functools import partial
from typing import Protocol, TypeVar

from ._record import (
    NewEvent,
    ReadStream,
    Savepoint,
    StoredEvent,
    StreamAppend,
    Transaction,
    VersionConflict,
)

_Tx = TypeVar("_Tx")
Payload = tuple[int, str, int, str]
"""One row of a stream as loading reads it: (version, type, schema_version, data)."""


class ReadPayloads(Protocol):
    def __call__(
        self, stream_type: str, stream_id: str, after: int, up_to: int | None
    ) -> Sequence[Payload]:
        """The rows `ReadStream` returns, each as (version, type, schema_version, data)."""
        ...


class StreamReader:
    """A backend's `read_stream`, with `payloads`: the same rows, narrowed to what folding
    a stream needs, so loading skips the columns and the row objects it would not use.

    Loading reads through `payloads` only while this very object is the storage's
    `read_stream`: a wrapper put in its place (`attrs.evolve(storage, read_stream=...)`)
    sees every read, as it would without this.
    """

    __slots__ = ("payloads", "read")

    def __init__(self, read: ReadStream, payloads: ReadPayloads) -> None:
        self.read = read
        self.payloads = payloads

    def __call__(
        self, stream_type: str, stream_id: str, after: int, up_to: int | None
    ) -> Sequence[StoredEvent]:
        return self.read(stream_type, stream_id, after, up_to)

    def __repr__(self) -> str:
        return f"StreamReader({self.read!r})"


def refuse_negative(function: str, **bounds: int | None) -> None:
    """`ValueError` naming the first of `bounds` (positions, versions, counts) below 0."""
    for parameter, value in bounds.items():
        if value is not None and value < 0:
            raise ValueError(f"{function}({parameter}={value!r}): must be 0 or more")


_JOIN = nullcontext()  # a transaction opened inside another: the outer one goes on


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

    # Both hand back the block to enter rather than wrap it: they run at least once per command.
    def transaction() -> AbstractContextManager[None]:
        return _JOIN if current.get() is not None else outermost()

    def savepoint() -> AbstractContextManager[None]:
        tx = current.get()
        return outermost() if tx is None else savepoint_in(tx)

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


as_stored = partial(tuple.__new__, StoredEvent)
"""A tuple of a `StoredEvent`'s 13 values, in field order, as that row (no per-field calls)."""


def stored(batch: StreamAppend, event: NewEvent, version: int, position: int) -> StoredEvent:
    """The row of one appended event."""
    return as_stored((batch.stream_type, batch.stream_id, version, position, *event))


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


class FairLock:
    """A lock granted in the order it was asked for, with a timeout.

    A plain lock, like SQLite's sleep-and-retry busy handler, lets a thread that has just
    released take it again before threads that have waited longer: under load some finish
    dozens of turns while others wait for one. Here a releasing holder hands the lock to the
    oldest waiter: a thread waits for those that asked before it, never for one that asked
    after.
    """

    def __init__(self) -> None:
        self._reset()
        _FAIR_LOCKS.add(self)

    def _reset(self) -> None:
        self._guard = threading.Lock()
        self._waiters: deque[tuple[threading.Lock, int]] = deque()
        self._owner: int | None = None  # the thread holding the lock

    def acquire(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the lock: True once held, `TimeoutError` when the
        time runs out; False at once when the calling thread holds it already (it is not
        taken twice: the caller must not release it)."""
        me = threading.get_ident()
        with self._guard:
            if self._owner is None:
                self._owner = me
                return True
            if self._owner == me:
                return False
            waiter = (threading.Lock(), me)
            waiter[0].acquire()
            self._waiters.append(waiter)
        try:
            if waiter[0].acquire(timeout=timeout):
                return True
        except BaseException:
            if self._leave(waiter):
                self.release()  # handed over as the wait was interrupted: pass it on
            raise
        if self._leave(waiter):
            return True  # handed over just as the time ran out
        raise TimeoutError(f"the lock was held by others for {timeout} s")

    def _leave(self, waiter: tuple[threading.Lock, int]) -> bool:
        """Leave the queue; True when the lock was handed to this waiter before it could."""
        with self._guard:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                return True
            return False

    def release(self) -> None:
        """Hand the lock to the oldest waiter, or leave it free."""
        with self._guard:
            if self._waiters:
                turn, self._owner = self._waiters.popleft()
                turn.release()
            else:
                self._owner = None


# Threads do not survive fork(): a lock one of them held or waited for starts free in the child.
_FAIR_LOCKS: weakref.WeakSet[FairLock] = weakref.WeakSet()


def _free_fair_locks() -> None:
    for lock in list(_FAIR_LOCKS):
        lock._reset()


os.register_at_fork(after_in_child=_free_fair_locks)
