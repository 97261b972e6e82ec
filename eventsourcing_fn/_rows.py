"""Pure: between stored rows and envelopes — the append a command's events make, the
`Recorded` a stored row reads back as, and the errors that name them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from . import _arguments
from ._arguments import short
from ._codec import Codec, dumps, loads
from ._decision import Decided
from ._envelope import Context, Recorded
from ._errors import (
    ConcurrencyError,
    EventValidationError,
    StorageDataError,
    UnknownEventTypeError,
)
from ._ids import uuid4s
from .storage import NewEvent, OrderConflict, StoredEvent, StreamAppend, VersionConflict


def where(row: StoredEvent) -> str:
    """Where a row sits: its stream, version and position, for messages."""
    return (
        f"stream {row.stream_type}/{short(row.stream_id)} version {row.version} "
        f"at position {row.position}"
    )


def context_metadata(
    aggregate: str, sid: str, ctx: Context, events: Sequence[Decided]
) -> str | EventValidationError:
    """The context's metadata as JSON text, or why the context cannot be stored."""
    if not ctx.metadata and ctx.actor_id is ctx.correlation_id is ctx.causation_id is None:
        return "{}"  # no context set: the common case, with nothing to check
    problem: tuple[str, str] | None = None
    for field in ("actor_id", "correlation_id", "causation_id"):
        value = getattr(ctx, field)
        if value is not None and not isinstance(value, str):
            problem = (field, f"expected a str or None, got {type(value).__name__}")
        elif value is not None and (why := _arguments.text(value)):
            problem = (field, why)
        if problem:
            break
    else:
        try:
            if not isinstance(ctx.metadata, Mapping) or not all(
                isinstance(k, str) for k in ctx.metadata
            ):
                raise TypeError("expected a dict with str keys")
            return dumps(dict(ctx.metadata))
        except (TypeError, ValueError) as exc:
            problem = ("metadata", f"not JSON: {exc}")
    field, why = problem
    first = events[0]
    return EventValidationError(
        f"aggregate {aggregate!r}, stream {short(sid)}: the context's {field} {why}"
        f" (event {first.type}); nothing appended",
        aggregate=aggregate,
        stream_id=sid,
        command=first.command,
        event_type=first.type,
        field=field,
    )


_new = tuple.__new__


def stream_append(
    stream_type: str,
    sid: str,
    expected: int | None,
    events: Sequence[Decided],
    ctx: Context,
    metadata: str,
) -> StreamAppend:
    """The rows that append a command's events to one stream, stamped with the context."""
    now = datetime.now(UTC)
    actor, correlation, causation = ctx.actor_id, ctx.correlation_id, ctx.causation_id
    return StreamAppend(
        stream_type,
        sid,
        expected,
        [
            _new(NewEvent, (t, v, data, event_id, now, actor, correlation, causation, metadata))
            for (_, t, v, data, _), event_id in zip(events, uuid4s(len(events)), strict=True)
        ],
    )


def recorded(event: object, row: StoredEvent, metadata: Any) -> Recorded[Any]:
    """The envelope of a stored row whose event is already decoded."""
    # Positional, in field order: this runs once per event on every write and read.
    return Recorded(
        event,
        row.type,
        row.schema_version,
        row.stream_type,
        row.stream_id,
        row.version,
        row.position,
        row.event_id,
        row.recorded_at,
        row.actor_id,
        row.correlation_id,
        row.causation_id,
        metadata,
    )


def decode(codec: Codec, row: StoredEvent) -> Any:
    """The event object of a stored row, through the upcasters; faults name the row."""
    try:
        read = codec.reader(row.type, row.schema_version)
    except UnknownEventTypeError as exc:
        raise UnknownEventTypeError(
            f"{exc} ({where(row)})", type_name=row.type, version=row.schema_version
        ) from None
    try:
        return read(row.data)
    except Exception as exc:  # corrupt or mismatched stored data is a fault, named
        raise StorageDataError(
            f"cannot read event {row.type!r} version {row.schema_version} in {where(row)}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def record_of(codec: Codec, row: StoredEvent) -> Recorded[Any]:
    """A stored row as its envelope, event and metadata decoded."""
    try:
        # Most events carry none: skip the parser for the empty object.
        metadata = {} if row.metadata == "{}" else loads(row.metadata)
    except ValueError as exc:
        raise StorageDataError(
            f"corrupt metadata of stream {row.stream_type}/{short(row.stream_id)} "
            f"version {row.version} at position {row.position}: {exc}"
        ) from exc
    return recorded(decode(codec, row), row, metadata)


def conflict_error(
    aggregate: str, sid: str, commands: Sequence[object], conflict: VersionConflict
) -> ConcurrencyError:
    """The failure of a command that lost a race (or would break the stream's log order)."""
    if isinstance(conflict, OrderConflict):
        why = (
            f"version {conflict.actual} was appended by a transaction that began after this"
            " one, and appending now would put the stream out of version order in the log;"
            " retry the transaction"
        )
    else:
        expected = "NEW" if conflict.expected == 0 else conflict.expected
        why = f"expected version {expected}, found {conflict.actual}"
    return ConcurrencyError(
        f"aggregate {aggregate!r}, stream {short(sid)}: {why}; nothing appended",
        aggregate=aggregate,
        stream_id=sid,
        command=commands[0] if len(commands) == 1 else tuple(commands),
        expected=conflict.expected,
        actual=conflict.actual,
    )
