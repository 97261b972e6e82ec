"""Pure: run commands against an evolving state, checking each event serializes before use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

from returns.result import Failure, Result, Success

from ._aggregate import Aggregate
from ._arguments import short
from ._codec import Codec, InvalidPayload
from ._errors import CommandError, ConfigurationError, EventValidationError

S = TypeVar("S")


class Decided(NamedTuple):
    """One event a command produced, already serialized (a tuple: one is made per event)."""

    event: object
    type: str
    schema_version: int
    data: str
    command: object


def decide_all(
    aggregate: Aggregate[S],
    codec: Codec,
    stream_id: str | None,
    state: S,
    commands: Sequence[object],
) -> Result[tuple[S, list[Decided]], CommandError]:
    """The state after every command and the events they produced, or the first rejection."""
    decided: list[Decided] = []
    for command in commands:
        result = aggregate.run(command, state, stream_id=stream_id)
        if isinstance(result, Failure):
            return Failure(result.failure())
        for event in result.unwrap():
            evolve = aggregate.evolver(event)  # ConfigurationError when there is none
            encoded = _encode(aggregate, codec, stream_id, event, command)
            if isinstance(encoded, CommandError):
                return Failure(encoded)
            decided.append(encoded)
            state = evolve(state, event)
    return Success((state, decided))


def _encode(
    aggregate: Aggregate[Any], codec: Codec, stream_id: str | None, event: object, command: object
) -> Decided | CommandError:
    try:
        encoded = codec.encode_event(event)
    except InvalidPayload as exc:
        return _invalid(aggregate, stream_id, command, exc)
    if encoded is None:
        raise ConfigurationError(
            f"aggregate {aggregate.name!r} emitted {type(event).__qualname__}, "
            "which the store does not know: give it an evolve of its own (a subclass does not "
            "inherit its base's type name)"
        )
    return Decided(event, *encoded, command)


def _invalid(
    aggregate: Aggregate[Any],
    stream_id: str | None,
    command: object,
    exc: InvalidPayload,
) -> CommandError:
    where = short(stream_id) if stream_id is not None else "(new)"
    return EventValidationError(
        f"aggregate {aggregate.name!r}, stream {where}: event {exc} "
        f"(from command {type(command).__qualname__}); nothing appended",
        aggregate=aggregate.name,
        stream_id=stream_id,
        command=command,
        reason=exc.__cause__ or exc,
        event_type=exc.type_name,
        field=exc.field,
    )
