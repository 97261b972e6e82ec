"""Pure checks of the public methods' arguments: a wrong type or value fails at the call.

Each check raises `TypeError` (wrong kind of value) or `ValueError` (right kind, impossible
value) naming the method and the argument, before any storage is touched.
"""

from __future__ import annotations

from datetime import datetime

from ._envelope import ANY, NEW, ExpectedVersion

MAX_POSITION = (1 << 63) - 1  # positions and versions are signed 64-bit integers in storage


def short(text: str, limit: int = 60) -> str:
    """`repr(text)`, cut to about `limit` characters so a huge id makes a short message."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}...({len(text)} chars)"


def _r(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}...({len(text)} chars)"


def stream_id(method: str, value: object, *, optional: bool = False) -> None:
    """A stream id is a non-empty `str` that every backend can store (no NUL, valid UTF-8)."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise TypeError(f"{method}(stream_id={_r(value)}): a stream id is a str")
    if not value:
        raise ValueError(f"{method}(stream_id=''): a stream id is a non-empty str")
    problem = text(value)
    if problem:
        raise ValueError(f"{method}(stream_id={short(value)}): {problem}")


def text(value: str) -> str | None:
    """Why a string cannot be stored in a text column of every backend, or None."""
    if "\0" in value:
        return "holds a NUL character, which PostgreSQL text cannot store"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"holds a lone surrogate at index {exc.start}, which is not valid UTF-8"
    return None


def count(method: str, name: str, value: object, *, optional: bool = False) -> None:
    """A version, position or count: an `int` (not a bool) from 0 up."""
    if value is None and optional:
        return
    if type(value) is not int:  # bool is an int subclass, and 1.0 == 1: both are mistakes here
        raise TypeError(f"{method}({name}={_r(value)}): expected an int")
    if value < 0:
        raise ValueError(f"{method}({name}={value}): must be >= 0")


def position(method: str, name: str, value: object) -> None:
    """A log position: an `int` from 0 up to the largest that storage holds."""
    count(method, name, value)
    if value > MAX_POSITION:  # type: ignore[operator]
        raise ValueError(f"{method}({name}={value}): positions are below 2**63")


def expected_version(value: object) -> int | ExpectedVersion | None:
    """`None` (the loaded version), an int from 0 (0 is `NEW`), `NEW` or `ANY`."""
    if value is None or value is ANY or value is NEW:
        return value
    if type(value) is not int:
        raise TypeError(
            f"execute(expected_version={_r(value)}): expected an int, NEW or ANY "
            "(a str, float or bool would silently change the concurrency check)"
        )
    if value < 0:
        raise ValueError(f"execute(expected_version={value}): versions are >= 0")
    return NEW if value == 0 else value


def aware(method: str, name: str, value: object) -> None:
    """An aware `datetime` (a naive one is ambiguous)."""
    if not isinstance(value, datetime):
        raise TypeError(f"{method}({name}={_r(value)}): expected an aware datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise TypeError(
            f"{method}({name}={_r(value)}): a naive datetime is ambiguous, give a timezone"
        )


def clamp(value: int | None) -> int | None:
    """A version bound past anything storage holds means no bound at all."""
    return None if value is not None and value > MAX_POSITION else value
