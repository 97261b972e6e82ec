"""Aggregates: registration by annotation, fold, run, upcasting and terminal states."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from bank import (
    Account,
    AlreadyOpen,
    Close,
    Closed,
    Deposit,
    Deposited,
    Insufficient,
    NotOpen,
    Open,
    Opened,
    Withdraw,
    Withdrawn,
    account,
    deposited,
    make_account,
    opened,
)
from returns.result import Failure, Success

from eventsourcing_fn import (
    Aggregate,
    CommandError,
    ConfigurationError,
    EventStore,
    StreamClosedError,
    event_type,
)
from eventsourcing_fn.storage import NewEvent, Storage, StreamAppend
from eventsourcing_fn.testing import given, raw


@attrs.frozen
class Ping:
    """A module-level class that a test-local `Ping` shadows."""


@attrs.frozen
class Pong:
    pass


def counter() -> Aggregate[int]:
    return Aggregate("counter", initial=0)


class TestRegistration:
    def test_evolve_dispatches_on_the_event_annotation(self) -> None:
        """Each evolve handles exactly the event class its second parameter names."""
        assert account.fold([Opened("ann"), Deposited(5), Deposited(2)]) == Account("ann", 7)

    def test_union_annotation_registers_every_member(self) -> None:
        """An `A | B` annotation registers the function for A and for B."""
        agg = counter()

        @agg.evolve
        def either(state: int, event: Ping | Pong) -> int:
            return state + 1

        assert set(agg.event_classes) == {Ping, Pong}
        assert agg.fold([Ping(), Pong(), Ping()]) == 3

    def test_union_annotation_on_decide_registers_every_member(self) -> None:
        """A union on the command parameter of decide registers each command class."""
        agg = counter()

        @agg.decide
        def both(command: Ping | Pong, state: int) -> Pong:
            return Pong()

        assert agg.run(Ping()) == Success((Pong(),))
        assert agg.run(Pong()) == Success((Pong(),))

    def test_postponed_annotations_resolve_against_function_locals(self) -> None:
        """Under `from __future__ import annotations`, classes defined in this body resolve."""

        @attrs.frozen
        class Started:
            at: int

        @attrs.frozen
        class Start:
            at: int

        agg = counter()

        @agg.evolve
        def started(state: int, event: Started) -> int:
            return event.at

        @agg.decide
        def start(command: Start, state: int) -> Started:
            return Started(command.at)

        assert agg.event_classes == (Started,)
        assert agg.run(Start(4)) == Success((Started(4),))
        assert agg.fold([Started(4)]) == 4

    def test_local_class_shadows_a_global_of_the_same_name(self) -> None:
        """A local `Ping` wins over the module's `Ping` when the annotation is resolved."""
        global_ping = globals()["Ping"]

        @attrs.frozen
        class Ping:
            local: bool = True

        agg = counter()

        @agg.evolve
        def pinged(state: int, event: Ping) -> int:
            return state + 1

        assert agg.event_classes == (Ping,)
        assert Ping is not global_ping
        assert agg.fold([Ping()]) == 1
        with pytest.raises(ConfigurationError, match="Ping"):
            agg.fold([global_ping()])

    def test_missing_annotation_is_a_type_error_naming_the_function(self) -> None:
        """An unannotated event parameter fails at decoration time, naming the function."""
        agg = counter()
        with pytest.raises(TypeError, match="unannotated"):

            @agg.evolve
            def unannotated(state, event) -> int:  # type: ignore[no-untyped-def]
                return 0

    def test_missing_command_annotation_is_a_type_error_naming_the_function(self) -> None:
        """An unannotated command parameter fails at decoration time, naming the function."""
        agg = counter()
        with pytest.raises(TypeError, match="bare_decide"):

            @agg.decide
            def bare_decide(command, state: int) -> None:  # type: ignore[no-untyped-def]
                return None

    def test_unresolvable_annotation_names_the_function_and_the_name(self) -> None:
        """A name that resolves nowhere fails at decoration time, naming function and name."""
        agg = counter()
        with pytest.raises(TypeError, match="ghostly") as caught:

            @agg.evolve
            def ghostly(state: int, event: NoSuchEvent) -> int:  # type: ignore[name-defined]  # noqa: F821
                return 0

        assert "NoSuchEvent" in str(caught.value)

    @pytest.mark.parametrize("annotation", ["list[Ping]", "int | None", "42", "opened"])
    def test_non_class_annotation_is_a_type_error(self, annotation: str) -> None:
        """A generic alias, None in a union, a literal or a function is not an event class."""
        agg = counter()

        def odd(state: int, event: Any) -> int:
            return 0

        odd.__annotations__["event"] = annotation
        with pytest.raises(TypeError, match="odd"):
            agg.evolve(odd)

    def test_duplicate_registration_is_a_type_error_naming_both_functions(self) -> None:
        """A second evolve for the same event class fails, naming the new and the old one."""
        agg = make_account()
        with pytest.raises(TypeError, match="again") as caught:

            @agg.evolve
            def again(state: Account, event: Deposited) -> Account:
                return state

        assert "deposited" in str(caught.value)

    def test_duplicate_through_a_union_is_a_type_error(self) -> None:
        """A union member already registered makes the whole decoration fail."""
        agg = make_account()
        with pytest.raises(TypeError, match="overlap"):

            @agg.decide
            def overlap(command: Ping | Deposit, state: Account) -> None:
                return None

    @pytest.mark.parametrize("kind", ["evolve", "decide"])
    def test_wrong_arity_is_a_type_error_naming_the_function(self, kind: str) -> None:
        """evolve and decide take exactly two positional parameters."""
        agg = counter()

        def one(x: Ping) -> int:
            return 0

        def three(x: Ping, y: Ping, z: Ping) -> int:
            return 0

        for fn in (one, three):
            with pytest.raises(TypeError, match=fn.__name__):
                getattr(agg, kind)(fn)

    def test_upcaster_takes_one_parameter(self) -> None:
        """An upcaster is `dict -> dict`; two parameters is a TypeError naming it."""
        agg = counter()

        def two_args(data: dict[str, Any], extra: int) -> dict[str, Any]:
            return data

        with pytest.raises(TypeError, match="two_args"):
            agg.upcast("Ping", from_version=1)(two_args)

    def test_duplicate_upcaster_is_a_type_error(self) -> None:
        """Two upcasters for one type and version fail at decoration time."""
        agg = counter()

        def first(data: dict[str, Any]) -> dict[str, Any]:
            return data

        agg.upcast("Ping", from_version=1)(first)

        def second(data: dict[str, Any]) -> dict[str, Any]:
            return data

        with pytest.raises(TypeError, match="second"):
            agg.upcast("Ping", from_version=1)(second)

    def test_decorated_functions_are_returned_unchanged(self) -> None:
        """The decorators return the very function object, still callable directly."""
        agg = counter()

        def bump(state: int, event: Ping) -> int:
            return state + 1

        def ping(command: Ping, state: int) -> Ping:
            return Ping()

        def up(data: dict[str, Any]) -> dict[str, Any]:
            return {**data, "v": 2}

        assert agg.evolve(bump) is bump
        assert agg.decide(ping) is ping
        assert agg.upcast("Ping", from_version=1)(up) is up
        assert bump(1, Ping()) == 2
        assert ping(Ping(), 0) == Ping()
        assert up({}) == {"v": 2}
        assert opened(Account(), Opened("ann")) == Account("ann")


