"""Pure projection definitions: folds of the global log into a value, documents or SQL rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from ._annotations import caller_locals
from ._envelope import Recorded
from ._handlers import Handler, Handlers

V = TypeVar("V")
D = TypeVar("D")
F = TypeVar("F", bound=Callable[..., Any])

# (event, record) -> the document key; None: no document cares about this event.
KeyFn = Callable[[Any, Recorded[Any]], str | None]


def by_stream_id(event: object, record: Recorded[Any]) -> str:
    """The default document key: the id of the stream the event belongs to."""
    return record.stream_id


def call(handler: Handler, first: Any, record: Recorded[Any]) -> Any:
    """Run one handler on `first` and the record's event (and the record, if it takes it)."""
    if handler.with_record:
        return handler.fn(first, record.event, record)
    return handler.fn(first, record.event)


class Projection(Generic[V]):
    """A fold of the global log into one value: `(view, event[, record]) -> view`."""

    def __init__(self, name: str, *, initial: V, state_type: type | None = None) -> None:
        self.name = name
        self.initial = initial
        self.state_type: type = state_type if state_type is not None else type(initial)
        self.handlers = Handlers("on", f"projection {name!r}")

    def __repr__(self) -> str:
        return f"Projection({self.name!r})"

    def on(self, fn: F) -> F:
        """Register `fn(view, event[, record]) -> view` for the event class(es) it annotates."""
        self.handlers.register(fn, caller_locals())
        return fn

    def apply(self, view: V, record: Recorded[Any]) -> V:
        """The view after one recorded event (unchanged when no handler takes it)."""
        handler = self.handlers.get(type(record.event))
        return view if handler is None else call(handler, view, record)

    def fold(self, records: Iterable[Recorded[Any]], view: V | None = None) -> V:
        """The view after `records`, from `view` (or `initial`)."""
        current: V = self.initial if view is None else view
        for record in records:
            current = self.apply(current, record)
        return current


class DocumentProjection(Generic[D]):
    """A keyed fold: one document per key, `(doc | None, event[, record]) -> doc | None`.

    Returning None deletes the document. The key is `key(event, record)`, by default the
    event's stream id; a key of None leaves the event out.
    """

    def __init__(self, name: str, *, doc_type: type[D], key: KeyFn | None = None) -> None:
        self.name = name
        self.doc_type = doc_type
        self.key: KeyFn = key if key is not None else by_stream_id
        self.keyed_by_stream = key is None
        self.handlers = Handlers("on", f"document projection {name!r}")

    def __repr__(self) -> str:
        return f"DocumentProjection({self.name!r})"

    def on(self, fn: F) -> F:
        """Register `fn(doc | None, event[, record]) -> doc | None` for the annotated class(es)."""
        self.handlers.register(fn, caller_locals())
        return fn

    def fold(
        self, records: Iterable[Recorded[Any]], docs: dict[str, D] | None = None
    ) -> dict[str, D]:
        """The documents after `records`, from `docs` (or none), in key order."""
        current = dict(docs or {})
        for record in records:
            handler = self.handlers.get(type(record.event))
            if handler is None:
                continue
            key = self.key(record.event, record)
            if key is None:
                continue
            doc = call(handler, current.get(key), record)
            if doc is None:
                current.pop(key, None)
            else:
                current[key] = doc
        return dict(sorted(current.items()))


# (connection) -> None; (connection, stream_id) -> None.
Setup = Callable[[Any], None]
ResetStream = Callable[[Any, str], None]


class SqlProjection:
    """Handlers that write the user's own tables: `(conn, event[, record]) -> None`.

    `conn` is the DB-API connection of the transaction that applies the event (`sqlite3` or
    `psycopg`). `setup(conn)` runs when a store is built (idempotent DDL), `reset(conn)` before a
    full replay, `reset_stream(conn, stream_id)` before one stream is replayed.
    """

    def __init__(
        self,
        name: str,
        *,
        setup: Setup | None = None,
        reset: Setup | None = None,
        reset_stream: ResetStream | None = None,
    ) -> None:
        self.name = name
        self.setup = setup
        self.reset = reset
        self.reset_stream = reset_stream
        self.handlers = Handlers("on", f"SQL projection {name!r}")

    def __repr__(self) -> str:
        return f"SqlProjection({self.name!r})"

    def on(self, fn: F) -> F:
        """Register `fn(conn, event[, record]) -> None` for the event class(es) it annotates."""
        self.handlers.register(fn, caller_locals())
        return fn
