"""Pure serialization: event type names and versions, the strict JSON converter, upcasting."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from operator import attrgetter
from typing import Any, TypeVar
from uuid import UUID

import attrs
import cattrs

from ._definitions import redefines
from ._errors import ConfigurationError, UnknownEventTypeError

T = TypeVar("T")
C = TypeVar("C", bound=type)
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def event_type(name: str, *, version: int = 1) -> Callable[[C], C]:
    """Give an event class its stored type name and schema version (versions start at 1)."""
    if not name or version < 1:
        raise TypeError(f"event_type({name!r}, version={version}): need a name and version >= 1")

    def mark(cls: C) -> C:
        cls.__event_type__ = (name, version)  # type: ignore[attr-defined]
        return cls

    return mark


def type_info(cls: type) -> tuple[str, int]:
    """(name, version) of an event class: its `@event_type`, else (class name, 1)."""
    # Read the class's own __dict__ so a subclass does not inherit its parent's name.
    info: tuple[str, int] | None = cls.__dict__.get("__event_type__")
    return info if info is not None else (cls.__name__, 1)


def _structure_datetime(value: Any, _: type) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: only aware datetimes are stored")
    return parsed


def _unstructure_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: only aware datetimes are stored")
    return value.isoformat()


def _unstructure_decimal(value: Decimal) -> str:
    # A float would read back as a Decimal that compares equal (1.5 == Decimal("1.5")).
    if not isinstance(value, Decimal):
        raise TypeError(f"expected Decimal, got {type(value).__name__} {_clip(value)}")
    if value.is_nan():  # never equal to itself (a signalling NaN even raises when compared)
        raise ValueError(f"Decimal {str(value)!r} is not a number and never reads back equal")
    return str(value)


def _structure_exact(kind: type) -> Callable[[Any, type], Any]:
    """A structure hook that refuses anything but `kind` (cattrs would coerce "5" to 5)."""

    def structure(value: Any, cls: type) -> Any:
        if type(value) is not kind and not (kind is float and type(value) is int):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {_clip(value)}")
        # The hook also catches subclasses (IntEnum, StrEnum): build those from the raw value.
        return value if cls is kind else cls(value)

    return structure


def make_converter() -> cattrs.Converter:
    """The default converter: JSON-compatible, strict about types, aware datetimes only."""
    # JSON has no sets: (frozen)sets are stored as arrays and structured back by annotation.
    conv = cattrs.Converter(
        detailed_validation=True,
        forbid_extra_keys=True,
        unstruct_collection_overrides={AbstractSet: list},
    )
    for kind in (str, int, float, bool):
        conv.register_structure_hook(kind, _structure_exact(kind))
    conv.register_unstructure_hook(datetime, _unstructure_datetime)
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_unstructure_hook(date, date.isoformat)
    conv.register_structure_hook(date, lambda v, _: date.fromisoformat(v))
    conv.register_unstructure_hook(UUID, str)
    conv.register_structure_hook(UUID, lambda v, _: UUID(v))
    conv.register_unstructure_hook(Decimal, _unstructure_decimal)
    conv.register_structure_hook(Decimal, lambda v, _: Decimal(v))
    return conv


class InvalidPayload(ValueError):
    """An object that does not serialize as its annotations say; `.field` names where."""

    def __init__(self, type_name: str, field: str | None, problem: str) -> None:
        where = f"{type_name}.{field}" if field else type_name
        if len(problem) > 300:  # a huge value must not make a huge message
            problem = f"{problem[:285]}...({len(problem)} chars)"
        super().__init__(f"{where}: {problem}")
        self.type_name = type_name
        self.field = field


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_quote: Callable[[str], str] = json.encoder.encode_basestring
_INFINITIES = (float("inf"), float("-inf"))


class _Keys(dict[str, str]):
    """Field names as JSON object keys with their colon, made once per name."""

    def __missing__(self, name: str) -> str:
        key = self[name] = f"{_quote(name)}:"
        return key


_KEYS = _Keys()


_raw_decode = json.JSONDecoder().raw_decode


def loads(text: str) -> Any:
    """Parse JSON text; `json.loads` minus its wrapper's cost on the small payloads events are."""
    try:
        value, end = _raw_decode(text)
    except ValueError:
        return json.loads(text)  # leading whitespace, or a real error: let json say which
    return value if end == len(text) else json.loads(text)


