"""Pure: the event model of a store's registrations, as a Mermaid flowchart.

Each aggregate is a box holding its commands and events; an edge from a command to an event
says its `decide` may emit it (read from the return annotation), an edge from an event to a
projection, process manager or listener says that component handles it, and an edge from a
process manager to a command says a reaction sends it (read from a return annotation of
`Annotated[Send, Command, ...]`). What the annotations do not say is left out, with a
`%%` comment naming the function.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
from returns.result import Failure, Result, Success

from ._aggregate import Aggregate
from ._codec import type_info
from ._handlers import Handlers
from ._listener import Listener
from ._process import ProcessManager, Send
from ._projection import DocumentProjection, Projection, SqlProjection

_SAFE = frozenset("_.-")  # whitespace too is coded: a line that reads "direction LR" is a directive
_UNKNOWN: Any = object()  # a return annotation that is missing or does not resolve
_CONTAINERS = {
    list,
    tuple,
    set,
    frozenset,
    collections.abc.Sequence,
    collections.abc.Collection,
    collections.abc.Iterable,
    collections.abc.Iterator,
    collections.abc.Generator,
}
_SHAPES = {  # Mermaid node shapes, by kind
    "command": '["{}"]',
    "event": '["{}"]',
    "view": '[("{}")]',
    "process": '{{{{"{}"}}}}',
    "listener": '>"{}"]',
}
_STYLES = {  # the colours of event modelling's sticky notes
    "command": "fill:#a5d8ff,stroke:#1971c2,color:#000",
    "event": "fill:#ffc078,stroke:#e8590c,color:#000",
    "view": "fill:#b2f2bb,stroke:#2f9e44,color:#000",
    "process": "fill:#d0bfff,stroke:#6741d9,color:#000",
    "listener": "fill:#dee2e6,stroke:#495057,color:#000",
}


class Diagram(str):
    """An event model as Mermaid flowchart text: `str()` or `print()` it, or let a notebook
    draw it (as Mermaid, or as a Markdown mermaid block; nothing is fetched from elsewhere)."""

    def __repr__(self) -> str:
        lines = self.splitlines()
        return f"<Diagram: {lines[0] if lines else ''}, {len(lines)} lines>"

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        return {
            "text/vnd.mermaid": str(self),
            "text/markdown": self._repr_markdown_(),
            "text/plain": str(self),
        }

    def _repr_markdown_(self) -> str:
        return f"```mermaid\n{self}\n```"


def event_model(aggregates: Sequence[Aggregate[Any]], components: Sequence[object]) -> Diagram:
    """The Mermaid flowchart of these aggregates and components (projections, managers,
    listeners), read from their registrations and annotations."""
    model = _Model(aggregates, components)
    for aggregate in aggregates:
        model.add_aggregate(aggregate)
    for component in components:
        model.add_component(component)
    return Diagram(model.render())


@attrs.define
class _Node:
    id: str
    label: str
    kind: str


@attrs.define
class _Group:
    id: str
    label: str
    nodes: list[_Node] = attrs.field(factory=list)


class _Model:
    """The nodes, boxes and edges of a diagram as they are found, then rendered as text."""

    def __init__(self, aggregates: Sequence[Aggregate[Any]], components: Sequence[object]) -> None:
        self.nodes: dict[tuple[str, object], _Node] = {}
        self.loose: list[_Node] = []  # outside every aggregate's box
        self.groups: list[_Group] = []
        self.edges: dict[str, None] = {}  # an ordered set of Mermaid edge lines
        self.notes: list[str] = []
        self.events: list[type] = []  # the aggregates' events, which components may handle
        self.names = _namespace(aggregates, components)

    def node(self, kind: str, key: object, label: str, group: _Group | None = None) -> _Node:
        """The node of `key`, created (in `group`, or loose) on first use."""
        found = self.nodes.get((kind, key))
        if found is None:
            found = _Node(f"{kind[0]}{len(self.nodes) + 1}", label, kind)
            self.nodes[kind, key] = found
            (group.nodes if group is not None else self.loose).append(found)
            if kind == "event" and group is not None and isinstance(key, type):
                self.events.append(key)
        return found

    def edge(self, source: str, target: str, label: str | None = None) -> None:
        arrow = "-->" if label is None else f'-->|"{_escape(label)}"|'
        self.edges[f"{source} {arrow} {target}"] = None

    def add_aggregate(self, aggregate: Aggregate[Any]) -> None:
        group = _Group(f"a{len(self.groups) + 1}", aggregate.name)
        self.groups.append(group)
        names = {**self.names, **_own_names(aggregate)}
        deciders = {c: h.fn for c, h in aggregate._deciders.by_class.items()}
        for command in deciders:
            self.node("command", command, command.__name__, group)
        for cls in aggregate.event_classes:
            self.node("event", cls, type_info(cls)[0], group)
        for command, decide in deciders.items():
            emitted = _classes(_return_hint(decide, names), sends=False)
            if emitted is None:
                self.note(decide, "its return annotation names no event class")
                continue
            for cls in emitted:
                event = self.node("event", cls, type_info(cls)[0], group)
                self.edge(self.nodes["command", command].id, event.id)

    def add_component(self, component: object) -> None:
        kind, tables = _kind(component)
        name = str(getattr(component, "name", component))
        target = self.node(kind, id(component), name)
        handled = list(dict.fromkeys(cls for table in tables for cls in table.by_class))
        for cls in list(self.events):
            match = next(c for c in cls.__mro__ if c in handled or c is object)
            if match is not object:
                self.edge(self.nodes["event", cls].id, target.id)
        if object in handled:
            for group in self.groups:
                self.edge(group.id, target.id, "every event")
        for cls in handled:
            if cls is not object and not any(issubclass(e, cls) for e in self.events):
                self.edge(self.node("event", cls, type_info(cls)[0]).id, target.id)
        if isinstance(component, ProcessManager):
            self.add_sends(component, target)

    def add_sends(self, manager: ProcessManager[Any], source: _Node) -> None:
        reactions = {id(h.fn): h.fn for h in manager.reactions.by_class.values()}
        for react in reactions.values():
            sent = _classes(_return_hint(react, self.names), sends=True)
            if sent is None:
                self.note(react, "its return annotation names no command: Annotated[Send, ...]")
                continue
            for command in sent:
                self.edge(source.id, self.node("command", command, command.__name__).id)

    def note(self, fn: Callable[..., Any], why: str) -> None:
        name = " ".join(str(getattr(fn, "__qualname__", fn)).split())
        self.notes.append(f"%% {name}: {why}")

    def render(self) -> str:
        lines = ["flowchart LR"]
        for group in self.groups:
            lines.append(f'  subgraph {group.id}["{_escape(group.label)}"]')
            lines.extend(f"    {_declare(node)}" for node in group.nodes)
            lines.append("  end")
        lines.extend(f"  {_declare(node)}" for node in self.loose)
        lines.extend(f"  {edge}" for edge in self.edges)
        lines.extend(f"  {note}" for note in self.notes)
        lines.extend(f"  classDef {kind} {style}" for kind, style in _STYLES.items())
        return "\n".join(lines)


def _declare(node: _Node) -> str:
    return f"{node.id}{_SHAPES[node.kind].format(_escape(node.label))}:::{node.kind}"


def _escape(text: str) -> str:
    """Text safe inside a quoted Mermaid label: anything but letters, digits and `_.-` as
    Mermaid's `#code;` entity."""
    return "".join(c if c.isalnum() or c in _SAFE else f"#{ord(c)};" for c in text)


