"""The event store: orchestration only — load, decide, append, snapshot."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from datetime import datetime
from itertools import takewhile
from typing import Any, TypeVar

import cattrs
from returns.result import Failure, Result, Success

from . import _arguments
from ._aggregate import Aggregate
from ._codec import Codec, Upcaster
from ._decision import decide_all
from ._diagram import Diagram, event_model
from ._envelope import (
    ANY,
    NEW,
    ExpectedVersion,
    Loaded,
    Outcome,
    Recorded,
    context,
    current_context,
)
from ._errors import (
    CommandError,
    ConcurrencyError,
    ConfigurationError,
    EventSourcingError,
    EventValidationError,
)
from ._html import History, Records, history_of, store_html
from ._ids import uuid4s
from ._listener import Listener, notify
from ._loading import load_state, maybe_snapshot
from ._notebook import show_failures_as_tables
from ._process import ProcessManager, Send
from ._projection import DocumentProjection, Projection, SqlProjection
from ._reactions import Component, SendFn, Session, check_components
from ._replay import Progress, Runner
from ._rows import conflict_error, context_metadata, decode, record_of, recorded, stream_append
from ._stream_locks import StreamLocks
from ._views import Documents, read_documents, read_value
from .storage import (
    OrderConflict,
    Storage,
    StoredEvent,
    VersionConflict,
    memory_storage,
)

S = TypeVar("S")
V = TypeVar("V")
D = TypeVar("D")
_log = logging.getLogger("eventsourcing_fn")
_NO_LOCK = nullcontext()
_REORDER_RETRIES = 3  # new transactions for an append refused to keep a stream in log order


class EventStore:
    """Runs commands against aggregates and keeps their events in one storage."""

    def __init__(
        self,
        storage: Storage | None = None,
        *,
        aggregates: Sequence[Aggregate[Any]] = (),
        projections: Sequence[Projection[Any] | DocumentProjection[Any] | SqlProjection] = (),
        process_managers: Sequence[ProcessManager[Any]] = (),
        listeners: Sequence[Listener] = (),
        inline: bool = True,
        converter: cattrs.Converter | None = None,
    ) -> None:
        self.storage = storage if storage is not None else memory_storage()
        show_failures_as_tables()
        self.inline = inline
        self._aggregates: dict[str, Aggregate[Any]] = {}
        for aggregate in aggregates:
            if aggregate.name in self._aggregates:
                raise ConfigurationError(f"two aggregates are named {aggregate.name!r}")
            self._aggregates[aggregate.name] = aggregate
        self.codec = Codec((), None, converter)
        self._revisions: tuple[int, ...] = ()
        self._sync()
        self._locks = StreamLocks()
        self._in_transaction: ContextVar[bool] = ContextVar("in_transaction", default=False)
        self._pending: ContextVar[list[Recorded[Any]] | None] = ContextVar("pending", default=None)
        self._components: list[Component] = [*projections, *process_managers]
        self._listeners = list(listeners)
        self._sends = any(isinstance(c, ProcessManager) for c in self._components)
        check_components(self.storage, [*self._components, *self._listeners])
        self._runner = Runner(
            self.storage, self.codec, self._components, self._record, self._sender
        )
        for component in self._components:
            if isinstance(component, SqlProjection) and component.setup is not None:
                with self.storage.transaction(), self.connection() as conn:
                    component.setup(conn)
        if inline and self._components:
            self.catch_up()  # a component new to a store that holds events starts level

    def __repr__(self) -> str:
        parts = [self.storage.name, f"aggregates={sorted(self._aggregates)}"]
        if self._components:
            parts.append(f"components={[c.name for c in self._components]}")
        if self._listeners:
            parts.append(f"listeners={[c.name for c in self._listeners]}")
        if not self.inline:
            parts.append("inline=False")
        return f"EventStore({', '.join(parts)})"

    def _repr_html_(self) -> str:
        return store_html(
            self.storage.name,
            list(self._aggregates.values()),
            self._components,
            self._listeners,
            self.inline,
        )

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the storage's connections."""
        self.storage.close()

    # -- commands -------------------------------------------------------------------------

    def execute(
        self,
        aggregate: Aggregate[S],
        stream_id: str | None,
        *commands: object,
        expected_version: int | ExpectedVersion | None = None,
        max_retries: int = 0,
    ) -> Result[Outcome[S], EventSourcingError]:
        """Apply `commands` in order to one stream and append their events atomically.

        `stream_id=None` starts a new stream with a generated UUID id. `expected_version`
        defaults to the loaded version (then a lost race is retried `max_retries` times).
        """
        self._check(aggregate)
        _arguments.stream_id("execute", stream_id, optional=True)
        expected_version = _arguments.expected_version(expected_version)
        _arguments.count("execute", "max_retries", max_retries)
        new = stream_id is None
        sid = str(uuid4s(1)[0]) if stream_id is None else stream_id
        nested = self._in_transaction.get()
        retry = expected_version is None and not nested
        retries = reorders = 0
        while True:
            try:
                return self._execute_once(aggregate, sid, commands, expected_version, new)
            except OrderConflict as conflict:
                # Our transaction began before the one that wrote the stream's end: a new
                # transaction comes after it in the log, so trying again is always safe.
                # Every refusal means another writer's append landed: the system moves on, so
                # a caller who allows retries for lost races allows these too.
                if nested or reorders == _REORDER_RETRIES + max_retries:
                    return Failure(self._conflict(aggregate, sid, commands, conflict))
                reorders += 1
            except VersionConflict as conflict:
                if not retry or retries == max_retries:
                    return Failure(self._conflict(aggregate, sid, commands, conflict))
                retries += 1

    def _execute_once(
        self,
        aggregate: Aggregate[S],
        sid: str,
        commands: Sequence[object],
        expected: int | ExpectedVersion | None,
        new: bool,
    ) -> Result[Outcome[S], EventSourcingError]:
        nested = self._in_transaction.get()
        # An id generated just now is known to no other thread: nobody to queue behind.
        lock = _NO_LOCK if nested or new else self._locks.hold(aggregate.name, sid)
        reactive = self.inline and bool(self._components)
        # Inside the user's transaction a failed command with a cascade must undo its own
        # writes and nothing else: a savepoint. Without reactions nothing is written before
        # a command can fail, so no savepoint is needed.
        scope = self.storage.savepoint if nested and reactive else self.storage.transaction
        try:
            with lock, scope():
                session = self._session() if reactive else None
                result = self._command(aggregate, sid, commands, expected, new, session, ())
                if session is not None:
                    if isinstance(result, Success):
                        flushed = session.flush()
                        if isinstance(flushed, Failure):
                            result = Failure(flushed.failure())
                    if isinstance(result, Failure):
                        raise _Undo(result)
        except _Undo as undo:
            return undo.result
        if isinstance(result, Success) and self._listeners:
            outcome = result.unwrap()
            self._notify((*outcome.events, *outcome.cascade))
        return result

    def _session(self) -> Session:
        session = Session(self.storage, self.codec, self._components)
        if self._sends:
            # A cascade appends while holding the checkpoints: take them before this command
            # appends, or two transactions could each wait for what the other holds. Without
            # reactions they are taken at the first event, and held for less time.
            session.begin()
        return session

    def _command(
        self,
        aggregate: Aggregate[S],
        sid: str,
        commands: Sequence[object],
        expected: int | ExpectedVersion | None,
        new: bool,
        session: Session | None,
        chain: tuple[Recorded[Any], ...],
    ) -> Result[Outcome[S], EventSourcingError]:
        """Load, decide, append and (with a session) react, inside the current transaction."""
        name = aggregate.name
        self.storage.lock_stream(name, sid)
        if new:
            version, state = 0, aggregate.initial
        else:
            loaded = self._load(aggregate, sid)
            version, state = loaded.version, loaded.state
        wanted = 0 if expected is NEW else expected
        if isinstance(wanted, int) and wanted != version:
            conflict = VersionConflict(name, sid, wanted, version)
            return Failure(self._conflict(aggregate, sid, commands, conflict))
        decided = decide_all(aggregate, self.codec, sid, state, commands)
        if isinstance(decided, CommandError):
            return Failure(decided)
        state, events = decided
        if not events:
            return Success(Outcome(sid, version, (), state))
        ctx = current_context()
        metadata = context_metadata(aggregate.name, sid, ctx, events)
        if isinstance(metadata, EventValidationError):
            return Failure(metadata)
        after = None if expected is ANY else version
        rows = self.storage.append([stream_append(name, sid, after, events, ctx, metadata)])
        if rows[0].version != version + 1:  # ANY landed after rival events:
            state = self._load(aggregate, sid).state  # fold them in, ours included
        if aggregate.snapshot_every is not None:
            first, last = rows[0].version, rows[-1].version
            maybe_snapshot(self.storage, self.codec, aggregate, sid, first - 1, last, state)
        shared = dict(ctx.metadata)  # one copy for the command's events, read-only to them

        def envelopes() -> tuple[Recorded[Any], ...]:
            return tuple(recorded(d.event, r, shared) for d, r in zip(events, rows, strict=True))

        if session is None and not self._listeners:
            return Success(Outcome.appended(sid, rows[-1].version, envelopes, state))
        appended = envelopes()
        cascade: tuple[Recorded[Any], ...] = ()
        if session is not None:
            applied = session.apply(appended, send=self._sender(session), chain=chain)
            if isinstance(applied, Failure):
                return Failure(applied.failure())
            cascade = applied.unwrap()
        return Success(Outcome(sid, rows[-1].version, appended, state, cascade))

    def _sender(self, session: Session, *, inline: bool = True) -> SendFn:
        """Runs a process manager's `Send` as a command in the same transaction; `inline`: its
        events are applied to the session's components too (else workers read them later)."""
        cascade = session if inline else None

        def send(
            message: Send, trigger: Recorded[Any], chain: tuple[Recorded[Any], ...]
        ) -> Result[Any, EventSourcingError]:
            aggregate = message.aggregate
            self._check(aggregate)
            _arguments.stream_id("Send", message.stream_id)
            expected = _arguments.expected_version(message.expected_version)
            cause = str(trigger.event_id)
            with context(
                actor_id=trigger.actor_id,
                correlation_id=trigger.correlation_id or cause,
                causation_id=cause,
            ):
                try:
                    return self._command(
                        aggregate,
                        message.stream_id,
                        message.commands,
                        expected,
                        False,
                        cascade,
                        (*chain, trigger),
                    )
                except VersionConflict as conflict:
                    return Failure(
                        self._conflict(aggregate, message.stream_id, message.commands, conflict)
                    )

        return send

    def _notify(self, records: Sequence[Recorded[Any]]) -> None:
        """Run listeners now, or when the user's transaction commits."""
        pending = self._pending.get()
        if pending is not None:
            pending.extend(records)
        else:
            notify(self._listeners, records)

    def _conflict(
        self,
        aggregate: Aggregate[Any],
        sid: str,
        commands: Sequence[object],
        conflict: VersionConflict,
    ) -> ConcurrencyError:
        return conflict_error(aggregate.name, sid, commands, conflict)

    # -- reading --------------------------------------------------------------------------

    def load(
        self,
        aggregate: Aggregate[S],
        stream_id: str,
        *,
        at_version: int | None = None,
        at: datetime | None = None,
    ) -> Loaded[S]:
        """The stream's state now, after `at_version` events, or as of the aware datetime `at`."""
        self._check(aggregate)
        _arguments.stream_id("load", stream_id)
        _arguments.count("load", "at_version", at_version, optional=True)
        at_version = _arguments.clamp(at_version)  # past the end: the latest state
        if at is None:
            return self._load(aggregate, stream_id, at_version)
        _arguments.aware("load", "at", at)
        rows = self.storage.read_stream(aggregate.name, stream_id, 0, at_version)
        # A prefix, even when clocks ran backwards across versions: stop at the first event
        # recorded after `at`, never fold a later version without the ones before it.
        prefix = list(takewhile(lambda row: row.recorded_at <= at, rows))
        state = aggregate.fold(self._decode(row) for row in prefix)
        return Loaded(stream_id, prefix[-1].version if prefix else 0, state)

    def _load(self, aggregate: Aggregate[S], sid: str, up_to: int | None = None) -> Loaded[S]:
        return load_state(self.storage, self.codec, aggregate, sid, up_to)

    def events(self, aggregate: Aggregate[Any], stream_id: str) -> Records:
        """Every event of one stream, in version order (a list that notebooks show as a table)."""
        self._check(aggregate)
        _arguments.stream_id("events", stream_id)
        rows = self.storage.read_stream(aggregate.name, stream_id, 0, None)
        return Records(self._record(row) for row in rows)

    def history(self, aggregate: Aggregate[S], stream_id: str) -> History[S]:
        """Each event of one stream beside the state after it: `Step(record, state)`s, each a
        mapping of version, position, recorded_at, type, event and state (a row for pandas)."""
        return history_of(aggregate, self.events(aggregate, stream_id))

    def diagram(self) -> Diagram:
        """The event model of this store's registrations, as a Mermaid flowchart."""
        return event_model(list(self._aggregates.values()), [*self._components, *self._listeners])

    def read_all(self, after: int = 0) -> Iterator[Recorded[Any]]:
        """The global log after position `after`, in position order."""
        _arguments.position("read_all", "after", after)
        self._sync()
        return self._read_all(after)

    def _read_all(self, after: int) -> Iterator[Recorded[Any]]:
        for row in self.storage.iter_all(after):
            yield self._record(row)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One storage transaction around the block; a nested one joins the outer."""
        if self._in_transaction.get():
            yield
            return
        token = self._in_transaction.set(True)
        pending: list[Recorded[Any]] = []
        listening = self._pending.set(pending)
        try:
            with self.storage.transaction():
                yield
        finally:
            self._pending.reset(listening)
            self._in_transaction.reset(token)
        notify(self._listeners, pending)  # committed: the block's events, in order

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A DB-API connection for queries: inside `transaction()`, that transaction's own."""
        if self.storage.connection is None:
            raise ConfigurationError(f"{self.storage.name} storage has no SQL connection")
        with self.storage.connection() as conn:
            yield conn

    # -- components -----------------------------------------------------------------------

    def view(self, component: Projection[V] | ProcessManager[V]) -> V:
        """A projection's current value (a process manager's shared state)."""
        self._check_component(component)
        if isinstance(component, ProcessManager) and component.key is not None:
            raise ConfigurationError(f"{component!r} keeps one state per key: read documents()")
        initial, cls = component.initial, component.state_type
        return read_value(self.storage, self.codec, component.name, initial, cls)  # type: ignore[no-any-return]

    def documents(self, component: DocumentProjection[D] | ProcessManager[D]) -> Documents[D]:
        """A document projection's documents (a process manager's states by key), by key."""
        self._check_component(component)
        if isinstance(component, DocumentProjection):
            return read_documents(self.storage, self.codec, component.name, component.doc_type)
        if component.key is None or not component.stateful:
            raise ConfigurationError(f"{component!r} keeps no state per key: read view()")
        return read_documents(self.storage, self.codec, component.name, component.state_type)

    def catch_up(self, progress: Progress | None = None) -> int:
        """Apply the log after each component's checkpoint; the number of events processed."""
        self._sync()
        return self._runner.run(self._components, fresh=False, progress=progress)

    def replay(self, component: Component, progress: Progress | None = None) -> int:
        """Rebuild one component from scratch (reset, then every event, without reactions)."""
        self._check_component(component)
        return self._runner.run([component], fresh=True, progress=progress)

    def rebuild(self, progress: Progress | None = None) -> int:
        """Replay every checkpointed component from scratch."""
        self._sync()
        return self._runner.run(self._components, fresh=True, progress=progress)

    def replay_stream(self, component: Component, stream_id: str) -> None:
        """Rebuild the documents or rows of one stream from its events."""
        self._check_component(component)
        _arguments.stream_id("replay_stream", stream_id)
        self._runner.replay_stream(component, stream_id, sorted(self._aggregates))

    def _worker_runner(self, batch: int) -> Runner:
        """A runner for workers: sent commands' events go to the log only, and a sent command
        its aggregate rejects is logged and skipped."""
        self._sync()
        runner = Runner(
            self.storage,
            self.codec,
            self._components,
            self._record,
            lambda session: self._sender(session, inline=False),
            batch,
        )
        runner.skip_rejected = True
        return runner

    def _check_component(self, component: object) -> None:
        if not any(c is component for c in self._components):
            same = [c for c in self._components if c.name == getattr(component, "name", None)]
            if same:
                raise ConfigurationError(
                    f"a different {component!r} object than this store was built with: "
                    "re-run the store cell (or build the store after the component)"
                )
            raise ConfigurationError(f"{component!r} is not registered with this store")
        self._sync()

    # -- helpers --------------------------------------------------------------------------

    def _check(self, aggregate: Aggregate[Any]) -> None:
        name = getattr(aggregate, "name", None)
        known = self._aggregates.get(name) if isinstance(name, str) else None
        if known is not aggregate:
            if known is not None:  # the aggregate's cell ran again after the store's
                raise ConfigurationError(
                    f"a different {aggregate!r} object than this store was built with: "
                    "re-run the store cell (or build the store after the aggregate)"
                )
            raise ConfigurationError(f"{aggregate!r} is not registered with this store")
        self._sync()

    def _sync(self) -> None:
        """Read the aggregates' current registrations when any changed since last time."""
        revisions = tuple(a.revision for a in self._aggregates.values())
        if revisions == self._revisions:
            return
        upcasters: dict[tuple[str, int], Upcaster] = {}
        for aggregate in self._aggregates.values():
            for key, fn in aggregate.upcasters.items():
                if upcasters.setdefault(key, fn) is not fn:
                    raise ConfigurationError(
                        f"two upcasters for event type {key[0]!r} from version {key[1]}"
                    )
        classes = [c for a in self._aggregates.values() for c in a.event_classes]
        self.codec.reset(classes, upcasters)
        self._revisions = revisions

    def _decode(self, row: StoredEvent) -> Any:
        return decode(self.codec, row)

    def _record(self, row: StoredEvent) -> Recorded[Any]:
        return record_of(self.codec, row)


class _Undo(Exception):
    """Unwinds a storage transaction or savepoint, carrying the failed command's result."""

    def __init__(self, result: Failure[Any]) -> None:
        super().__init__("undo")
        self.result = result
