"""Bringing components up to the log: catch-up from a checkpoint and replay from scratch.

Each batch of events is applied and committed in one transaction with the component's
checkpoint, so a crash resumes from the last committed batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

from returns.result import Failure

from ._codec import Codec
from ._envelope import Recorded
from ._errors import ConfigurationError
from ._projection import DocumentProjection, SqlProjection
from ._reactions import Component, SendFn, Session, replay_scope
from .storage import Storage, StoredEvent

Progress = Callable[[int, "int | None"], None]
Decode = Callable[[StoredEvent], Recorded[Any]]
BATCH = 1000


class NotTheRunner(Exception):
    """The runner no longer holds the component's lease: it must not apply anything."""


class Runner:
    """Catch-up and replay of a store's checkpointed components."""

    def __init__(
        self,
        storage: Storage,
        codec: Codec,
        components: Sequence[Component],
        decode: Decode,
        sender: Callable[[Session], SendFn] | None,
        batch: int = BATCH,
    ) -> None:
        self.storage = storage
        self.codec = codec
        self.components = components
        self.decode = decode
        self.sender = sender
        self.batch = batch
        self.skip_rejected = False

    def run(self, targets: Sequence[Component], *, fresh: bool, progress: Progress | None) -> int:
        """Apply the log to `targets` (from scratch when `fresh`); the events processed."""
        report = progress or (lambda done, total: None)
        report(0, None)
        done = 0
        with replay_scope() if fresh else nullcontext():
            for component in targets:
                if fresh:
                    self._reset(component)
                done = self._follow(component, fresh, done, report)
        report(done, done)
        return done

    def _session(self, component: Component) -> Session:
        session = Session(self.storage, self.codec, self.components)
        session.catching_up = component.name
        session.skip_rejected = self.skip_rejected
        session.begin()
        return session

    def _reset(self, component: Component) -> None:
        if isinstance(component, SqlProjection) and component.reset is None:
            raise ConfigurationError(
                f"SQL projection {component.name!r} cannot be replayed: give it reset= to clear"
                " its tables first"
            )
        with self.storage.transaction():
            self._session(component).reset(component)
            if isinstance(component, SqlProjection):
                self._with_connection(component.reset)  # type: ignore[arg-type]

    def _with_connection(self, fn: Callable[..., None], *args: Any) -> None:
        connection = self.storage.connection
        assert connection is not None  # a SQL projection needs one: checked at construction
        with connection() as conn:
            fn(conn, *args)

    def _follow(self, component: Component, fresh: bool, done: int, report: Progress) -> int:
        level = False
        while not level:
            applied, level = self.step(component, fresh)
            if applied:
                done += applied
                report(done, None)
        return done

    def step(
        self, component: Component, fresh: bool, guard: Callable[[], bool] | None = None
    ) -> tuple[int, bool]:
        """Apply one batch in one transaction: how many events, and whether it is level.

        `guard()` runs in the transaction once the component's checkpoint is held; False
        (a lost lease) raises `NotTheRunner` and rolls the transaction back.
        """
        with self.storage.transaction():
            session = self._session(component)
            if guard is not None and not guard():
                raise NotTheRunner(f"{component!r}: its lease has passed to another runner")
            cursor = session.position(component)
            rows = self.storage.read_all(cursor, self.batch)
            if rows:
                self._apply(session, component, rows, fresh)
                return len(rows), False
            if not session.replaying(component):
                return 0, True
            # Writers leave a component under replay to it. While its checkpoint is held, every
            # committed event is final and every uncommitted one is applied by its own writer
            # once the mark is gone: so the replay ends by taking every committed event, gaps
            # or not, and lifting the mark, in one transaction.
            applied = 0
            while rows := self.storage.read_committed(cursor, self.batch):
                self._apply(session, component, rows, fresh)
                applied += len(rows)
                cursor = rows[-1].position
            session.finish_replay(component)
            return applied, True

    def _apply(
        self, session: Session, component: Component, rows: Sequence[StoredEvent], fresh: bool
    ) -> None:
        records = [self.decode(row) for row in rows]
        send = None if fresh or self.sender is None else self.sender(session)
        applied = session.apply(records, only=component, send=send)
        if isinstance(applied, Failure):
            raise applied.failure()
        flushed = session.flush(at={component.name: rows[-1].position})
        if isinstance(flushed, Failure):
            raise flushed.failure()

    def replay_stream(self, component: Component, stream_id: str, streams: Sequence[str]) -> None:
        """Rebuild one stream's documents or rows from its events (of every stream type)."""
        keyed = isinstance(component, DocumentProjection) and component.keyed_by_stream
        resettable = isinstance(component, SqlProjection) and component.reset_stream is not None
        if not (keyed or resettable):
            raise ConfigurationError(
                f"{component!r} cannot replay one stream: that takes a DocumentProjection keyed"
                " by stream id, or a SqlProjection with reset_stream="
            )
        with replay_scope(), self.storage.transaction():
            session = self._session(component)
            limit = session.position(component)
            rows = sorted(
                (
                    row
                    for stream_type in streams
                    for row in self.storage.read_stream(stream_type, stream_id, 0, None)
                    if row.position <= limit  # later ones are the log's, for catch-up
                ),
                key=lambda row: row.position,
            )
            if isinstance(component, SqlProjection):
                self._with_connection(component.reset_stream, stream_id)  # type: ignore[arg-type]
            else:
                session.forget(component, stream_id)
            applied = session.apply([self.decode(row) for row in rows], only=component)
            if isinstance(applied, Failure):
                raise applied.failure()
            flushed = session.flush()
            if isinstance(flushed, Failure):
                raise flushed.failure()