class TestFold:
    def test_fold_starts_from_the_initial_state(self) -> None:
        """fold(events) applies every event to `initial`; no events gives `initial`."""
        assert account.fold([]) == Account()
        assert account.fold([Opened("ann"), Deposited(3), Withdrawn(1)]) == Account("ann", 2)

    def test_fold_continues_from_a_given_state(self) -> None:
        """fold(events, state) applies the events to that state instead of `initial`."""
        assert account.fold([Deposited(3)], Account("bob", 10)) == Account("bob", 13)

    def test_fold_accepts_recorded_envelopes(self) -> None:
        """fold unwraps `Recorded` events as the store returns them."""
        store = EventStore(aggregates=[account])
        recorded = store.execute(account, "a", Open("ann"), Deposit(4)).unwrap().events
        assert account.fold(recorded) == Account("ann", 4)

    def test_event_without_evolve_is_a_configuration_error(self) -> None:
        """Folding an event class the aggregate never registered is a programming error."""
        with pytest.raises(ConfigurationError, match="Ping"):
            account.fold([Ping()])


class TestRun:
    def test_one_event_becomes_a_one_tuple(self) -> None:
        """A decide returning one event gives Success of a 1-tuple."""
        assert account.run(Open("ann")) == Success((Opened("ann"),))

    @pytest.mark.parametrize(
        ("returned", "events"),
        [
            (Pong(), (Pong(),)),
            ([Pong(), Ping()], (Pong(), Ping())),
            ((Ping(), Pong()), (Ping(), Pong())),
            ([], ()),
            ((), ()),
            (None, ()),
            (Success(Pong()), (Pong(),)),
            (Success([Ping(), Pong()]), (Ping(), Pong())),
            (Success(None), ()),
        ],
    )
    def test_every_return_shape_becomes_a_tuple(self, returned: object, events: tuple) -> None:  # type: ignore[type-arg]
        """An event, a list/tuple, None, or a Success of those all give Success(tuple)."""
        agg = counter()

        @agg.decide
        def handle(command: Ping, state: int) -> object:
            return returned

        result = agg.run(Ping())
        assert result == Success(events)
        assert type(result.unwrap()) is tuple

    def test_run_decides_against_the_given_state(self) -> None:
        """run(command, state) decides against that state, not `initial`."""
        assert account.run(Deposit(5)).failure().reason.__class__ is NotOpen
        assert account.run(Deposit(5), Account("ann")) == Success((Deposited(5),))

    def test_raising_rejects_with_the_exception_as_reason(self) -> None:
        """An exception raised in decide is Failure(CommandError) whose .reason is it."""
        result = account.run(Open("bob"), Account("ann"))
        assert isinstance(result, Failure)
        error = result.failure()
        assert type(error) is CommandError
        assert isinstance(error.reason, AlreadyOpen)
        assert error.reason.args == ("ann",)
        assert error.command == Open("bob")
        assert error.aggregate == "account"

    def test_returned_failure_rejects_with_its_value_as_reason(self) -> None:
        """A Failure returned by decide is Failure(CommandError) carrying the original value."""
        error = account.run(Withdraw(9), Account("ann", 2)).failure()
        assert type(error) is CommandError
        assert error.reason == Insufficient(balance=2, asked=9)

    def test_returned_failure_of_an_exception_keeps_the_exception(self) -> None:
        """Failure(NotOpen()) gives a CommandError whose .reason is that NotOpen instance."""
        error = account.run(Deposit(1)).failure()
        assert isinstance(error, CommandError)
        assert isinstance(error.reason, NotOpen)

    def test_attrs_validator_failing_in_decide_rejects_the_command(self) -> None:
        """An event whose validator fails while decide builds it rejects the command."""

        @attrs.frozen
        class Paid:
            amount: int = attrs.field(validator=attrs.validators.gt(0))

        @attrs.frozen
        class Pay:
            amount: int

        agg = counter()

        @agg.decide
        def pay(command: Pay, state: int) -> Paid:
            return Paid(command.amount)

        assert agg.run(Pay(3)) == Success((Paid(3),))
        error = agg.run(Pay(-3)).failure()
        assert isinstance(error, CommandError)
        assert isinstance(error.reason, ValueError)
        assert "amount" in str(error.reason)

    def test_command_without_decide_is_a_configuration_error(self) -> None:
        """Running a command class with no registered decide raises, naming it."""
        with pytest.raises(ConfigurationError, match="Ping"):
            account.run(Ping())

    def test_run_does_not_touch_storage_or_mutate_state(self) -> None:
        """run is pure: the same inputs give the same result and the state is unchanged."""
        state = Account("ann", 5)
        first = account.run(Withdraw(2), state)
        assert first == account.run(Withdraw(2), state) == Success((Withdrawn(2),))
        assert state == Account("ann", 5)


