"""Pure: event handlers of one kind for one component, registered by annotation.

A handler takes `(first, event)` or `(first, event, record)` (listeners: `(event)` or
`(event, record)`); the event's annotation picks the classes it handles, a union registers
each member (all of them or, on an error, none), and `object` (or `typing.Any`) handles every
event where a catch-all is allowed. An event goes to the handler of the most specific class
along its MRO, so a catch-all only sees what nothing else claims.

A definition made again — the same module and qualified name, as a re-run notebook cell or a
reloaded module makes it — replaces its earlier self: a function replaces its old registrations,
a class takes its old class's place, and an event of a new class finds a handler that is still
registered for the old one.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._annotations import annotated_classes, check_arity
from ._definitions import describe, redefines


class Handler:
    """One registered function and whether it takes the `Recorded` envelope too."""

    __slots__ = ("fn", "name", "with_record")

    def __init__(self, fn: Callable[..., Any], with_record: bool) -> None:
        self.fn = fn
        self.with_record = with_record
        self.name = getattr(fn, "__qualname__", repr(fn))


class Handlers:
    """The handlers of one kind (`on`, `react`, `after`, `evolve`, `decide`) of one component."""

    def __init__(self, kind: str, owner: str, *, leading: int = 1, catch_all: bool = True) -> None:
        self.kind = kind
        self.owner = owner
        self.leading = leading  # parameters before the event: 1 (view/state/conn), 0 (listener)
        self.catch_all = catch_all  # whether `object`/`Any` may claim every event
        self.by_class: dict[type, Handler] = {}
        self.revision = 0  # moves on every change, so a holder of derived data can refresh it
        self._cache: dict[type, Handler | None] = {}

    def __bool__(self) -> bool:
        return bool(self.by_class)

    def register(self, fn: Callable[..., Any], localns: Mapping[str, Any]) -> None:
        """Add `fn` for every class its event parameter names; TypeError naming it otherwise."""
        arity = (self.leading + 1, self.leading + 2)
        params = check_arity(fn, self.kind, arity)
        classes = self.classes_of(fn, params[self.leading], localns)
        self.add(classes, Handler(fn, len(params) == arity[1]))

    def classes_of(
        self, fn: Callable[..., Any], param: str, localns: Mapping[str, Any]
    ) -> tuple[type, ...]:
        """The classes `param` of `fn` is annotated with; TypeError for a refused catch-all."""
        classes = annotated_classes(fn, param, self.kind, localns)
        catch_alls = [c for c in classes if c is object or c is typing.Any]
        if catch_alls and not self.catch_all:
            raise TypeError(
                f"{self.kind} {_name(fn)}: the annotation of {param!r} is "
                f"{_shown(catch_alls[0])}, but {self.owner} dispatches on specific classes; "
                "name the class (or a union of classes) it handles. Only projections, process "
                "managers and listeners take every event"
            )
        return tuple(object if c is typing.Any else c for c in classes)

    def add(self, classes: Iterable[type], handler: Handler) -> None:
        """Register `handler` for `classes`, all or none; TypeError on a duplicate."""
        fn = handler.fn
        # A re-run definition of a registered function drops every old registration of it.
        table = {c: h for c, h in self.by_class.items() if not redefines(fn, h.fn)}
        for cls in classes:
            for known in [k for k in table if k is cls or redefines(cls, k)]:
                old = table[known]
                if old.fn is not fn:
                    raise TypeError(
                        f"{self.kind} {handler.name}: {self.owner} already has {_an(self.kind)} "
                        f"for {describe(cls)} ({old.name}). Re-running a cell replaces a function "
                        f"of the same name; to register a renamed one, re-run the cell that "
                        f"creates {self.owner} first"
                    )
                del table[known]
            table[cls] = handler
        self.by_class = table
        self._cache = {}
        self.revision += 1

    def get(self, cls: type) -> Handler | None:
        """The handler for events of `cls` (a re-run class finds its old class's), or None."""
        try:
            return self._cache[cls]
        except KeyError:
            found = self._find(cls)
            self._cache[cls] = found
            return found

    def _find(self, cls: type) -> Handler | None:
        for base in cls.__mro__:
            handler = self.by_class.get(base)
            if handler is not None:
                return handler
            for known, handler in self.by_class.items():
                if redefines(base, known):
                    return handler
        return None


def _an(kind: str) -> str:
    noun = kind if kind in ("evolve", "decide") else f"{kind} handler"
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def _shown(annotation: object) -> str:
    return "typing.Any" if annotation is typing.Any else getattr(annotation, "__name__", "?")


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", repr(fn))
