"""Serialization: every supported payload type round-trips; anything else is rejected."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Failure

from eventsourcing_fn import (
    Aggregate,
    CommandError,
    EventStore,
    EventValidationError,
    event_type,
    make_converter,
)
from eventsourcing_fn.storage import Storage


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


@attrs.frozen
class Address:
    street: str
    zip_code: str | None = None


@attrs.frozen
class Rich:
    name: str
    count: int
    ratio: float
    flag: bool
    price: Decimal
    ref: UUID
    at: datetime
    day: date
    color: Color
    size: Size
    address: Address
    tags: tuple[str, ...]
    pair: tuple[int, str]
    labels: frozenset[str]
    scores: dict[str, int]
    history: list[Address]
    note: str | None = None
    due: datetime | None = None


@attrs.frozen
class Emit:
    """Appends whatever events it carries: the way to put any payload through the store."""

    events: tuple[Any, ...]


class Money:
    """Not an attrs class and not a supported type: needs a converter hook of its own."""

    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and other.cents == self.cents

    def __hash__(self) -> int:
        return hash(self.cents)

    def __repr__(self) -> str:
        return f"Money({self.cents})"


@event_type("Priced")
@attrs.frozen
class Priced:
    cost: Money


def emitter() -> Aggregate[int]:
    agg = Aggregate("emitter", initial=0)

    @agg.evolve
    def count(state: int, event: Rich | Priced) -> int:
        return state + 1

    @agg.decide
    def emit(command: Emit, state: int) -> tuple[Any, ...]:
        return command.events

    return agg


EMITTER = emitter()
PLUS_TWO = timezone(timedelta(hours=2))


def sample(**changes: Any) -> Rich:
    rich = Rich(
        name="Zoë 'quoted' \"double\" \x00 nul",
        count=-3,
        ratio=0.1,
        flag=True,
        price=Decimal("12.3400"),
        ref=UUID("12345678-1234-5678-1234-567812345678"),
        at=datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=PLUS_TWO),
        day=date(1999, 12, 31),
        color=Color.GREEN,
        size=Size.LARGE,
        address=Address("Main St", "12345"),
        tags=("a", "b", "a"),
        pair=(7, "seven"),
        labels=frozenset({"x", "y"}),
        scores={"ann": 1, "": 0, "ü": -1},
        history=[Address("Old Rd"), Address("Older Rd", None)],
        note=None,
        due=datetime(2030, 1, 1, tzinfo=UTC),
    )
    return attrs.evolve(rich, **changes)


class TestRoundTrip:
    def test_every_supported_type_round_trips_through_storage(self, storage: Storage) -> None:
        """An event using each supported type reads back equal, through every backend."""
        store = EventStore(storage, aggregates=[EMITTER])
        event = sample()
        store.execute(EMITTER, "s", Emit((event,))).unwrap()
        (recorded,) = store.events(EMITTER, "s")
        assert recorded.event == event
        assert [r.event for r in store.read_all()] == [event]

    def test_read_back_values_have_the_annotated_types(self, storage: Storage) -> None:
        """Decimals, UUIDs, enums, tuples and frozensets come back as those types."""
        store = EventStore(storage, aggregates=[EMITTER])
        store.execute(EMITTER, "s", Emit((sample(),))).unwrap()
        back = store.events(EMITTER, "s")[0].event
        assert type(back.price) is Decimal
        assert str(back.price) == "12.3400"
        assert type(back.ref) is UUID
        assert back.color is Color.GREEN
        assert back.size is Size.LARGE
        assert type(back.tags) is tuple
        assert type(back.pair) is tuple
        assert type(back.labels) is frozenset
        assert type(back.address) is Address
        assert type(back.history[0]) is Address
        assert type(back.day) is date

    def test_aware_datetimes_keep_their_instant_and_offset(self, storage: Storage) -> None:
        """An aware datetime reads back as the same instant, with its UTC offset."""
        store = EventStore(storage, aggregates=[EMITTER])
        store.execute(EMITTER, "s", Emit((sample(),))).unwrap()
        back = store.events(EMITTER, "s")[0].event
        assert back.at == sample().at
        assert back.at.utcoffset() == timedelta(hours=2)
        assert back.at.microsecond == 123456

    @pytest.mark.parametrize(
        "changes",
        [{"note": "set", "due": None}, {"note": None, "due": datetime(2001, 1, 1, tzinfo=UTC)}],
    )
    def test_optional_fields_round_trip_set_and_unset(self, changes: dict[str, Any]) -> None:
        """An optional field reads back as None when None, and as its value when set."""
        store = EventStore(aggregates=[EMITTER])
        event = sample(**changes)
        store.execute(EMITTER, "s", Emit((event,))).unwrap()
        assert store.events(EMITTER, "s")[0].event == event


BAD_VALUES = [
    pytest.param("count", "5", "str", id="str-in-int"),
    pytest.param("count", True, "int", id="bool-in-int"),
    pytest.param("flag", 1, "bool", id="int-in-bool"),
    pytest.param("ratio", "0.5", "str", id="str-in-float"),
    pytest.param("ratio", float("nan"), "float", id="nan"),
    pytest.param("price", 1.5, "float", id="float-in-decimal"),
    pytest.param("price", 2, "int", id="int-in-decimal"),
    pytest.param("at", datetime(2024, 1, 1, 12, 0), "naive", id="naive-datetime"),
    pytest.param("due", datetime(2024, 1, 1, 12, 0), "naive", id="naive-optional-datetime"),
    pytest.param("note", object(), "object", id="unsupported-object"),
    pytest.param("ref", str(uuid4()), None, id="str-in-uuid"),
    pytest.param("day", datetime(2024, 1, 1, tzinfo=UTC), None, id="datetime-in-date"),
    pytest.param("color", "green", "str", id="str-in-enum"),
    pytest.param("tags", ["a"], None, id="list-in-tuple"),
    pytest.param("labels", ["x"], None, id="list-in-frozenset"),
    pytest.param("scores", {1: 1}, None, id="int-key"),
    pytest.param("address", {"street": "x"}, None, id="dict-in-attrs-field"),
    pytest.param("name", Money(1), None, id="object-in-str"),
]


class TestStrict:
    @pytest.mark.parametrize(("field", "value", "mentions"), BAD_VALUES)
    def test_wrong_value_is_a_validation_failure_naming_type_and_field(
        self, storage: Storage, field: str, value: object, mentions: str | None
    ) -> None:
        """A value that does not serialize as annotated fails, naming type and field."""
        store = EventStore(storage, aggregates=[EMITTER])
        result = store.execute(EMITTER, "s", Emit((sample(**{field: value}),)))
        assert isinstance(result, Failure)
        error = result.failure()
        assert isinstance(error, EventValidationError)
        assert isinstance(error, CommandError)
        assert (error.event_type, error.field) == ("Rich", field)
        assert f"Rich.{field}" in str(error)
        if mentions is not None:
            assert mentions in str(error)
        assert store.events(EMITTER, "s") == []
        assert list(store.read_all()) == []

    def test_one_bad_event_among_good_ones_appends_nothing(self, storage: Storage) -> None:
        """Good events before a bad one in the same execute are not appended either."""
        store = EventStore(storage, aggregates=[EMITTER])
        bad = sample(count="5")
        error = store.execute(EMITTER, "s", Emit((sample(),)), Emit((sample(), bad))).failure()
        assert isinstance(error, EventValidationError)
        assert error.command == Emit((sample(), bad))
        assert store.load(EMITTER, "s").version == 0

    def test_nested_wrong_value_names_the_path(self) -> None:
        """A wrong value inside a nested class names the outer field and the inner path."""
        store = EventStore(aggregates=[EMITTER])
        error = store.execute(EMITTER, "s", Emit((sample(address=Address(5)),))).failure()  # type: ignore[arg-type]
        assert isinstance(error, EventValidationError)
        assert error.field == "address"
        assert "street" in str(error)

    def test_unsupported_field_type_without_a_hook_is_rejected(self) -> None:
        """A field of an unsupported class is a validation failure, never str()-ed."""
        store = EventStore(aggregates=[EMITTER])
        error = store.execute(EMITTER, "s", Emit((Priced(Money(5)),))).failure()
        assert isinstance(error, EventValidationError)
        assert (error.event_type, error.field) == ("Priced", "cost")


class TestConverter:
    def test_user_converter_is_used_for_events(self, storage: Storage) -> None:
        """EventStore(converter=...) serializes with the user's hooks, and reads back with them."""
        converter = make_converter()
        converter.register_unstructure_hook(Money, lambda m: f"{m.cents / 100:.2f} EUR")
        converter.register_structure_hook(
            Money, lambda v, _: Money(round(float(v.split()[0]) * 100))
        )
        store = EventStore(storage, aggregates=[EMITTER], converter=converter)
        store.execute(EMITTER, "s", Emit((Priced(Money(1250)),))).unwrap()
        assert store.events(EMITTER, "s")[0].event == Priced(Money(1250))
        assert '"12.50 EUR"' in storage.read_stream("emitter", "s", 0, None)[0].data

    def test_user_converter_still_gets_the_equality_check(self) -> None:
        """A lossy user hook is caught: the event must read back equal or nothing is stored."""
        converter = make_converter()
        converter.register_unstructure_hook(Money, lambda m: m.cents // 100)
        converter.register_structure_hook(Money, lambda v, _: Money(v * 100))
        store = EventStore(aggregates=[EMITTER], converter=converter)
        error = store.execute(EMITTER, "s", Emit((Priced(Money(1250)),))).failure()
        assert isinstance(error, EventValidationError)
        assert error.field == "cost"
        assert store.load(EMITTER, "s").version == 0


def offsets() -> st.SearchStrategy[timezone]:
    return st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))


