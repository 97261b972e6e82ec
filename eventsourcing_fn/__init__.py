"""eventsourcing_fn: functional event sourcing with pure decide/evolve functions."""

from ._aggregate import Aggregate
from ._codec import event_type, make_converter
from ._diagram import Diagram
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
    ReactionError,
    StorageDataError,
    StorageError,
    StreamClosedError,
    TransientStorageError,
    UnknownEventTypeError,
)
from ._html import History, Records, Step
from ._listener import Listener
from ._process import ProcessManager, Send
from ._projection import DocumentProjection, Projection, SqlProjection
from ._reactions import replaying
from ._store import EventStore
from ._views import Documents
from ._worker import ComponentStatus, Worker

__all__ = [
    "ANY",
    "NEW",
    "Aggregate",
    "CommandError",
    "ComponentStatus",
    "ConcurrencyError",
    "ConfigurationError",
    "Context",
    "Diagram",
    "DocumentProjection",
    "Documents",
    "EventSourcingError",
    "EventStore",
    "EventValidationError",
    "ExpectedVersion",
    "History",
    "InfiniteLoopError",
    "Listener",
    "Loaded",
    "Outcome",
    "ProcessManager",
    "ProcessManagerError",
    "Projection",
    "ProjectionError",
    "ReactionError",
    "Recorded",
    "Records",
    "Send",
    "SqlProjection",
    "Step",
    "StorageDataError",
    "StorageError",
    "StreamClosedError",
    "TransientStorageError",
    "UnknownEventTypeError",
    "Worker",
    "context",
    "event_type",
    "make_converter",
    "replaying",
]
