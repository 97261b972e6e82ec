"""In-memory storage: the reference backend, one process, lost on exit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from ._record import Checkpoint, Storage, StoredEvent, StoredSnapshot, StreamAppend
from ._shared import numbered, refuse_negative, stream_starts, transactions

_Undo = list[Callable[[], object]]
_K = TypeVar("_K")
_V = TypeVar("_V")


def memory_storage() -> Storage:
    """A fresh in-memory storage; every transaction holds one lock, so they serialise."""
    lock = threading.RLock()
    appended = threading.Condition()
    waiting: list[None] = []  # one entry per thread in wait_for_events
    leases: dict[str, tuple[str, float]] = {}
    undo_log: ContextVar[_Undo | None] = ContextVar("memory_undo", default=None)
    log: list[StoredEvent] = []
    streams: dict[tuple[str, str], list[StoredEvent]] = {}
    snapshots: dict[tuple[str, str], list[StoredSnapshot]] = {}
    kept_checkpoints: dict[str, Checkpoint] = {}
    documents: dict[str, dict[str, str]] = {}

    @contextmanager
    def outermost() -> Iterator[None]:
        with lock:
            undo: _Undo = []
            token = undo_log.set(undo)
            try:
                yield
            except BaseException:
                for step in reversed(undo):
                    step()
                raise
            finally:
                undo_log.reset(token)

    @contextmanager
    def savepoint_in(undo: _Undo) -> Iterator[None]:
        mark = len(undo)
        try:
            yield
        except BaseException:
            for step in reversed(undo[mark:]):
                step()
            del undo[mark:]
            raise

    transaction, savepoint = transactions(undo_log, outermost, savepoint_in)

    def record(step: Callable[[], object]) -> None:
        undo = undo_log.get()
        if undo is not None:
            undo.append(step)

    def append(batches: Sequence[StreamAppend]) -> Sequence[StoredEvent]:
        with transaction():
            starts = stream_starts(batches, lambda t, i: len(streams.get((t, i), ())))
            rows = numbered(batches, starts, len(log))  # position p is log[p - 1]
            start = len(log)
            log.extend(rows)
            lengths: dict[tuple[str, str], int] = {}  # each stream's length before
            for row in rows:
                key = (row.stream_type, row.stream_id)
                stream = streams.setdefault(key, [])
                lengths.setdefault(key, len(stream))
                stream.append(row)

            def undo() -> None:
                del log[start:]
                for key, length in lengths.items():
                    if length:
                        del streams[key][length:]
                    else:
                        del streams[key]

            record(undo)
        if rows and waiting:  # waking nobody is a lock and a call per append: skip it
            with appended:
                appended.notify_all()
        return rows

    def read_stream(
        stream_type: str, stream_id: str, after: int, up_to: int | None
    ) -> Sequence[StoredEvent]:
        refuse_negative("read_stream", after=after, up_to=up_to)
        with lock:
            stream = streams.get((stream_type, stream_id), [])
            return stream[after:up_to]

    def read_all(after: int, limit: int) -> Sequence[StoredEvent]:
        refuse_negative("read_all", after=after, limit=limit)
        with lock:
            return log[after : after + limit]  # positions are 1..n, so position p is log[p-1]

    def read_committed(after: int, limit: int) -> Sequence[StoredEvent]:
        refuse_negative("read_committed", after=after, limit=limit)
        return read_all(after, limit)  # one writer at a time: every committed row is final

    def lease(name: str, owner: str, seconds: float) -> bool:
        with transaction():
            now = time.monotonic()
            held = leases.get(name)
            if held is not None and held[0] != owner and held[1] > now:
                return False
            leases[name] = (owner, now + seconds)
            record(lambda: _restore(leases, name, held))
            return True

    def release(name: str, owner: str) -> None:
        with transaction():
            held = leases.get(name)
            if held is not None and held[0] == owner:
                del leases[name]
                record(lambda: _restore(leases, name, held))

    def count_after(position: int) -> int:
        refuse_negative("count_after", position=position)
        with lock:
            return max(len(log) - position, 0)

    def wait_for_events(timeout: float) -> bool:
        with appended:
            # Counted under the condition's lock, so an append that sees no waiter
            # happened before this wait began: it was not this wait's to see anyway.
            waiting.append(None)
            try:
                return appended.wait(timeout)
            finally:
                waiting.pop()

    def last_position() -> int:
        with lock:
            return len(log)

    def read_snapshot(stream_type: str, stream_id: str, up_to: int | None) -> StoredSnapshot | None:
        refuse_negative("read_snapshot", up_to=up_to)
        with lock:
            for snap in reversed(snapshots.get((stream_type, stream_id), [])):
                if up_to is None or snap.version <= up_to:
                    return snap
            return None

    def write_snapshot(snapshot: StoredSnapshot) -> None:
        with transaction():
            key = (snapshot.stream_type, snapshot.stream_id)
            kept = snapshots.setdefault(key, [])
            before = list(kept)
            kept[:] = sorted(
                [s for s in kept if s.version != snapshot.version] + [snapshot],
                key=lambda s: s.version,
            )
            record(lambda: kept.__setitem__(slice(None), before))

    def read_checkpoint(name: str) -> Checkpoint | None:
        with lock:
            return kept_checkpoints.get(name)

    def write_checkpoint(checkpoint: Checkpoint) -> None:
        with transaction():
            before = kept_checkpoints.get(checkpoint.name)
            kept_checkpoints[checkpoint.name] = checkpoint
            record(lambda: _restore(kept_checkpoints, checkpoint.name, before))

    def read_checkpoints(names: Sequence[str]) -> dict[str, Checkpoint]:
        with lock:  # a transaction holds the lock already: nothing else to hold
            return {name: kept_checkpoints[name] for name in names if name in kept_checkpoints}

    def write_checkpoints(checkpoints: Sequence[Checkpoint]) -> None:
        with transaction():
            for checkpoint in checkpoints:
                write_checkpoint(checkpoint)

    def get_documents(projection: str, keys: Sequence[str]) -> dict[str, str]:
        with lock:
            docs = documents.get(projection, {})
            return {key: docs[key] for key in keys if key in docs}

    def put_documents(projection: str, items: Sequence[tuple[str, str | None]]) -> None:
        with transaction():
            for key, data in items:
                put_document(projection, key, data)

    def get_document(projection: str, key: str) -> str | None:
        with lock:
            return documents.get(projection, {}).get(key)

    def put_document(projection: str, key: str, data: str | None) -> None:
        with transaction():
            docs = documents.setdefault(projection, {})
            before = docs.get(key)
            if data is None:
                docs.pop(key, None)
            else:
                docs[key] = data
            record(lambda: _restore(docs, key, before))

    def all_documents(projection: str) -> Sequence[tuple[str, str]]:
        with lock:
            return sorted(documents.get(projection, {}).items())

    def clear_documents(projection: str) -> None:
        with transaction():
            before = documents.pop(projection, None)
            record(lambda: _restore(documents, projection, before))

    def lock_stream(stream_type: str, stream_id: str) -> None:
        """Nothing to do: a memory transaction already holds the one lock."""

    def close() -> None:
        """Nothing to release: the storage lives as long as it is referenced."""

    return Storage(
        name="memory",
        append=append,
        read_stream=read_stream,
        read_all=read_all,
        read_committed=read_committed,
        last_position=last_position,
        count_after=count_after,
        wait_for_events=wait_for_events,
        lock_stream=lock_stream,
        read_snapshot=read_snapshot,
        write_snapshot=write_snapshot,
        read_checkpoint=read_checkpoint,
        write_checkpoint=write_checkpoint,
        read_checkpoints=read_checkpoints,
        write_checkpoints=write_checkpoints,
        get_document=get_document,
        put_document=put_document,
        get_documents=get_documents,
        put_documents=put_documents,
        all_documents=all_documents,
        clear_documents=clear_documents,
        lease=lease,
        release=release,
        transaction=transaction,
        savepoint=savepoint,
        connection=None,
        close=close,
    )


def _restore(mapping: dict[_K, _V], key: _K, value: _V | None) -> None:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value
