"""Pure: find the classes a handler's parameter is annotated with, resolving postponed names."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any


def caller_locals(depth: int = 2) -> Mapping[str, Any]:
    """The local names of the scope `depth` frames up (where a decorator is applied)."""
    frame = inspect.currentframe()
    for _ in range(depth):
        frame = frame.f_back if frame is not None else None
    return dict(frame.f_locals) if frame is not None else {}


def check_arity(fn: Callable[..., Any], kind: str, allowed: tuple[int, ...]) -> list[str]:
    """Names of fn's positional parameters; TypeError naming fn if their count is not allowed."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{kind} {_name(fn)}: cannot read its signature ({exc})") from None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required_other = [
        p for p in params if p.kind == p.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    ]
    if len(positional) not in allowed or required_other:
        wanted = " or ".join(str(n) for n in allowed)
        raise TypeError(
            f"{kind} {_name(fn)} must take {wanted} positional parameters, "
            f"it takes ({', '.join(p.name for p in params)})"
        )
    return [p.name for p in positional]


def annotated_classes(
    fn: Callable[..., Any],
    param: str,
    kind: str,
    localns: Mapping[str, Any],
) -> tuple[type, ...]:
    """The classes annotating `param` of `fn` (each member of a union); TypeError otherwise."""
    annotations = getattr(fn, "__annotations__", {})
    if param not in annotations:
        raise TypeError(f"{kind} {_name(fn)}: parameter {param!r} has no type annotation")
    holder = types.SimpleNamespace(__annotations__={param: annotations[param]})
    try:
        hint = typing.get_type_hints(
            holder, globalns=getattr(fn, "__globals__", {}), localns=dict(localns)
        )[param]
    except NameError as exc:
        raise TypeError(
            f"{kind} {_name(fn)}: cannot resolve the annotation of {param!r}: {exc}"
        ) from None
    members = typing.get_args(hint) if _is_union(hint) else (hint,)
    for member in members:
        if not isinstance(member, type) or member is type(None):
            raise TypeError(
                f"{kind} {_name(fn)}: the annotation of {param!r} must be a class or a union "
                f"of classes, not {member!r}"
            )
    return tuple(members)


def _is_union(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", repr(fn))
