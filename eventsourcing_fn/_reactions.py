"""Applies recorded events to components inside one storage transaction.

One code path for inline execution, catch-up and replay: a `Session` locks the components'
checkpoints, loads their state lazily (documents in one round trip per batch), folds every
event into every component before any reaction, and writes state and checkpoints once at
`flush`. A checkpoint is the highest position a component has applied: every transaction that
applies events holds the component's checkpoint until it commits, so a later reader of the
checkpoint has seen every committed application, and the log after it holds only events that no
one has applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeAlias

from returns.result import Failure, Result, Success

from ._arguments import short
from ._codec import Codec, InvalidPayload
from ._envelope import Recorded
from ._errors import (
    CommandError,
    ConfigurationError,
    EventSourcingError,
    InfiniteLoopError,
    ProcessManagerError,
    ProjectionError,
    ReactionError,
    explain,
)
from ._handlers import Handler
from ._process import ProcessManager, Send
from ._projection import DocumentProjection, Projection, SqlProjection, call
from .storage import Checkpoint, Storage

Component: TypeAlias = (
    Projection[Any] | DocumentProjection[Any] | SqlProjection | ProcessManager[Any]
)
# (send, triggering record, ancestors of the trigger) -> the sent command's events and cascade.
SendFn = Callable[[Send, Recorded[Any], tuple[Recorded[Any], ...]], Result[Any, EventSourcingError]]

_log = logging.getLogger("eventsourcing_fn")
MAX_DEPTH = 32  # commands sent in a chain before a cascade counts as a loop
MAX_CASCADE = 10_000  # events one command's cascade may append in all

_replaying: ContextVar[bool] = ContextVar("eventsourcing_fn_replaying", default=False)


def replaying() -> bool:
    """Whether the current code runs inside a replay or rebuild."""
    return _replaying.get()


@contextmanager
def replay_scope() -> Iterator[None]:
    """Mark the block as a replay for `replaying()`."""
    token = _replaying.set(True)
    try:
        yield
    finally:
        _replaying.reset(token)


def has_state(component: Component) -> bool:
    """Whether a component keeps state of its own beyond its checkpoint position."""
    return not isinstance(component, SqlProjection)


class Session:
    """The state of some components within one storage transaction."""

    def __init__(self, storage: Storage, codec: Codec, components: Sequence[Component]) -> None:
        self.storage = storage
        self.codec = codec
        self.components = sorted(components, key=lambda c: c.name)
        self.checkpoints: dict[str, Checkpoint] = {}
        self.values: dict[str, Any] = {}  # a Projection's view, an unkeyed manager's state
        self.docs: dict[str, dict[str, Any]] = {}  # loaded documents or keyed states (None: none)
        self.dirty_docs: dict[str, set[str]] = {}
        self.applied: dict[str, int] = {}  # the highest position each component applied now
        self.cascaded = 0
        self.begun = False
        self.keys: dict[tuple[str, int], str | None] = {}
        # A component catching up reads the log itself: events a reaction appends meanwhile
        # come later in the log, so it must not apply them now as well.
        self.catching_up: str | None = None
        # Workers log a sent command its aggregate rejects and go on; inline, it fails the
        # command that triggered it.
        self.skip_rejected = False

    def begin(self) -> None:
        """Hold every component's checkpoint until the transaction ends, and read them."""
        if not self.begun:
            self.begun = True
            names = [c.name for c in self.components]
            self.checkpoints = self.storage.read_checkpoints(names) if names else {}

    def position(self, component: Component) -> int:
        """The component's checkpoint position (its replay cursor) as this session leaves it."""
        stored = self.checkpoints.get(component.name)
        return max(cursor(stored), self.applied.get(component.name, 0))

    def replaying(self, component: Component) -> bool:
        """Whether a replay of the component is under way (its checkpoint says so)."""
        stored = self.checkpoints.get(component.name)
        return stored is not None and stored.position < 0

    def finish_replay(self, component: Component) -> None:
        """Mark the replay done: from the next transaction on, writers apply events inline."""
        stored = self.checkpoints.get(component.name)
        if stored is not None and stored.position < 0:
            done = Checkpoint(stored.name, cursor(stored), stored.state)
            self.storage.write_checkpoints([done])
            self.checkpoints[component.name] = done

    # -- applying ---------------------------------------------------------------------------

    def apply(
        self,
        records: Sequence[Recorded[Any]],
        *,
        only: Component | None = None,
        send: SendFn | None = None,
        chain: tuple[Recorded[Any], ...] = (),
    ) -> Result[tuple[Recorded[Any], ...], EventSourcingError]:
        """Fold `records` into the components (or `only` one), reacting when `send` is given.

        Returns the events that reactions appended (depth-first: an event's whole cascade
        settles before the next event), or the first failure.
        """
        targets = (
            [c for c in self.components if c.name != self.catching_up] if only is None else [only]
        )
        if not any(_takes(c, type(r.event)) for r in records for c in targets):
            return Success(())  # nothing here for any component: no checkpoint to hold
        self.begin()
        if only is None:  # a component under replay reads these events from the log itself
            targets = [c for c in targets if not self.replaying(c)]
        self._prefetch(targets, records)
        cascade: list[Recorded[Any]] = []
        for record in records:
            reacting: list[tuple[ProcessManager[Any], Any]] = []
            for component in targets:
                folded = self._fold(component, record)
                if isinstance(folded, Failure):
                    return folded
                if folded.unwrap() and isinstance(component, ProcessManager):
                    reacting.append((component, self._state_of(component, record)))
            for manager, state in reacting:
                if send is None:
                    break
                sent = self._react(manager, state, record, send, chain)
                if isinstance(sent, Failure):
                    return sent
                cascade.extend(sent.unwrap())
        return Success(tuple(cascade))

    def _fold(
        self, component: Component, record: Recorded[Any]
    ) -> Result[bool, EventSourcingError]:
        """Fold one event into one component: whether the component takes that event at all."""
        if not _takes(component, type(record.event)):
            return Success(False)
        handler = component.handlers.get(type(record.event))
        try:
            if _keyed(component) and self._key(component, record) is None:
                return Success(False)  # a key of None: no instance of this component cares
            self.applied[component.name] = max(self.applied.get(component.name, 0), record.position)
            if handler is not None:
                self._fold_with(component, handler, record)
        except EventSourcingError:
            raise  # the library's own faults (unreadable stored state) are not the handler's
        except Exception as exc:  # the user's handler or key failed: the command fails with it
            culprit = handler if handler is not None else Handler(component.key, True)  # type: ignore[union-attr,arg-type]
            return Failure(_handler_error(component, culprit, record, exc))
        return Success(True)

    def _key(self, component: Component, record: Recorded[Any]) -> str | None:
        """The document key of `record` for a keyed component, computed once."""
        cache = (component.name, record.position)
        if cache not in self.keys:
            self.keys[cache] = _key(component, record)
        return self.keys[cache]

    def _fold_with(self, component: Component, handler: Handler, record: Recorded[Any]) -> None:
        name = component.name
        if isinstance(component, SqlProjection):
            connection = self.storage.connection
            assert connection is not None  # refused when the store is built
            with connection() as conn:
                call(handler, conn, record)
        elif not _keyed(component):
            self.values[name] = call(handler, self._value(component), record)  # type: ignore[arg-type]
        else:
            key = self._key(component, record)
            assert key is not None
            docs = self.docs[name]
            current = docs.get(key)
            if current is None and isinstance(component, ProcessManager):
                current = component.initial
            docs[key] = call(handler, current, record)
            self.dirty_docs.setdefault(name, set()).add(key)

    def _react(
        self,
        manager: ProcessManager[Any],
        state: Any,
        record: Recorded[Any],
        send: SendFn,
        chain: tuple[Recorded[Any], ...],
    ) -> Result[list[Recorded[Any]], EventSourcingError]:
        handler = manager.reactions.get(type(record.event))
        try:
            sends = manager.sends(state, record)
        except Exception as exc:  # the user's reaction failed
            assert handler is not None
            return Failure(_handler_error(manager, handler, record, exc))
        appended: list[Recorded[Any]] = []
        for message in sends:
            if len(chain) >= MAX_DEPTH:
                return Failure(_loop(manager, (*chain, record), f"deeper than {MAX_DEPTH}"))
            result = send(message, record, chain)
            if isinstance(result, Failure):
                error = result.failure()
                if self.skip_rejected and isinstance(error, CommandError):
                    _log.warning(
                        "process manager %r: %r, sent on %s, was rejected and is skipped: %s",
                        manager.name,
                        message,
                        _where(record),
                        error,
                    )
                    continue
                return Failure(_send_error(manager, record, message, error))
            outcome = result.unwrap()
            for new in outcome.events:
                for ancestor in (*chain, record):
                    if _same(new, ancestor):
                        return Failure(_loop(manager, (*chain, record, new), "re-emits an event"))
            appended.extend((*outcome.events, *outcome.cascade))
            self.cascaded += len(outcome.events)
            if self.cascaded > MAX_CASCADE:
                return Failure(_loop(manager, (*chain, record), f"over {MAX_CASCADE} events"))
        return Success(appended)

    # -- state --------------------------------------------------------------------------------

    def _value(self, component: Projection[Any] | ProcessManager[Any]) -> Any:
        name = component.name
        if name not in self.values:
            stored = self.checkpoints.get(name)
            if stored is None or stored.state is None:
                self.values[name] = component.initial
            else:
                self.values[name] = self._decode(component, stored.state)
        return self.values[name]

    def _state_of(self, manager: ProcessManager[Any], record: Recorded[Any]) -> Any:
        if not manager.stateful:
            return None
        if manager.key is None:
            return self._value(manager)
        docs = self.docs[manager.name]
        key = self._key(manager, record)
        if key is None:
            return manager.initial
        if key not in docs:
            self._load_docs(manager, [key])
        state = docs.get(key)
        return manager.initial if state is None else state

    def _prefetch(self, targets: Sequence[Component], records: Sequence[Recorded[Any]]) -> None:
        """Load, in one round trip per component, the documents these records touch."""
        for component in targets:
            if not _keyed(component):
                continue
            keys: set[str] = set()
            for record in records:
                if _takes(component, type(record.event)):
                    try:
                        key = self._key(component, record)
                    except Exception:  # reported by _fold, with the event it failed on
                        continue
                    if key is not None:
                        keys.add(key)
            self.docs.setdefault(component.name, {})
            self._load_docs(component, keys - self.docs[component.name].keys())

    def _load_docs(self, component: Component, keys: Sequence[str] | set[str]) -> None:
        if not keys:
            return
        found = self.storage.get_documents(component.name, sorted(keys))
        docs = self.docs.setdefault(component.name, {})
        for key in keys:
            text = found.get(key)
            docs[key] = None if text is None else self._decode(component, text)

    def _decode(self, component: Component, text: str) -> Any:
        cls = _state_type(component)
        try:
            return self.codec.decode_state(text, cls)
        except Exception as exc:  # stored state that no longer reads: a fault, named
            raise ProjectionError(
                f"{_kind(component)} {component.name!r}: cannot read its stored state as"
                f" {getattr(cls, '__qualname__', cls)}: {explain(exc)}"
            ) from exc

    def reset(self, component: Component) -> None:
        """Forget a component's state and position, as a replay from scratch starts."""
        name = component.name
        self.checkpoints.pop(name, None)
        self.values.pop(name, None)
        self.docs[name] = {}
        self.dirty_docs.pop(name, None)
        self.applied[name] = 0
        if _keyed(component):
            self.storage.clear_documents(name)
        replay = Checkpoint(name, -1, None)  # cursor 0, and a replay under way
        self.storage.write_checkpoints([replay])
        self.checkpoints[name] = replay

    def forget(self, component: Component, key: str) -> None:
        """Delete one document at the next flush, as a fold from nothing starts."""
        self.docs.setdefault(component.name, {})[key] = None
        self.dirty_docs.setdefault(component.name, set()).add(key)

    # -- writing ------------------------------------------------------------------------------

    def flush(self, *, at: dict[str, int] | None = None) -> Result[None, EventSourcingError]:
        """Write changed state and checkpoints; `at` moves checkpoints past unhandled events."""
        moved = dict(self.applied)
        for name, position in (at or {}).items():
            moved[name] = max(moved.get(name, 0), position)
        checkpoints: list[Checkpoint] = []
        for component in self.components:
            name = component.name
            if name not in moved:
                continue
            if keys := self.dirty_docs.pop(name, set()):
                encoded = self._encode_docs(component, keys)
                if isinstance(encoded, Failure):
                    return encoded
                self.storage.put_documents(name, encoded.unwrap())
            state = self._encode_value(component)
            if isinstance(state, Failure):
                return state
            stored = self.checkpoints.get(name)
            position = max(cursor(stored), moved[name])
            if stored is not None and stored.position < 0:
                position = -position - 1  # still replaying: keep the mark
            checkpoint = Checkpoint(name, position, state.unwrap())
            if checkpoint != stored:
                checkpoints.append(checkpoint)
                self.checkpoints[name] = checkpoint
        self.applied.clear()
        if checkpoints:
            self.storage.write_checkpoints(checkpoints)
        return Success(None)

    def _encode_value(self, component: Component) -> Result[str | None, EventSourcingError]:
        name = component.name
        if name not in self.values:
            stored = self.checkpoints.get(name)
            return Success(stored.state if stored else None)
        return self._encode(component, self.values[name], None)

    def _encode_docs(
        self, component: Component, keys: set[str]
    ) -> Result[list[tuple[str, str | None]], EventSourcingError]:
        docs = self.docs[component.name]
        out: list[tuple[str, str | None]] = []
        for key in sorted(keys):
            doc = docs.get(key)
            encoded = self._encode(component, doc, key) if doc is not None else Success(None)
            if isinstance(encoded, Failure):
                return encoded
            out.append((key, encoded.unwrap()))
        return Success(out)

    def _encode(self, component: Component, value: Any, key: str | None) -> Result[Any, Any]:
        try:
            return Success(self.codec.encode(value))
        except InvalidPayload as exc:
            where = f" document {short(key)}" if key is not None else ""
            error_type = (
                ProcessManagerError if isinstance(component, ProcessManager) else ProjectionError
            )
            return Failure(
                error_type(
                    f"{_kind(component)} {component.name!r}{where}: its state cannot be stored:"
                    f" {exc}"
                )
            )


