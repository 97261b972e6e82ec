"""The storage contract as a pytest suite: every rule a backend keeps, run against yours.

Subclass `StorageContract` and define one fixture, `storage_factory`: a callable that makes
storages of your backend sharing one database, empty when the test starts.

```python
import pytest
from eventsourcing_fn.testing.storage import StorageContract


class TestMyBackend(StorageContract):
    @pytest.fixture
    def storage_factory(self, tmp_path):
        made = []

        def make():
            made.append(my_storage(tmp_path / "db"))
            return made[-1]

        yield make
        for storage in made:
            storage.close()
```

Each rule is a test method with a one-line docstring saying the behaviour; the rules are grouped
in classes (`AppendRules`, `ReadAllRules`, `TransactionRules`, ...) that `StorageContract` joins.
The property tests need Hypothesis: without it installed, only they fail.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from .._loading import payload_reader
from ..storage import (
    Checkpoint,
    NewEvent,
    Storage,
    StoredEvent,
    StoredSnapshot,
    StreamAppend,
    VersionConflict,
)

__all__ = ["StorageContract", "StorageFactory", "new_event"]

StorageFactory = Callable[[], Storage]
"""Makes storages of one backend on one database: each call a new storage object or the same."""


def new_event(n: int = 0, **overrides: Any) -> NewEvent:
    """A serialized event with fresh id and timestamp."""
    fields: dict[str, Any] = {
        "type": "Happened",
        "schema_version": 1,
        "data": f'{{"n": {n}}}',
        "event_id": uuid.uuid4(),
        "recorded_at": datetime.now(UTC),
    }
    fields.update(overrides)
    return NewEvent(**fields)


def events(count: int) -> list[NewEvent]:
    """`count` distinct serialized events."""
    return [new_event(i) for i in range(count)]


def append(
    storage: Storage,
    stream_id: str,
    count: int = 1,
    expected: int | None = None,
    stream_type: str = "account",
) -> Sequence[StoredEvent]:
    """Append `count` events to one stream."""
    return storage.append([StreamAppend(stream_type, stream_id, expected, events(count))])


def versions(storage: Storage, stream_id: str, stream_type: str = "account") -> list[int]:
    """The versions stored for one stream, in order."""
    return [row.version for row in storage.read_stream(stream_type, stream_id, 0, None)]


def positions(storage: Storage) -> list[int]:
    """Every position in the log, in the order `iter_all` yields them."""
    return [row.position for row in storage.iter_all()]


class Boom(Exception):
    """Raised inside a transaction to make it roll back."""


def fail_in_transaction(storage: Storage, work: Callable[[], object]) -> None:
    """Run `work` in a transaction, then raise Boom out of it."""
    with storage.transaction():
        work()
        raise Boom


def fail_in_savepoint(storage: Storage, work: Callable[[], object]) -> None:
    """Run `work` in a savepoint, then raise Boom out of it."""
    with storage.savepoint():
        work()
        raise Boom


class AppendRules:
    """Appending: versions, positions and the rows returned."""

    def test_versions_count_from_one(self, storage: Storage) -> None:
        """A new stream's events get versions 1..n in the order given."""
        rows = append(storage, "s", 3, expected=0)
        assert [r.version for r in rows] == [1, 2, 3]

    def test_positions_start_at_one_and_increase(self, storage: Storage) -> None:
        """Positions are at least 1 and strictly increase across appends."""
        rows = [*append(storage, "a", 2), *append(storage, "b", 3), *append(storage, "a", 1)]
        assert rows[0].position >= 1
        assert all(x.position < y.position for x, y in itertools.pairwise(rows))

    def test_later_append_continues_versions(self, storage: Storage) -> None:
        """A second append to a stream continues from its last version."""
        append(storage, "s", 2, expected=0)
        rows = append(storage, "s", 2, expected=2)
        assert [r.version for r in rows] == [3, 4]

    def test_returned_rows_equal_stored_rows(self, storage: Storage) -> None:
        """The rows `append` returns are exactly the rows read back."""
        rows = append(storage, "s", 3)
        assert list(storage.read_stream("account", "s", 0, None)) == list(rows)

    def test_rows_returned_in_the_order_given(self, storage: Storage) -> None:
        """A multi-stream append returns every stream's rows in the order given."""
        rows = storage.append(
            [StreamAppend("account", "a", 0, events(2)), StreamAppend("account", "b", 0, events(1))]
        )
        assert [(r.stream_id, r.version) for r in rows] == [("a", 1), ("a", 2), ("b", 1)]

    def test_fields_round_trip_exactly(self, storage: Storage) -> None:
        """Every field, including microseconds and the UUID, reads back unchanged."""
        at = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC)
        event = NewEvent(
            type="Renamed",
            schema_version=3,
            data='{"name": "\\u00e9t\\u00e9",  "x": [1, 2.5, null]}',
            event_id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
            recorded_at=at,
            actor_id="ann",
            correlation_id="corr",
            causation_id="cause",
            metadata='{"ip": "10.0.0.1"}',
        )
        storage.append([StreamAppend("account", "s", 0, [event])])
        (row,) = storage.read_stream("account", "s", 0, None)
        assert row._asdict() == {
            **event._asdict(),
            "stream_type": "account",
            "stream_id": "s",
            "version": 1,
            "position": row.position,
        }
        assert row.recorded_at.utcoffset() == timedelta(0)
        assert isinstance(row.event_id, uuid.UUID)

    def test_zero_microseconds_round_trip(self, storage: Storage) -> None:
        """A timestamp on a whole second reads back equal and aware."""
        at = datetime(2024, 1, 1, tzinfo=UTC)
        storage.append([StreamAppend("account", "s", 0, [new_event(recorded_at=at)])])
        (row,) = storage.read_stream("account", "s", 0, None)
        assert row.recorded_at == at
        assert row.recorded_at.utcoffset() == timedelta(0)

    def test_absent_optional_fields_stay_none(self, storage: Storage) -> None:
        """actor, correlation and causation ids that were None read back as None."""
        append(storage, "s")
        (row,) = storage.read_stream("account", "s", 0, None)
        assert (row.actor_id, row.correlation_id, row.causation_id) == (None, None, None)
        assert row.metadata == "{}"


