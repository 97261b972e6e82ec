"""Pure value types around events: the `Recorded` envelope, `Outcome`, `Loaded`, and `context`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import attrs

E = TypeVar("E")
S = TypeVar("S")


# Built once per event on every write and read: an instance dict makes it in half the time of
# slots (see the storage rows).
@attrs.frozen(repr=False, slots=False)
class Recorded(Generic[E]):
    """An event as stored: the typed event plus where, when and why it was recorded."""

    event: E
    type: str
    schema_version: int
    stream_type: str
    stream_id: str
    version: int
    position: int
    event_id: UUID
    recorded_at: datetime
    actor_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)

    def __repr__(self) -> str:
        return (
            f"Recorded({self.event!r}, {self.stream_type}/{self.stream_id}"
            f"@{self.version}, position={self.position})"
        )

    def _repr_html_(self) -> str:
        # Rendering depends on these values, not the other way round: import it late.
        from ._html import record_html

        return record_html(self)


# An instance dict, so that `events` can be left out until first read (see `appended`).
@attrs.frozen(repr=False, slots=False)
class Outcome(Generic[S]):
    """What `execute` did: the stream's new version, the events it appended and the new state.

    `cascade` holds the events that process managers' reactions appended in the same
    transaction, in the order they were appended.
    """

    stream_id: str
    version: int
    events: tuple[Recorded[Any], ...]
    state: S
    cascade: tuple[Recorded[Any], ...] = ()

    @classmethod
    def appended(
        cls,
        stream_id: str,
        version: int,
        events: Callable[[], tuple[Recorded[Any], ...]],
        state: S,
    ) -> Outcome[S]:
        """An outcome whose envelopes `events()` builds the first time they are read.

        Most callers of `execute` look at the state or the version only: building an envelope
        per event then is a tenth of the command's time spent on objects nobody reads.
        """
        outcome: Outcome[S] = object.__new__(cls)
        vars(outcome).update(
            stream_id=stream_id, version=version, state=state, cascade=(), _build=events
        )
        return outcome

    def __getattr__(self, name: str) -> Any:
        # Called only for attributes missing from the instance: `events` of a lazy outcome.
        build = vars(self).get("_build") if name == "events" else None
        if build is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        events = vars(self)["events"] = build()
        vars(self).pop("_build", None)  # another thread may have built them too: same values
        return events

    def __getstate__(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in attrs.fields(type(self))}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)

    def __repr__(self) -> str:
        parts = [repr(self.stream_id), f"version={self.version}", f"events={_few(self.events)}"]
        parts.append(f"state={self.state!r}")
        if self.cascade:
            parts.append(f"cascade={_few(self.cascade)}")
        return f"Outcome({', '.join(parts)})"

    def _repr_html_(self) -> str:
        from ._html import outcome_html

        return outcome_html(self)


def _few(records: tuple[Recorded[Any], ...], shown: int = 3) -> str:
    """The first few records' reprs, and how many there are in all when that is more."""
    text = ", ".join(map(repr, records[:shown]))
    more = f", ... ({len(records)} in all)" if len(records) > shown else ""
    return f"({text}{more})"


@attrs.frozen
class Loaded(Generic[S]):
    """A stream's state after `version` events (version 0: the stream does not exist yet)."""

    stream_id: str
    version: int
    state: S

    def _repr_html_(self) -> str:
        from ._html import loaded_html

        return loaded_html(self)


@attrs.frozen
class Context:
    """Who and why, stamped on every event appended while it is current."""

    actor_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)


# The default is shared but never mutated: Context is frozen and contexts replace it whole.
_current: ContextVar[Context] = ContextVar("eventsourcing_fn_context", default=Context())  # noqa: B039


def current_context() -> Context:
    """The context that events appended now would carry."""
    return _current.get()


_UNSET: Any = object()


@contextmanager
def context(
    *,
    actor_id: str | None = _UNSET,
    correlation_id: str | None = _UNSET,
    causation_id: str | None = _UNSET,
    metadata: Mapping[str, Any] | None = None,
) -> Iterator[Context]:
    """Set actor, correlation, causation and metadata for events appended inside the block.

    Nested contexts override field by field and merge their metadata; the values are
    per thread and per asyncio task (contextvars).
    """
    outer = _current.get()
    inner = Context(
        actor_id=outer.actor_id if actor_id is _UNSET else actor_id,
        correlation_id=outer.correlation_id if correlation_id is _UNSET else correlation_id,
        causation_id=outer.causation_id if causation_id is _UNSET else causation_id,
        metadata={**outer.metadata, **(metadata or {})},
    )
    token = _current.set(inner)
    try:
        yield inner
    finally:
        _current.reset(token)


@attrs.frozen(repr=False)
class ExpectedVersion:
    """A symbolic expected version: `NEW` (the stream must not exist) or `ANY` (no check)."""

    name: str

    def __repr__(self) -> str:
        return self.name


NEW = ExpectedVersion("NEW")
ANY = ExpectedVersion("ANY")