addresses = st.builds(Address, st.text(), st.none() | st.text())
rich_events = st.builds(
    Rich,
    name=st.text(),
    count=st.integers(),
    ratio=st.floats(allow_nan=False, allow_infinity=False),
    flag=st.booleans(),
    price=st.decimals(allow_nan=False, allow_infinity=False),
    ref=st.uuids(),
    at=st.datetimes(timezones=offsets()),
    day=st.dates(),
    color=st.sampled_from(Color),
    size=st.sampled_from(Size),
    address=addresses,
    tags=st.lists(st.text(), max_size=4).map(tuple),
    pair=st.tuples(st.integers(), st.text()),
    labels=st.frozensets(st.text(), max_size=4),
    scores=st.dictionaries(st.text(), st.integers(), max_size=4),
    history=st.lists(addresses, max_size=3),
    note=st.none() | st.text(),
    due=st.none() | st.datetimes(timezones=offsets()),
)


class TestProperties:
    @settings(max_examples=50, deadline=None)
    @given(event=rich_events)
    def test_serialize_then_deserialize_is_identity(self, event: Rich) -> None:
        """Any event built from the supported types reads back equal after a store round trip."""
        store = EventStore(aggregates=[EMITTER])
        store.execute(EMITTER, "s", Emit((event,))).unwrap()
        assert store.events(EMITTER, "s")[0].event == event


