"""Bad input on every backend: programming errors fail at the call, bad data is a clear error
and nothing is appended."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import pytest
from bank import Account, Deposit, Open, account
from returns.result import Failure

from eventsourcing_fn import (
    ANY,
    Aggregate,
    EventStore,
    EventValidationError,
    context,
)
from eventsourcing_fn.storage import Storage


@pytest.fixture
def store(storage: Storage) -> EventStore:
    return EventStore(storage, aggregates=[account])


def untouched(storage: Storage) -> Storage:
    """A storage whose every call fails the test: proof a check ran before any I/O."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("storage was called")

    fields = {f.name: refuse for f in attrs.fields(Storage) if f.name not in ("name", "close")}
    return attrs.evolve(storage, **fields)


CALLS: dict[str, Callable[[EventStore, Any], object]] = {
    "execute-expected_version": lambda s, v: s.execute(account, "a", Open("x"), expected_version=v),
    "execute-stream_id": lambda s, v: s.execute(account, v, Open("x")),
    "execute-max_retries": lambda s, v: s.execute(account, "a", Open("x"), max_retries=v),
    "load-stream_id": lambda s, v: s.load(account, v),
    "load-at_version": lambda s, v: s.load(account, "a", at_version=v),
    "load-at": lambda s, v: s.load(account, "a", at=v),
    "events-stream_id": lambda s, v: s.events(account, v),
    "read_all-after": lambda s, v: list(s.read_all(after=v)),
}
WRONG_TYPES = [
    ("execute-expected_version", "1"),
    ("execute-expected_version", 1.0),
    ("execute-expected_version", "NEW"),
    ("execute-expected_version", True),
    ("execute-stream_id", 1),
    ("execute-stream_id", b"a"),
    ("execute-max_retries", 1.5),
    ("execute-max_retries", True),
    ("load-stream_id", 1),
    ("load-stream_id", None),
    ("load-at_version", 1.5),
    ("load-at_version", True),
    ("load-at_version", "1"),
    ("load-at", "2026-01-01"),
    ("events-stream_id", 7),
    ("read_all-after", None),
    ("read_all-after", 1.5),
    ("read_all-after", True),
]
WRONG_VALUES = [
    ("execute-expected_version", -1),
    ("execute-stream_id", ""),
    ("execute-stream_id", "nul\0inside"),
    ("execute-stream_id", "lone \ud800 surrogate"),
    ("execute-max_retries", -1),
    ("load-at_version", -1),
    ("load-stream_id", "nul\0inside"),
    ("read_all-after", -1),
    ("read_all-after", 2**70),
]


class TestProgrammingErrors:
    @pytest.mark.parametrize(("call", "value"), WRONG_TYPES, ids=repr)
    def test_wrong_type_is_a_type_error_before_any_io(
        self, storage: Storage, call: str, value: object
    ) -> None:
        """An argument of the wrong type is a TypeError naming it, raised before any I/O."""
        store = EventStore(untouched(storage), aggregates=[account])
        argument = call.split("-")[1]
        with pytest.raises(TypeError, match=argument):
            CALLS[call](store, value)

    @pytest.mark.parametrize(("call", "value"), WRONG_VALUES, ids=repr)
    def test_impossible_value_is_a_value_error_before_any_io(
        self, storage: Storage, call: str, value: object
    ) -> None:
        """An argument of the right type but an impossible value is a ValueError naming it."""
        store = EventStore(untouched(storage), aggregates=[account])
        argument = call.split("-")[1]
        with pytest.raises(ValueError, match=argument):
            CALLS[call](store, value)

    def test_wrong_expected_version_never_turns_the_check_off(self, store: EventStore) -> None:
        """A str expected version is refused, so a stale write cannot slip through as ANY."""
        store.execute(account, "a", Open("ann"), Deposit(1)).unwrap()
        with pytest.raises(TypeError):
            store.execute(account, "a", Deposit(1), expected_version="1")  # type: ignore[arg-type]
        assert store.load(account, "a").version == 2

    def test_huge_at_version_is_the_latest_state(self, store: EventStore) -> None:
        """An at_version past anything storage can hold reads as the latest version."""
        store.execute(account, "a", Open("ann"), Deposit(4)).unwrap()
        assert store.load(account, "a", at_version=2**70).state == Account("ann", 4)

    def test_huge_stream_id_makes_a_short_message(self, store: EventStore) -> None:
        """A rejection on a 1 MB stream id names it in a message of bounded length."""
        sid = "x" * 1_000_000
        failure = store.execute(account, sid, Deposit(1)).failure()
        assert len(str(failure)) < 400
        assert "1000000 chars" in str(failure)