class ExpectedVersionRules:
    """The expected-version check: a conflict raises and appends nothing."""

    def test_conflict_raises_with_versions(self, storage: Storage) -> None:
        """A wrong expected version raises VersionConflict carrying expected and actual."""
        append(storage, "s", 2)
        with pytest.raises(VersionConflict) as info:
            append(storage, "s", 1, expected=1)
        assert (info.value.stream_type, info.value.stream_id) == ("account", "s")
        assert (info.value.expected, info.value.actual) == (1, 2)

    def test_conflict_appends_nothing(self, storage: Storage) -> None:
        """A conflicting append leaves the stream and the log as they were."""
        append(storage, "s", 2)
        with pytest.raises(VersionConflict):
            append(storage, "s", 3, expected=0)
        assert versions(storage, "s") == [1, 2]
        assert len(positions(storage)) == 2

    def test_one_stream_twice_in_one_append(self, storage: Storage) -> None:
        """A second batch for the same stream is checked against the end the first one left."""
        rows = storage.append(
            [StreamAppend("account", "s", 0, events(1)), StreamAppend("account", "s", 1, events(2))]
        )
        assert [row.version for row in rows] == [1, 2, 3]
        assert versions(storage, "s") == [1, 2, 3]

    def test_conflict_on_second_stream_appends_nothing(self, storage: Storage) -> None:
        """A conflict on the second stream of one append leaves the first untouched too."""
        append(storage, "b", 1)
        with pytest.raises(VersionConflict) as info:
            storage.append(
                [StreamAppend("account", "a", 0, events(2)), StreamAppend("account", "b", 0, [])]
            )
        assert info.value.stream_id == "b"
        assert versions(storage, "a") == []
        assert len(positions(storage)) == 1

    def test_new_stream_expected_zero(self, storage: Storage) -> None:
        """Expected version 0 means the stream must not exist yet."""
        append(storage, "s", 1, expected=0)
        with pytest.raises(VersionConflict) as info:
            append(storage, "s", 1, expected=0)
        assert info.value.actual == 1

    def test_expecting_a_future_version_conflicts(self, storage: Storage) -> None:
        """Expecting a version beyond the stream's end is a conflict too."""
        with pytest.raises(VersionConflict) as info:
            append(storage, "s", 1, expected=5)
        assert (info.value.expected, info.value.actual) == (5, 0)

    def test_any_appends_after_current_end(self, storage: Storage) -> None:
        """Expected version None appends after whatever the stream holds."""
        append(storage, "s", 2)
        rows = append(storage, "s", 2, expected=None)
        assert [r.version for r in rows] == [3, 4]


