"""Given / when / then, pytest-native, with syrupy snapshots.

given(account, Opened("ann")).when(Deposit(5)).then(Deposited(5))
given(totals, Deposited(1), Deposited(2)).then_state(3)
given(balances, recorded(Opened("ann"), stream_id="a")).then_documents({"a": Balance("ann", 0)})
given(rows, Opened("ann")).then_rows("SELECT owner FROM accounts", [("ann",)])
given(shipping, PaymentReceived("o1")).when(Reserved("o1")).then_sends(Send(order, "o1", Ship()))

Every failed expectation is an AssertionError showing expected (left) and actual (right) side by
side, rows that differ marked with `!`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, overload

from returns.result import Failure

from .._aggregate import Aggregate
from .._codec import Codec, dumps
from .._decision import Decided, decide_all
from .._envelope import Recorded
from .._errors import CommandError
from .._process import ProcessManager
from .._projection import DocumentProjection, Projection, SqlProjection
from .._scenarios import (
    DocumentScenario,
    ProcessScenario,
    ProjectionScenario,
    Raw,
    SqlScenario,
    _lines,
    _side_by_side,
    envelopes,
    recorded,
)

__all__ = [
    "DocumentScenario",
    "ProcessScenario",
    "ProjectionScenario",
    "Raw",
    "Scenario",
    "SqlScenario",
    "given",
    "raw",
    "recorded",
]


def raw(type_name: str, payload: Mapping[str, Any], *, version: int = 1) -> Raw:
    """Stand for a stored event; `given` reads it through the upcasters as a load would."""
    return Raw(type_name, payload, version)


@overload
def given(component: Aggregate[Any], *events: object) -> Scenario: ...
@overload
def given(component: Projection[Any], *events: object) -> ProjectionScenario: ...
@overload
def given(component: DocumentProjection[Any], *events: object) -> DocumentScenario: ...
@overload
def given(component: SqlProjection, *events: object, connection: Any = None) -> SqlScenario: ...
@overload
def given(component: ProcessManager[Any], *events: object) -> ProcessScenario: ...
def given(
    component: object, *events: object, connection: Any = None
) -> Scenario | ProjectionScenario | DocumentScenario | SqlScenario | ProcessScenario:
    """Start a scenario from the events that happened before (plain, `Recorded` or `raw`).

    An aggregate folds them as one stream's history; `raw` events (aggregates only) go through
    its upcasters. For projections and process managers, a plain event stands in stream
    given/given at version and position = its place among the given events; pass `recorded(...)`
    to choose its stream (the default document key). `connection` (SQL projections only) is
    where the handlers write; by default a fresh in-memory SQLite database.
    """
    if connection is not None and not isinstance(component, SqlProjection):
        raise TypeError(f"given(connection=...) is for a SqlProjection, not {component!r}")
    if isinstance(component, Aggregate):
        return Scenario(component, events, ())
    if isinstance(component, Projection):
        return ProjectionScenario(component, envelopes(events))
    if isinstance(component, DocumentProjection):
        return DocumentScenario(component, envelopes(events))
    if isinstance(component, SqlProjection):
        return SqlScenario(component, envelopes(events), connection)
    if isinstance(component, ProcessManager):
        return ProcessScenario(component, envelopes(events))
    raise TypeError(
        "given() takes an Aggregate, Projection, DocumentProjection, SqlProjection or"
        f" ProcessManager, not {component!r}"
    )


class Scenario:
    """Given events, when commands: then assert on the events, the failure or the state."""

    def __init__(
        self, aggregate: Aggregate[Any], events: Sequence[object], commands: Sequence[object]
    ) -> None:
        self._aggregate = aggregate
        self._codec = Codec(aggregate.event_classes, aggregate.upcasters)
        self._given = [self._read(event) for event in events]
        self._commands = tuple(commands)

    def __repr__(self) -> str:
        return f"given({self._aggregate.name!r}, {len(self._given)} events).when{self._commands!r}"

    def when(self, *commands: object) -> Scenario:
        """The commands to run, in order, against the state the given events fold to."""
        return Scenario(self._aggregate, self._given, self._commands + commands)

    def then(self, *expected: object) -> Scenario:
        """Assert the commands produced exactly `expected` (none if empty), or match a snapshot."""
        if len(expected) == 1 and _is_snapshot(expected[0]):
            if not expected[0] == self._snapshot_data():  # syrupy records the diff itself
                raise AssertionError("the scenario does not match its snapshot")
            return self
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
            raise AssertionError(
                _side_by_side("expected events", _lines(expected), "actual events", _lines(events))
            )
        return self

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
        return self

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
            raise AssertionError(
                _side_by_side("expected state", [repr(state)], "actual state", [repr(actual[0])])
            )
        return self

    def _read(self, event: object) -> object:
        if isinstance(event, Recorded):
            return event.event
        if isinstance(event, Raw):
            return self._codec.reader(event.type, event.version)(dumps(dict(event.data)))
        return event

    def _decided(self) -> tuple[Any, list[Decided]] | CommandError:
        state = self._aggregate.fold(self._given)
        result = decide_all(self._aggregate, self._codec, None, state, self._commands)
        if isinstance(result, Failure):
            error: CommandError = result.failure()
            return error
        outcome: tuple[Any, list[Decided]] = result.unwrap()
        return outcome

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


def _is_snapshot(value: object) -> bool:
    try:
        from syrupy.assertion import SnapshotAssertion
    except ImportError:  # syrupy not installed: nothing can be a snapshot fixture
        return False
    return isinstance(value, SnapshotAssertion)


def _reason(reason: object) -> str:
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    return repr(reason)