@attrs.frozen
class Noted:
    text: str


@attrs.frozen
class Priced:
    price: Decimal


@attrs.frozen
class Emit:
    event: object


@attrs.frozen
class Nothing:
    pass


def emitter() -> Aggregate[Nothing]:
    agg = Aggregate("emitter", initial=Nothing())

    @agg.evolve
    def noted(state: Nothing, event: Noted | Priced) -> Nothing:
        return state

    @agg.decide
    def emit(command: Emit, state: Nothing) -> object:
        return command.event

    return agg


BAD_EVENTS = [
    (Noted("lone \ud800 surrogate"), "text"),
    (Noted("\udfff"), "text"),
    (Priced(Decimal("sNaN")), "price"),
    (Priced(Decimal("NaN")), "price"),
]


class TestBadData:
    @pytest.mark.parametrize(("event", "field"), BAD_EVENTS, ids=repr)
    def test_unstorable_payload_is_an_event_validation_error(
        self, storage: Storage, event: object, field: str
    ) -> None:
        """Lone surrogates and NaN decimals are an EventValidationError naming the field."""
        agg = emitter()
        store = EventStore(storage, aggregates=[agg])
        result = store.execute(agg, "e", Emit(event))
        assert isinstance(result, Failure)
        error = result.failure()
        assert isinstance(error, EventValidationError)
        assert error.field == field
        assert field in str(error)
        assert store.events(agg, "e") == []

    @pytest.mark.parametrize(
        ("given", "field"),
        [
            ({"metadata": {"k": object()}}, "metadata"),
            ({"metadata": {"k": "\ud800"}}, "metadata"),
            ({"metadata": {"k": float("nan")}}, "metadata"),
            ({"metadata": {1: "int key"}}, "metadata"),
            ({"actor_id": "\ud800"}, "actor_id"),
            ({"correlation_id": "nul\0"}, "correlation_id"),
            ({"causation_id": 5}, "causation_id"),
        ],
        ids=repr,
    )
    def test_unstorable_context_is_an_event_validation_error(
        self, store: EventStore, given: dict[str, Any], field: str
    ) -> None:
        """Metadata that is not JSON, or an id no backend can store, fails naming the field."""
        with context(**given):
            result = store.execute(account, "a", Open("ann"))
        assert isinstance(result, Failure)
        error = result.failure()
        assert isinstance(error, EventValidationError)
        assert (error.field, error.event_type) == (field, "Opened")
        assert field in str(error)
        assert store.load(account, "a").version == 0
        assert list(store.read_all()) == []

    def test_unicode_that_is_valid_round_trips(self, storage: Storage) -> None:
        """Valid non-ASCII text (emoji, combining marks, a NUL inside JSON) is stored exactly."""
        agg = emitter()
        store = EventStore(storage, aggregates=[agg])
        text = "🚀 é\u0301 中文 \x00 \u2028"
        store.execute(agg, "e", Emit(Noted(text))).unwrap()
        assert [r.event for r in store.events(agg, "e")] == [Noted(text)]

    def test_any_with_bad_data_appends_nothing(self, storage: Storage) -> None:
        """Bad data is refused before the append also when no version is checked."""
        agg = emitter()
        store = EventStore(storage, aggregates=[agg])
        result = store.execute(agg, "e", Emit(Noted("\ud800")), expected_version=ANY)
        assert isinstance(result, Failure)
        assert store.events(agg, "e") == []