class StreamIdentityRules:
    """A stream is named by its type and id, whatever text they hold."""

    def test_stream_type_is_part_of_identity(self, storage: Storage) -> None:
        """The same stream id under two stream types names two different streams."""
        append(storage, "same", 2, stream_type="account")
        rows = append(storage, "same", 1, expected=0, stream_type="order")
        assert [r.version for r in rows] == [1]
        assert versions(storage, "same", "account") == [1, 2]
        assert versions(storage, "same", "order") == [1]

    @pytest.mark.parametrize(
        "stream_id",
        [
            'it\'s "quoted"',
            "'; DROP TABLE events; --",
            "Ünïcødé ✓ 𝄞 流",
            "back\\slash %_ wildcards",
            "x" * 10_000,
        ],
        ids=["quotes", "injection", "unicode", "backslash", "10kb"],
    )
    def test_hostile_stream_ids_round_trip(self, storage: Storage, stream_id: str) -> None:
        """Stream ids with quotes, SQL, unicode or 10 KB of text round-trip unchanged."""
        append(storage, stream_id, 2, stream_type=stream_id[:50])
        rows = storage.read_stream(stream_id[:50], stream_id, 0, None)
        assert [(r.stream_type, r.stream_id, r.version) for r in rows] == [
            (stream_id[:50], stream_id, 1),
            (stream_id[:50], stream_id, 2),
        ]
        assert [r.stream_id for r in storage.read_all(0, 10)] == [stream_id, stream_id]


class ReadStreamRules:
    """Reading one stream by version."""

    def test_unknown_stream_is_empty(self, storage: Storage) -> None:
        """Reading a stream that was never appended to gives no rows."""
        assert list(storage.read_stream("account", "nobody", 0, None)) == []

    def test_after_skips_earlier_versions(self, storage: Storage) -> None:
        """`after` returns only versions greater than it."""
        append(storage, "s", 5)
        assert [r.version for r in storage.read_stream("account", "s", 3, None)] == [4, 5]

    def test_up_to_includes_its_version(self, storage: Storage) -> None:
        """`up_to` returns versions up to and including it."""
        append(storage, "s", 5)
        assert [r.version for r in storage.read_stream("account", "s", 1, 3)] == [2, 3]

    def test_up_to_past_the_end(self, storage: Storage) -> None:
        """`up_to` beyond the last version returns everything after `after`."""
        append(storage, "s", 3)
        assert [r.version for r in storage.read_stream("account", "s", 0, 99)] == [1, 2, 3]

    def test_other_streams_are_excluded(self, storage: Storage) -> None:
        """A stream read returns only that stream's rows."""
        append(storage, "a", 2)
        append(storage, "b", 2)
        append(storage, "a", 1)
        rows = storage.read_stream("account", "a", 0, None)
        assert [(r.stream_id, r.version) for r in rows] == [("a", 1), ("a", 2), ("a", 3)]


class ReadAllRules:
    """Reading the log by position, also while others append."""

    def test_pages_in_position_order(self, storage: Storage) -> None:
        """`read_all(after, limit)` pages through the log in position order without overlap."""
        written = [r.position for i in range(5) for r in append(storage, f"s{i}", 3)]
        seen: list[int] = []
        after = 0
        while page := storage.read_all(after, 4):
            assert len(page) <= 4
            seen.extend(r.position for r in page)
            after = page[-1].position
        assert seen == written

    def test_after_the_end_is_empty(self, storage: Storage) -> None:
        """Reading after the last position gives no rows."""
        rows = append(storage, "s", 2)
        assert list(storage.read_all(rows[-1].position, 10)) == []

    def test_after_skips_earlier_positions(self, storage: Storage) -> None:
        """`after` returns only positions greater than it."""
        rows = append(storage, "s", 4)
        assert list(storage.read_all(rows[1].position, 10)) == list(rows[2:])

    def test_concurrent_writers_never_skip_a_reader(self, storage: Storage) -> None:
        """A reader following the log while threads append sees every event once, in order."""
        writers, appends = 4, 25
        done = threading.Event()
        seen: list[int] = []

        def write(n: int) -> None:
            for i in range(appends):
                append(storage, f"w{n}-{i}", 2)

        def follow() -> None:
            after = 0
            while True:
                finished = done.is_set()
                for row in storage.read_all(after, 50):
                    seen.append(row.position)
                    after = row.position
                if finished and not storage.read_all(after, 1):
                    return

        reader = threading.Thread(target=follow)
        reader.start()
        threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        reader.join()
        assert seen == positions(storage)
        assert len(seen) == writers * appends * 2
        assert seen == sorted(set(seen))


