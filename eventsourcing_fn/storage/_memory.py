"""In-memory storage: the reference backend, one process, lost on exit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from ._record import (
    Checkpoint,
    Storage,
    StoredEvent,
    StoredSnapshot,
    StreamAppend,
    VersionConflict,
)

_Undo = list[Callable[[], object]]
_K = TypeVar("_K")
_V = TypeVar("_V")


def memory_storage() -> Storage:
    """A fresh in-memory storage; every transaction holds one lock, so they serialise."""
    lock = threading.RLock()
    appended = threading.Condition()
    leases: dict[str, tuple[str, float]] = {}
    undo_log: ContextVar[_Undo | None] = ContextVar("memory_undo", default=None)
    log: list[StoredEvent] = []
    streams: dict[tuple[str, str], list[StoredEvent]] = {}
    snapshots: dict[tuple[str, str], list[StoredSnapshot]] = {}
    checkpoints: dict[str, Checkpoint] = {}
    documents: dict[str, dict[str, str]] = {}

    @contextmanager
    def transaction() -> Iterator[None]:
        if undo_log.get() is not None:
            yield  # nested: join the outer transaction
            return
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
    def savepoint() -> Iterator[None]:
        undo = undo_log.get()
        if undo is None:
            with transaction():
                yield
            return
        mark = len(undo)
        try:
            yield
        except BaseException:
            for step in reversed(undo[mark:]):
                step()
            del undo[mark:]
            raise

    def record(step: Callable[[], object]) -> None:
        undo = undo_log.get()
        if undo is not None:
            undo.append(step)

    def append(batches: Sequence[StreamAppend]) -> Sequence[StoredEvent]:
        with transaction():
            ends: dict[tuple[str, str], int] = {}
            for batch in batches:  # check every stream first, so a conflict writes nothing
                key = (batch.stream_type, batch.stream_id)
                actual = ends.get(key, len(streams.get(key, ())))
                expected = batch.expected_version
                if expected is not None and expected != actual:
                    raise VersionConflict(batch.stream_type, batch.stream_id, expected, actual)
                ends[key] = actual + len(batch.events)
            out: list[StoredEvent] = []
            for batch in batches:
                out.extend(_append_stream(batch))
        if out:
            with appended:
                appended.notify_all()
        return out

    def _append_stream(batch: StreamAppend) -> list[StoredEvent]:
        key = (batch.stream_type, batch.stream_id)
        stream = streams.get(key)
        if stream is None:
            stream = streams[key] = []
            record(lambda: streams.pop(key, None))
        actual = len(stream)  # expected versions were checked before anything was written
        rows = [
            StoredEvent(
                stream_type=batch.stream_type,
                stream_id=batch.stream_id,
                version=actual + i,
                position=len(log) + i,
                type=event.type,
                schema_version=event.schema_version,
                data=event.data,
                event_id=event.event_id,
                recorded_at=event.recorded_at,
                actor_id=event.actor_id,
                correlation_id=event.correlation_id,
                causation_id=event.causation_id,
                metadata=event.metadata,
            )
            for i, event in enumerate(batch.events, start=1)
        ]
        stream.extend(rows)
        log.extend(rows)
        start = len(log) - len(rows)

        def undo() -> None:
            del stream[actual:]
            del log[start:]

        record(undo)
        return rows

    def read_stream(
        stream_type: str, stream_id: str, after: int, up_to: int | None
    ) -> Sequence[StoredEvent]:
        with lock:
            stream = streams.get((stream_type, stream_id), [])
            return stream[after:up_to]

    def read_all(after: int, limit: int) -> Sequence[StoredEvent]:
        with lock:
            return log[after : after + limit]  # positions are 1..n, so position p is log[p-1]

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
        with lock:
            return max(len(log) - position, 0)

    def wait_for_events(timeout: float) -> bool:
        with appended:
            return appended.wait(timeout)

    def last_position() -> int:
        with lock:
            return len(log)

    def read_snapshot(stream_type: str, stream_id: str, up_to: int | None) -> StoredSnapshot | None:
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
            return checkpoints.get(name)

    def write_checkpoint(checkpoint: Checkpoint) -> None:
        with transaction():
            before = checkpoints.get(checkpoint.name)
            checkpoints[checkpoint.name] = checkpoint
            record(lambda: _restore(checkpoints, checkpoint.name, before))

    def read_checkpoints(names: Sequence[str]) -> dict[str, Checkpoint]:
        with lock:  # a transaction holds the lock already: nothing else to hold
            return {name: checkpoints[name] for name in names if name in checkpoints}

    def write_checkpoints(many: Sequence[Checkpoint]) -> None:
        with transaction():
            for checkpoint in many:
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

    return Storage(
        name="memory",
        append=append,
        read_stream=read_stream,
        read_all=read_all,
        read_snapshot=read_snapshot,
        write_snapshot=write_snapshot,
        read_checkpoint=read_checkpoint,
        write_checkpoint=write_checkpoint,
        get_document=get_document,
        put_document=put_document,
        all_documents=all_documents,
        clear_documents=clear_documents,
        lock_stream=lock_stream,
        transaction=transaction,
        close=lambda: None,
        read_checkpoints=read_checkpoints,
        write_checkpoints=write_checkpoints,
        get_documents=get_documents,
        put_documents=put_documents,
        savepoint=savepoint,
        last_position=last_position,
        read_committed=read_all,
        lease=lease,
        release=release,
        count_after=count_after,
        wait_for_events=wait_for_events,  # one writer at a time: every committed row is final
    )


def _restore(mapping: dict[_K, _V], key: _K, value: _V | None) -> None:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value
