"""Notebook views: events, states and documents as HTML tables, every value escaped.

Jupyter and other notebooks call an object's `_repr_html_`; the values here carry one (or
`Recorded`, `Outcome`, `Loaded` and `Documents` delegate to the functions below).
"""

from __future__ import annotations

import dataclasses
import enum
import html
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, SupportsIndex, TypeVar, overload
from uuid import UUID

import attrs

from ._aggregate import Aggregate
from ._envelope import Loaded, Outcome, Recorded
from ._errors import explain

S = TypeVar("S")
_MAX_ROWS = 40  # a longer table shows its first and last rows
_MAX_CHARS = 120  # a longer value is cut
Row = Sequence[str]  # cells, already escaped
_LEFT = ' style="text-align: left"'  # notebooks right-align cells, which suits numbers only


class Records(list[Recorded[Any]]):
    """Recorded events: a plain list that renders as a table in notebooks.

    `Records(store.events(account, "a"))`, `Records(store.read_all())`; a slice is `Records` too.
    """

    @overload
    def __getitem__(self, index: SupportsIndex) -> Recorded[Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Records: ...
    def __getitem__(self, index: SupportsIndex | slice) -> Recorded[Any] | Records:
        if isinstance(index, slice):
            return Records(super().__getitem__(index))
        return super().__getitem__(index)

    def _repr_html_(self) -> str:
        return records_html(self, caption=_count(len(self), "event"))


@attrs.frozen
class Step(Mapping[str, Any], Generic[S]):
    """One event of a stream beside the aggregate's state after it.

    Also a mapping (a table row) of version, position, recorded_at, type, event and state, so
    `pandas.DataFrame(history)` has those columns.
    """

    record: Recorded[Any]
    state: S

    def __getitem__(self, key: str) -> Any:
        if key == "state":
            return self.state
        if key in _STEP_KEYS:
            return getattr(self.record, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(_STEP_KEYS)

    def __len__(self) -> int:
        return len(_STEP_KEYS)


_STEP_KEYS = ("version", "position", "recorded_at", "type", "event", "state")


class History(list[Step[S]], Generic[S]):
    """A stream's events, each beside the state after it: a list of `Step(record, state)`."""

    @overload
    def __getitem__(self, index: SupportsIndex) -> Step[S]: ...
    @overload
    def __getitem__(self, index: slice) -> History[S]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> Step[S] | History[S]:
        if isinstance(index, slice):
            return History(super().__getitem__(index))
        return super().__getitem__(index)

    def _repr_html_(self) -> str:
        return history_html(self)


def history_of(aggregate: Aggregate[S], records: Iterable[Recorded[Any]]) -> History[S]:
    """Fold `records` from the aggregate's initial state, keeping the state after each one."""
    state = aggregate.initial
    steps: History[S] = History()
    for record in records:
        state = aggregate.evolver(record.event)(state, record.event)
        steps.append(Step(record, state))
    return steps


# -- rendering ------------------------------------------------------------------------------


def records_html(records: Sequence[Recorded[Any]], caption: str | None = None) -> str:
    """Events as a table: position, stream, version, type, time, payload, metadata."""
    with_metadata = any(_metadata(r) for r in records)
    headers = ["position", "stream", "version", "type", "recorded_at", "payload"]
    headers += ["metadata"] if with_metadata else []
    rows = [
        [*_record_cells(r), *([_cell(_pairs(_metadata(r)))] if with_metadata else [])]
        for r in records
    ]
    return table(headers, rows, caption=caption)


def record_html(record: Recorded[Any]) -> str:
    """One event: its payload fields, then every envelope field that is set."""
    rows = [["type", _cell(_type(record))]]
    rows += [[_cell(name), _cell(_show(value))] for name, value in _fields(record.event)]
    envelope = {
        "stream": f"{record.stream_type}/{record.stream_id}",
        "version": record.version,
        "position": record.position,
        "event_id": record.event_id,
        "recorded_at": record.recorded_at,
        "actor_id": record.actor_id,
        "correlation_id": record.correlation_id,
        "causation_id": record.causation_id,
    }
    rows += [[name, _cell(_show(v))] for name, v in envelope.items() if v is not None]
    rows += [[_cell(str(k)), _cell(_show(v))] for k, v in record.metadata.items()]
    return table(["field", "value"], rows, caption="Recorded")


def outcome_html(outcome: Outcome[Any]) -> str:
    """What a command did: the events appended, the state after them, the cascade."""
    parts = [
        _title("Outcome", f"stream {outcome.stream_id}, now at version {outcome.version}"),
        records_html(outcome.events, caption=_count(len(outcome.events), "event") + " appended"),
        state_html(outcome.state, caption="state"),
    ]
    if outcome.cascade:
        parts.append(records_html(outcome.cascade, caption="cascade"))
    return _block(parts)


def loaded_html(loaded: Loaded[Any]) -> str:
    """A loaded state and the version it stands at."""
    where = f"stream {loaded.stream_id} at version {loaded.version}"
    if loaded.version == 0:
        where += " (no events yet)"
    return _block([_title("Loaded", where), state_html(loaded.state)])


def state_html(state: object, caption: str | None = None) -> str:
    """A state as a one-row table, a column per field (one `state` column otherwise)."""
    fields = _fields(state)
    if not fields:
        return table(["state"], [[_cell(_show(state))]], caption=caption)
    return table([n for n, _ in fields], [[_cell(_show(v)) for _, v in fields]], caption=caption)


def documents_html(name: str, documents: Mapping[str, Any]) -> str:
    """Documents by key, a column per field of the document class."""
    columns: dict[str, None] = {}
    for doc in documents.values():
        columns.update((n, None) for n, _ in _fields(doc) or [("document", None)])
    rows = []
    for key, doc in documents.items():
        values = dict(_fields(doc)) or {"document": doc}
        rows.append(
            [_cell(str(key)), *(_cell(_show(values[c])) if c in values else "" for c in columns)]
        )
    caption = f"{name}: {_count(len(documents), 'document')}"
    return table(["key", *columns], rows, caption=caption)


def history_html(history: Sequence[Step[Any]]) -> str:
    """Each event beside the state after it, the state's fields as columns."""
    state_columns: dict[str, None] = {}
    for step in history:
        state_columns.update((n, None) for n, _ in _fields(step.state) or [("state", None)])
    event_headers = ["position", "version", "type", "recorded_at", "payload"]
    rows = []
    for step in history:
        values = dict(_fields(step.state)) or {"state": step.state}
        state_cells = [_cell(_show(values[c])) if c in values else "" for c in state_columns]
        rows.append([*_record_cells(step.record, with_stream=False), *state_cells])
    groups = [("event", len(event_headers)), ("state after it", len(state_columns))]
    if not history:
        return table(event_headers, [], caption="History: 0 events")
    stream = f" of {history[0].record.stream_type}/{history[0].record.stream_id}"
    caption = f"History{stream}: {_count(len(history), 'event')}"
    return table([*event_headers, *state_columns], rows, caption=caption, groups=groups)


def error_html(error: BaseException, caption: str | None = None) -> str:
    """An error of ours: the reason first, then the message and the fields it carries."""
    fields = {k: v for k, v in vars(error).items() if not k.startswith("_")}
    reason = fields.pop("reason", None)
    rows = [["reason", _cell(explain(reason))]] if reason is not None else []
    rows.append(["message", _cell(str(error))])
    rows += [[_cell(k), _cell(_show(v))] for k, v in fields.items() if v is not None]
    name = f"{type(error).__module__}.{type(error).__qualname__}"
    return table(["", ""], rows, caption=f"{caption}: {name}" if caption else name)


def store_html(
    storage: str,
    aggregates: Sequence[Aggregate[Any]],
    components: Sequence[Any],
    listeners: Sequence[Any],
    inline: bool,
) -> str:
    """A store: its storage, each aggregate's commands and events, each component."""
    rows = [
        [
            "aggregate",
            _cell(a.name),
            _cell(", ".join(c.__qualname__ for c in a.command_classes)),
            _cell(", ".join(c.__qualname__ for c in a.event_classes)),
        ]
        for a in aggregates
    ]
    for component in [*components, *listeners]:
        kind = type(component).__name__
        handled = dict.fromkeys(c.__qualname__ for t in _tables(component) for c in t.by_class)
        rows.append([_cell(kind), _cell(component.name), "", _cell(", ".join(handled))])
    mode = "inline" if inline else "inline=False (workers apply components)"
    caption = f"EventStore on {storage} storage, {mode}"
    return table(["kind", "name", "commands", "events"], rows, caption=caption)


def _tables(component: Any) -> list[Any]:
    """The handler tables of a projection, process manager or listener."""
    names = ("handlers", "reactions", "first", "then")
    return [t for t in (getattr(component, n, None) for n in names) if t is not None]


def table(
    headers: Sequence[str],
    rows: Sequence[Row],
    *,
    caption: str | None = None,
    groups: Sequence[tuple[str, int]] = (),
) -> str:
    """An HTML table; `headers`, `caption` and group labels are escaped here, cells must be.

    A table longer than the limit shows its first and last rows around a gap.
    """
    out = ['<table class="eventsourcing-fn">']
    if caption is not None:
        out.append(f"<caption{_LEFT}>{html.escape(caption)}</caption>")
    out.append("<thead>")
    if groups:
        spans = "".join(f'<th colspan="{n}">{html.escape(label)}</th>' for label, n in groups)
        out.append(f"<tr>{spans}</tr>")
    out.append("<tr>" + "".join(f"<th{_LEFT}>{html.escape(h)}</th>" for h in headers) + "</tr>")
    out.append("</thead><tbody>")
    half = _MAX_ROWS // 2
    cut = len(rows) > _MAX_ROWS
    for row in [*rows[:half], None, *rows[-half:]] if cut else rows:
        if row is None:
            gap = f"… {len(rows) - 2 * half} more rows …"
            out.append(f'<tr><td colspan="{len(headers)}">{gap}</td></tr>')
        else:
            cells = "".join(f"<td{_LEFT}>{cell}</td>" for cell in row)
            out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _record_cells(record: Recorded[Any], *, with_stream: bool = True) -> list[str]:
    stream = [_cell(f"{record.stream_type}/{record.stream_id}")] if with_stream else []
    return [
        _cell(str(record.position)),
        *stream,
        _cell(str(record.version)),
        _cell(_type(record)),
        _cell(_show(record.recorded_at)),
        _cell(_pairs(dict(_fields(record.event)) or {"": record.event})),
    ]


def _metadata(record: Recorded[Any]) -> dict[str, Any]:
    """The context an event was recorded in: ids that are set (a UUID cut to its first eight
    digits, as the table has no room for more), then the metadata dict."""
    ids = {
        "actor_id": record.actor_id,
        "correlation_id": record.correlation_id,
        "causation_id": record.causation_id,
    }
    return {**{k: _abbreviated(v) for k, v in ids.items() if v is not None}, **record.metadata}


def _abbreviated(text: str) -> str:
    try:
        UUID(text)
    except ValueError:
        return text
    return text[:8] + "…"


def _type(record: Recorded[Any]) -> str:
    return record.type if record.schema_version == 1 else f"{record.type} v{record.schema_version}"


def _fields(obj: object) -> list[tuple[str, Any]]:
    """(name, value) of an attrs or dataclass instance's fields; [] for anything else."""
    cls = type(obj)
    if attrs.has(cls):
        return [(f.name, getattr(obj, f.name)) for f in attrs.fields(cls)]
    if dataclasses.is_dataclass(obj):
        return [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    return []


def _pairs(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_show(v)}" if k else _show(v) for k, v in values.items())


def _show(value: object) -> str:
    """A value as a reader wants it in a cell: text as is, times in ISO format."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(value, date | Decimal | UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    return repr(value)


def _cell(text: str) -> str:
    """`text` cut to the limit and escaped."""
    if len(text) > _MAX_CHARS:
        text = text[: _MAX_CHARS - 1] + "…"
    return html.escape(text)


def _title(kind: str, text: str) -> str:
    return f"<p><b>{html.escape(kind)}</b>: {html.escape(text)}</p>"


def _block(parts: Iterable[str]) -> str:
    return "<div>\n" + "\n".join(parts) + "\n</div>"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
