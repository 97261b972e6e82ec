"""The event store over every storage backend: execute, load, transactions, context."""

from __future__ import annotations

import asyncio
import copy
import pickle
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from bank import (
    Account,
    Close,
    Deposit,
    Deposited,
    Insufficient,
    NotOpen,
    Open,
    Opened,
    Withdraw,
    Withdrawn,
    account,
    make_account,
)
from conftest import StorageFactory
from returns.primitives.exceptions import UnwrapFailedError
from returns.result import Failure, Success

from eventsourcing_fn import (
    ANY,
    NEW,
    Aggregate,
    CommandError,
    ConcurrencyError,
    ConfigurationError,
    EventSourcingError,
    EventStore,
    Loaded,
    Outcome,
    Recorded,
    StorageError,
    UnknownEventTypeError,
    context,
    event_type,
)
from eventsourcing_fn.storage import (
    NewEvent,
    OrderConflict,
    Storage,
    StoredEvent,
    StoredSnapshot,
    StreamAppend,
)


@pytest.fixture
def store(storage: Storage) -> EventStore:
    return EventStore(storage, aggregates=[account])


def row(type_name: str, data: str, version: int = 1, metadata: str = "{}") -> NewEvent:
    """An event in its stored form, for writing past the store."""
    return NewEvent(type_name, version, data, uuid.uuid4(), datetime.now(UTC), metadata=metadata)


def write_rows(
    storage: Storage, stream_id: str, *rows: NewEvent, stream_type: str = "account"
) -> None:
    storage.append([StreamAppend(stream_type, stream_id, None, list(rows))])


def with_rival(storage: Storage, stream_id: str, times: int = 1) -> tuple[Storage, list[int]]:
    """A storage whose first `times` appends are each preceded by a rival's Deposited(100)."""
    calls: list[int] = []

    def append(batches: Sequence[StreamAppend]) -> Sequence[StoredEvent]:
        calls.append(1)
        if len(calls) <= times:
            write_rows(storage, stream_id, row("Deposited", '{"amount":100}'))
        return storage.append(batches)

    return attrs.evolve(storage, append=append), calls


def reads_of(storage: Storage) -> tuple[Storage, list[tuple[int, int | None]]]:
    """A storage recording the (after, up_to) of every read_stream call."""
    calls: list[tuple[int, int | None]] = []

    def read_stream(
        stream_type: str, stream_id: str, after: int, up_to: int | None
    ) -> Sequence[StoredEvent]:
        calls.append((after, up_to))
        return storage.read_stream(stream_type, stream_id, after, up_to)

    return attrs.evolve(storage, read_stream=read_stream), calls


def payloads(store: EventStore, stream_id: str, agg: Aggregate[Any] = account) -> list[object]:
    return [r.event for r in store.events(agg, stream_id)]