@attrs.frozen
class Flat:
    name: str
    count: int
    ratio: float
    flag: bool


@attrs.frozen
class Counted:
    label: str
    count: int
    other: str


@attrs.frozen
class Label:
    label: str


@attrs.frozen
class Count:
    count: int


class TestFastPaths:
    @settings(max_examples=200, deadline=None)
    @given(value=st.text() | st.integers() | st.booleans() | st.floats() | st.none())
    def test_quick_one_field_templates_write_the_general_text(self, value: object) -> None:
        """A class of one str or int field is written as the general path writes it, or fails
        where it fails."""
        from eventsourcing_fn._codec import _ENCODER, Codec, InvalidPayload, make_converter

        codec = Codec([Label, Count])
        for cls, kind in ((Label, str), (Count, int)):
            obj = cls(value)
            try:
                if type(value) is not kind:
                    raise TypeError(f"not exactly a {kind.__name__}")
                general = _ENCODER.encode(make_converter().unstructure(obj))
                general.encode("utf-8")
            except (TypeError, UnicodeEncodeError):
                with pytest.raises(InvalidPayload):
                    codec.encode_event(obj)
                continue
            assert codec.encode_event(obj) == (cls.__name__, 1, general)

    @settings(max_examples=300, deadline=None)
    @given(
        label=st.text() | st.integers() | st.booleans(),
        count=st.integers() | st.booleans() | st.floats() | st.text(),
        other=st.text(),
    )
    def test_quick_template_writes_the_general_text(
        self, label: object, count: object, other: str
    ) -> None:
        """A class of str and int fields is written as the general path writes it, or fails
        where it fails, whatever the values' types."""
        from eventsourcing_fn._codec import _ENCODER, Codec, InvalidPayload, make_converter

        codec = Codec([Counted])
        obj = Counted(label, count, other)  # type: ignore[arg-type]
        exact = type(label) is str and type(count) is int
        if not exact:
            with pytest.raises(InvalidPayload):
                codec.encode_event(obj)
            return
        try:
            general = _ENCODER.encode(make_converter().unstructure(obj))
            general.encode("utf-8")
        except UnicodeEncodeError:
            with pytest.raises(InvalidPayload):
                codec.encode_event(obj)
            return
        assert codec.encode_event(obj) == ("Counted", 1, general)

    @settings(max_examples=300, deadline=None)
    @given(
        name=st.text(),
        count=st.integers(),
        ratio=st.floats() | st.integers(),
        flag=st.booleans(),
    )
    def test_fast_and_general_paths_agree(
        self, name: str, count: int, ratio: float, flag: bool
    ) -> None:
        """Flat classes written and read on the fast path give the general path's text and
        objects, or fail where it fails."""
        from eventsourcing_fn._codec import _ENCODER, Codec, InvalidPayload, make_converter

        codec = Codec([Flat])
        converter = make_converter()
        obj = Flat(name, count, ratio, flag)
        try:
            general = _ENCODER.encode(converter.unstructure(obj))
            general.encode("utf-8")
        except (ValueError, UnicodeEncodeError):
            with pytest.raises(InvalidPayload):
                codec.encode(obj)
            return
        assert codec.encode(obj) == general
        read = codec.reader("Flat", 1)(general)
        assert read == converter.structure(converter.unstructure(obj), Flat)
        assert type(read.ratio) is type(ratio)

    @pytest.mark.parametrize(
        "text",
        [
            '{"name":"a","count":1,"ratio":1.0}',
            '{"name":"a","count":1,"ratio":1.0,"flag":true,"extra":1}',
            '{"name":"a","count":true,"ratio":1.0,"flag":true}',
            '{"name":1,"count":1,"ratio":1.0,"flag":true}',
            '{"name":"a","count":1.5,"ratio":1.0,"flag":true}',
            '{"name":"a","count":1,"ratio":"1","flag":true}',
            "[1, 2]",
        ],
    )
    def test_fast_reader_refuses_what_the_general_one_refuses(self, text: str) -> None:
        """A stored payload the strict rules refuse fails on the fast path too."""
        import cattrs

        from eventsourcing_fn._codec import Codec

        with pytest.raises((cattrs.BaseValidationError, AttributeError)):
            Codec([Flat]).reader("Flat", 1)(text)
