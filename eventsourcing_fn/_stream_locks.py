"""In-process locks per stream, so threads of one process queue instead of racing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class StreamLocks:
    """One lock per (stream type, stream id), dropped once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], tuple[threading.Lock, list[int]]] = {}

    @contextmanager
    def hold(self, stream_type: str, stream_id: str) -> Iterator[None]:
        """Hold the lock of one stream for the block."""
        key = (stream_type, stream_id)
        with self._guard:
            lock, users = self._locks.setdefault(key, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if not users[0]:
                    del self._locks[key]
