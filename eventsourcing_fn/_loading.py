"""Loading a stream's state: the newest usable snapshot, then the events after it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ._aggregate import Aggregate
from ._arguments import short
from ._codec import Codec, InvalidPayload
from ._envelope import Loaded
from ._errors import ConfigurationError, StorageDataError
from ._rows import decode
from .storage import Storage, StoredSnapshot
from .storage._shared import Payload, ReadPayloads, StreamReader

S = TypeVar("S")
_log = logging.getLogger("eventsourcing_fn")


def maybe_snapshot(
    storage: Storage,
    codec: Codec,
    aggregate: Aggregate[Any],
    sid: str,
    before: int,
    after: int,
    state: object,
) -> None:
    """Write a snapshot when an append carried the stream across a multiple of `every`."""
    every = aggregate.snapshot_every
    if every is None or before // every == after // every:
        return
    try:
        data = codec.encode(state)
    except InvalidPayload as exc:
        raise ConfigurationError(
            f"aggregate {aggregate.name!r}: its state cannot be snapshotted ({exc})"
        ) from exc
    storage.write_snapshot(
        StoredSnapshot(aggregate.name, sid, after, aggregate.snapshot_version, data)
    )


def load_state(
    storage: Storage, codec: Codec, aggregate: Aggregate[S], sid: str, up_to: int | None = None
) -> Loaded[S]:
    """A stream's state after `up_to` events (all when None), from its newest usable snapshot."""
    read = payload_reader(storage)
    state, version = aggregate.initial, 0
    rows: Sequence[Payload] = ()
    if aggregate.snapshot_every is not None:
        snap = storage.read_snapshot(aggregate.name, sid, up_to)
        if snap is not None:
            state, version, rows = _from_snapshot(read, codec, aggregate, snap, up_to)
    if version == 0:
        rows = read(aggregate.name, sid, 0, up_to)
    if not rows:
        return Loaded(sid, version, state)
    # A stream's events come in runs of one type: look the reader and evolve up once a run.
    kind_read, version_read, read_event = "", 0, _unset
    cls: type | None = None
    evolve: Callable[[S, Any], S] = _unset
    for number, kind, schema_version, data in rows:
        try:
            if kind != kind_read or schema_version != version_read:
                read_event = codec.reader(kind, schema_version)
                kind_read, version_read = kind, schema_version
            event = read_event(data)
        except Exception:  # read again below, from the row that names the fault
            event = _decode_row(storage, codec, aggregate.name, sid, number)
        if type(event) is not cls:
            evolve, cls = aggregate.evolver(event), type(event)
        state = evolve(state, event)
    return Loaded(sid, rows[-1][0], state)


def _unset(*_: Any) -> Any:
    raise AssertionError("looked up before use")


def payload_reader(storage: Storage) -> ReadPayloads:
    """How to read a stream's (version, type, schema_version, data) rows from `storage`."""
    read_stream = storage.read_stream
    if isinstance(read_stream, StreamReader):
        return read_stream.payloads

    def payloads(
        stream_type: str, stream_id: str, after: int, up_to: int | None
    ) -> Sequence[Payload]:
        rows = read_stream(stream_type, stream_id, after, up_to)
        return [(row.version, row.type, row.schema_version, row.data) for row in rows]

    return payloads


def _decode_row(storage: Storage, codec: Codec, stream_type: str, sid: str, version: int) -> Any:
    """The event of one stored row, read whole: a fault names its stream, version and position."""
    for row in storage.read_stream(stream_type, sid, version - 1, version):
        return decode(codec, row)
    raise StorageDataError(f"stream {stream_type}/{short(sid)}: version {version} vanished")


def _from_snapshot(
    read: ReadPayloads,
    codec: Codec,
    aggregate: Aggregate[S],
    snap: StoredSnapshot,
    up_to: int | None,
) -> tuple[S, int, Sequence[Payload]]:
    """(state, version, the rows after it), or version 0 when the snapshot is unusable."""
    where = f"snapshot of {aggregate.name}/{short(snap.stream_id)} at version {snap.version}"
    if snap.snapshot_version != aggregate.snapshot_version:
        return aggregate.initial, 0, ()  # taken of an older state class: expected, quiet
    # Read from the snapshot's own version: its event must exist, or the snapshot is
    # past the stream's end and folding on from it would invent versions.
    rows = read(aggregate.name, snap.stream_id, snap.version - 1, up_to)
    if not rows or rows[0][0] != snap.version:
        _log.warning("ignoring the %s: the stream has no such version", where)
        return aggregate.initial, 0, ()
    try:
        state = codec.decode_state(snap.data, type(aggregate.initial))
    except Exception as exc:  # an unreadable snapshot is ignored: rebuild from events
        _log.warning("ignoring the unreadable %s: %s: %s", where, type(exc).__name__, exc)
        return aggregate.initial, 0, ()
    return state, snap.version, rows[1:]
