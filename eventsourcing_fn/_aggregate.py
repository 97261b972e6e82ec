"""Pure aggregates: state plus `decide` and `evolve` functions registered by annotation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from returns.result import Failure, Result, Success

from ._annotations import caller_locals, check_arity
from ._arguments import short
from ._codec import Upcaster
from ._definitions import describe, redefines
from ._envelope import Recorded
from ._errors import CommandError, ConfigurationError, StreamClosedError, explain
from ._handlers import Handler, Handlers

S = TypeVar("S")
F = TypeVar("F", bound=Callable[..., Any])


class Aggregate(Generic[S]):
    """A stream type: an initial state, `decide` and `evolve` functions, upcasters, options."""

    def __init__(
        self,
        name: str,
        *,
        initial: S,
        snapshot_every: int | None = None,
        snapshot_version: int = 1,
        terminal: Callable[[S], bool] | None = None,
    ) -> None:
        if snapshot_every is not None and snapshot_every < 1:
            raise ValueError(f"aggregate {name!r}: snapshot_every must be >= 1")
        self.name = name
        self.initial = initial
        self.snapshot_every = snapshot_every
        self.snapshot_version = snapshot_version
        self.terminal = terminal
        owner = f"aggregate {name!r}"
        self._evolvers = Handlers("evolve", owner, catch_all=False)
        self._deciders = Handlers("decide", owner, catch_all=False)
        self.upcasters: dict[tuple[str, int], Upcaster] = {}
        self._upcasts = 0  # changes to `upcasters`, for `revision`

    def __repr__(self) -> str:
        return f"Aggregate({self.name!r})"

    def evolve(self, fn: F) -> F:
        """Register `fn(state, event) -> state` for the event class(es) it annotates."""
        _, event = check_arity(fn, "evolve", (2,))
        classes = self._evolvers.classes_of(fn, event, caller_locals())
        self._evolvers.add(classes, Handler(fn, with_record=False))
        return fn

    def decide(self, fn: F) -> F:
        """Register `fn(command, state) -> events` for the command class(es) it annotates."""
        command, _ = check_arity(fn, "decide", (2,))
        classes = self._deciders.classes_of(fn, command, caller_locals())
        self._deciders.add(classes, Handler(fn, with_record=False))
        return fn

    def upcast(self, type_name: str, *, from_version: int) -> Callable[[F], F]:
        """Register a pure `dict -> dict` upcaster from `from_version` to the next version."""

        def register(fn: F) -> F:
            check_arity(fn, "upcast", (1,))
            key = (type_name, from_version)
            known = self.upcasters.get(key)
            if known is not None and known is not fn and not redefines(fn, known):
                raise TypeError(
                    f"upcast {fn.__qualname__}: aggregate {self.name!r} already upcasts "
                    f"{type_name!r} from version {from_version}"
                )
            self.upcasters[key] = fn
            self._upcasts += 1
            return fn

        return register

    @property
    def event_classes(self) -> tuple[type, ...]:
        """Every event class this aggregate can evolve by."""
        return tuple(self._evolvers.by_class)

    @property
    def command_classes(self) -> tuple[type, ...]:
        """Every command class this aggregate decides."""
        return tuple(self._deciders.by_class)

    @property
    def revision(self) -> int:
        """A number that changes whenever a function is registered, so a store sees it."""
        return self._evolvers.revision + self._deciders.revision + self._upcasts

    def handles_event(self, cls: type) -> bool:
        """Whether events of `cls` have an evolve here."""
        return self._evolvers.get(cls) is not None

    def handles_command(self, cls: type) -> bool:
        """Whether commands of `cls` have a decide here."""
        return self._deciders.get(cls) is not None

    def evolver(self, event: object) -> Callable[[S, Any], S]:
        """The evolve function for `event`; ConfigurationError when there is none."""
        handler = self._evolvers.get(type(event))
        if handler is None:
            raise ConfigurationError(
                f"aggregate {self.name!r} has no evolve for event type {describe(type(event))}"
            )
        return handler.fn

    def fold(self, events: Iterable[object], state: S | None = None) -> S:
        """The state after applying `events` (plain or `Recorded`) to `state` (or `initial`)."""
        current: S = self.initial if state is None else state
        for event in events:
            if isinstance(event, Recorded):
                event = event.event
            current = self.evolver(event)(current, event)
        return current

    def is_terminal(self, state: S) -> bool:
        """Whether `state` takes no further commands."""
        return self.terminal is not None and bool(self.terminal(state))

    def run(
        self, command: object, state: S | None = None, *, stream_id: str | None = None
    ) -> Result[tuple[Any, ...], CommandError]:
        """Decide `command` against `state` (or `initial`): the events, or why it was rejected."""
        current: S = self.initial if state is None else state
        if self.is_terminal(current):
            where = f"stream {short(stream_id)}" if stream_id is not None else "a stream"
            return Failure(
                StreamClosedError(
                    f"aggregate {self.name!r}, {where}: command {type(command).__qualname__} "
                    "rejected, the stream is closed (its state is terminal)",
                    aggregate=self.name,
                    stream_id=stream_id,
                    command=command,
                )
            )
        decide = self._deciders.get(type(command))
        if decide is None:
            raise ConfigurationError(self._undecidable(command))
        try:
            produced = decide.fn(command, current)
        except Exception as exc:  # raising in decide rejects the command
            return Failure(self._rejected(command, stream_id, exc))
        if isinstance(produced, Failure):
            return Failure(self._rejected(command, stream_id, produced.failure()))
        if isinstance(produced, Success):
            produced = produced.unwrap()
        return Success(_as_events(produced))

    def _undecidable(self, command: object) -> str:
        text = f"aggregate {self.name!r} has no decide for command {describe(type(command))}"
        if isinstance(command, list | tuple):
            text += (
                ": pass commands one by one, not as one list "
                "(execute(aggregate, stream_id, *commands))"
            )
        return text

    def _rejected(self, command: object, stream_id: str | None, reason: object) -> CommandError:
        where = f"stream {short(stream_id)}" if stream_id is not None else "a stream"
        why = explain(reason)
        return CommandError(
            f"aggregate {self.name!r}, {where}: "
            f"command {type(command).__qualname__} rejected ({why})",
            aggregate=self.name,
            stream_id=stream_id,
            command=command,
            reason=reason,
        )


def _as_events(produced: object) -> tuple[Any, ...]:
    if produced is None:
        return ()
    if isinstance(produced, list | tuple):
        return tuple(produced)
    if isinstance(produced, Sequence) and not isinstance(produced, str):
        return tuple(produced)
    return (produced,)
