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

from collections.abc import Mapping
from typing import Any, overload

from .._aggregate import Aggregate
from .._process import ProcessManager
from .._projection import DocumentProjection, Projection, SqlProjection
from .._scenarios import (
    DocumentScenario,
    ProcessScenario,
    ProjectionScenario,
    Raw,
    SqlScenario,
    envelopes,
    recorded,
)
from ._aggregate import Scenario

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
