"""Given / then for projections and process managers: the scenarios behind `testing.given`.

A scenario runs its component's own handlers over the given events once, at the first `then_*`.
A handler (or key function, or `setup`) that raises is caught and becomes the error the store
would give, `ProjectionError` or `ProcessManagerError` naming the handler and the event, with the
exception as `.reason`: `then_fails` expects it, and every other `then_*` fails on it with an
`AssertionError` chained to the exception, so the traceback still points into the handler.
"""

from __future__ import annotations

import html
import sqlite3
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Self, TypeVar

import attrs

from ._codec import type_info
from ._definitions import alike_note
from ._envelope import Recorded
from ._errors import ProcessManagerError, ProjectionError, ReactionError, explain
from ._handlers import Handlers
from ._html import documents_html, records_html, state_html
from ._process import ProcessManager, Send
from ._projection import DocumentProjection, Projection, SqlProjection, call

E = TypeVar("E")

GIVEN_AT = datetime(2000, 1, 1, tzinfo=UTC)  # the recorded_at of every given event
_EVENT_IDS = uuid.UUID("6f0b6c58-3d0e-4d53-9a3b-8b7c1e5a0f11")  # namespace of given event ids
_UNRUN: Any = object()


@attrs.frozen
class Raw:
    """An event in its stored form: type name, JSON payload and schema version."""

    type: str
    data: Mapping[str, Any]
    version: int = 1