class TestExecute:
    def test_success_carries_the_outcome(self, store: EventStore) -> None:
        """execute returns Success(Outcome) with the stream id, new version, events and state."""
        result = store.execute(account, "acc-1", Open("ann"), Deposit(10))
        assert isinstance(result, Success)
        outcome = result.unwrap()
        assert isinstance(outcome, Outcome)
        assert (outcome.stream_id, outcome.version) == ("acc-1", 2)
        assert [r.event for r in outcome.events] == [Opened("ann"), Deposited(10)]
        assert outcome.state == Account("ann", 10)

    def test_recorded_events_carry_every_envelope_field(self, store: EventStore) -> None:
        """Each Recorded has the event, type, schema version, stream, version, position, ids."""
        before = datetime.now(UTC)
        events = store.execute(account, "acc-1", Open("ann"), Deposit(10)).unwrap().events
        after = datetime.now(UTC)
        for recorded, (event, version) in zip(
            events, [(Opened("ann"), 1), (Deposited(10), 2)], strict=True
        ):
            assert isinstance(recorded, Recorded)
            assert recorded.event == event
            assert recorded.type == type(event).__name__
            assert recorded.schema_version == 1
            assert (recorded.stream_type, recorded.stream_id) == ("account", "acc-1")
            assert recorded.version == version
            assert type(recorded.position) is int
            assert recorded.position >= 1
            assert isinstance(recorded.event_id, uuid.UUID)
            assert isinstance(recorded.recorded_at, datetime)
            assert recorded.recorded_at.utcoffset() == timedelta(0)
            assert before - timedelta(seconds=1) <= recorded.recorded_at <= after
            assert (recorded.actor_id, recorded.correlation_id, recorded.causation_id) == (
                None,
                None,
                None,
            )
            assert recorded.metadata == {}
        assert events[0].position < events[1].position
        assert events[0].event_id != events[1].event_id

    def test_stored_envelopes_equal_the_returned_ones(self, store: EventStore) -> None:
        """What events() reads back is exactly what execute returned, field for field."""
        with context(actor_id="ann", metadata={"ip": "1.2.3.4"}):
            returned = store.execute(account, "a", Open("ann"), Deposit(1)).unwrap().events
        read = store.events(account, "a")
        for mine, theirs in zip(returned, read, strict=True):
            assert attrs.asdict(mine, recurse=False) == attrs.asdict(theirs, recurse=False)

    def test_an_outcome_behaves_as_one_built_with_its_events(self, store: EventStore) -> None:
        """An outcome equals, evolves, copies and pickles as one built from its fields."""
        outcome = store.execute(account, "a", Open("ann"), Deposit(1)).unwrap()
        fields = {f.name: getattr(outcome, f.name) for f in attrs.fields(Outcome)}
        built = Outcome(**fields)
        assert outcome == built
        assert len(outcome.events) == 2
        assert outcome.events[1].event == Deposited(1)
        assert attrs.evolve(outcome, version=9) == attrs.evolve(built, version=9)
        assert copy.deepcopy(outcome) == built
        assert pickle.loads(pickle.dumps(outcome)) == built
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            outcome.events = ()  # type: ignore[misc]
        with pytest.raises(AttributeError, match="no attribute 'event'"):
            outcome.event  # type: ignore[attr-defined]  # noqa: B018

    def test_an_unread_outcome_copies_with_its_events(self, store: EventStore) -> None:
        """Copying or pickling an outcome whose events were never read keeps them."""
        first = store.execute(account, "a", Open("ann")).unwrap()
        second = store.execute(account, "b", Open("bob")).unwrap()
        assert [r.event for r in copy.copy(first).events] == [Opened("ann")]
        assert [r.event for r in pickle.loads(pickle.dumps(second)).events] == [Opened("bob")]
        assert first.events[0].stream_id == "a"

    def test_positions_strictly_increase_and_versions_count_from_one(
        self, store: EventStore
    ) -> None:
        """Across streams, positions increase in log order; each stream counts 1..n."""
        for sid in ("a", "b", "a", "c", "b"):
            store.execute(
                account, sid, Deposit(1) if store.load(account, sid).version else Open(sid)
            )
        store.execute(account, "a", Deposit(2), Deposit(3))
        log = list(store.read_all())
        positions = [r.position for r in log]
        assert positions == sorted(set(positions))
        for sid in ("a", "b", "c"):
            assert [r.version for r in store.events(account, sid)] == list(
                range(1, len(store.events(account, sid)) + 1)
            )
        assert [r.version for r in store.events(account, "a")] == [1, 2, 3, 4]

    def test_commands_apply_in_order_against_the_evolving_state(self, store: EventStore) -> None:
        """Each command decides against the state the previous commands' events produced."""
        outcome = store.execute(account, "a", Open("ann"), Deposit(5), Withdraw(5)).unwrap()
        assert [r.event for r in outcome.events] == [Opened("ann"), Deposited(5), Withdrawn(5)]
        assert outcome.state == Account("ann", 0)

    def test_rejection_of_a_later_command_appends_nothing(self, store: EventStore) -> None:
        """A rejected second command leaves even the first command's events unappended."""
        result = store.execute(account, "a", Open("ann"), Withdraw(50))
        assert isinstance(result, Failure)
        error = result.failure()
        assert type(error) is CommandError
        assert error.reason == Insufficient(balance=0, asked=50)
        assert (error.aggregate, error.stream_id, error.command) == ("account", "a", Withdraw(50))
        assert store.load(account, "a").version == 0
        assert list(store.read_all()) == []

    def test_raised_rejection_keeps_the_exception(self, store: EventStore) -> None:
        """A decide that returns Failure(exception) gives a CommandError with that reason."""
        error = store.execute(account, "a", Deposit(1)).failure()
        assert isinstance(error, CommandError)
        assert isinstance(error.reason, NotOpen)
        assert "account" in str(error)
        assert "'a'" in str(error)

    def test_no_events_is_a_success_that_appends_nothing(self, store: EventStore) -> None:
        """A command deciding no events succeeds with the version unchanged."""
        store.execute(account, "a", Open("ann")).unwrap()
        outcome = store.execute(account, "a", Deposit(0)).unwrap()
        assert (outcome.version, outcome.events, outcome.state) == (1, (), Account("ann"))
        assert len(list(store.read_all())) == 1

    def test_none_id_starts_a_new_stream_with_a_uuid(self, store: EventStore) -> None:
        """stream_id=None creates a stream under a fresh UUID id, a new one each time."""
        first = store.execute(account, None, Open("ann")).unwrap()
        second = store.execute(account, None, Open("bob")).unwrap()
        assert uuid.UUID(first.stream_id)
        assert first.stream_id != second.stream_id
        assert first.events[0].stream_id == first.stream_id
        assert store.load(account, first.stream_id).state == Account("ann")

    def test_two_aggregates_may_share_a_stream_id(self, storage: Storage) -> None:
        """(aggregate name, stream id) is the key: one id under two names is two streams."""
        savings = make_account("savings")
        store = EventStore(storage, aggregates=[account, savings])
        store.execute(account, "x", Open("ann"), Deposit(1)).unwrap()
        store.execute(savings, "x", Open("bob")).unwrap()
        assert store.load(account, "x") == store.load(account, "x")
        assert store.load(account, "x").state == Account("ann", 1)
        assert store.load(savings, "x").state == Account("bob")
        assert [r.stream_type for r in store.read_all()] == ["account", "account", "savings"]

    def test_store_without_storage_is_in_memory(self) -> None:
        """EventStore() with no storage works, in memory."""
        store = EventStore(aggregates=[account])
        assert store.execute(account, "a", Open("ann")).unwrap().version == 1
        assert store.storage.name == "memory"


class TestExpectedVersion:
    def test_matching_int_succeeds(self, store: EventStore) -> None:
        """An expected version equal to the stream's version appends."""
        store.execute(account, "a", Open("ann")).unwrap()
        assert store.execute(account, "a", Deposit(1), expected_version=1).unwrap().version == 2

    def test_stale_int_is_a_concurrency_failure(self, store: EventStore) -> None:
        """A stale expected version is Failure(ConcurrencyError) carrying expected and actual."""
        store.execute(account, "a", Open("ann"), Deposit(1)).unwrap()
        result = store.execute(account, "a", Deposit(5), expected_version=1)
        assert isinstance(result, Failure)
        error = result.failure()
        assert isinstance(error, ConcurrencyError)
        assert isinstance(error, CommandError)
        assert (error.expected, error.actual) == (1, 2)
        assert (error.aggregate, error.stream_id, error.command) == ("account", "a", Deposit(5))
        assert payloads(store, "a") == [Opened("ann"), Deposited(1)]

    @pytest.mark.parametrize("new", [0, NEW], ids=["zero", "NEW"])
    def test_new_requires_a_stream_that_does_not_exist(self, store: EventStore, new: Any) -> None:
        """0 and NEW both mean: the stream must not exist yet."""
        assert store.execute(account, "a", Open("ann"), expected_version=new).unwrap().version == 1
        error = store.execute(account, "a", Deposit(1), expected_version=new).failure()
        assert isinstance(error, ConcurrencyError)
        assert (error.expected, error.actual) == (0, 1)
        assert "NEW" in str(error)
        assert payloads(store, "a") == [Opened("ann")]

    def test_any_skips_the_check(self, store: EventStore) -> None:
        """ANY appends after whatever the stream holds, even on a new stream."""
        assert store.execute(account, "a", Open("ann"), expected_version=ANY).unwrap().version == 1
        outcome = store.execute(account, "a", Deposit(2), expected_version=ANY).unwrap()
        assert outcome.version == 2

    def test_any_appends_after_a_rival_write(self, storage: Storage) -> None:
        """With ANY a rival event written since the load does not stop the append."""
        store = EventStore(storage, aggregates=[account])
        store.execute(account, "a", Open("ann")).unwrap()
        racing, _ = with_rival(storage, "a")
        outcome = EventStore(racing, aggregates=[account]).execute(
            account, "a", Deposit(7), expected_version=ANY
        )
        assert [r.version for r in outcome.unwrap().events] == [3]
        assert payloads(store, "a") == [Opened("ann"), Deposited(100), Deposited(7)]

    def test_any_outcome_state_includes_a_rival_write(self, storage: Storage) -> None:
        """An ANY append that landed after a rival returns the state of the whole stream."""
        store = EventStore(storage, aggregates=[account])
        store.execute(account, "a", Open("ann")).unwrap()
        racing, _ = with_rival(storage, "a")
        outcome = EventStore(racing, aggregates=[account]).execute(
            account, "a", Deposit(7), expected_version=ANY
        )
        assert outcome.unwrap().state == store.load(account, "a").state == Account("ann", 107)