class TransactionRules:
    """Transactions: all or nothing, nested ones joining the outer one."""

    def test_writes_commit_together(self, storage: Storage) -> None:
        """Writes inside a transaction are all visible after it ends."""
        with storage.transaction():
            append(storage, "a", 2)
            append(storage, "b", 1)
            storage.write_checkpoint(Checkpoint("proj", 3))
            storage.put_document("docs", "k", "{}")
        assert versions(storage, "a") == [1, 2]
        assert versions(storage, "b") == [1]
        assert storage.read_checkpoint("proj") == Checkpoint("proj", 3)
        assert storage.get_document("docs", "k") == "{}"

    def test_exception_rolls_everything_back(self, storage: Storage) -> None:
        """An exception leaving the block undoes every write made inside it."""
        append(storage, "a", 1)
        storage.put_document("docs", "k", '"before"')

        def writes() -> None:
            append(storage, "a", 2)
            append(storage, "b", 1)
            storage.write_checkpoint(Checkpoint("proj", 3))
            storage.write_snapshot(StoredSnapshot("account", "a", 1, 1, "{}"))
            storage.put_document("docs", "k", None)
            storage.put_document("docs", "new", "{}")
            storage.clear_documents("docs")

        with pytest.raises(Boom):
            fail_in_transaction(storage, writes)
        assert versions(storage, "a") == [1]
        assert versions(storage, "b") == []
        assert len(positions(storage)) == 1
        assert storage.read_checkpoint("proj") is None
        assert storage.read_snapshot("account", "a", None) is None
        assert storage.all_documents("docs") == [("k", '"before"')]

    def test_reads_see_own_writes(self, storage: Storage) -> None:
        """Reads inside a transaction see that transaction's uncommitted writes."""
        with storage.transaction():
            rows = append(storage, "s", 2)
            storage.write_checkpoint(Checkpoint("proj", 2, "{}"))
            storage.put_document("docs", "k", "{}")
            assert list(storage.read_stream("account", "s", 0, None)) == list(rows)
            assert storage.read_checkpoint("proj") == Checkpoint("proj", 2, "{}")
            assert storage.get_document("docs", "k") == "{}"

    def test_log_shows_a_transaction_once_committed(self, storage: Storage) -> None:
        """After commit, `read_all` yields the transaction's appends in order.

        Inside the transaction the log may or may not show them: a gap-safe log may hold back
        every row above the oldest running writer's, the reader's own transaction included.
        """
        with storage.transaction():
            rows = append(storage, "s", 2)
        assert list(storage.read_all(0, 10)) == list(rows)

    def test_nested_transaction_joins_outer(self, storage: Storage) -> None:
        """An exception out of the outer block rolls back what a nested block wrote."""

        def nested() -> None:
            with storage.transaction():
                append(storage, "inner", 1)
            assert versions(storage, "inner") == [1]

        with pytest.raises(Boom):
            fail_in_transaction(storage, nested)
        assert versions(storage, "inner") == []

    def test_conflict_inside_transaction_leaves_earlier_writes(self, storage: Storage) -> None:
        """A VersionConflict caught inside a transaction keeps the writes before it."""
        with storage.transaction():
            append(storage, "a", 1)
            with pytest.raises(VersionConflict):
                append(storage, "a", 1, expected=0)
        assert versions(storage, "a") == [1]


class SnapshotRules:
    """Snapshots: the newest at or below a version."""

    def test_missing_snapshot_is_none(self, storage: Storage) -> None:
        """A stream without snapshots has none."""
        assert storage.read_snapshot("account", "s", None) is None

    def test_newest_at_or_below(self, storage: Storage) -> None:
        """`read_snapshot` returns the newest snapshot whose version is at or below `up_to`."""
        for version in (10, 5, 20):
            storage.write_snapshot(
                StoredSnapshot("account", "s", version, 1, f'{{"v": {version}}}')
            )
        assert storage.read_snapshot("account", "s", None) == StoredSnapshot(
            "account", "s", 20, 1, '{"v": 20}'
        )
        assert storage.read_snapshot("account", "s", 19) == StoredSnapshot(
            "account", "s", 10, 1, '{"v": 10}'
        )
        assert storage.read_snapshot("account", "s", 5) == StoredSnapshot(
            "account", "s", 5, 1, '{"v": 5}'
        )
        assert storage.read_snapshot("account", "s", 4) is None

    def test_same_version_is_replaced(self, storage: Storage) -> None:
        """Writing a snapshot at an existing version replaces it."""
        storage.write_snapshot(StoredSnapshot("account", "s", 5, 1, "old"))
        storage.write_snapshot(StoredSnapshot("account", "s", 5, 2, "new"))
        assert storage.read_snapshot("account", "s", None) == StoredSnapshot(
            "account", "s", 5, 2, "new"
        )

    def test_snapshots_belong_to_their_stream(self, storage: Storage) -> None:
        """A snapshot of one stream is not returned for another stream or stream type."""
        storage.write_snapshot(StoredSnapshot("account", "s", 5, 1, "{}"))
        assert storage.read_snapshot("account", "t", None) is None
        assert storage.read_snapshot("order", "s", None) is None


