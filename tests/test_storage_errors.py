"""Stored data that cannot be read is a StorageDataError on every backend: retrying won't help."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from bank import Deposit, Open, account

from eventsourcing_fn import EventStore, StorageDataError, StorageError, TransientStorageError
from eventsourcing_fn.storage import NewEvent, Storage, StreamAppend


def write_row(storage: Storage, stream_id: str, data: str, metadata: str = "{}") -> int:
    """Append one `Opened` row past the store; its position."""
    row = NewEvent("Opened", 1, data, uuid.uuid4(), datetime.now(UTC), metadata=metadata)
    (stored,) = storage.append([StreamAppend("account", stream_id, None, [row])])
    return stored.position


def test_payload_that_does_not_fit_its_class_is_a_data_error(storage: Storage) -> None:
    """A payload that is JSON but not the event's shape is a StorageDataError naming the row."""
    store = EventStore(storage, aggregates=[account])
    position = write_row(storage, "a", '{"nobody": "here"}')
    with pytest.raises(StorageDataError, match=f"position {position}") as info:
        store.load(account, "a")
    assert not isinstance(info.value, TransientStorageError)


# PostgreSQL's json columns refuse text that is not JSON, so only these backends can hold it.
@pytest.mark.parametrize("storage_factory", ["memory", "sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("data", "metadata"),
    [('{"owner": "ann"', "{}"), ('{"owner": "ann"}', "{oops")],
    ids=["data", "metadata"],
)
def test_text_that_is_not_json_is_a_data_error(storage: Storage, data: str, metadata: str) -> None:
    """A payload or metadata that does not parse is a StorageDataError naming the stream."""
    store = EventStore(storage, aggregates=[account])
    write_row(storage, "b", data, metadata)
    with pytest.raises(StorageDataError, match="account/'b' version 1"):
        store.events(account, "b")


@pytest.mark.parametrize("storage_factory", ["sqlite", "postgres"], indirect=True)
def test_row_corrupted_with_raw_sql_is_a_data_error(storage: Storage) -> None:
    """A payload rewritten past the store with SQL fails to decode as a StorageDataError."""
    store = EventStore(storage, aggregates=[account])
    store.execute(account, "c", Open("ann")).unwrap()
    store.execute(account, "c", Deposit(5)).unwrap()
    assert storage.connection is not None
    mark = "?" if storage.name == "sqlite" else "%s"
    with storage.transaction(), storage.connection() as conn:
        conn.execute(
            f"UPDATE events SET data = {mark} WHERE stream_id = {mark} AND version = {mark}",
            ('{"amount": "lots"}', "c", 2),
        )
    with pytest.raises(StorageDataError, match="version 2") as info:
        store.load(account, "c")
    assert isinstance(info.value, StorageError)
    with pytest.raises(StorageDataError, match="version 2"):  # the same read fails the same way
        store.load(account, "c")