class TestRetries:
    def test_lost_race_without_retries_is_a_concurrency_failure(self, storage: Storage) -> None:
        """A rival append between load and append makes the execute fail, appending nothing."""
        EventStore(storage, aggregates=[account]).execute(account, "a", Open("ann")).unwrap()
        racing, calls = with_rival(storage, "a")
        store = EventStore(racing, aggregates=[account])
        error = store.execute(account, "a", Deposit(7)).failure()
        assert isinstance(error, ConcurrencyError)
        assert (error.expected, error.actual) == (1, 2)
        assert len(calls) == 1
        assert Deposited(7) not in payloads(store, "a")

    def test_max_retries_reloads_and_decides_again(self, storage: Storage) -> None:
        """With max_retries the store reloads and re-decides after a lost race, and succeeds."""
        EventStore(storage, aggregates=[account]).execute(account, "a", Open("ann")).unwrap()
        racing, calls = with_rival(storage, "a", times=2)
        store = EventStore(racing, aggregates=[account])
        outcome = store.execute(account, "a", Deposit(7), max_retries=2).unwrap()
        assert len(calls) == 3
        assert [r.event for r in outcome.events] == [Deposited(7)]
        assert payloads(store, "a")[-1] == Deposited(7)
        assert store.load(account, "a").state == outcome.state

    def test_retries_run_out(self, storage: Storage) -> None:
        """When every attempt loses its race the result is still Failure(ConcurrencyError)."""
        EventStore(storage, aggregates=[account]).execute(account, "a", Open("ann")).unwrap()
        racing, calls = with_rival(storage, "a", times=10)
        store = EventStore(racing, aggregates=[account])
        assert isinstance(
            store.execute(account, "a", Deposit(7), max_retries=2).failure(), ConcurrencyError
        )
        assert len(calls) == 3
        assert Deposited(7) not in payloads(store, "a")

    def test_explicit_expected_version_is_never_retried(self, storage: Storage) -> None:
        """max_retries applies only to the loaded version: an explicit int fails at once."""
        EventStore(storage, aggregates=[account]).execute(account, "a", Open("ann")).unwrap()
        racing, calls = with_rival(storage, "a", times=10)
        store = EventStore(racing, aggregates=[account])
        result = store.execute(account, "a", Deposit(7), expected_version=1, max_retries=5)
        assert isinstance(result.failure(), ConcurrencyError)
        assert len(calls) == 1


def refusing_order(storage: Storage, times: int) -> tuple[Storage, list[int]]:
    """A storage whose first `times` appends are refused to keep a stream in log order."""
    calls: list[int] = []

    def append(batches: Sequence[StreamAppend]) -> Sequence[StoredEvent]:
        calls.append(1)
        if len(calls) <= times:
            b = batches[0]
            raise OrderConflict(b.stream_type, b.stream_id, b.expected_version, 1)
        return storage.append(batches)

    return attrs.evolve(storage, append=append), calls


class TestOrderConflicts:
    @pytest.mark.parametrize("expected", [None, 1, ANY], ids=repr)
    def test_order_conflict_is_retried_in_a_new_transaction(
        self, storage: Storage, expected: object
    ) -> None:
        """An append refused to keep log order is retried, whatever the expected version."""
        EventStore(storage, aggregates=[account]).execute(account, "a", Open("ann")).unwrap()
        refusing, calls = refusing_order(storage, times=2)
        store = EventStore(refusing, aggregates=[account])
        outcome = store.execute(account, "a", Deposit(7), expected_version=expected).unwrap()  # type: ignore[arg-type]
        assert (len(calls), outcome.version) == (3, 2)

    def test_order_conflict_inside_a_transaction_is_a_concurrency_failure(
        self, storage: Storage
    ) -> None:
        """Inside transaction() the store cannot start anew: the command fails, saying why."""
        refusing, _ = refusing_order(storage, times=1)
        store = EventStore(refusing, aggregates=[account])
        with store.transaction():
            error = store.execute(account, "a", Open("ann")).failure()
        assert isinstance(error, ConcurrencyError)
        assert "log order" in str(error) or "version order" in str(error)
        assert "retry" in str(error)

    def test_order_conflict_retries_are_bounded(self, storage: Storage) -> None:
        """An append refused again and again ends as Failure(ConcurrencyError), not a loop."""
        refusing, calls = refusing_order(storage, times=100)
        store = EventStore(refusing, aggregates=[account])
        assert isinstance(store.execute(account, "a", Open("ann")).failure(), ConcurrencyError)
        assert len(calls) < 10


