"""Pure: event handlers of one kind for one component, registered by annotation.

A handler takes `(first, event)` or `(first, event, record)` (listeners: `(event)` or
`(event, record)`); the event's annotation picks the classes it handles, a union registers
each member, and `object` (or `typing.Any`) handles every event. An event goes to the handler
of the most specific class along its MRO, so a catch-all only sees what nothing else claims.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any

from ._annotations import annotated_classes, check_arity


class Handler:
    """One registered function and whether it takes the `Recorded` envelope too."""

    __slots__ = ("fn", "name", "with_record")

    def __init__(self, fn: Callable[..., Any], with_record: bool) -> None:
        self.fn = fn
        self.with_record = with_record
        self.name = getattr(fn, "__qualname__", repr(fn))


class Handlers:
    """The handlers of one kind (`on`, `react`, `after`) of one component."""

    def __init__(self, kind: str, owner: str, *, leading: int = 1) -> None:
        self.kind = kind
        self.owner = owner
        self.leading = leading  # parameters before the event: 1 (view/state/conn), 0 (listener)
        self.by_class: dict[type, Handler] = {}
        self._cache: dict[type, Handler | None] = {}

    def __bool__(self) -> bool:
        return bool(self.by_class)

    def register(self, fn: Callable[..., Any], localns: Mapping[str, Any]) -> None:
        """Add `fn` for every class its event parameter names; TypeError naming it otherwise."""
        arity = (self.leading + 1, self.leading + 2)
        params = check_arity(fn, self.kind, arity)
        handler = Handler(fn, len(params) == arity[1])
        classes = annotated_classes(fn, params[self.leading], self.kind, localns)
        classes = tuple(object if c is typing.Any else c for c in classes)
        for cls in classes:
            if cls in self.by_class:
                raise TypeError(
                    f"{self.kind} {handler.name}: {self.owner} already has an {self.kind} "
                    f"handler for {cls.__qualname__} ({self.by_class[cls].name})"
                )
        for cls in classes:
            self.by_class[cls] = handler
        self._cache.clear()

    def get(self, cls: type) -> Handler | None:
        """The handler for events of `cls`, or None."""
        try:
            return self._cache[cls]
        except KeyError:
            found = next((self.by_class[c] for c in cls.__mro__ if c in self.by_class), None)
            self._cache[cls] = found
            return found