class CheckpointRules:
    """Checkpoints: one per component, replaced on write."""

    def test_missing_checkpoint_is_none(self, storage: Storage) -> None:
        """An unknown component has no checkpoint."""
        assert storage.read_checkpoint("nobody") is None

    def test_write_then_read(self, storage: Storage) -> None:
        """A written checkpoint reads back equal, with or without state."""
        storage.write_checkpoint(Checkpoint("a", 7, '{"total": 3}'))
        storage.write_checkpoint(Checkpoint("b", 2))
        assert storage.read_checkpoint("a") == Checkpoint("a", 7, '{"total": 3}')
        assert storage.read_checkpoint("b") == Checkpoint("b", 2, None)

    def test_overwrite(self, storage: Storage) -> None:
        """Writing a checkpoint again replaces position and state."""
        storage.write_checkpoint(Checkpoint("a", 7, "{}"))
        storage.write_checkpoint(Checkpoint("a", 9, None))
        assert storage.read_checkpoint("a") == Checkpoint("a", 9, None)


class DocumentRules:
    """Documents: JSON text by projection and key."""

    def test_missing_document_is_none(self, storage: Storage) -> None:
        """An unknown key has no document."""
        assert storage.get_document("docs", "nobody") is None

    def test_put_get_overwrite(self, storage: Storage) -> None:
        """A put document reads back; a second put replaces it."""
        storage.put_document("docs", "k", '{"v": 1}')
        assert storage.get_document("docs", "k") == '{"v": 1}'
        storage.put_document("docs", "k", '{"v": 2}')
        assert storage.get_document("docs", "k") == '{"v": 2}'

    def test_put_none_deletes(self, storage: Storage) -> None:
        """Putting None deletes the document; deleting a missing one is fine."""
        storage.put_document("docs", "k", "{}")
        storage.put_document("docs", "k", None)
        storage.put_document("docs", "never", None)
        assert storage.get_document("docs", "k") is None
        assert storage.all_documents("docs") == []

    def test_all_sorted_by_key(self, storage: Storage) -> None:
        """`all_documents` lists one projection's documents in key (code point) order."""
        for key in ["b", "a", "B", "é", "a2"]:
            storage.put_document("docs", key, f'"{key}"')
        storage.put_document("other", "z", "{}")
        assert list(storage.all_documents("docs")) == [
            (key, f'"{key}"') for key in ["B", "a", "a2", "b", "é"]
        ]

    def test_clear_only_that_projection(self, storage: Storage) -> None:
        """`clear_documents` removes one projection's documents and no other's."""
        storage.put_document("docs", "k", "{}")
        storage.put_document("other", "k", "[]")
        storage.clear_documents("docs")
        assert storage.all_documents("docs") == []
        assert storage.get_document("other", "k") == "[]"


class BatchRules:
    """Many checkpoints or documents in one call."""

    def test_read_checkpoints_returns_those_that_exist(self, storage: Storage) -> None:
        """read_checkpoints gives every named checkpoint that exists, keyed by name."""
        storage.write_checkpoints([Checkpoint("a", 3, '{"x":1}'), Checkpoint("b", 5)])
        assert storage.read_checkpoints(["b", "a", "missing"]) == {
            "a": Checkpoint("a", 3, '{"x":1}'),
            "b": Checkpoint("b", 5),
        }
        assert storage.read_checkpoints([]) == {}

    def test_write_checkpoints_overwrites(self, storage: Storage) -> None:
        """write_checkpoints replaces earlier checkpoints of the same names."""
        storage.write_checkpoints([Checkpoint("a", 1)])
        storage.write_checkpoints([Checkpoint("a", 7, "[]")])
        assert storage.read_checkpoint("a") == Checkpoint("a", 7, "[]")

    def test_put_and_get_many_documents(self, storage: Storage) -> None:
        """put_documents writes and deletes in one call; get_documents reads many keys."""
        keys = [f"k{i:04}" for i in range(1200)]  # more than one chunk of parameters
        storage.put_documents("p", [(k, f'{{"i":{i}}}') for i, k in enumerate(keys)])
        storage.put_documents("p", [("k0000", None), ("k0001", '"new"'), ("nope", None)])
        found = storage.get_documents("p", [*keys, "absent"])
        assert len(found) == 1199
        assert found["k0001"] == '"new"'
        assert "k0000" not in found
        assert storage.get_documents("other", keys) == {}

    def test_batch_writes_roll_back_with_the_transaction(self, storage: Storage) -> None:
        """Checkpoints and documents written in a failed transaction are gone."""

        def work() -> None:
            storage.write_checkpoints([Checkpoint("a", 1)])
            storage.put_documents("p", [("k", "1")])

        with pytest.raises(Boom):
            fail_in_transaction(storage, work)
        assert storage.read_checkpoints(["a"]) == {}
        assert storage.get_documents("p", ["k"]) == {}


class LastPositionRules:
    """The highest committed position."""

    def test_last_position_is_the_highest_committed(self, storage: Storage) -> None:
        """last_position is 0 for an empty log, then the position of the newest event."""
        assert storage.last_position() == 0
        rows = append(storage, "s", 3)
        assert storage.last_position() == rows[-1].position
        with pytest.raises(Boom):
            fail_in_transaction(storage, lambda: append(storage, "t", 2))
        assert storage.last_position() == rows[-1].position


