"""Read-only access to a store, for inspection: nothing created, switched or written.

Each reader is a `Storage` record whose writing callables refuse, plus the listings the record
has no callable for (streams, checkpoints). The SQL backends' readers run those backends' own
queries (`_sqlite_reader`, `_postgres_reader`), so a reader cannot drift from what the writers
store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn

import attrs

from ..storage import Checkpoint, Storage
from ._errors import ReadOnlyStore

_WRITES = (
    "append",
    "write_snapshot",
    "write_checkpoint",
    "write_checkpoints",
    "put_document",
    "put_documents",
    "clear_documents",
    "lock_stream",
    "savepoint",
    "lease",
    "release",
)


@attrs.frozen
class StreamInfo:
    """One stream: its type, id, version (its number of events) and when it last changed."""

    stream_type: str
    stream_id: str
    version: int
    updated: datetime


@attrs.frozen
class Reader:
    """A read-only storage, what it is (for messages), and listings the record lacks."""

    storage: Storage
    where: str
    streams: Callable[[str | None], list[StreamInfo]]  # of one type, or of every type
    stream_types: Callable[[], list[str]]
    checkpoints: Callable[[], list[Checkpoint]] | None  # None: names come from the app

    def close(self) -> None:
        """Release the reader's connections."""
        self.storage.close()


def _refuse(what: str) -> Callable[..., NoReturn]:
    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise ReadOnlyStore(f"{what}: the store is open read-only, for inspection")

    return refuse


def read_only(storage: Storage) -> Storage:
    """`storage` with every writing callable replaced by one that refuses."""
    refusers: dict[str, Any] = {name: _refuse(name) for name in _WRITES}
    return attrs.evolve(storage, **refusers)


def _nothing_to_wait_for(timeout: float) -> bool:
    time.sleep(timeout)  # a reader cannot LISTEN in a read-only session: it polls
    return False


@contextmanager
def _no_transaction() -> Iterator[None]:
    yield  # every read is a read-only statement of its own


def record(name: str, reads: dict[str, Any], close: Callable[[], None]) -> Storage:
    """A `Storage` of `reads` (the reading callables), refusing every write."""
    return Storage(
        name=name,
        transaction=_no_transaction,
        close=close,
        wait_for_events=_nothing_to_wait_for,
        **{field: _refuse(field) for field in _WRITES},
        **reads,
    )


def app_reader(storage: Storage, where: str) -> Reader:
    """A reader over an app's own storage (its location unknown): listings scan the log."""

    def streams(stream_type: str | None) -> list[StreamInfo]:
        found: dict[tuple[str, str], StreamInfo] = {}
        for row in storage.iter_all(0):
            if stream_type is None or row.stream_type == stream_type:
                key = (row.stream_type, row.stream_id)
                known = found.get(key)
                if known is None or known.version < row.version:
                    found[key] = StreamInfo(*key, row.version, row.recorded_at)
        return sorted(found.values(), key=lambda s: (s.stream_type, s.stream_id))

    def stream_types() -> list[str]:
        return sorted({s.stream_type for s in streams(None)})

    return Reader(read_only(storage), where, streams, stream_types, None)


def streams_query(select: str, mark: str, stream_type: str | None) -> tuple[str, tuple[str, ...]]:
    """The streams listing, of every type or of one (`mark`: the driver's placeholder)."""
    group = " GROUP BY stream_type, stream_id"
    if stream_type is None:
        return select + group, ()
    return f"{select} WHERE stream_type = {mark}{group}", (stream_type,)


def stream_infos(rows: list[Any], *, text_times: bool) -> list[StreamInfo]:
    """Rows of a streams listing, in (type, id) order; `text_times`: ISO text, not datetimes."""
    infos = [
        StreamInfo(t, sid, int(v), datetime.fromisoformat(at) if text_times else at)
        for t, sid, v, at in rows
    ]
    return sorted(infos, key=lambda s: (s.stream_type, s.stream_id))