def dumps(value: Any) -> str:
    """Compact JSON text that is valid UTF-8; never falls back to str() for unknown types.

    Raises `TypeError` for a value JSON cannot hold and `ValueError` for NaN, infinities and
    text with lone surrogates (which no UTF-8 database column can store).
    """
    text = _ENCODER.encode(value)
    if not text.isascii():
        _check_utf8(text)
    return text


def _check_utf8(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text holds a lone surrogate {text[exc.start]!r} at index {exc.start}, "
            "which is not valid UTF-8"
        ) from None


class Codec:
    """Encodes and decodes events and states for one store: names, versions, upcasters."""

    def __init__(
        self,
        classes: Iterable[type],
        upcasters: Mapping[tuple[str, int], Upcaster] | None = None,
        converter: cattrs.Converter | None = None,
    ) -> None:
        self.converter = converter or make_converter()
        self._default = converter is None  # only then are scalar hooks known to be exact
        self._encoders: dict[type, Callable[[Any], str]] = {}
        self._hooks: dict[type, tuple[Callable[[Any], Any], Callable[[Any, type], Any]]] = {}
        self._structures: dict[Any, Callable[[Any, Any], Any]] = {}
        self.reset(classes, upcasters)

    def reset(
        self, classes: Iterable[type], upcasters: Mapping[tuple[str, int], Upcaster] | None = None
    ) -> None:
        """Know exactly `classes` and `upcasters` from now on (registrations have changed)."""
        self._upcasters = dict(upcasters or {})
        self._by_class: dict[type, tuple[str, int]] = {}
        self._by_name: dict[str, tuple[type, int]] = {}
        self._readers: dict[tuple[str, int], Callable[[str], Any]] = {}
        for cls in classes:
            self.add(cls)

    def add(self, cls: type) -> None:
        """Know `cls` by its type name; two classes claiming one name is a ConfigurationError.

        A re-run definition of a known class (same module and qualified name) takes its place,
        so events read from now on are instances of the newer class.
        """
        name, version = type_info(cls)
        known = self._by_name.get(name)
        if known is not None and known[0] is not cls:
            if not redefines(cls, known[0]):
                one, other = known[0].__qualname__, cls.__qualname__
                if one == other:  # two classes that print alike: their modules tell them apart
                    one, other = _qualified(known[0]), _qualified(cls)
                raise ConfigurationError(
                    f"event type name {name!r} is claimed by both {one} and {other}"
                )
            self._readers = {k: v for k, v in self._readers.items() if k[0] != name}
        self._by_name[name] = (cls, version)
        self._by_class[cls] = (name, version)

    def knows(self, cls: type) -> bool:
        """Whether `cls` is one of this codec's event classes (or a re-run definition of one)."""
        return cls in self._by_class or self._adopt(cls)

    def name_of(self, cls: type) -> tuple[str, int]:
        """(type name, version) for an event class, registered or not."""
        info = self._by_class.get(cls)
        if info is not None:
            return info
        self._adopt(cls)
        return type_info(cls)

    def _adopt(self, cls: type) -> bool:
        """Take `cls` in place of the known class it redefines (a re-run class cell wins)."""
        known = self._by_name.get(type_info(cls)[0])
        if known is None or not redefines(cls, known[0]):
            return False
        self.add(cls)
        return True

    def encode_event(self, event: Any) -> tuple[str, int, str] | None:
        """(type name, version, JSON text) of an event of a known class; None for a class this
        codec does not know. Raises `InvalidPayload` as `encode` does."""
        plan = self.event_encoder(type(event))
        return None if plan is None else (plan[0], plan[1], plan[2](event))

    def event_encoder(self, cls: type) -> tuple[str, int, Callable[[Any], str]] | None:
        """(type name, version, encode) for events of `cls`, None for a class this codec does
        not know: a command's events of one class share one lookup."""
        info = self._by_class.get(cls)
        if info is None:
            if not self._adopt(cls):
                return None
            info = self._by_class[cls]
        return info[0], info[1], self.encoder(cls)

    def encode(self, obj: Any) -> str:
        """JSON text of `obj`, checked to read back equal; `InvalidPayload` otherwise."""
        cls = type(obj)
        if (cls is int or cls is bool) and self._default:  # a counter: nothing to check
            return _ENCODER.encode(obj)
        return self.encoder(cls)(obj)

    def encoder(self, cls: type) -> Callable[[Any], str]:
        """The function `encode` uses for objects of `cls`, made once per class."""
        encode = self._encoders.get(cls)
        if encode is None:
            plain = _plain_fields(cls) if self._default else None
            if plain is None:
                encode = self._encode_general
            else:
                encode = _quick_encoder(plain, partial(self._encode_plain, fields=plain))
            self._encoders[cls] = encode
        return encode

    def _encode_general(self, obj: Any) -> str:
        cls = type(obj)
        try:
            hooks = self._hooks.get(cls)
            if hooks is None:  # a field type cattrs cannot handle fails here, named below
                conv = self.converter
                hooks = self._hooks[cls] = (
                    conv.get_unstructure_hook(cls),
                    conv.get_structure_hook(cls),
                )
            text = dumps(hooks[0](obj))
            back = hooks[1](json.loads(text), cls)
        except Exception as exc:  # any failure here means: not serializable as annotated
            field = self._failing_field(obj, exc)
            raise InvalidPayload(self.name_of(cls)[0], field, _why(exc)) from exc
        if back != obj:
            field = _first_difference(obj, back)
            raise InvalidPayload(
                self.name_of(cls)[0],
                field,
                "value does not match its annotation (would not read back equal)",
            )
        return text

    def _encode_plain(self, obj: Any, fields: tuple[tuple[str, type], ...]) -> str:
        """The fast path for classes of str/int/float/bool fields: check each value's type and
        write the JSON text directly, exactly as the general path's encoder would."""
        parts = []
        for name, kind in fields:
            value = getattr(obj, name)
            cls = type(value)
            if cls is str and kind is str:
                if not value.isascii():
                    try:
                        _check_utf8(value)
                    except ValueError as exc:
                        raise InvalidPayload(self.name_of(type(obj))[0], name, str(exc)) from None
                parts.append(f"{_KEYS[name]}{_quote(value)}")
            elif cls is int and (kind is int or kind is float):
                parts.append(f"{_KEYS[name]}{int.__repr__(value)}")
            elif cls is float and kind is float:
                if value != value or value in _INFINITIES:
                    raise InvalidPayload(
                        self.name_of(type(obj))[0],
                        name,
                        f"Out of range float values are not JSON compliant: {value!r}",
                    )
                parts.append(f"{_KEYS[name]}{float.__repr__(value)}")
            elif cls is bool and kind is bool:
                parts.append(f"{_KEYS[name]}{'true' if value else 'false'}")
            else:
                raise InvalidPayload(
                    self.name_of(type(obj))[0],
                    name,
                    f"expected {kind.__name__}, got {cls.__name__} {_clip(value)}",
                )
        return "{" + ",".join(parts) + "}"

    def decode_state(self, text: str, cls: type[T]) -> T:
        """A state (or any attrs object) from its JSON text."""
        structure = self._structures.get(cls)
        if structure is None:
            structure = self._structures[cls] = self.converter.get_structure_hook(cls)
        return structure(loads(text), cls)  # type: ignore[no-any-return]

    def reader(self, name: str, version: int) -> Callable[[str], Any]:
        """A function from stored JSON text to the current event object (upcasting on the way)."""
        key = (name, version)
        read = self._readers.get(key)
        if read is None:
            read = self._readers[key] = self._make_reader(name, version)
        return read

    def upcast(self, name: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
        """Bring a stored payload of `name`@`version` up to the current version."""
        current = self._current_version(name, version)
        for step in range(version, current):
            data = self._upcasters[(name, step)](data)
        return data

    def _current_version(self, name: str, version: int) -> int:
        known = self._by_name.get(name)
        if known is None:
            raise UnknownEventTypeError(
                f"unknown event type {name!r} version {version}: no registered class has that name",
                type_name=name,
                version=version,
            )
        current = known[1]
        missing = [v for v in range(version, current) if (name, v) not in self._upcasters]
        if version > current or missing:
            why = (
                f"newer than the registered version {current}"
                if version > current
                else f"no upcaster from version {missing[0]}"
            )
            raise UnknownEventTypeError(
                f"cannot read event type {name!r} version {version}: {why}",
                type_name=name,
                version=version,
            )
        return current

    def _failing_field(self, obj: Any, exc: BaseException) -> str | None:
        """The first field of an attrs instance whose value alone fails to serialize."""
        if not attrs.has(type(obj)):
            return None
        if isinstance(exc, cattrs.ClassValidationError):
            for sub in exc.exceptions:
                for note in getattr(sub, "__notes__", []):
                    name = getattr(note, "name", None)
                    if isinstance(name, str):
                        return name
        for field in attrs.fields(type(obj)):
            try:
                dumps(self.converter.unstructure(getattr(obj, field.name), field.type))
            except Exception:  # the field that breaks serialization is the one to name
                return str(field.name)
        return None

    def _make_reader(self, name: str, version: int) -> Callable[[str], Any]:
        current = self._current_version(name, version)
        cls = self._by_name[name][0]
        structure = self.converter.get_structure_hook(cls)
        if version != current:
            return lambda text: structure(self.upcast(name, version, loads(text)), cls)
        plain = _plain_fields(cls) if self._default else None
        if plain is None:
            return lambda text: structure(loads(text), cls)
        size = len(plain)

        def read_plain(text: str) -> Any:
            # The fast path: exactly the fields, each of exactly its type, as cattrs would
            # accept them; anything else goes through cattrs, which names what is wrong.
            data = loads(text)
            if type(data) is dict and len(data) == size:
                for field, kind in plain:
                    value = data.get(field, _UNKNOWN)
                    found = type(value)
                    if found is not kind and not (kind is float and found is int):
                        break
                else:
                    return cls(**data)
            return structure(data, cls)

        return read_plain


_UNKNOWN: Any = object()
_SCALARS = (str, int, float, bool)


def _plain_fields(cls: type) -> tuple[tuple[str, type], ...] | None:
    """(name, type) of every field when an attrs class has only str/int/float/bool ones."""
    if not attrs.has(cls):
        return None
    try:
        fields = attrs.fields(attrs.resolve_types(cls))
    except Exception:  # unresolvable annotations: leave it to cattrs and the round trip
        return None
    if not all(f.type in _SCALARS and f.init and f.alias == f.name for f in fields):
        return None
    return tuple((f.name, f.type) for f in fields)


def _quick_encoder(
    fields: tuple[tuple[str, type], ...], careful: Callable[[Any], str]
) -> Callable[[Any], str]:
    """For a class of str and int fields only: fill a template made once, after one check that
    every value is exactly of its field's type and every text is ASCII. Anything else (an int
    in a float field, a subclass, other text, a wrong type) goes to `careful`, which writes
    the same text or says what is wrong."""
    kinds = tuple(kind for _, kind in fields)
    if not all(kind is str or kind is int for kind in kinds):
        return careful
    names = [name for name, _ in fields]
    template = "{" + ",".join(f"{_KEYS[name]}%s" for name in names) + "}"
    if len(names) == 1:
        return _quick_encoder_of_one(names[0], kinds[0], template, careful)
    get: Callable[[Any], tuple[Any, ...]]
    get = attrgetter(*names) if names else lambda obj: ()
    texts = [i for i, kind in enumerate(kinds) if kind is str]

    def encode(obj: Any) -> str:
        values = get(obj)
        if tuple(map(type, values)) != kinds:
            return careful(obj)
        if texts:
            filled = list(values)
            for i in texts:
                value = filled[i]
                if not value.isascii():
                    return careful(obj)
                filled[i] = _quote(value)
            values = tuple(filled)
        return template % values

    return encode


def _quick_encoder_of_one(
    name: str, kind: type, template: str, careful: Callable[[Any], str]
) -> Callable[[Any], str]:
    """`_quick_encoder` for a class of one field, the most common kind of event."""
    get = attrgetter(name)
    if kind is int:

        def encode_int(obj: Any) -> str:
            value = get(obj)
            return template % value if type(value) is int else careful(obj)

        return encode_int

    def encode_str(obj: Any) -> str:
        value = get(obj)
        if type(value) is str and value.isascii():
            return template % _quote(value)
        return careful(obj)

    return encode_str


def _qualified(cls: type) -> str:
    """`module.Qualname` of a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _clip(value: object, limit: int = 80) -> str:
    """A repr short enough for an error message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 15]}...({len(text)} chars)"


def _why(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc))
    return f"{type(exc).__name__}: {exc}"


def _first_difference(obj: Any, back: Any) -> str | None:
    if not attrs.has(type(obj)):
        return None
    for field in attrs.fields(type(obj)):
        if getattr(obj, field.name) != getattr(back, field.name):
            return str(field.name)
    return None
