"""Storage backends: each a `Storage` record of plain callables over the same row shapes."""

from ._memory import memory_storage
from ._record import (
    Checkpoint,
    NewEvent,
    Storage,
    StoredEvent,
    StoredSnapshot,
    StreamAppend,
    VersionConflict,
)

__all__ = [
    "Checkpoint",
    "NewEvent",
    "Storage",
    "StoredEvent",
    "StoredSnapshot",
    "StreamAppend",
    "VersionConflict",
    "memory_storage",
]