class LeaseRules:
    """Leases: one owner at a time, until it runs out or is released."""

    def test_one_owner_at_a_time(self, storage: Storage) -> None:
        """A lease held by one owner is refused to another until it ends or is released."""
        assert storage.lease("c", "a", 30)
        assert storage.lease("c", "a", 30)  # renewing
        assert not storage.lease("c", "b", 30)
        storage.release("c", "b")  # not b's to give up
        assert not storage.lease("c", "b", 30)
        storage.release("c", "a")
        assert storage.lease("c", "b", 30)

    def test_an_expired_lease_passes_on(self, storage: Storage) -> None:
        """Once a lease has run out, another owner takes it."""
        assert storage.lease("c", "a", 0.05)
        time.sleep(0.1)
        assert storage.lease("c", "b", 30)
        assert not storage.lease("c", "a", 30)

    def test_a_lease_taken_in_a_failed_transaction_is_not_taken(self, storage: Storage) -> None:
        """Inside a transaction, a lease commits or rolls back with it."""
        with pytest.raises(Boom):
            fail_in_transaction(storage, lambda: storage.lease("c", "a", 30))
        assert storage.lease("c", "b", 30)


class CountingRules:
    """Counting the rows after a position and waiting for new ones."""

    def test_count_after(self, storage: Storage) -> None:
        """count_after counts the committed events after a position."""
        rows = append(storage, "s", 5)
        assert storage.count_after(0) == 5
        assert storage.count_after(rows[1].position) == 3
        assert storage.count_after(rows[-1].position) == 0

    def test_wait_for_events_wakes_on_an_append(self, storage_factory: StorageFactory) -> None:
        """wait_for_events returns early once another storage object appends."""
        waiter, writer = storage_factory(), storage_factory()
        assert not waiter.wait_for_events(0.05)
        woke: list[bool] = []
        thread = threading.Thread(target=lambda: woke.append(waiter.wait_for_events(10)))
        started = time.monotonic()
        thread.start()
        time.sleep(0.2)
        append(writer, "s")
        thread.join()
        assert woke == [True]
        assert time.monotonic() - started < 5


class SavepointRules:
    """Savepoints: a failed block undone alone inside a transaction."""

    def test_savepoint_undoes_only_its_block(self, storage: Storage) -> None:
        """A savepoint that raises undoes its own writes; the transaction goes on and commits."""

        def work() -> None:
            append(storage, "undone", 2)
            storage.put_documents("p", [("k", "1")])

        with storage.transaction():
            append(storage, "kept")
            with pytest.raises(Boom):
                fail_in_savepoint(storage, work)
            append(storage, "kept", expected=1)
        assert versions(storage, "kept") == [1, 2]
        assert versions(storage, "undone") == []
        assert storage.get_documents("p", ["k"]) == {}

    def test_savepoint_that_succeeds_keeps_its_writes(self, storage: Storage) -> None:
        """Writes inside a savepoint that ends normally commit with the transaction."""
        with storage.transaction(), storage.savepoint():
            append(storage, "s", 2)
        assert versions(storage, "s") == [1, 2]

    def test_savepoint_outside_a_transaction_is_one(self, storage: Storage) -> None:
        """Outside a transaction, a savepoint is a transaction of its own."""
        with pytest.raises(Boom):
            fail_in_savepoint(storage, lambda: append(storage, "s"))
        assert versions(storage, "s") == []

    def test_nested_savepoints(self, storage: Storage) -> None:
        """An inner savepoint rolls back alone; the outer one keeps its own writes."""
        with storage.transaction(), storage.savepoint():
            append(storage, "outer")
            with pytest.raises(Boom):
                fail_in_savepoint(storage, lambda: append(storage, "inner"))
        assert versions(storage, "outer") == [1]
        assert versions(storage, "inner") == []