def recorded(
    event: E,
    *,
    stream_id: str = "given",
    stream_type: str = "given",
    version: int = 1,
    position: int | None = None,
    event_id: uuid.UUID | None = None,
    recorded_at: datetime | None = None,
    actor_id: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Recorded[E]:
    """Wrap `event` in a `Recorded` envelope for `given`, e.g. to pick the stream it belongs to.

    The type name and schema version are the event class's (`@event_type`, else its name and 1).
    `position` defaults to `version`; give it when a handler compares positions across streams.
    `event_id` defaults to a UUID derived from stream type, stream id and version (the same on
    every run), `recorded_at` to 2000-01-01 UTC.
    """
    name, schema_version = type_info(type(event))
    return Recorded(
        event=event,
        type=name,
        schema_version=schema_version,
        stream_type=stream_type,
        stream_id=stream_id,
        version=version,
        position=version if position is None else position,
        event_id=event_id or uuid.uuid5(_EVENT_IDS, f"{stream_type}/{stream_id}/{version}"),
        recorded_at=GIVEN_AT if recorded_at is None else recorded_at,
        actor_id=actor_id,
        correlation_id=correlation_id,
        causation_id=causation_id,
        metadata=dict(metadata or {}),
    )


def envelopes(events: Iterable[object], start: int = 0) -> list[Recorded[Any]]:
    """`Recorded` events as they are; plain ones in stream given/given at their place in line."""
    out: list[Recorded[Any]] = []
    for index, event in enumerate(events, start=start + 1):
        if isinstance(event, Raw):
            raise TypeError(
                f"given: {event!r} needs an aggregate's upcasters to be read;"
                " give projections and process managers the event object"
            )
        out.append(
            event if isinstance(event, Recorded) else recorded(event, version=index, position=index)
        )
    return out


class _ReactionScenario:
    """What the scenarios of projections and process managers share: one run, `then_fails`."""

    _kind = "component"

    def __init__(self, component: Any, records: Sequence[Recorded[Any]]) -> None:
        self._component = component
        self._records = tuple(records)
        self._result: Any = _UNRUN

    def __repr__(self) -> str:
        return f"given({self._component!r}, {len(self._records)} events)"

    def then_fails(self, error: type[BaseException]) -> Self:
        """Assert a handler raised `error` (or failed with the store's error naming it)."""
        actual = self._outcome()
        if not isinstance(actual, ReactionError):
            raise AssertionError(
                _side_by_side(
                    "expected failure",
                    [error.__name__],
                    "but no handler failed",
                    self._describe(actual),
                )
            )
        if not (isinstance(actual, error) or isinstance(actual.reason, error)):
            raise AssertionError(
                _side_by_side(
                    "expected failure", [error.__name__], "actual failure", _error(actual)
                )
            ) from actual.reason
        return self

    def _repr_html_(self) -> str:
        given = records_html(self._records, caption=f"given {self._component!r}")
        outcome = self._outcome()
        if isinstance(outcome, ReactionError):
            then = f"<p><b>fails</b>: {html.escape(_error(outcome)[0])}</p>"
        else:
            then = self._outcome_html(outcome)
        return f"<div>\n{given}\n{then}\n</div>"

    def _outcome_html(self, outcome: Any) -> str:
        lines = "".join(f"<li>{html.escape(line)}</li>" for line in self._describe(outcome))
        return f"<p><b>then</b></p><ul>{lines}</ul>" if lines else ""

    def _run(self) -> Any:
        """What the handlers made of the events, or the error one of them caused."""
        raise NotImplementedError

    def _describe(self, outcome: Any) -> list[str]:
        """A successful outcome as lines for a failure message."""
        raise NotImplementedError

    def _outcome(self) -> Any:
        if self._result is _UNRUN:
            self._result = self._run()
        return self._result

    def _succeeded(self, title: str, expected: list[str]) -> Any:
        """The outcome, or an AssertionError showing `expected` against the handler's error."""
        actual = self._outcome()
        if isinstance(actual, ReactionError):
            raise AssertionError(
                _side_by_side(title, expected, "but a handler failed", _error(actual))
            ) from actual.reason
        return actual

    def _check(
        self,
        title: str,
        expected: list[str],
        actual: list[str],
        equal: bool,
        values: tuple[object, object],
    ) -> None:
        if equal:
            return
        message = _side_by_side(f"expected {title}", expected, f"actual {title}", actual)
        if expected == actual:  # a stale class, or a Send to another aggregate of one name
            message += "\n" + alike_note(*values)
        raise AssertionError(message)

    def _failure(self, what: str, record: Recorded[Any] | None, exc: Exception) -> ReactionError:
        where = "before any event" if record is None else f"on {record!r}"
        error_type = (
            ProcessManagerError if isinstance(self._component, ProcessManager) else ProjectionError
        )
        return error_type(
            f"{self._kind} {self._component.name!r}: {what} failed {where}: {explain(exc)}",
            reason=exc,
        )


class ProjectionScenario(_ReactionScenario):
    """Given events folded by a `Projection`: then assert on its view."""

    _kind = "projection"

    def then_state(self, state: object) -> ProjectionScenario:
        """Assert the view after folding the given events from `initial`."""
        actual = self._succeeded("expected state", [repr(state)])
        self._check("state", [repr(state)], [repr(actual)], actual == state, (state, actual))
        return self

    def _run(self) -> Any:
        projection: Projection[Any] = self._component
        view = projection.initial
        for record in self._records:
            try:
                view = projection.apply(view, record)
            except Exception as exc:  # the user's handler: reported as the store would
                return self._failure(_handler(projection.handlers, record), record, exc)
        return view

    def _describe(self, outcome: Any) -> list[str]:
        return [repr(outcome)]

    def _outcome_html(self, outcome: Any) -> str:
        return state_html(outcome, caption="then state")


class DocumentScenario(_ReactionScenario):
    """Given events folded by a `DocumentProjection`: then assert on its documents."""

    _kind = "document projection"

    def then_documents(self, documents: Mapping[str, object]) -> DocumentScenario:
        """Assert the documents, `{key: doc}`, after the given events (deleted ones absent)."""
        expected = _mapping_lines(documents)
        actual = self._succeeded("expected documents", expected)
        self._check(
            "documents",
            expected,
            _mapping_lines(actual),
            actual == dict(documents),
            (dict(documents), actual),
        )
        return self

    def _run(self) -> Any:
        projection: DocumentProjection[Any] = self._component
        docs: dict[str, Any] = {}
        for record in self._records:
            handler = projection.handlers.get(type(record.event))
            if handler is None:
                continue
            culprit = f"key {_name(projection.key)}"
            try:
                key = _checked_key(projection.key(record.event, record))
                if key is None:
                    continue  # no document cares, as in the store
                culprit = _handler(projection.handlers, record)
                doc = call(handler, docs.get(key), record)
            except Exception as exc:  # the user's key or handler
                return self._failure(culprit, record, exc)
            if doc is None:
                docs.pop(key, None)
            else:
                docs[key] = doc
        return dict(sorted(docs.items()))

    def _describe(self, outcome: Any) -> list[str]:
        return _mapping_lines(outcome) or ["(no documents)"]

    def _outcome_html(self, outcome: Any) -> str:
        return documents_html(f"then {self._component.name}", outcome)


class SqlScenario(_ReactionScenario):
    """Given events written by a `SqlProjection` on a connection: then query its tables.

    `setup(conn)` runs first when the projection has one, then each handler in order, on
    `connection` (a DB-API connection with `.execute`, by default an in-memory SQLite database
    that closes when the scenario is collected). Nothing is committed: queries run on the same
    connection and see every write.
    """

    _kind = "SQL projection"

    def __init__(
        self, projection: SqlProjection, records: Sequence[Recorded[Any]], connection: Any = None
    ) -> None:
        super().__init__(projection, records)
        if connection is None:
            # Closed by a finalizer, which may run in any thread.
            connection = sqlite3.connect(":memory:", check_same_thread=False)
            weakref.finalize(self, connection.close)
        self.connection = connection

    def query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        """The rows `sql` returns after the handlers ran, each as a tuple."""
        self._succeeded("expected to query", [sql])
        return [tuple(row) for row in self.connection.execute(sql, params).fetchall()]

    def then_rows(
        self,
        sql: str,
        rows: Iterable[Sequence[Any]],
        params: Sequence[Any] | Mapping[str, Any] = (),
    ) -> SqlScenario:
        """Assert `sql` returns exactly `rows` in order (say ORDER BY), each row as a tuple."""
        expected = [tuple(row) for row in rows]
        self._succeeded("expected rows", _lines(expected))
        actual = self.query(sql, params)
        self._check(
            "rows", _lines(expected), _lines(actual), actual == expected, (expected, actual)
        )
        return self

    def _run(self) -> Any:
        projection: SqlProjection = self._component
        if projection.setup is not None:
            try:
                projection.setup(self.connection)
            except Exception as exc:  # the user's DDL
                return self._failure(f"setup {_name(projection.setup)}", None, exc)
        for record in self._records:
            handler = projection.handlers.get(type(record.event))
            if handler is None:
                continue
            try:
                call(handler, self.connection, record)
            except Exception as exc:  # the user's handler
                return self._failure(_handler(projection.handlers, record), record, exc)
        return None

    def _describe(self, outcome: Any) -> list[str]:
        return []


@attrs.frozen
class _Reacted:
    sends: tuple[Send, ...]
    state: Any  # the one state, or {key: state} for a keyed manager


class ProcessScenario(_ReactionScenario):
    """Given events (and `when` events) run through a `ProcessManager`: then its sends or state.

    Each event the manager handles is folded by its `on` into the state of its key (a key of
    None: the manager skips the event), then reacted to with the state after the fold. Without
    `when`, every given event is reacted to; with it, given events are history, folded only.
    """

    _kind = "process manager"

    def __init__(
        self,
        manager: ProcessManager[Any],
        records: Sequence[Recorded[Any]],
        react_from: int | None = None,
    ) -> None:
        super().__init__(manager, records)
        self._react_from = react_from

    def __repr__(self) -> str:
        if self._react_from is None:
            return super().__repr__()
        history, reacting = self._react_from, len(self._records) - self._react_from
        return f"given({self._component!r}, {history} events).when({reacting} events)"

    def when(self, *events: object) -> ProcessScenario:
        """Events to react to, after the given ones, which become history (folded only)."""
        react_from = len(self._records) if self._react_from is None else self._react_from
        new = envelopes(events, start=len(self._records))
        return ProcessScenario(self._component, [*self._records, *new], react_from)

    def then_sends(self, *sends: Send) -> ProcessScenario:
        """Assert the reactions sent exactly `sends` (none if empty), in order."""
        actual = self._succeeded("expected sends", _lines(sends)).sends
        self._check(
            "sends", _lines(sends), _lines(actual), list(actual) == list(sends), (sends, actual)
        )
        return self

    def then_state(self, state: object, *, key: str | None = None) -> ProcessScenario:
        """Assert the state after every event.

        For a manager with a `key`: `state` is `{key: state}` for every key holding a state
        (a fold that returns None drops its key, as the store does), or, with `key=`, the state
        of that one key (`initial` if no event reached it). A stateless manager has no state.
        """
        manager: ProcessManager[Any] = self._component
        if not manager.stateful:
            raise TypeError(f"{manager!r} is stateless (no initial=): check it with then_sends")
        if manager.key is None and key is not None:
            raise TypeError(f"{manager!r} keeps one state, not one per key: drop key={key!r}")
        if manager.key is None or key is not None:
            expected = [repr(state)]
            outcome = self._succeeded("expected state", expected).state
            actual = outcome if key is None else outcome.get(key, manager.initial)
            self._check("state", expected, [repr(actual)], actual == state, (state, actual))
            return self
        if not isinstance(state, Mapping):
            raise TypeError(
                f"{manager!r} keeps one state per key: give then_state a {{key: state}} dict,"
                " or key= for one of them"
            )
        expected = _mapping_lines(state)
        states = self._succeeded("expected states", expected).state
        self._check(
            "states", expected, _mapping_lines(states), states == dict(state), (state, states)
        )
        return self

    def _run(self) -> Any:
        manager: ProcessManager[Any] = self._component
        keyed = manager.stateful and manager.key is not None  # the store asks no stateless key
        states: dict[str, Any] = {}
        single = manager.initial
        sends: list[Send] = []
        for index, record in enumerate(self._records):
            if not manager.handles(type(record.event)):
                continue
            culprit = f"key {_name(manager.key)}"
            try:
                key = _checked_key(manager.key_of(record)) if keyed else ""
                if key is None:
                    continue
                culprit = _handler(manager.handlers, record)
                state = manager.evolve(
                    states.get(key, manager.initial) if keyed else single, record
                )
                if not keyed:
                    single = state
                elif state is None:  # the store drops the key; its next event starts afresh
                    states.pop(key, None)
                    state = manager.initial
                else:
                    states[key] = state
                if self._react_from is None or index >= self._react_from:
                    culprit = _handler(manager.reactions, record)
                    sends.extend(manager.sends(state, record))
            except Exception as exc:  # the user's key, fold or reaction
                return self._failure(culprit, record, exc)
        return _Reacted(tuple(sends), dict(sorted(states.items())) if keyed else single)

    def _describe(self, outcome: Any) -> list[str]:
        return _lines(outcome.sends) or ["(no sends)"]


def _checked_key(key: object) -> str | None:
    if key is not None and not isinstance(key, str):
        raise TypeError(f"the key is {key!r}, not a str")
    return key


def _handler(handlers: Handlers, record: Recorded[Any]) -> str:
    handler = handlers.get(type(record.event))
    return handlers.kind if handler is None else f"{handlers.kind} {handler.name}"


def _name(fn: Callable[..., Any] | None) -> str:
    return getattr(fn, "__qualname__", repr(fn))


def _error(error: ReactionError) -> list[str]:
    return [f"{type(error).__name__}: {error}"]


def _mapping_lines(mapping: Mapping[Any, object]) -> list[str]:
    items = sorted(mapping.items(), key=lambda item: str(item[0]))
    return [f"{key!r}: {value!r}" for key, value in items]


def _lines(items: Iterable[object]) -> list[str]:
    return [repr(item) for item in items]


def _side_by_side(left_title: str, left: list[str], right_title: str, right: list[str]) -> str:
    """Two columns, expected left and actual right, rows that differ marked with `!`."""
    width = max(len(line) for line in [left_title, *left])
    rows = [
        f"  {left_title:<{width}} | {right_title}",
        f"  {'-' * width} | {'-' * len(right_title)}",
    ]
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        rows.append(f"{'!' if a != b else ' '} {a:<{width}} | {b}")
    if not left and not right:
        rows.append(f"  {'(none)':<{width}} | (none)")
    return "\n" + "\n".join(rows)
