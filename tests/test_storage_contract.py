"""The storage contract: memory, SQLite and PostgreSQL keep every rule of the public suite."""

from __future__ import annotations

import pytest
from conftest import StorageFactory

from eventsourcing_fn.testing.storage import StorageContract


class TestStorageContract(StorageContract):
    """Every rule of `eventsourcing_fn.testing.storage`, against each backend of this package."""

    @pytest.fixture
    def storage_factory(self, storage_factory: StorageFactory) -> StorageFactory:
        """Storages of each backend sharing one database (PostgreSQL fails under CI if absent)."""
        return storage_factory
