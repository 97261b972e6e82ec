"""Storage backends: each a `Storage` record of plain callables over the same row shapes."""

from ._memory import memory_storage
from ._postgres import UnstorableText, postgres_schema, postgres_storage
from ._record import (
    Checkpoint,
    NewEvent,
    OrderConflict,
    Storage,
    StoredEvent,
    StoredSnapshot,
    StreamAppend,
    VersionConflict,
)
from ._sqlite import sqlite_schema, sqlite_storage

__all__ = [
    "Checkpoint",
    "NewEvent",
    "OrderConflict",
    "Storage",
    "StoredEvent",
    "StoredSnapshot",
    "StreamAppend",
    "UnstorableText",
    "VersionConflict",
    "memory_storage",
    "postgres_schema",
    "postgres_storage",
    "sqlite_schema",
    "sqlite_storage",
]
