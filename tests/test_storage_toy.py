"""The public storage contract, run as a third party runs it: against a toy backend of its own."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import pytest

from eventsourcing_fn.storage import Storage, StoredEvent, StreamAppend, memory_storage
from eventsourcing_fn.testing.storage import StorageContract, StorageFactory, new_event

pytest_plugins = ["pytester"]  # runs a forgetful subclass in a pytest of its own


def logging_storage(log: list[str]) -> Storage:
    """A toy backend: memory storage that logs every row it appends."""
    storage = memory_storage()

    def logging_append(batches: Sequence[StreamAppend]) -> Sequence[StoredEvent]:
        rows = storage.append(batches)
        log.extend(f"{row.stream_type}/{row.stream_id}@{row.version}" for row in rows)
        return rows

    return attrs.evolve(storage, name="logging", append=logging_append)


class TestToyBackend(StorageContract):
    """Every contract rule holds for the toy backend, from one fixture."""

    @pytest.fixture
    def log(self) -> list[str]:
        """What the toy backend appended, one line a row."""
        return []

    @pytest.fixture
    def storage_factory(self, log: list[str]) -> StorageFactory:
        """One toy storage per test: every storage the suite asks for is the same object."""
        storage = logging_storage(log)
        return lambda: storage

    def test_appends_go_through_the_wrapper(self, storage: Storage, log: list[str]) -> None:
        """A backend's own tests sit beside the contract's: here, appends are logged."""
        storage.append([StreamAppend("account", "a", 0, [new_event(), new_event()])])
        assert log == ["account/a@1", "account/a@2"]


def test_a_subclass_without_a_factory_is_told_what_to_define(pytester: pytest.Pytester) -> None:
    """A contract subclass that forgets `storage_factory` errors, saying what to define."""
    pytester.makepyfile(
        """
        from eventsourcing_fn.testing.storage import StorageContract

        class TestForgotten(StorageContract):
            pass
        """
    )
    result = pytester.runpytest("-q", "-k", "test_versions_count_from_one")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*defines a `storage_factory` fixture*"])