def _kind(component: object) -> tuple[str, list[Handlers]]:
    if isinstance(component, Projection | DocumentProjection | SqlProjection):
        return "view", [component.handlers]
    if isinstance(component, ProcessManager):
        return "process", [component.handlers, component.reactions]
    if isinstance(component, Listener):
        return "listener", [component.first, component.then]
    raise TypeError(f"cannot draw {component!r}: not a projection, process manager or listener")


def _namespace(
    aggregates: Sequence[Aggregate[Any]], components: Sequence[object]
) -> dict[str, Any]:
    """Every class the registrations name, by name: postponed annotations written inside a
    function body cannot be resolved from the function's globals alone."""
    names: dict[str, Any] = {"Send": Send}
    for aggregate in aggregates:
        names.update(_own_names(aggregate))
    for component in components:
        for table in _kind(component)[1]:
            names.update((cls.__name__, cls) for cls in table.by_class if cls is not object)
    return names


def _own_names(aggregate: Aggregate[Any]) -> dict[str, type]:
    classes: Iterable[type] = [*aggregate.command_classes, *aggregate.event_classes]
    return {cls.__name__: cls for cls in classes}


def _return_hint(fn: Callable[..., Any], names: dict[str, Any]) -> Any:
    """The resolved return annotation of `fn`, or `_UNKNOWN` when it has none that resolves."""
    annotation = getattr(fn, "__annotations__", {}).get("return", _UNKNOWN)
    if annotation is _UNKNOWN:
        return _UNKNOWN
    holder = types.SimpleNamespace(__annotations__={"return": annotation})
    local = dict(names)
    if inspect.isfunction(fn):
        local.update(inspect.getclosurevars(fn).nonlocals)
    try:
        return typing.get_type_hints(
            holder, globalns=getattr(fn, "__globals__", {}), localns=local, include_extras=True
        )["return"]
    except Exception:  # the user's annotation text: one that does not evaluate is not drawn
        return _UNKNOWN


def _classes(hint: Any, *, sends: bool) -> list[type] | None:
    """The event classes (`sends`: command classes) a return annotation names; None when it
    names none that can be told, e.g. `Any`, a bare `Send` or no annotation."""
    found: list[type] = []
    unknown = False
    stack = [hint]
    while stack:
        current = stack.pop(0)
        origin, args = typing.get_origin(current), typing.get_args(current)
        if current is None or current is type(None) or current is Failure:
            continue
        if origin is typing.Annotated:
            if sends and args[0] is Send:
                for meta in current.__metadata__:
                    members = typing.get_args(meta) if _is_union(meta) else (meta,)
                    found += [m for m in members if isinstance(m, type)]
            else:
                stack.append(args[0])
        elif _is_union(current):
            stack.extend(args)
        elif origin in (Result, Success) and args:
            stack.append(args[0])
        elif origin is Failure:
            continue
        elif origin in _CONTAINERS and args:
            stack.extend(args[:1] if origin is collections.abc.Generator else args)
        elif current is Ellipsis:
            continue
        elif isinstance(current, type) and origin is None and not sends and current is not object:
            if issubclass(current, BaseException | Result):
                unknown = unknown or issubclass(current, Result)
            else:
                found.append(current)
        else:
            unknown = True
    found = list(dict.fromkeys(found))
    return found if found or not unknown else None


def _is_union(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