class TestLoad:
    def test_new_stream_is_version_zero_with_the_initial_state(self, store: EventStore) -> None:
        """Loading a stream that does not exist gives version 0 and `initial`."""
        loaded = store.load(account, "nobody")
        assert (loaded.stream_id, loaded.version, loaded.state) == ("nobody", 0, Account())

    def test_load_folds_every_event(self, store: EventStore) -> None:
        """load gives the version and the state after all the stream's events."""
        store.execute(account, "a", Open("ann"), Deposit(10)).unwrap()
        store.execute(account, "a", Withdraw(3)).unwrap()
        loaded = store.load(account, "a")
        assert (loaded.version, loaded.state) == (3, Account("ann", 7))

    def test_at_version_travels_back(self, store: EventStore) -> None:
        """at_version=n gives the state after the first n events."""
        store.execute(account, "a", Open("ann"), Deposit(10), Withdraw(3)).unwrap()
        assert store.load(account, "a", at_version=0).state == Account()
        assert store.load(account, "a", at_version=1).state == Account("ann")
        loaded = store.load(account, "a", at_version=2)
        assert (loaded.version, loaded.state) == (2, Account("ann", 10))

    def test_at_version_past_the_end_is_the_latest(self, store: EventStore) -> None:
        """An at_version beyond the stream's end gives its latest version and state."""
        store.execute(account, "a", Open("ann"), Deposit(10)).unwrap()
        loaded = store.load(account, "a", at_version=99)
        assert (loaded.version, loaded.state) == (2, Account("ann", 10))

    def test_at_datetime_includes_events_recorded_at_or_before(self, store: EventStore) -> None:
        """load(at=t) folds exactly the events recorded at or before t."""
        first = store.execute(account, "a", Open("ann"), Deposit(10)).unwrap().events
        time.sleep(0.002)
        later = store.execute(account, "a", Withdraw(4)).unwrap().events
        t1, t2 = first[-1].recorded_at, later[-1].recorded_at
        assert t1 < t2
        assert store.load(account, "a", at=t1 - timedelta(microseconds=1)).version == 0
        at_t1 = store.load(account, "a", at=t1)
        assert (at_t1.version, at_t1.state) == (2, Account("ann", 10))
        assert store.load(account, "a", at=t2).state == Account("ann", 6)
        assert store.load(account, "a", at=t2 + timedelta(days=1)).version == 3

    def test_at_compares_instants_across_timezones(self, store: EventStore) -> None:
        """An aware `at` in another timezone means the same instant."""
        t = store.execute(account, "a", Open("ann")).unwrap().events[0].recorded_at
        assert store.load(account, "a", at=t.astimezone(timezone(timedelta(hours=-7)))).version == 1

    def test_at_is_a_prefix_when_clocks_ran_backwards(self, storage: Storage) -> None:
        """With recorded_at going back across versions, load(at=t) stops at the first later one."""
        now = datetime.now(UTC)
        stamps = [now, now + timedelta(seconds=10), now + timedelta(seconds=5)]
        events = [("Opened", '{"owner":"ann"}'), ("Deposited", '{"amount":1}')]
        events.append(("Deposited", '{"amount":2}'))
        rows = [
            row(t, d)._replace(recorded_at=at) for (t, d), at in zip(events, stamps, strict=True)
        ]
        write_rows(storage, "a", *rows)
        store = EventStore(storage, aggregates=[account])
        at = now + timedelta(seconds=7)  # after v1 and v3, before v2
        loaded = store.load(account, "a", at=at)
        assert (loaded.version, loaded.state) == (1, Account("ann", 0))
        assert store.load(account, "a", at=now + timedelta(seconds=10)).version == 3

    def test_naive_at_is_a_type_error(self, store: EventStore) -> None:
        """A naive datetime is ambiguous: load(at=naive) raises TypeError."""
        store.execute(account, "a", Open("ann")).unwrap()
        with pytest.raises(TypeError, match="naive"):
            store.load(account, "a", at=datetime.now())


class TestMisuse:
    def test_negative_at_version_is_a_value_error(self, store: EventStore) -> None:
        """load(at_version=-1) is refused rather than read differently by each backend."""
        store.execute(account, "a", Open("ann"), Deposit(1)).unwrap()
        with pytest.raises(ValueError, match="at_version"):
            store.load(account, "a", at_version=-1)

    def test_negative_after_is_a_value_error(self, store: EventStore) -> None:
        """read_all(after=-1) is refused: positions start at 1."""
        store.execute(account, "a", Open("ann")).unwrap()
        with pytest.raises(ValueError, match="after"):
            list(store.read_all(after=-1))

    def test_negative_max_retries_is_a_value_error(self, store: EventStore) -> None:
        """execute(max_retries=-1) is refused and appends nothing."""
        with pytest.raises(ValueError, match="max_retries"):
            store.execute(account, "a", Open("ann"), max_retries=-1)
        assert store.load(account, "a").version == 0


class TestReading:
    def test_events_lists_one_stream_in_version_order(self, store: EventStore) -> None:
        """events() is the list of one stream's Recorded, oldest first."""
        store.execute(account, "a", Open("ann")).unwrap()
        store.execute(account, "b", Open("bob")).unwrap()
        store.execute(account, "a", Deposit(3)).unwrap()
        events = store.events(account, "a")
        assert isinstance(events, list)
        assert [(r.version, r.event) for r in events] == [(1, Opened("ann")), (2, Deposited(3))]
        assert store.events(account, "missing") == []

    def test_read_all_yields_the_global_log_in_position_order(self, store: EventStore) -> None:
        """read_all() yields every stream's events in the order they were appended."""
        store.execute(account, "a", Open("ann")).unwrap()
        store.execute(account, "b", Open("bob"), Deposit(1)).unwrap()
        store.execute(account, "a", Deposit(2)).unwrap()
        log = list(store.read_all())
        assert [(r.stream_id, r.event) for r in log] == [
            ("a", Opened("ann")),
            ("b", Opened("bob")),
            ("b", Deposited(1)),
            ("a", Deposited(2)),
        ]

    def test_read_all_after_skips_what_was_seen(self, store: EventStore) -> None:
        """read_all(after=p) starts after position p; after the last position it is empty."""
        store.execute(account, "a", Open("ann"), Deposit(1), Deposit(2)).unwrap()
        log = list(store.read_all())
        assert [r.event for r in store.read_all(after=log[0].position)] == [
            Deposited(1),
            Deposited(2),
        ]
        assert list(store.read_all(after=log[-1].position)) == []
        assert [r.position for r in store.read_all(after=0)] == [r.position for r in log]

    def test_read_all_is_lazy_and_resumable(self, store: EventStore) -> None:
        """A reader following the log with after=last seen position sees new events once."""
        store.execute(account, "a", Open("ann")).unwrap()
        seen = list(store.read_all())
        store.execute(account, "a", Deposit(5)).unwrap()
        more = list(store.read_all(after=seen[-1].position))
        assert [r.event for r in more] == [Deposited(5)]