class PayloadRules:
    """The narrow stream read loading uses: a backend's `StreamReader.payloads`, or else
    `read_stream`'s rows narrowed by the store."""

    def test_payloads_are_the_stream_rows_narrowed(self, storage: Storage) -> None:
        """Payloads are read_stream's rows for any range as (version, type, sv, data)."""
        first = new_event(type="Opened", schema_version=2, data='{"owner":"ann"}')
        storage.append([StreamAppend("account", "a", 0, [first, *events(4)])])
        append(storage, "b")
        payloads = payload_reader(storage)
        for after, up_to in [(0, None), (1, None), (0, 2), (2, 4), (4, 4), (5, None), (0, 99)]:
            rows = storage.read_stream("account", "a", after, up_to)
            narrowed = [(r.version, r.type, r.schema_version, r.data) for r in rows]
            assert list(payloads("account", "a", after, up_to)) == narrowed, (after, up_to)
        assert payloads("account", "a", 0, None)[0] == (1, "Opened", 2, '{"owner":"ann"}')
        assert list(payloads("account", "missing", 0, None)) == []
        assert list(payloads("other", "a", 0, None)) == []

    def test_payloads_refuse_negative_bounds(self, storage: Storage) -> None:
        """A negative `after` or `up_to` is a ValueError naming it, as for read_stream."""
        payloads = payload_reader(storage)
        with pytest.raises(ValueError, match=r"read_stream\(after=-1\)"):
            payloads("account", "a", -1, None)
        with pytest.raises(ValueError, match=r"read_stream\(up_to=-2\)"):
            payloads("account", "a", 0, -2)

    def test_payloads_inside_a_transaction_see_its_writes(self, storage: Storage) -> None:
        """Inside a transaction, payloads are what the transaction appended so far."""
        with storage.transaction():
            append(storage, "a", 2, expected=0)
            assert [p[0] for p in payload_reader(storage)("account", "a", 0, None)] == [1, 2]


class ConnectionRules:
    """The SQL connection of the current transaction, for backends with one."""

    def test_sql_storages_share_the_transaction_connection(self, storage: Storage) -> None:
        """Inside a transaction, connection() is that transaction's: its writes roll back."""
        if storage.connection is None:
            pytest.skip("this storage has no SQL connection (`connection` is None)")
        connection = storage.connection
        with connection() as conn:
            conn.cursor().execute("CREATE TABLE IF NOT EXISTS contract_t (x INTEGER)")

        def work() -> None:
            with connection() as conn:
                conn.cursor().execute("INSERT INTO contract_t VALUES (1)")
            append(storage, "s")

        with pytest.raises(Boom):
            fail_in_transaction(storage, work)
        with connection() as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT count(*) FROM contract_t")
            assert cursor.fetchall() == [(0,)]
            cursor.execute("DROP TABLE contract_t")
        assert versions(storage, "s") == []


class SharingRules:
    """Storages on one database share everything; a wrapped callable is used."""

    def test_second_storage_sees_first_ones_writes(self, storage_factory: StorageFactory) -> None:
        """Two storage objects on the same database share events, checkpoints and documents."""
        first, second = storage_factory(), storage_factory()
        rows = append(first, "s", 2)
        first.write_checkpoint(Checkpoint("proj", 2))
        first.put_document("docs", "k", "{}")
        assert list(second.read_stream("account", "s", 0, None)) == list(rows)
        assert list(second.read_all(0, 10)) == list(rows)
        assert second.read_checkpoint("proj") == Checkpoint("proj", 2)
        assert second.get_document("docs", "k") == "{}"
        assert [r.version for r in append(second, "s", 1, expected=2)] == [3]

    def test_wrapped_callable_is_used(self, storage: Storage) -> None:
        """`attrs.evolve(storage, append=wrapper)` gives a storage whose appends go through it."""
        calls: list[int] = []

        def logged(batches: Sequence[StreamAppend]) -> Sequence[StoredEvent]:
            calls.append(len(batches))
            return storage.append(batches)

        wrapped = attrs.evolve(storage, append=logged)
        with wrapped.transaction():
            rows = append(wrapped, "s", 2)
        assert calls == [1]
        assert list(wrapped.read_stream("account", "s", 0, None)) == list(rows)


class PropertyRules:
    """Laws over generated sequences of appends (these tests need Hypothesis)."""

    def test_versions_have_no_gaps(self, storage: Storage) -> None:
        """Any sequence of appends (exact or ANY) leaves versions 1..n with no gaps."""
        from hypothesis import given, settings
        from hypothesis import strategies as st

        step = st.tuples(st.integers(min_value=0, max_value=4), st.booleans())

        @settings(max_examples=25, deadline=None)
        @given(st.lists(step, min_size=1, max_size=6))
        def law(steps: list[tuple[int, bool]]) -> None:
            stream_id = str(uuid.uuid4())  # the storage outlives examples: a fresh stream each
            total = 0
            for count, exact in steps:
                rows = append(storage, stream_id, count, expected=total if exact else None)
                assert [r.version for r in rows] == list(range(total + 1, total + count + 1))
                total += count
            assert versions(storage, stream_id) == list(range(1, total + 1))

        law()


_NEGATIVE_BOUNDS: list[tuple[str, str, Callable[[Storage], object]]] = [
    ("read_stream", "after", lambda s: s.read_stream("account", "s", -1, None)),
    ("read_stream", "up_to", lambda s: s.read_stream("account", "s", 0, -1)),
    ("read_all", "after", lambda s: s.read_all(-1, 10)),
    ("read_all", "limit", lambda s: s.read_all(0, -1)),
    ("read_committed", "after", lambda s: s.read_committed(-1, 10)),
    ("read_committed", "limit", lambda s: s.read_committed(0, -1)),
    ("count_after", "position", lambda s: s.count_after(-1)),
    ("read_snapshot", "up_to", lambda s: s.read_snapshot("account", "s", -1)),
]


