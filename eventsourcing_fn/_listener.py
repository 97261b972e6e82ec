"""Pure listener definitions: stateless side effects run after a command commits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ._annotations import caller_locals
from ._envelope import Recorded
from ._handlers import Handler, Handlers

F = TypeVar("F", bound=Callable[..., Any])
_log = logging.getLogger("eventsourcing_fn")


class Listener:
    """In-process, best-effort side effects: `on` then `after` handlers, `(event[, record])`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.first = Handlers("on", f"listener {name!r}", leading=0)
        self.then = Handlers("after", f"listener {name!r}", leading=0)

    def __repr__(self) -> str:
        return f"Listener({self.name!r})"

    def on(self, fn: F) -> F:
        """Register `fn(event[, record])`, run for each event before any `after` handler."""
        self.first.register(fn, caller_locals())
        return fn

    def after(self, fn: F) -> F:
        """Register `fn(event[, record])`, run once every listener's `on` saw the event."""
        self.then.register(fn, caller_locals())
        return fn


def notify(listeners: Sequence[Listener], records: Sequence[Recorded[Any]]) -> None:
    """Per event, every listener's `on` then every `after`; a raising handler is logged."""
    for record in records:
        cls = type(record.event)
        for stage in ("first", "then"):
            for listener in listeners:
                handler = getattr(listener, stage).get(cls)
                if handler is not None:
                    _run(listener, handler, record)


def _run(listener: Listener, handler: Handler, record: Recorded[Any]) -> None:
    try:
        if handler.with_record:
            handler.fn(record.event, record)
        else:
            handler.fn(record.event)
    except Exception:  # best effort by contract: the command has committed already
        _log.exception(
            "listener %r: handler %s failed on %s of stream %s/%s at position %d",
            listener.name,
            handler.name,
            record.type,
            record.stream_type,
            record.stream_id,
            record.position,
        )
