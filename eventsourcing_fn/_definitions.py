"""Pure: whether a function or class is a later definition of another (a re-run cell)."""

from __future__ import annotations

import sys

import attrs


def redefines(new: object, old: object) -> bool:
    """Whether `new` is a later definition of `old`: another object with the same module and
    qualified name, defined at module level or in `__main__` (a notebook or interactive session).

    Two functions of one name inside one function body stay two definitions (a duplicate).
    """
    if new is old:
        return False
    module = getattr(new, "__module__", None)
    qualname = getattr(new, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return False
    if module != getattr(old, "__module__", None) or qualname != getattr(old, "__qualname__", 0):
        return False
    if "<lambda>" in qualname:  # every lambda has that name: two are two definitions
        return False
    return module == "__main__" or "<locals>" not in qualname


def describe(cls: type) -> str:
    """A class's qualified name, as messages show it."""
    return getattr(cls, "__qualname__", repr(cls))


def is_stale(cls: type) -> bool:
    """Whether `cls` is no longer the class its module binds to its name (its cell ran again)."""
    holder: object = sys.modules.get(cls.__module__)
    for part in cls.__qualname__.split("."):
        if part == "<locals>":  # a class made inside a function: nothing to look it up in
            return False
        holder = getattr(holder, part, None)
    return holder is not None and holder is not cls


def unlike_classes(left: object, right: object) -> tuple[type, type] | None:
    """The first two different classes of one qualified name met walking `left` and `right`
    side by side (attrs fields, sequences, dict values), or None."""
    a, b = type(left), type(right)
    if a is not b:
        return (a, b) if a.__qualname__ == b.__qualname__ else None
    pairs: list[tuple[object, object]] = []
    if attrs.has(a):
        pairs = [(getattr(left, f.name), getattr(right, f.name)) for f in attrs.fields(a)]
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        pairs = list(zip(left, right, strict=False))
    elif isinstance(left, dict) and isinstance(right, dict):
        pairs = [(value, right[key]) for key, value in left.items() if key in right]
    for one, other in pairs:
        found = unlike_classes(one, other)
        if found is not None:
            return found
    return None


def alike_note(expected: object, actual: object) -> str:
    """Why two values that print the same are not equal, naming a stale class when one is."""
    pair = unlike_classes(expected, actual)
    if pair is None:
        return "  (alike as text, yet not equal: an object differs in identity or type)"
    name = pair[0].__qualname__
    stale = [side for side, cls in zip(("expected", "actual"), pair, strict=True) if is_stale(cls)]
    if stale:
        return (
            f"  (alike as text, yet not equal: the {stale[0]} {name} is an instance of the class "
            f"from an earlier run of its cell; re-run the cells that use {name} after it, "
            "such as the aggregate's and the store's)"
        )
    return (
        f"  (alike as text, yet not equal: two different classes are named {name}, "
        f"from {pair[0].__module__} and {pair[1].__module__})"
    )
