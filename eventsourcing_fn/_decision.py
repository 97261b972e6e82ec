"""Pure: run commands against an evolving state, checking each event serializes before use."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from returns.result import Failure

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
) -> tuple[S, list[Decided]] | CommandError:
    """The state after every command and the events they produced, or the first rejection.

    A plain value or error rather than a `Result`: this runs once per command."""
    decided: list[Decided] = []
    plans: dict[type, _Plan] = {}  # a command's events are of few classes: look each up once
    for command in commands:
        result = aggregate.run(command, state, stream_id=stream_id)
        if isinstance(result, Failure):
            error: CommandError = result.failure()
            return error
        for event in result.unwrap():
            plan = plans.get(type(event))
            if plan is None:
                plan = plans[type(event)] = _plan(aggregate, codec, event)
            evolve, name, version, encode = plan
            try:
                text = encode(event)
            except InvalidPayload as exc:
                return _invalid(aggregate, stream_id, command, exc)
            decided.append(_new(Decided, (event, name, version, text, command)))
            state = evolve(state, event)
    return state, decided


_new = tuple.__new__
_Plan = tuple[Callable[[Any, Any], Any], str, int, Callable[[Any], str]]


def _plan(aggregate: Aggregate[Any], codec: Codec, event: object) -> _Plan:
    """How an event of this class is applied and written: its evolve, type name, version and
    encoder; `ConfigurationError` when the aggregate or the store does not know it."""
    evolve = aggregate.evolver(event)
    known = codec.event_encoder(type(event))
    if known is None:
        raise ConfigurationError(
            f"aggregate {aggregate.name!r} emitted {type(event).__qualname__}, "
            "which the store does not know: give it an evolve of its own (a subclass does not "
            "inherit its base's type name)"
        )
    return (evolve, *known)


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
