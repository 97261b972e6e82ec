"""Given / when / then for aggregates: history, commands, and what they decided."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from .._aggregate import Aggregate
from .._codec import Codec, dumps
from .._decision import Decided, decide_all
from .._definitions import alike_note
from .._envelope import Recorded
from .._errors import CommandError, explain
from .._html import state_html, table
from .._scenarios import Raw, _lines, _side_by_side

_SHOWN = 3  # given events and commands a repr names before "..."


class Scenario:
    """Given events, when commands: then assert on the events, the failure or the state.

    In a notebook it shows as what was given, the commands, and what they did; after a
    `then...` that passed, it says so.
    """

    def __init__(
        self, aggregate: Aggregate[Any], events: Sequence[object], commands: Sequence[object]
    ) -> None:
        self._aggregate = aggregate
        self._codec = Codec(aggregate.event_classes, aggregate.upcasters)
        self._given = [self._read(event) for event in events]
        self._commands = tuple(commands)
        self._passed: list[str] = []  # the expectations checked so far, as written

    def __repr__(self) -> str:
        given = ", ".join([self._aggregate.name, *_few(self._given)])
        text = f"given({given})"
        if self._commands:
            text += f".when({', '.join(_few(self._commands))})"
        return text + "".join(f".{check}" for check in self._passed)

    def _repr_html_(self) -> str:
        given_rows = [[html.escape(repr(event))] for event in self._given]
        parts = [table(["event"], given_rows, caption=f"given {self._aggregate!r}")]
        if self._commands:
            rows = [[html.escape(repr(command))] for command in self._commands]
            parts.append(table(["command"], rows, caption="when"))
        actual = self._decided()
        if isinstance(actual, CommandError):
            reason = html.escape(explain(actual.reason) if actual.reason is not None else "")
            parts.append(f"<p><b>rejected</b>: {reason}</p>")
        else:
            rows = [[html.escape(repr(d.event))] for d in actual[1]]
            parts.append(table(["event"], rows, caption="then"))
            parts.append(state_html(actual[0], caption="state"))
        for check in self._passed:
            parts.append(f"<p>passed: {html.escape(check)}</p>")
        return "<div>\n" + "\n".join(parts) + "\n</div>"

    def when(self, *commands: object) -> Scenario:
        """The commands to run, in order, against the state the given events fold to."""
        return Scenario(self._aggregate, self._given, self._commands + commands)

    def then(self, *expected: object) -> Scenario:
        """Assert the commands produced exactly `expected` (none if empty), or match a snapshot."""
        if len(expected) == 1 and _is_snapshot(expected[0]):
            if not expected[0] == self._snapshot_data():  # syrupy records the diff itself
                raise AssertionError("the scenario does not match its snapshot")
            return self._pass("then(snapshot)")
        self._check_events(expected)
        actual = self._decided()
        if isinstance(actual, CommandError):
            raise AssertionError(
                _side_by_side(
                    "expected events",
                    _lines(expected),
                    "but the command failed",
                    [f"{type(actual).__name__}: {actual}"],
                )
            )
        events = [d.event for d in actual[1]]
        if events != list(expected):
            message = _side_by_side(
                "expected events", _lines(expected), "actual events", _lines(events)
            )
            if _lines(expected) == _lines(events):
                message += "\n" + alike_note(list(expected), events)
            raise AssertionError(message)
        return self._pass(f"then({', '.join(_lines(expected))})")

    def then_fails(self, error: type[BaseException]) -> Scenario:
        """Assert the commands were rejected with `error` (the failure or its `.reason`)."""
        actual = self._decided()
        if not isinstance(actual, CommandError):
            raise AssertionError(
                _side_by_side(
                    "expected failure",
                    [error.__name__],
                    "but the commands succeeded with",
                    _lines([d.event for d in actual[1]]) or ["(no events)"],
                )
            )
        if not (isinstance(actual, error) or isinstance(actual.reason, error)):
            raise AssertionError(
                _side_by_side(
                    "expected failure",
                    [error.__name__],
                    "actual failure",
                    [f"{type(actual).__name__}: {actual}"],
                )
            )
        return self._pass(f"then_fails({error.__name__})")

    def then_state(self, state: object) -> Scenario:
        """Assert the state after the given events and the commands."""
        actual = self._decided()
        if isinstance(actual, CommandError):
            raise AssertionError(
                _side_by_side(
                    "expected state",
                    [repr(state)],
                    "but the command failed",
                    [f"{type(actual).__name__}: {actual}"],
                )
            )
        if actual[0] != state:
            message = _side_by_side(
                "expected state", [repr(state)], "actual state", [repr(actual[0])]
            )
            if repr(state) == repr(actual[0]):
                message += "\n" + alike_note(state, actual[0])
            raise AssertionError(message)
        return self._pass(f"then_state({state!r})")

    def snapshot_text(self) -> str:
        """The text a syrupy snapshot of this scenario holds: given events, commands and what
        they did as type names, versions and payloads, never ids, times or positions."""
        data = self._snapshot_data()
        try:
            from syrupy.extensions.amber.serializer import AmberDataSerializer
        except ImportError:  # syrupy is a test dependency: without it, the same data as JSON
            return json.dumps(data, indent=2, ensure_ascii=False)
        return str(AmberDataSerializer.serialize(data))

    def _pass(self, check: str) -> Scenario:
        self._passed.append(check)
        return self

    def _check_events(self, expected: Sequence[object]) -> None:
        """TypeError when `then` got something that is neither an event nor a snapshot."""
        for item in expected:
            if self._aggregate.handles_event(type(item)):
                continue
            known = ", ".join(c.__qualname__ for c in self._aggregate.event_classes)
            hint = ""
            if isinstance(item, list | tuple):
                hint = "; pass the events one by one: then(*events)"
            elif self._aggregate.handles_command(type(item)):
                hint = f"; {type(item).__qualname__} is a command: commands go in when(...)"
            raise TypeError(
                f"then() takes the expected events (instances of {known or 'no class yet'}) or "
                f"a syrupy snapshot fixture, not {type(item).__qualname__} {item!r}{hint}"
            )

    def _read(self, event: object) -> object:
        if isinstance(event, Recorded):
            return event.event
        if isinstance(event, Raw):
            return self._codec.reader(event.type, event.version)(dumps(dict(event.data)))
        return event

    def _decided(self) -> tuple[Any, list[Decided]] | CommandError:
        state = self._aggregate.fold(self._given)
        return decide_all(self._aggregate, self._codec, None, state, self._commands)

    def _snapshot_data(self) -> dict[str, Any]:
        """The scenario as plain data: type names, versions and payloads, nothing run-specific."""
        actual = self._decided()
        data: dict[str, Any] = {
            "given": [self._describe(e) for e in self._given],
            "when": [
                {"type": type(c).__name__, "data": self._unstructure(c)} for c in self._commands
            ],
        }
        if isinstance(actual, CommandError):
            data["then"] = {"rejected": type(actual).__name__, "reason": _reason(actual.reason)}
        else:
            data["then"] = [self._describe(d.event) for d in actual[1]]
            data["state"] = self._unstructure(actual[0])
        return data

    def _describe(self, obj: object) -> dict[str, Any]:
        name, version = self._codec.name_of(type(obj))
        return {"type": name, "version": version, "data": self._unstructure(obj)}

    def _unstructure(self, obj: object) -> Any:
        try:
            return self._codec.converter.unstructure(obj)
        except Exception:  # not serializable: show it as users see it
            return repr(obj)


def _few(items: Sequence[object]) -> list[str]:
    shown = [repr(item) for item in items[:_SHOWN]]
    if len(items) > _SHOWN:
        shown.append(f"... ({len(items)} in all)")
    return shown


def _is_snapshot(value: object) -> bool:
    try:
        from syrupy.assertion import SnapshotAssertion
    except ImportError:  # syrupy not installed: nothing can be a snapshot fixture
        return False
    return isinstance(value, SnapshotAssertion)


def _reason(reason: object) -> str:
    return explain(reason)