class TestTransaction:
    def test_commits_across_streams(self, store: EventStore) -> None:
        """Executes on several streams in one transaction are all there afterwards."""
        with store.transaction():
            store.execute(account, "a", Open("ann")).unwrap()
            store.execute(account, "b", Open("bob")).unwrap()
        assert [r.stream_id for r in store.read_all()] == ["a", "b"]

    def test_exception_rolls_back_every_stream(self, store: EventStore) -> None:
        """An exception leaving the block undoes every execute inside it."""
        store.execute(account, "a", Open("ann")).unwrap()

        def block() -> None:
            with store.transaction():
                store.execute(account, "a", Deposit(5)).unwrap()
                store.execute(account, "b", Open("bob")).unwrap()
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            block()
        assert payloads(store, "a") == [Opened("ann")]
        assert store.events(account, "b") == []
        assert len(list(store.read_all())) == 1

    def test_unwrapped_failure_rolls_back(self, store: EventStore) -> None:
        """`.unwrap()` of a Failure raises out of the block and rolls back what came before."""

        def block() -> None:
            with store.transaction():
                store.execute(account, "a", Open("ann")).unwrap()
                store.execute(account, "b", Deposit(1)).unwrap()

        with pytest.raises(UnwrapFailedError):
            block()
        assert list(store.read_all()) == []

    def test_executes_inside_see_each_others_writes(self, store: EventStore) -> None:
        """A later execute and load in the block see the earlier executes' events."""
        with store.transaction():
            store.execute(account, "a", Open("ann")).unwrap()
            second = store.execute(account, "a", Deposit(4)).unwrap()
            assert store.load(account, "a").state == Account("ann", 4)
            assert [r.event for r in store.events(account, "a")] == [Opened("ann"), Deposited(4)]
        assert second.version == 2

    def test_outcomes_carry_final_positions(self, store: EventStore) -> None:
        """The positions in Outcomes returned inside the block are the ones read afterwards."""
        with store.transaction():
            a = store.execute(account, "a", Open("ann")).unwrap()
            b = store.execute(account, "b", Open("bob"), Deposit(1)).unwrap()
        returned = [r.position for r in (*a.events, *b.events)]
        assert returned == [r.position for r in store.read_all()]

    def test_conflict_inside_is_a_failure_at_once(self, storage: Storage) -> None:
        """Inside a transaction a lost race is a Failure from that execute; no retry."""
        EventStore(storage, aggregates=[account]).execute(account, "a", Open("ann")).unwrap()
        racing, calls = with_rival(storage, "a", times=10)
        store = EventStore(racing, aggregates=[account])
        with store.transaction():
            result = store.execute(account, "a", Deposit(7), max_retries=5)
        assert isinstance(result.failure(), ConcurrencyError)
        assert len(calls) == 1

    def test_failure_inside_does_not_undo_the_rest_unless_raised(self, store: EventStore) -> None:
        """A stale-version Failure that is not unwrapped leaves the other executes to commit."""
        with store.transaction():
            store.execute(account, "a", Open("ann")).unwrap()
            stale = store.execute(account, "a", Deposit(1), expected_version=0)
            store.execute(account, "b", Open("bob")).unwrap()
        assert isinstance(stale.failure(), ConcurrencyError)
        assert [r.stream_id for r in store.read_all()] == ["a", "b"]

    def test_nested_transaction_joins_the_outer(self, store: EventStore) -> None:
        """A nested transaction's writes are undone with the outer one."""

        def block() -> None:
            with store.transaction():
                store.execute(account, "a", Open("ann")).unwrap()
                with store.transaction():
                    store.execute(account, "b", Open("bob")).unwrap()
                assert store.load(account, "b").version == 1
                raise RuntimeError("outer fails after the inner block ended")

        with pytest.raises(RuntimeError, match="outer"):
            block()
        assert list(store.read_all()) == []

    def test_store_works_normally_after_a_rollback(self, store: EventStore) -> None:
        """After a rolled-back transaction, the next executes see a consistent stream."""

        def block() -> None:
            with store.transaction():
                store.execute(account, "a", Open("ann"), Deposit(9)).unwrap()
                raise RuntimeError

        with pytest.raises(RuntimeError):
            block()
        outcome = store.execute(account, "a", Open("bob"), Deposit(1)).unwrap()
        assert [r.version for r in outcome.events] == [1, 2]
        assert store.load(account, "a").state == Account("bob", 1)


class TestContext:
    def test_context_is_stamped_on_events(self, store: EventStore) -> None:
        """actor, correlation, causation and metadata of the context land on each event."""
        with context(
            actor_id="ann", correlation_id="corr", causation_id="cause", metadata={"ip": "::1"}
        ):
            returned = store.execute(account, "a", Open("ann"), Deposit(1)).unwrap().events
        for recorded in (*returned, *store.events(account, "a")):
            assert (recorded.actor_id, recorded.correlation_id, recorded.causation_id) == (
                "ann",
                "corr",
                "cause",
            )
            assert recorded.metadata == {"ip": "::1"}

    def test_outside_a_context_nothing_is_stamped(self, store: EventStore) -> None:
        """Leaving the block restores the empty context."""
        with context(actor_id="ann", metadata={"k": 1}):
            pass
        (recorded,) = store.execute(account, "a", Open("ann")).unwrap().events
        assert (recorded.actor_id, recorded.metadata) == (None, {})

    def test_nested_contexts_override_field_by_field(self, store: EventStore) -> None:
        """An inner context overrides only the fields it names; metadata dicts merge."""
        with (
            context(actor_id="ann", correlation_id="c1", metadata={"a": 1, "shared": "outer"}),
            context(actor_id="bob", metadata={"b": [2, 3], "shared": "inner"}),
        ):
            (inner,) = store.execute(account, "a", Open("ann")).unwrap().events
        assert (inner.actor_id, inner.correlation_id, inner.causation_id) == ("bob", "c1", None)
        assert inner.metadata == {"a": 1, "b": [2, 3], "shared": "inner"}
        assert store.events(account, "a")[0].metadata == inner.metadata

    def test_inner_context_can_clear_a_field(self, store: EventStore) -> None:
        """Passing None in an inner context clears the outer value."""
        with context(actor_id="ann"), context(actor_id=None):
            (recorded,) = store.execute(account, "a", Open("ann")).unwrap().events
        assert recorded.actor_id is None

    def test_contexts_are_isolated_between_threads(self, store: EventStore) -> None:
        """Threads inside their own contexts at the same moment stamp only their own."""
        barrier = threading.Barrier(4)
        results: dict[str, Recorded[Any]] = {}

        def work(name: str) -> None:
            with context(actor_id=name, metadata={"thread": name}):
                barrier.wait()
                results[name] = store.execute(account, name, Open(name)).unwrap().events[0]

        with context(actor_id="main"):
            threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        for name, recorded in results.items():
            assert (recorded.actor_id, recorded.metadata) == (name, {"thread": name})
        assert len(results) == 4

    def test_contexts_are_isolated_between_asyncio_tasks(self, store: EventStore) -> None:
        """Interleaved asyncio tasks each stamp their own context."""

        async def work(name: str, both_inside: asyncio.Barrier) -> Recorded[Any]:
            with context(actor_id=name, correlation_id=f"c-{name}"):
                await both_inside.wait()
                return store.execute(account, name, Open(name)).unwrap().events[0]

        async def main() -> list[Recorded[Any]]:
            barrier = asyncio.Barrier(2)
            return list(await asyncio.gather(work("x", barrier), work("y", barrier)))

        x, y = asyncio.run(main())
        assert (x.actor_id, x.correlation_id) == ("x", "c-x")
        assert (y.actor_id, y.correlation_id) == ("y", "c-y")