@event_type("Renamed", version=3)
@attrs.frozen
class RenamedV3:
    first: str
    last: str


def renaming() -> Aggregate[str]:
    agg = Aggregate("person", initial="")

    @agg.evolve
    def renamed(state: str, event: RenamedV3) -> str:
        return f"{event.first} {event.last}"

    @agg.upcast("Renamed", from_version=1)
    def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {"full": data["name"]}

    @agg.upcast("Renamed", from_version=2)
    def v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
        first, last = data["full"].split(" ", 1)
        return {"first": first, "last": last}

    return agg


def stored(type_name: str, data: str, version: int) -> NewEvent:
    return NewEvent(type_name, version, data, uuid.uuid4(), datetime.now(UTC))


class TestUpcasting:
    def test_upcasters_chain_from_any_old_version_to_the_current(self) -> None:
        """A v1 row goes through v1→v2 and v2→v3; a v2 row only through v2→v3."""
        agg = renaming()
        store = EventStore(aggregates=[agg])
        store.storage.append(
            [
                StreamAppend(
                    "person",
                    "p",
                    0,
                    [
                        stored("Renamed", '{"name":"Ann Lee"}', 1),
                        stored("Renamed", '{"full":"Bo Chu"}', 2),
                        stored("Renamed", '{"first":"Cy","last":"Dee"}', 3),
                    ],
                )
            ]
        )
        events = store.events(agg, "p")
        assert [e.event for e in events] == [
            RenamedV3("Ann", "Lee"),
            RenamedV3("Bo", "Chu"),
            RenamedV3("Cy", "Dee"),
        ]
        assert [e.schema_version for e in events] == [1, 2, 3]
        assert store.load(agg, "p").state == "Cy Dee"

    def test_new_events_are_written_under_the_current_version(self) -> None:
        """Events appended now carry the `@event_type` name and version."""
        agg = renaming()

        @attrs.frozen
        class Rename:
            first: str

        @agg.decide
        def rename(command: Rename, state: str) -> RenamedV3:
            return RenamedV3(command.first, "X")

        store = EventStore(aggregates=[agg])
        (recorded,) = store.execute(agg, "p", Rename("Al")).unwrap().events
        assert (recorded.type, recorded.schema_version) == ("Renamed", 3)

    def test_given_reads_raw_events_through_the_same_chain(self) -> None:
        """`raw(...)` in given() is upcast exactly as a load would."""
        given(renaming(), raw("Renamed", {"name": "Ann Lee"}, version=1)).then_state("Ann Lee")


