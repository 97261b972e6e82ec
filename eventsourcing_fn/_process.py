"""Pure process-manager definitions: folds per key plus reactions that send commands."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import attrs

from ._annotations import caller_locals
from ._envelope import ExpectedVersion, Recorded
from ._handlers import Handlers
from ._projection import KeyFn, call

S = TypeVar("S")
F = TypeVar("F", bound=Callable[..., Any])
_STATELESS: Any = object()


@attrs.frozen(init=False, repr=False)
class Send:
    """Commands for one stream of an aggregate, sent by a process manager's reaction."""

    aggregate: Any
    stream_id: str
    commands: tuple[object, ...]
    expected_version: int | ExpectedVersion | None

    def __init__(
        self,
        aggregate: Any,
        stream_id: str,
        *commands: object,
        expected_version: int | ExpectedVersion | None = None,
    ) -> None:
        self.__attrs_init__(aggregate, stream_id, commands, expected_version)

    def __repr__(self) -> str:
        name = getattr(self.aggregate, "name", self.aggregate)
        args = ", ".join([repr(name), repr(self.stream_id), *map(repr, self.commands)])
        if self.expected_version is not None:
            args += f", expected_version={self.expected_version!r}"
        return f"Send({args})"


class ProcessManager(Generic[S]):
    """Folds events into a state per `key` and reacts to them by sending commands.

    `key(event, record)` picks the state an event belongs to (one shared state without it);
    without `initial` the manager is stateless and only reacts (its reactions see `None`).
    """

    def __init__(
        self,
        name: str,
        *,
        initial: S = _STATELESS,
        key: KeyFn | None = None,
        state_type: type | None = None,
    ) -> None:
        self.name = name
        self.stateful = initial is not _STATELESS
        self.initial: S | None = initial if self.stateful else None
        self.key = key
        self.state_type: type | None = (
            state_type if state_type is not None else type(initial) if self.stateful else None
        )
        self.handlers = Handlers("on", f"process manager {name!r}")
        self.reactions = Handlers("react", f"process manager {name!r}")

    def __repr__(self) -> str:
        return f"ProcessManager({self.name!r})"

    def on(self, fn: F) -> F:
        """Register `fn(state, event[, record]) -> state` for the event class(es) it annotates."""
        if not self.stateful:
            raise TypeError(
                f"on {getattr(fn, '__qualname__', fn)}: process manager {self.name!r} has no"
                " initial state to fold into; give it initial=..."
            )
        self.handlers.register(fn, caller_locals())
        return fn

    def react(self, fn: F) -> F:
        """Register `fn(state, event[, record])` returning or yielding `Send`s."""
        self.reactions.register(fn, caller_locals())
        return fn

    def handles(self, cls: type) -> bool:
        """Whether events of `cls` reach this manager's folds or reactions."""
        return self.handlers.get(cls) is not None or self.reactions.get(cls) is not None

    def key_of(self, record: Recorded[Any]) -> str | None:
        """The key of the state `record` belongs to ("" for the one shared state; None: none)."""
        return "" if self.key is None else self.key(record.event, record)

    def evolve(self, state: S | None, record: Recorded[Any]) -> S | None:
        """The state after folding one event."""
        handler = self.handlers.get(type(record.event))
        return state if handler is None else call(handler, state, record)

    def sends(self, state: S | None, record: Recorded[Any]) -> list[Send]:
        """The commands the reaction to one event sends, given the state after its fold."""
        handler = self.reactions.get(type(record.event))
        if handler is None:
            return []
        produced = call(handler, state, record)
        if produced is None:
            return []
        if isinstance(produced, Send):
            return [produced]
        sends = list(produced) if isinstance(produced, Iterable) else [produced]
        for send in sends:
            if not isinstance(send, Send):
                raise TypeError(
                    f"react {handler.name} of process manager {self.name!r} produced"
                    f" {send!r}, not a Send"
                )
        return sends