def cursor(stored: Checkpoint | None) -> int:
    """The position a checkpoint stands at. A replay under way is marked by a negative
    position, -cursor - 1: writers leave such a component to the replay."""
    if stored is None:
        return 0
    return stored.position if stored.position >= 0 else -stored.position - 1


def _takes(component: Component, cls: type) -> bool:
    if isinstance(component, ProcessManager):
        return component.handles(cls)
    return component.handlers.get(cls) is not None


def _keyed(component: Component) -> bool:
    return isinstance(component, DocumentProjection) or (
        isinstance(component, ProcessManager) and component.stateful and component.key is not None
    )


def _key(component: Component, record: Recorded[Any]) -> str | None:
    if isinstance(component, ProcessManager):
        key = component.key_of(record)
    else:
        assert isinstance(component, DocumentProjection)
        key = component.key(record.event, record)
    if key is not None and not isinstance(key, str):
        raise TypeError(
            f"{_kind(component)} {component.name!r}: its key gave {key!r} for {record.type}"
            f" at position {record.position}, not a str"
        )
    return key


def _state_type(component: Component) -> Any:
    if isinstance(component, DocumentProjection):
        return component.doc_type
    return getattr(component, "state_type", None)


def _kind(component: Component) -> str:
    return {
        Projection: "projection",
        DocumentProjection: "document projection",
        SqlProjection: "SQL projection",
        ProcessManager: "process manager",
    }[type(component)]