class TestTerminal:
    def test_run_on_a_terminal_state_is_stream_closed(self) -> None:
        """Once terminal, run rejects every command with StreamClosedError."""
        error = account.run(Deposit(1), Account("ann", closed=True)).failure()
        assert isinstance(error, StreamClosedError)
        assert isinstance(error, CommandError)
        assert error.command == Deposit(1)

    def test_given_when_on_a_closed_stream_fails(self) -> None:
        """given/when applies the terminal predicate like the store does."""
        given(account, Opened("ann"), Closed()).when(Deposit(1)).then_fails(StreamClosedError)

    def test_later_command_in_the_same_when_is_rejected(self) -> None:
        """A command after the one that closed the stream is rejected in given/when too."""
        given(account, Opened("ann")).when(Close(), Deposit(1)).then_fails(StreamClosedError)

    def test_closing_then_commanding_in_one_execute_appends_nothing(self, storage: Storage) -> None:
        """Close then Deposit in one execute fails as closed and appends not even Closed."""
        store = EventStore(storage, aggregates=[account])
        store.execute(account, "a", Open("ann")).unwrap()
        result = store.execute(account, "a", Close(), Deposit(1))
        assert isinstance(result.failure(), StreamClosedError)
        assert [r.event for r in store.events(account, "a")] == [Opened("ann")]

    def test_command_that_would_append_nothing_is_still_rejected(self, storage: Storage) -> None:
        """Deposit(0) appends nothing on an open stream but is StreamClosedError once closed."""
        store = EventStore(storage, aggregates=[account])
        store.execute(account, "a", Open("ann")).unwrap()
        assert store.execute(account, "a", Deposit(0)).unwrap().events == ()
        store.execute(account, "a", Close()).unwrap()
        result = store.execute(account, "a", Deposit(0))
        assert isinstance(result.failure(), StreamClosedError)
        assert store.load(account, "a").version == 2

    def test_closed_stream_error_names_aggregate_and_stream(self, storage: Storage) -> None:
        """The StreamClosedError carries and names the aggregate and the stream id."""
        store = EventStore(storage, aggregates=[account])
        store.execute(account, "acc-9", Open("ann"), Close()).unwrap()
        error = store.execute(account, "acc-9", Open("bob")).failure()
        assert isinstance(error, StreamClosedError)
        assert (error.aggregate, error.stream_id) == ("account", "acc-9")
        assert "account" in str(error)
        assert "acc-9" in str(error)

    def test_other_streams_stay_open(self, storage: Storage) -> None:
        """Closing one stream does not affect another of the same aggregate."""
        store = EventStore(storage, aggregates=[account])
        store.execute(account, "a", Open("ann"), Close()).unwrap()
        assert store.execute(account, "b", Open("bob"), Deposit(2)).unwrap().version == 2


def test_bank_functions_are_plain_functions() -> None:
    """The shared fixture's handlers stay directly callable after registration."""
    assert deposited(Account("ann", 1), Deposited(2)) == Account("ann", 3)
