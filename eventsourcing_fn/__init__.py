"""eventsourcing_fn: functional event sourcing with pure decide/evolve functions."""

from ._aggregate import Aggregate
from ._codec import event_type, make_converter
from ._envelope import ANY, NEW, Context, ExpectedVersion, Loaded, Outcome, Recorded, context
from ._errors import (
    CommandError,
    ConcurrencyError,
    ConfigurationError,
    EventSourcingError,
    EventValidationError,
    InfiniteLoopError,
    ProcessManagerError,
    ProjectionError,
    StorageError,
    StreamClosedError,
    UnknownEventTypeError,
)
from ._store import EventStore

__all__ = [
    "ANY",
    "NEW",
    "Aggregate",
    "CommandError",
    "ConcurrencyError",
    "ConfigurationError",
    "Context",
    "EventSourcingError",
    "EventStore",
    "EventValidationError",
    "ExpectedVersion",
    "InfiniteLoopError",
    "Loaded",
    "Outcome",
    "ProcessManagerError",
    "ProjectionError",
    "Recorded",
    "StorageError",
    "StreamClosedError",
    "UnknownEventTypeError",
    "context",
    "event_type",
    "make_converter",
]
