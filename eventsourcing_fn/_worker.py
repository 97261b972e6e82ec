"""Workers: run a store's projections and process managers from any process or machine.

Each component has one active runner at a time: the holder of its lease in the store's own
database (the server's clock on PostgreSQL). A runner renews the lease before every batch,
inside the batch's transaction, so a runner that lost it (paused past it, cut off) applies
nothing: its transaction rolls back, and on PostgreSQL the server ends a transaction left idle
for longer than a lease. A standby takes the lease once it has run out. Each batch of events is
applied and committed with the component's checkpoint, the commands a process manager sends
included, so an event's effects commit exactly once whatever instant a worker dies at.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import attrs

from ._errors import ConfigurationError, ReactionError, explain
from ._reactions import Component, cursor
from ._replay import NotTheRunner, Runner

if TYPE_CHECKING:
    from ._store import EventStore

_log = logging.getLogger("eventsourcing_fn")


@attrs.frozen
class ComponentStatus:
    """Where one component stands: its position, how far behind the log, its last error."""

    name: str
    position: int
    lag_events: int
    lag_seconds: float | None  # age of the oldest event not applied yet; None when level
    active: bool  # this worker holds the component's lease
    replaying: bool
    last_error: str | None


class Worker:
    """Runs the checkpointed components of `store` (or those named in `components`)."""

    def __init__(
        self,
        store: EventStore,
        *,
        components: Sequence[Component | str] | None = None,
        batch: int = 500,
        poll: float = 0.5,
        lease: float = 3.0,
        max_backoff: float = 30.0,
        name: str | None = None,
    ) -> None:
        if batch < 1 or poll <= 0 or lease <= poll:
            raise ValueError(
                f"Worker(batch={batch}, poll={poll}, lease={lease}): need batch >= 1 and"
                " 0 < poll < lease, so a runner renews its lease before it runs out"
            )
        self.store = store
        self.components = _select(store, components)
        self.poll = poll
        self.lease = lease
        self.max_backoff = max_backoff
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"
        self._runner: Runner = store._worker_runner(batch)
        self._stop = threading.Event()
        self._active: set[str] = set()
        self._errors: dict[str, str] = {}
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"Worker({self.name!r}, components={[c.name for c in self.components]})"

    def run_once(self) -> int:
        """Bring every component this worker can hold up to the log; the events applied.

        Passes repeat until one applies nothing, so events that process managers sent in one
        pass reach the components that ran before them.
        """
        total = 0
        while not self._stop.is_set():
            # One batch per component per round: every lease this worker holds is renewed
            # while another component has a long way to go.
            applied = sum(self._step(component)[0] for component in self.components)
            total += applied
            if not applied:
                return total
        return total

    def run(self) -> None:
        """Run until `stop()`, SIGINT or SIGTERM; a stop lets the current batch finish."""
        self._stop.clear()
        with self._signals():
            try:
                while not self._stop.is_set():
                    if not self.run_once() and not self._stop.is_set():
                        self.store.storage.wait_for_events(self.poll)
            finally:
                self.close()

    def stop(self) -> None:
        """Ask `run()` to return once the current batch has committed."""
        self._stop.set()

    def status(self) -> list[ComponentStatus]:
        """For each component: position, lag in events and seconds, and the last error."""
        storage = self.store.storage
        out = []
        for component in self.components:
            checkpoint = storage.read_checkpoint(component.name)
            position = cursor(checkpoint)
            oldest = storage.read_all(position, 1)
            lag_seconds = (
                (datetime.now(UTC) - oldest[0].recorded_at).total_seconds() if oldest else None
            )
            out.append(
                ComponentStatus(
                    name=component.name,
                    position=position,
                    lag_events=storage.count_after(position),
                    lag_seconds=lag_seconds,
                    active=component.name in self._active,
                    replaying=checkpoint is not None and checkpoint.position < 0,
                    last_error=self._errors.get(component.name),
                )
            )
        return out

    # -- one component --------------------------------------------------------------------------

    def _step(self, component: Component) -> tuple[int, bool]:
        """One batch if this worker may run the component now: (events applied, level)."""
        name = component.name
        if time.monotonic() < self._retry_at.get(name, 0.0):
            return 0, True  # backing off after a fault
        storage = self.store.storage
        try:
            if not storage.lease(name, self.name, self.lease):
                if name in self._active:
                    _log.info("worker %s: component %r passed to another runner", self.name, name)
                self._active.discard(name)
                return 0, True
            if name not in self._active:
                _log.info("worker %s: running component %r", self.name, name)
                self._active.add(name)
            applied, level = self._runner.step(
                component, False, guard=lambda: storage.lease(name, self.name, self.lease)
            )
        except NotTheRunner:
            self._active.discard(name)
            return 0, True
        except Exception as exc:  # a fault (a handler, a lost connection): nothing committed
            self._fault(component, exc)
            return 0, True
        self._failures.pop(name, None)
        self._errors.pop(name, None)
        return applied, level

    def _fault(self, component: Component, exc: Exception) -> None:
        name = component.name
        failures = self._failures[name] = self._failures.get(name, 0) + 1
        delay = min(self.max_backoff, 0.1 * 2 ** (failures - 1))
        self._retry_at[name] = time.monotonic() + delay
        self._errors[name] = f"{explain(exc)}"
        _log.error(
            "worker %s: component %r failed (attempt %d, next in %.1f s): %s: %s",
            self.name,
            name,
            failures,
            delay,
            type(exc).__name__,
            exc,
            # A handler's own failure names it already; anything else deserves a traceback.
            exc_info=not isinstance(exc, ReactionError),
        )

    def close(self) -> None:
        """Give up every lease this worker holds, so a standby takes over at once."""
        for name in sorted(self._active):
            try:
                self.store.storage.release(name, self.name)
            except Exception as exc:  # the lease runs out by itself: say so, go on
                _log.warning("worker %s: could not release %r: %s", self.name, name, exc)
        self._active.clear()

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM stop the loop (only the main thread may take signals)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, frame: FrameType | None) -> None:
            _log.info("worker %s: %s, stopping", self.name, signal.Signals(signum).name)
            self.stop()

        previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _select(store: EventStore, wanted: Sequence[Any] | None) -> list[Component]:
    known = store._components
    if wanted is None:
        return list(known)
    chosen = []
    for item in wanted:
        found = [c for c in known if c is item or c.name == item]
        if not found:
            raise ConfigurationError(f"Worker: {item!r} is not a component of {store!r}")
        chosen.extend(found)
    return chosen