class BoundsRules:
    """Positions, versions and counts are 0 or more: a negative one is refused, never read."""

    @pytest.mark.parametrize(
        ("function", "parameter", "call"),
        _NEGATIVE_BOUNDS,
        ids=[f"{function}-{parameter}" for function, parameter, _ in _NEGATIVE_BOUNDS],
    )
    def test_negative_bound_is_refused(
        self, storage: Storage, function: str, parameter: str, call: Callable[[Storage], object]
    ) -> None:
        """A negative position, version or count raises ValueError naming the parameter."""
        append(storage, "s", 3)
        storage.write_snapshot(StoredSnapshot("account", "s", 2, 1, "{}"))
        with pytest.raises(ValueError, match=rf"\b{parameter}\b"):
            call(storage)

    def test_zero_bounds_are_the_start(self, storage: Storage) -> None:
        """0 is the start of a stream and of the log; a limit of 0 reads nothing."""
        rows = append(storage, "s", 2)
        assert list(storage.read_stream("account", "s", 0, 0)) == []
        assert list(storage.read_all(0, 0)) == []
        assert list(storage.read_committed(0, 0)) == []
        assert list(storage.read_all(0, 10)) == list(rows)
        assert storage.count_after(0) == 2
        assert storage.read_snapshot("account", "s", 0) is None


class KeywordRules:
    """Every callable takes its parameters by the names the `Storage` protocols give them."""

    def test_event_callables_take_keywords(self, storage: Storage) -> None:
        """append, the reads and the counts accept their parameters by keyword."""
        batch = StreamAppend("account", "s", 0, events(2))
        rows = storage.append(batches=[batch])
        read = storage.read_stream(stream_type="account", stream_id="s", after=0, up_to=None)
        assert list(read) == list(rows)
        assert list(storage.read_all(after=0, limit=10)) == list(rows)
        assert list(storage.read_committed(after=0, limit=10)) == list(rows)
        assert storage.count_after(position=rows[0].position) == 1
        assert storage.last_position() == rows[-1].position
        storage.wait_for_events(timeout=0.01)
        with storage.transaction():
            storage.lock_stream(stream_type="account", stream_id="s")

    def test_other_callables_take_keywords(self, storage: Storage) -> None:
        """Snapshots, checkpoints, documents and leases accept their parameters by keyword."""
        snapshot = StoredSnapshot("account", "s", 1, 1, "{}")
        storage.write_snapshot(snapshot=snapshot)
        assert storage.read_snapshot(stream_type="account", stream_id="s", up_to=None) == snapshot
        storage.write_checkpoint(checkpoint=Checkpoint("a", 1))
        storage.write_checkpoints(checkpoints=[Checkpoint("b", 2)])
        assert storage.read_checkpoint(name="a") == Checkpoint("a", 1)
        assert storage.read_checkpoints(names=["b"]) == {"b": Checkpoint("b", 2)}
        storage.put_document(projection="p", key="k", data="1")
        storage.put_documents(projection="p", items=[("j", "2")])
        assert storage.get_document(projection="p", key="k") == "1"
        assert storage.get_documents(projection="p", keys=["j"]) == {"j": "2"}
        assert list(storage.all_documents(projection="p")) == [("j", "2"), ("k", "1")]
        storage.clear_documents(projection="p")
        assert storage.lease(name="l", owner="o", seconds=30)
        storage.release(name="l", owner="o")


class StorageContract(
    AppendRules,
    ExpectedVersionRules,
    StreamIdentityRules,
    ReadStreamRules,
    ReadAllRules,
    BoundsRules,
    TransactionRules,
    SavepointRules,
    SnapshotRules,
    CheckpointRules,
    DocumentRules,
    BatchRules,
    LastPositionRules,
    LeaseRules,
    CountingRules,
    ConnectionRules,
    PayloadRules,
    SharingRules,
    KeywordRules,
    PropertyRules,
):
    """Every rule of the storage contract: subclass it and define a `storage_factory` fixture."""

    @pytest.fixture
    def storage_factory(self) -> StorageFactory:
        """Define this fixture in your subclass: it returns a `StorageFactory` for your backend."""
        pytest.fail(
            "a StorageContract subclass defines a `storage_factory` fixture returning a callable"
            " that makes storages of the backend under test, all on one empty database"
        )

    @pytest.fixture
    def storage(self, storage_factory: StorageFactory) -> Storage:
        """One storage of the backend under test, empty."""
        return storage_factory()
