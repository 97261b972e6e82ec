"""Pure: whether a function or class is a later definition of another (a re-run cell)."""

from __future__ import annotations


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
    return module == "__main__" or "<locals>" not in qualname


def describe(cls: type) -> str:
    """A class's qualified name, as messages show it."""
    return getattr(cls, "__qualname__", repr(cls))
