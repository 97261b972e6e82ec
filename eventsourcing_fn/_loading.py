"""Loading a stream's state: the newest usable snapshot, then the events after it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, TypeVar

from ._aggregate import Aggregate
from ._arguments import short
from ._codec import Codec, InvalidPayload
from ._envelope import Loaded
from ._errors import ConfigurationError
from ._rows import decode
from .storage import Storage, StoredEvent, StoredSnapshot

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
    state, version = aggregate.initial, 0
    rows: Sequence[StoredEvent] = ()
    if aggregate.snapshot_every is not None:
        snap = storage.read_snapshot(aggregate.name, sid, up_to)
        if snap is not None:
            state, version, rows = _from_snapshot(storage, codec, aggregate, snap, up_to)
    if version == 0:
        rows = storage.read_stream(aggregate.name, sid, 0, up_to)
    for row in rows:
        event = decode(codec, row)
        state = aggregate.evolver(event)(state, event)
    return Loaded(sid, rows[-1].version if rows else version, state)


def _from_snapshot(
    storage: Storage, codec: Codec, aggregate: Aggregate[S], snap: StoredSnapshot, up_to: int | None
) -> tuple[S, int, Sequence[StoredEvent]]:
    """(state, version, the rows after it), or version 0 when the snapshot is unusable."""
    where = f"snapshot of {aggregate.name}/{short(snap.stream_id)} at version {snap.version}"
    if snap.snapshot_version != aggregate.snapshot_version:
        return aggregate.initial, 0, ()  # taken of an older state class: expected, quiet
    # Read from the snapshot's own version: its event must exist, or the snapshot is
    # past the stream's end and folding on from it would invent versions.
    rows = storage.read_stream(aggregate.name, snap.stream_id, snap.version - 1, up_to)
    if not rows or rows[0].version != snap.version:
        _log.warning("ignoring the %s: the stream has no such version", where)
        return aggregate.initial, 0, ()
    try:
        state = codec.decode_state(snap.data, type(aggregate.initial))
    except Exception as exc:  # an unreadable snapshot is ignored: rebuild from events
        _log.warning("ignoring the unreadable %s: %s: %s", where, type(exc).__name__, exc)
        return aggregate.initial, 0, ()
    return state, snap.version, rows[1:]
