"""The inspection commands: streams, events, tail, state, projections. They only read."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from .._aggregate import Aggregate
from .._codec import InvalidPayload
from .._process import ProcessManager
from .._projection import DocumentProjection, SqlProjection
from .._reactions import Component, cursor
from .._store import EventStore
from ..storage import Checkpoint, StoredEvent
from . import _render as out
from ._errors import BadInput
from ._open import Inspection


def streams(inspection: Inspection, stream_type: str | None, as_json: bool) -> None:
    """Stream types and ids with their versions."""
    if stream_type is not None:
        _check_stream_type(inspection, stream_type)
    found = inspection.reader.streams(stream_type)
    if as_json:
        out.print_json(
            [
                {
                    "stream_type": s.stream_type,
                    "stream_id": s.stream_id,
                    "version": s.version,
                    "updated": s.updated.isoformat(),
                }
                for s in found
            ]
        )
    elif found:
        out.console().print(out.streams_table(found))
    else:
        out.say(f"no streams in {inspection.reader.where}")


def events(inspection: Inspection, stream_type: str, stream_id: str, as_json: bool) -> None:
    """One stream's events with their envelopes."""
    _check_stream_type(inspection, stream_type)
    rows = inspection.reader.storage.read_stream(stream_type, stream_id, 0, None)
    if as_json:
        out.print_json([out.event_json(row) for row in rows])
    elif rows:
        decoded = [(row, _decode(inspection.store, row)) for row in rows]
        out.console().print(out.events_table(decoded))
    else:
        out.say(f"stream {stream_type}/{stream_id} has no events")


def tail(inspection: Inspection, start: int, follow: bool, poll: float, as_json: bool) -> None:
    """The log from position `start` on; `follow`: then wait for more, until Ctrl-C."""
    storage = inspection.reader.storage
    after = max(start - 1, 0)
    collected: list[dict[str, Any]] = []
    console = out.console()
    with _stopped_by_signals():
        try:
            while True:
                rows = storage.read_all(after, 500)
                for row in rows:
                    if not as_json:
                        console.print(out.event_line(row, _decode(inspection.store, row)))
                    elif follow:
                        out.print_json_line(out.event_json(row))
                    else:
                        collected.append(out.event_json(row))
                if rows:
                    after = rows[-1].position
                elif not follow:
                    break
                else:
                    time.sleep(poll)
        except _Stop:
            pass
    if as_json and not follow:
        out.print_json(collected)


class _Stop(Exception):
    """Ctrl-C or SIGTERM: stop following, quietly."""


@contextmanager
def _stopped_by_signals() -> Iterator[None]:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def state(
    inspection: Inspection, stream_type: str, stream_id: str, at: int | None, as_json: bool
) -> None:
    """An aggregate's state, folded by the app's own functions, now or at a version."""
    store = inspection.store
    if store is None:
        raise BadInput("state needs --app module:attribute: the app's evolve functions fold it")
    aggregate = _aggregate(store, stream_type)
    loaded = store.load(aggregate, stream_id, at_version=at)
    if as_json:
        out.print_json(
            {
                "stream_type": stream_type,
                "stream_id": stream_id,
                "version": loaded.version,
                "state": _state_json(store, loaded.state),
            }
        )
    else:
        out.console().print(out.state_view(stream_type, stream_id, loaded.version, loaded.state))


def projections(inspection: Inspection, as_json: bool) -> None:
    """Each component's checkpoint position and how far it lags behind the log."""
    storage = inspection.reader.storage
    if inspection.components is not None:
        named = [(c.name, _kind(c)) for c in inspection.components]
        found = storage.read_checkpoints([name for name, _ in named])
        checkpoints: list[tuple[str, str | None, Checkpoint | None]] = [
            (name, kind, found.get(name)) for name, kind in named
        ]
    else:
        listed = inspection.reader.checkpoints
        assert listed is not None  # a store opened from --store can list its checkpoints
        checkpoints = [(c.name, None, c) for c in listed()]
    standings = [_standing(inspection, *entry) for entry in checkpoints]
    if as_json:
        out.print_json(standings)
    elif standings:
        out.console().print(out.standings_table(standings))
    else:
        out.say(f"no projections or process managers in {inspection.reader.where}")


def _standing(
    inspection: Inspection, name: str, kind: str | None, checkpoint: Checkpoint | None
) -> dict[str, Any]:
    storage = inspection.reader.storage
    stored = checkpoint.position if checkpoint is not None else 0
    position = cursor(checkpoint)  # a replay under way keeps a negative mark
    lag = storage.count_after(position)
    oldest = storage.read_all(position, 1) if lag else []
    behind = (datetime.now(UTC) - oldest[0].recorded_at).total_seconds() if oldest else None
    if checkpoint is None:
        status = "not started"
    elif stored < 0:
        status = "replaying"
    else:
        status = "behind" if lag else "level"
    return {
        "name": name,
        "kind": kind,
        "position": position,
        "lag": lag,
        "lag_seconds": behind,
        "status": status,
    }


def _kind(component: Component) -> str:
    if isinstance(component, ProcessManager):
        return "process manager"
    if isinstance(component, DocumentProjection):
        return "documents"
    if isinstance(component, SqlProjection):
        return "sql"
    return "projection"


def _check_stream_type(inspection: Inspection, stream_type: str) -> None:
    known = set(inspection.reader.stream_types())
    if inspection.store is not None:
        known.update(inspection.store._aggregates)
    if stream_type not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise BadInput(f"unknown stream type {stream_type!r} (known: {listed})")


def _aggregate(store: EventStore, name: str) -> Aggregate[Any]:
    aggregate = store._aggregates.get(name)
    if aggregate is None:
        listed = ", ".join(sorted(store._aggregates)) or "none"
        raise BadInput(f"unknown stream type {name!r}: the app has no such aggregate ({listed})")
    return aggregate


def _decode(store: EventStore | None, row: StoredEvent) -> object | None:
    """The typed event, or None to show it as stored (no app, or none of its classes reads it)."""
    if store is None:
        return None
    try:
        event: object = store.codec.reader(row.type, row.schema_version)(row.data)
    except Exception:  # unreadable here is still worth showing: as stored
        return None
    return event


def _state_json(store: EventStore, state: object) -> Any:
    try:
        return json.loads(store.codec.encode(state))
    except InvalidPayload:
        return repr(state)  # a state no codec can write still reads for people