def lying_snapshot(version: int, balance: int, snapshot_version: int = 1) -> StoredSnapshot:
    data = f'{{"owner":"ann","balance":{balance},"closed":false}}'
    return StoredSnapshot("account", "a", version, snapshot_version, data)


class TestSnapshots:
    def test_snapshot_written_when_crossing_a_multiple(self, storage: Storage) -> None:
        """With snapshot_every=3, the execute that reaches version 3 writes a snapshot."""
        agg = make_account(snapshot_every=3)
        store = EventStore(storage, aggregates=[agg])
        store.execute(agg, "a", Open("ann"), Deposit(1)).unwrap()
        assert storage.read_snapshot("account", "a", None) is None
        store.execute(agg, "a", Deposit(2)).unwrap()
        snap = storage.read_snapshot("account", "a", None)
        assert snap is not None
        assert (snap.version, snap.snapshot_version) == (3, 1)

    def test_one_execute_crossing_a_multiple_snapshots_its_final_state(
        self, storage: Storage
    ) -> None:
        """An execute going from 2 to 5 events with snapshot_every=3 snapshots version 5."""
        agg = make_account(snapshot_every=3)
        store = EventStore(storage, aggregates=[agg])
        store.execute(agg, "a", Open("ann"), Deposit(1)).unwrap()
        store.execute(agg, "a", Deposit(2), Deposit(3), Deposit(4)).unwrap()
        snap = storage.read_snapshot("account", "a", None)
        assert snap is not None
        assert snap.version == 5

    def test_load_reads_only_the_events_after_the_snapshot(self, storage: Storage) -> None:
        """load reads from the snapshot's own version (proof it exists), not from the start."""
        agg = make_account(snapshot_every=2)
        EventStore(storage, aggregates=[agg]).execute(
            agg, "a", Open("ann"), Deposit(1), Deposit(2), Deposit(3)
        ).unwrap()
        EventStore(storage, aggregates=[agg]).execute(agg, "a", Deposit(4)).unwrap()
        spied, calls = reads_of(storage)
        loaded = EventStore(spied, aggregates=[agg]).load(agg, "a")
        assert calls == [(3, None)]
        assert (loaded.version, loaded.state) == (5, Account("ann", 10))

    def test_load_starts_from_the_snapshot_state(self, storage: Storage) -> None:
        """A (deliberately wrong) snapshot is the state load continues from: proof it is used."""
        agg = make_account(snapshot_every=2)
        store = EventStore(storage, aggregates=[agg])
        store.execute(agg, "a", Open("ann"), Deposit(1), Deposit(2)).unwrap()
        assert storage.read_snapshot("account", "a", None) == lying_snapshot(3, 3)
        storage.write_snapshot(lying_snapshot(3, 1000))
        assert store.load(agg, "a") == Loaded("a", 3, Account("ann", 1000))
        assert store.execute(agg, "a", Withdraw(999)).unwrap().state == Account("ann", 1)

    def test_at_version_uses_a_snapshot_at_or_below_it(self, storage: Storage) -> None:
        """Time travel starts from the newest snapshot not after the wanted version."""
        agg = make_account(snapshot_every=2)
        store = EventStore(storage, aggregates=[agg])
        for command in (Open("ann"), Deposit(1), Deposit(2), Deposit(3), Deposit(4)):
            store.execute(agg, "a", command).unwrap()
        spied, calls = reads_of(storage)
        spy_store = EventStore(spied, aggregates=[agg])
        assert spy_store.load(agg, "a", at_version=3).state == Account("ann", 3)
        assert spy_store.load(agg, "a", at_version=1).state == Account("ann")
        assert calls == [(1, 3), (0, 1)]

    def test_snapshot_of_another_snapshot_version_is_ignored(self, storage: Storage) -> None:
        """A snapshot written under another snapshot_version is ignored: rebuilt from events."""
        agg = make_account(snapshot_every=2, snapshot_version=2)
        store = EventStore(storage, aggregates=[agg])
        store.execute(agg, "a", Open("ann"), Deposit(1)).unwrap()
        storage.write_snapshot(lying_snapshot(2, 1000, snapshot_version=1))
        spied, calls = reads_of(storage)
        assert EventStore(spied, aggregates=[agg]).load(agg, "a").state == Account("ann", 1)
        assert calls == [(0, None)]

    @pytest.mark.parametrize(
        "data",
        ["{not json", '{"owner":"ann","balance":"lots","closed":false}', "[]", '{"extra":1}'],
        ids=["unparseable", "wrong-type", "wrong-shape", "unknown-field"],
    )
    def test_corrupt_snapshot_is_ignored(self, storage: Storage, data: str) -> None:
        """A snapshot that cannot be read is ignored and the state rebuilt from events."""
        agg = make_account(snapshot_every=2)
        store = EventStore(storage, aggregates=[agg])
        store.execute(agg, "a", Open("ann"), Deposit(1), Deposit(2)).unwrap()
        storage.write_snapshot(StoredSnapshot("account", "a", 3, 1, data))
        assert store.load(agg, "a") == store.load(agg, "a", at_version=99)
        assert store.load(agg, "a").state == Account("ann", 3)
        assert store.execute(agg, "a", Withdraw(3)).unwrap().state == Account("ann", 0)

    def test_snapshot_past_the_stream_end_is_ignored(
        self, storage: Storage, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A snapshot claiming version 1000 of a 3-event stream is ignored, logged, and harmless."""
        agg = make_account(snapshot_every=2)
        store = EventStore(storage, aggregates=[agg])
        store.execute(agg, "a", Open("ann"), Deposit(1), Deposit(2)).unwrap()
        storage.write_snapshot(StoredSnapshot("account", "a", 1000, 1, '{"owner":"x"}'))
        with caplog.at_level("WARNING", logger="eventsourcing_fn"):
            loaded = store.load(agg, "a")
        assert (loaded.version, loaded.state) == (3, Account("ann", 3))
        assert "version 1000" in caplog.text
        assert store.execute(agg, "a", Deposit(4)).unwrap().version == 4

    def test_snapshot_after_an_any_append_matches_the_stream(self, storage: Storage) -> None:
        """A snapshot written by an ANY append that landed after a rival holds the full state."""
        agg = make_account(snapshot_every=2)
        store = EventStore(storage, aggregates=[agg])
        store.execute(agg, "a", Open("ann"), Deposit(1)).unwrap()
        racing, _ = with_rival(storage, "a")
        EventStore(racing, aggregates=[agg]).execute(
            agg, "a", Deposit(7), expected_version=ANY
        ).unwrap()
        assert [r.version for r in store.events(agg, "a")] == [1, 2, 3, 4]
        assert store.load(agg, "a").state == agg.fold(store.events(agg, "a"))
        assert store.load(agg, "a").state == Account("ann", 108)


class TestConfigurationErrors:
    def test_command_without_decide_raises(self, store: EventStore) -> None:
        """Executing a command class the aggregate cannot decide is a ConfigurationError."""
        store.execute(account, "a", Open("ann")).unwrap()
        with pytest.raises(ConfigurationError, match="Opened"):
            store.execute(account, "a", Opened("bob"))

    def test_event_without_evolve_raises(self, storage: Storage) -> None:
        """A decide emitting an event class with no evolve is a ConfigurationError."""
        agg = Aggregate("leaky", initial=0)

        @attrs.frozen
        class Stray:
            pass

        @agg.decide
        def leak(command: Open, state: int) -> Stray:
            return Stray()

        store = EventStore(storage, aggregates=[agg])
        with pytest.raises(ConfigurationError, match="Stray"):
            store.execute(agg, "a", Open("x"))
        assert list(store.read_all()) == []

    def test_unregistered_aggregate_raises(self, store: EventStore) -> None:
        """An aggregate the store was not built with (even one of the same name) raises."""
        stranger = make_account()
        with pytest.raises(ConfigurationError, match="account"):
            store.execute(stranger, "a", Open("ann"))
        with pytest.raises(ConfigurationError):
            store.load(stranger, "a")
        with pytest.raises(ConfigurationError):
            store.events(stranger, "a")

    def test_two_aggregates_with_one_name_raise(self) -> None:
        """The constructor refuses two aggregates of the same name."""
        with pytest.raises(ConfigurationError, match="account"):
            EventStore(aggregates=[make_account(), make_account()])

    def test_two_classes_claiming_one_event_type_name_raise(self) -> None:
        """Two classes declaring the same @event_type name are refused by the constructor."""

        @event_type("Happened")
        @attrs.frozen
        class First:
            pass

        @event_type("Happened")
        @attrs.frozen
        class Second:
            pass

        one, two = Aggregate("one", initial=0), Aggregate("two", initial=0)

        @one.evolve
        def first(state: int, event: First) -> int:
            return state

        @two.evolve
        def second(state: int, event: Second) -> int:
            return state

        with pytest.raises(ConfigurationError, match="Happened"):
            EventStore(aggregates=[one, two])

    def test_two_classes_with_one_class_name_raise(self) -> None:
        """Two different classes both named `Deposited` (the default type name) raise."""

        @attrs.frozen
        class Deposited:
            cents: int

        other = Aggregate("wallet", initial=0)

        @other.evolve
        def added(state: int, event: Deposited) -> int:
            return state + event.cents

        with pytest.raises(ConfigurationError, match="Deposited"):
            EventStore(aggregates=[account, other])

    def test_two_upcasters_for_one_step_across_aggregates_raise(self) -> None:
        """Two aggregates upcasting the same type from the same version is ambiguous wiring."""
        one, two = make_account("one"), make_account("two")

        def up(data: dict[str, Any]) -> dict[str, Any]:
            return data

        def also_up(data: dict[str, Any]) -> dict[str, Any]:
            return data

        one.upcast("Opened", from_version=1)(up)
        two.upcast("Opened", from_version=1)(also_up)
        with pytest.raises(ConfigurationError, match="Opened"):
            EventStore(aggregates=[one, two])

    def test_configuration_errors_are_library_errors(self) -> None:
        """ConfigurationError derives from EventSourcingError."""
        assert issubclass(ConfigurationError, EventSourcingError)
        assert issubclass(ConcurrencyError, CommandError)


class TestUnreadableRows:
    def test_unknown_type_names_type_and_version(self, store: EventStore) -> None:
        """A stored type no registered class can read raises UnknownEventTypeError."""
        write_rows(store.storage, "a", row("Opened", '{"owner":"ann"}'), row("Mystery", "{}", 4))
        for read in (
            lambda: store.load(account, "a"),
            lambda: store.events(account, "a"),
            lambda: list(store.read_all()),
        ):
            with pytest.raises(UnknownEventTypeError, match="Mystery") as caught:
                read()
            assert (caught.value.type_name, caught.value.version) == ("Mystery", 4)
            assert "version 4" in str(caught.value)
            assert "'a'" in str(caught.value)

    def test_newer_version_than_registered_is_unknown(self, store: EventStore) -> None:
        """A stored version above the class's version cannot be read."""
        write_rows(store.storage, "a", row("Opened", '{"owner":"ann"}', version=2))
        with pytest.raises(UnknownEventTypeError, match="Opened") as caught:
            store.load(account, "a")
        assert caught.value.version == 2

    def test_older_version_without_upcaster_is_unknown(self, storage: Storage) -> None:
        """An old version with no upcaster chain to the current one cannot be read."""

        @event_type("Tagged", version=3)
        @attrs.frozen
        class Tagged:
            tag: str

        agg = Aggregate("tags", initial="")

        @agg.evolve
        def tagged(state: str, event: Tagged) -> str:
            return event.tag

        @agg.upcast("Tagged", from_version=2)
        def two_to_three(data: dict[str, Any]) -> dict[str, Any]:
            return data

        store = EventStore(storage, aggregates=[agg])
        write_rows(storage, "t", row("Tagged", '{"tag":"x"}', version=1), stream_type="tags")
        with pytest.raises(UnknownEventTypeError, match="Tagged") as caught:
            store.load(agg, "t")
        assert caught.value.version == 1

    def test_type_known_only_to_another_store_is_unknown(
        self, storage_factory: StorageFactory
    ) -> None:
        """Only classes registered with this store count: a store without them cannot read."""
        EventStore(storage_factory(), aggregates=[account]).execute(
            account, "a", Open("ann")
        ).unwrap()
        other = EventStore(storage_factory(), aggregates=[make_account("savings")])
        bare = EventStore(storage_factory())
        assert [r.event for r in other.read_all()] == [Opened("ann")]
        with pytest.raises(UnknownEventTypeError, match="Opened"):
            list(bare.read_all())

    def test_wrongly_shaped_payload_is_a_storage_error(self, store: EventStore) -> None:
        """A row whose JSON does not fit its class is a StorageError naming stream and position."""
        write_rows(store.storage, "acc-7", row("Opened", '{"owner":"ann"}'))
        write_rows(store.storage, "acc-7", row("Deposited", '{"amount":"ten"}'))
        position = store.storage.read_stream("account", "acc-7", 0, None)[1].position
        with pytest.raises(StorageError) as caught:
            store.load(account, "acc-7")
        assert "acc-7" in str(caught.value)
        assert f"position {position}" in str(caught.value)
        with pytest.raises(StorageError, match="acc-7"):
            list(store.read_all())

    # PostgreSQL's json column refuses unparseable text at append, so it cannot hold such a row.
    @pytest.mark.parametrize("storage_factory", ["memory", "sqlite"], indirect=True)
    def test_unparseable_json_is_a_storage_error(self, storage: Storage) -> None:
        """A row whose data is not JSON raises StorageError naming the stream and position."""
        store = EventStore(storage, aggregates=[account])
        write_rows(storage, "acc-8", row("Opened", '{"owner": "ann"'))
        position = storage.read_stream("account", "acc-8", 0, None)[0].position
        with pytest.raises(StorageError) as caught:
            store.events(account, "acc-8")
        assert "acc-8" in str(caught.value)
        assert f"position {position}" in str(caught.value)

    @pytest.mark.parametrize("storage_factory", ["memory", "sqlite"], indirect=True)
    def test_unparseable_metadata_is_a_storage_error(self, storage: Storage) -> None:
        """A row whose metadata is not JSON raises StorageError naming the stream."""
        store = EventStore(storage, aggregates=[account])
        write_rows(storage, "acc-9", row("Opened", '{"owner":"ann"}', metadata="{oops"))
        with pytest.raises(StorageError, match="acc-9"):
            store.events(account, "acc-9")


HOSTILE_IDS = [
    "it's",
    'say "hi"',
    "'; DROP TABLE events; --",
    'Robert"); DROP TABLE students;--',
    "ünïcødé 🚀 中文 \u200b",
    "50%_off\\",
    " padded ",
    "line\nbreak\ttab",
    "".join(chr(0x41 + i % 58) for i in range(10_000)),
]


class TestHostileStreamIds:
    @pytest.mark.parametrize("sid", HOSTILE_IDS, ids=lambda s: f"len{len(s)}-{s[:6]!r}")
    def test_stream_id_round_trips(self, store: EventStore, sid: str) -> None:
        """Quotes, SQL, unicode, wildcards and a 10 KB id are stored and found exactly."""
        store.execute(account, "decoy", Open("decoy")).unwrap()
        outcome = store.execute(account, sid, Open("ann"), Deposit(3)).unwrap()
        assert outcome.stream_id == sid
        loaded = store.load(account, sid)
        assert (loaded.stream_id, loaded.version, loaded.state) == (sid, 2, Account("ann", 3))
        assert [r.stream_id for r in store.events(account, sid)] == [sid, sid]
        assert {r.stream_id for r in store.read_all()} == {"decoy", sid}
        assert store.load(account, "decoy").state == Account("decoy")
        assert store.execute(account, sid, Deposit(1), expected_version=2).unwrap().version == 3


def deposit_concurrently(stores: list[EventStore], threads: int, each: int) -> list[object]:
    """`threads` threads each deposit 1 `each` times into stream "shared"; returns failures."""
    failures: list[object] = []
    start = threading.Barrier(threads)

    def work(store: EventStore) -> None:
        start.wait()
        for _ in range(each):
            result = store.execute(account, "shared", Deposit(1), max_retries=100)
            if isinstance(result, Failure):
                failures.append(result.failure())

    workers = [
        threading.Thread(target=work, args=(stores[i % len(stores)],)) for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return failures


class TestConcurrency:
    def test_threads_on_one_stream_lose_no_event(self, store: EventStore) -> None:
        """8 threads depositing into one stream with max_retries: every deposit is kept."""
        store.execute(account, "shared", Open("ann")).unwrap()
        assert deposit_concurrently([store], threads=8, each=10) == []
        events = store.events(account, "shared")
        assert [r.version for r in events] == list(range(1, 82))
        assert store.load(account, "shared").state == Account("ann", 80)

    def test_two_stores_sharing_one_storage_lose_no_event(
        self, storage_factory: StorageFactory
    ) -> None:
        """8 threads over two EventStores on one database: every deposit is kept."""
        first = EventStore(storage_factory(), aggregates=[account])
        second = EventStore(storage_factory(), aggregates=[account])
        first.execute(account, "shared", Open("ann")).unwrap()
        assert deposit_concurrently([first, second], threads=8, each=10) == []
        assert [r.version for r in second.events(account, "shared")] == list(range(1, 82))
        assert first.load(account, "shared").state == Account("ann", 80)
        positions = [r.position for r in first.read_all()]
        assert positions == sorted(set(positions))


def test_closing_keeps_history(store: EventStore) -> None:
    """A closed account's events stay readable."""
    store.execute(account, "a", Open("ann"), Close()).unwrap()
    assert store.load(account, "a").state.closed