def _where(record: Recorded[Any]) -> str:
    return (
        f"event {record.type} of stream {record.stream_type}/{short(record.stream_id)}"
        f" version {record.version} at position {record.position}"
    )


def _handler_error(
    component: Component, handler: Handler, record: Recorded[Any], exc: Exception
) -> EventSourcingError:
    error_type = ProcessManagerError if isinstance(component, ProcessManager) else ProjectionError
    return error_type(
        f"{_kind(component)} {component.name!r}: handler {handler.name} failed on"
        f" {_where(record)}: {explain(exc)}; nothing appended",
        reason=exc,
    )


def _send_error(
    manager: ProcessManager[Any], record: Recorded[Any], message: Send, inner: Any
) -> EventSourcingError:
    if isinstance(inner, ReactionError):
        return inner  # already names its component; the chain is in its message
    return ProcessManagerError(
        f"process manager {manager.name!r}: {message!r}, sent on {_where(record)}, failed:"
        f" {inner}; nothing appended",
        reason=inner,
    )


def _same(new: Recorded[Any], old: Recorded[Any]) -> bool:
    return (
        new.type == old.type
        and new.stream_type == old.stream_type
        and new.stream_id == old.stream_id
        and new.event == old.event
    )


def _loop(
    manager: ProcessManager[Any], chain: Sequence[Recorded[Any]], why: str
) -> InfiniteLoopError:
    steps = " -> ".join(f"{r.type}@{r.stream_type}/{short(r.stream_id, 20)}" for r in chain[-8:])
    more = f"({len(chain) - 8} more) -> " if len(chain) > 8 else ""
    return InfiniteLoopError(
        f"process manager {manager.name!r}: the cascade {why}: {more}{steps}; nothing appended"
    )


def check_components(storage: Storage, components: Sequence[Any]) -> None:
    """Refuse bad wiring: two components of one name, SQL projections on storage without SQL."""
    seen: dict[str, Any] = {}
    for component in components:
        other = seen.setdefault(component.name, component)
        if other is not component:
            raise ConfigurationError(
                f"two components are named {component.name!r}: {other!r} and {component!r}"
            )
        if isinstance(component, SqlProjection) and storage.connection is None:
            raise ConfigurationError(
                f"{component!r} writes SQL tables, and {storage.name} storage has none:"
                " use sqlite_storage or postgres_storage"
            )
