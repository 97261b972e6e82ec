"""The library's errors. Outcomes travel as `Failure(error)`; faults are raised."""

from __future__ import annotations

from typing import Any


def explain(reason: object) -> str:
    """A cause in a message: `Type: message`, just `Type` when it has no message, else repr."""
    if isinstance(reason, BaseException):
        text = str(reason)
        return f"{type(reason).__name__}: {text}" if text else type(reason).__name__
    return repr(reason)


class EventSourcingError(Exception):
    """Base of every error this library raises or returns."""

    def __repr__(self) -> str:
        reason = getattr(self, "reason", None)
        first = [f"reason={reason!r}"] if reason is not None else []
        return f"{type(self).__name__}({', '.join([*first, repr(str(self))])})"

    def _repr_html_(self) -> str:
        # Rendering depends on errors, not the other way round: import it late.
        from ._html import error_html

        return error_html(self)


class ConfigurationError(EventSourcingError, TypeError):
    """Bad wiring: a programming error, raised rather than returned (also a `TypeError`)."""


class CommandError(EventSourcingError):
    """A command was rejected; `.reason` is the exception or value that rejected it."""

    def __init__(
        self,
        message: str,
        *,
        aggregate: str,
        stream_id: str | None,
        command: Any,
        reason: Any = None,
    ) -> None:
        super().__init__(message)
        self.aggregate = aggregate
        self.stream_id = stream_id
        self.command = command
        self.reason = reason


class ConcurrencyError(CommandError):
    """The stream moved on since it was loaded: `.expected` and `.actual` versions."""

    def __init__(self, message: str, *, expected: int | None, actual: int, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.expected = expected
        self.actual = actual


class EventValidationError(CommandError):
    """An event cannot be serialized as its annotations say; `.event_type` and `.field`."""

    def __init__(self, message: str, *, event_type: str, field: str | None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.event_type = event_type
        self.field = field


class StreamClosedError(CommandError):
    """The stream's state is terminal: it takes no further commands."""


class ReactionError(EventSourcingError):
    """A component failed while reacting to events; `.reason` is the cause when there is one."""

    def __init__(self, message: str, *, reason: Any = None) -> None:
        super().__init__(message)
        self.reason = reason


class InfiniteLoopError(ReactionError):
    """A reaction cascade re-emitted one of its own ancestors or went too deep."""


class ProjectionError(ReactionError):
    """A projection handler failed; names the projection, handler, event and position."""


class ProcessManagerError(ReactionError):
    """A process manager's handler, or a command it sent, failed; names both."""


class UnknownEventTypeError(EventSourcingError):
    """A stored event type/version that no registered class or upcaster can read."""

    def __init__(self, message: str, *, type_name: str, version: int) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.version = version


class StorageError(EventSourcingError):
    """A storage fault: corrupt rows, an unreadable database file, a lost connection."""


class TransientStorageError(StorageError):
    """A fault that may pass: a lost connection, an exhausted pool, a lock or serialization
    timeout. Retrying the whole operation is safe."""


class StorageDataError(StorageError):
    """Stored data that cannot be read: a corrupt row or an undecodable payload. Retrying the
    same read gives the same error."""


# Tracebacks and reprs name the public path (eventsourcing_fn.CommandError), where users
# import and catch these, rather than this private module.
for _error in (
    EventSourcingError,
    ConfigurationError,
    CommandError,
    ConcurrencyError,
    EventValidationError,
    StreamClosedError,
    ReactionError,
    InfiniteLoopError,
    ProjectionError,
    ProcessManagerError,
    UnknownEventTypeError,
    StorageError,
    TransientStorageError,
    StorageDataError,
):
    _error.__module__ = "eventsourcing_fn"
