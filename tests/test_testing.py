"""given / when / then: expectations, readable failures, raw events, snapshots."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
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
)
from syrupy.assertion import SnapshotAssertion

from eventsourcing_fn import (
    Aggregate,
    CommandError,
    EventStore,
    EventValidationError,
    StreamClosedError,
    UnknownEventTypeError,
    event_type,
)
from eventsourcing_fn.storage import NewEvent, StreamAppend
from eventsourcing_fn.testing import given, raw

AMBR = Path(__file__).parent / "__snapshots__" / "test_testing.ambr"


def side_by_side(message: str, left: str, right: str) -> bool:
    """Whether one line of `message` shows `left` and, to its right, `right`."""
    return any(
        left in line and line.find(right, line.index(left) + len(left)) != -1
        for line in message.splitlines()
    )


class TestThen:
    def test_then_passes_on_exactly_the_expected_events(self) -> None:
        """then(*events) passes when the commands produced exactly those events."""
        given(account, Opened("ann")).when(Deposit(5)).then(Deposited(5))

    def test_then_returns_the_scenario_for_chaining(self) -> None:
        """then, then_state and then_fails can be chained on one scenario."""
        scenario = given(account, Opened("ann")).when(Deposit(5))
        assert scenario.then(Deposited(5)) is scenario
        assert scenario.then_state(Account("ann", 5)) is scenario

    def test_then_without_events_means_none_were_produced(self) -> None:
        """then() passes when the commands produced no events."""
        given(account, Opened("ann")).when(Deposit(0)).then()
        given(account).then()

    def test_then_without_events_fails_when_some_were_produced(self) -> None:
        """then() is an assertion too: any produced event fails it."""
        with pytest.raises(AssertionError) as caught:
            given(account, Opened("ann")).when(Deposit(2)).then()
        assert "Deposited(amount=2)" in str(caught.value)

    def test_when_runs_several_commands_in_order(self) -> None:
        """when(*commands) runs every command against the evolving state."""
        given(account).when(Open("ann"), Deposit(5), Withdraw(2)).then(
            Opened("ann"), Deposited(5), Withdrawn(2)
        ).then_state(Account("ann", 3))

    def test_when_can_be_called_again_to_add_commands(self) -> None:
        """A second when() appends its commands after the first's."""
        given(account).when(Open("ann")).when(Deposit(1)).then(Opened("ann"), Deposited(1))

    def test_wrong_events_show_expected_and_actual_side_by_side(self) -> None:
        """A mismatch raises AssertionError with expected left and actual right, row by row."""
        with pytest.raises(AssertionError) as caught:
            given(account, Opened("ann")).when(Deposit(5)).then(Deposited(6))
        message = str(caught.value)
        assert side_by_side(message, "Deposited(amount=6)", "Deposited(amount=5)")
        assert side_by_side(message, "expected", "actual")

    def test_missing_and_extra_events_are_shown(self) -> None:
        """Rows present on one side only are shown against an empty cell."""
        with pytest.raises(AssertionError) as caught:
            given(account).when(Open("ann"), Deposit(1)).then(Opened("ann"))
        message = str(caught.value)
        assert side_by_side(message, "Opened(owner='ann')", "Opened(owner='ann')")
        (extra,) = [line for line in message.splitlines() if "Deposited(amount=1)" in line]
        assert extra.startswith("!")
        assert extra.split("|")[0].strip() == "!"

    def test_then_on_a_rejection_shows_the_failure(self) -> None:
        """Expecting events from a rejected command fails, showing the rejection."""
        with pytest.raises(AssertionError) as caught:
            given(account).when(Deposit(5)).then(Deposited(5))
        assert side_by_side(str(caught.value), "Deposited(amount=5)", "NotOpen")


class TestThenFails:
    @pytest.mark.parametrize(
        ("scenario", "error"),
        [
            (given(account).when(Deposit(5)), NotOpen),
            (given(account, Opened("ann")).when(Open("bob")), AlreadyOpen),
            (given(account).when(Deposit(5)), CommandError),
            (given(account, Opened("ann"), Closed()).when(Deposit(5)), StreamClosedError),
            (given(account, Opened("ann"), Closed()).when(Deposit(5)), CommandError),
        ],
        ids=["reason", "raised-reason", "failure", "closed", "closed-as-command-error"],
    )
    def test_passes_on_the_failure_type_or_its_reason_type(
        self, scenario: Any, error: type[BaseException]
    ) -> None:
        """then_fails(X) passes when the failure is an X or its .reason is an X."""
        scenario.then_fails(error)

    def test_passes_on_a_value_reason_type(self) -> None:
        """A decide that returns Failure(value) matches then_fails(type of that value)."""
        given(account, Opened("ann")).when(Withdraw(3)).then_fails(Insufficient)  # type: ignore[arg-type]

    def test_fails_on_another_failure_showing_both(self) -> None:
        """A different failure raises AssertionError with expected and actual side by side."""
        with pytest.raises(AssertionError) as caught:
            given(account).when(Deposit(5)).then_fails(AlreadyOpen)
        message = str(caught.value)
        assert side_by_side(message, "AlreadyOpen", "CommandError")
        assert "NotOpen" in message

    def test_fails_when_the_commands_succeed(self) -> None:
        """then_fails on a success raises, showing the events produced instead."""
        with pytest.raises(AssertionError) as caught:
            given(account, Opened("ann")).when(Deposit(5)).then_fails(NotOpen)
        assert side_by_side(str(caught.value), "NotOpen", "Deposited(amount=5)")

    def test_fails_when_the_commands_succeed_with_no_events(self) -> None:
        """A success with no events still fails then_fails, saying so."""
        with pytest.raises(AssertionError, match="no events"):
            given(account, Opened("ann")).when(Deposit(0)).then_fails(NotOpen)

    def test_unserializable_event_fails_as_in_the_store(self) -> None:
        """An event that would not serialize is an EventValidationError here as in execute."""
        given(account, Opened("ann")).when(Deposit("5")).then_fails(EventValidationError)  # type: ignore[arg-type]


class TestThenState:
    def test_state_after_given_events(self) -> None:
        """then_state with no commands checks the fold of the given events."""
        given(account, Opened("ann"), Deposited(5)).then_state(Account("ann", 5))

    def test_state_after_commands(self) -> None:
        """then_state checks the state after the commands' events too."""
        given(account, Opened("ann")).when(Deposit(5), Close()).then_state(
            Account("ann", 5, closed=True)
        )

    def test_wrong_state_shows_expected_and_actual(self) -> None:
        """A different state raises AssertionError with both states side by side."""
        with pytest.raises(AssertionError) as caught:
            given(account, Opened("ann")).then_state(Account("bob"))
        assert side_by_side(
            str(caught.value),
            "Account(owner='bob', balance=0, closed=False)",
            "Account(owner='ann', balance=0, closed=False)",
        )

    def test_state_after_a_rejection_fails(self) -> None:
        """then_state on a rejected command raises, showing the rejection."""
        with pytest.raises(AssertionError) as caught:
            given(account).when(Deposit(1)).then_state(Account())
        assert side_by_side(str(caught.value), "Account(", "NotOpen")


@event_type("Named", version=2)
@attrs.frozen
class Named:
    first: str
    last: str


def people() -> Aggregate[str]:
    agg = Aggregate("people", initial="")

    @agg.evolve
    def named(state: str, event: Named) -> str:
        return f"{event.last}, {event.first}"

    @agg.upcast("Named", from_version=1)
    def split(data: dict[str, Any]) -> dict[str, Any]:
        first, last = data["name"].split()
        return {"first": first, "last": last}

    return agg


class TestRawAndRecorded:
    def test_raw_goes_through_the_upcasters(self) -> None:
        """raw(type, payload, version=old) is upcast to the current class as a load would."""
        given(people(), raw("Named", {"name": "Ann Lee"}, version=1)).then_state("Lee, Ann")

    def test_raw_at_the_current_version_is_read_directly(self) -> None:
        """raw at the current version needs no upcaster."""
        given(people(), raw("Named", {"first": "Bo", "last": "Chu"}, version=2)).then_state(
            "Chu, Bo"
        )

    def test_raw_defaults_to_version_one(self) -> None:
        """raw without version= means version 1, the first stored version."""
        given(account, raw("Opened", {"owner": "ann"})).then_state(Account("ann"))

    def test_raw_matches_what_a_load_reads(self) -> None:
        """The state given raw() events equals the state a store loads from the same rows."""
        agg = people()
        store = EventStore(aggregates=[agg])
        stored = NewEvent("Named", 1, '{"name":"Cy Dee"}', uuid.uuid4(), datetime.now(UTC))
        store.storage.append([StreamAppend("people", "p", 0, [stored])])
        given(agg, raw("Named", {"name": "Cy Dee"}, version=1)).then_state(
            store.load(agg, "p").state
        )

    def test_raw_of_an_unknown_type_raises(self) -> None:
        """A raw event no class or upcaster can read raises UnknownEventTypeError."""
        with pytest.raises(UnknownEventTypeError, match="Nope"):
            given(account, raw("Nope", {}))

    def test_recorded_events_can_be_given(self) -> None:
        """Recorded envelopes from a store can seed a scenario."""
        store = EventStore(aggregates=[account])
        recorded = store.execute(account, "a", Open("ann"), Deposit(4)).unwrap().events
        given(account, *recorded).when(Withdraw(4)).then(Withdrawn(4))


class TestSnapshots:
    def test_success_scenario_matches_its_snapshot(self, snapshot: SnapshotAssertion) -> None:
        """A scenario's given events, commands, events and state match the stored snapshot."""
        given(account, Opened("ann")).when(Deposit(5), Withdraw(2)).then(snapshot)

    def test_rejected_scenario_matches_its_snapshot(self, snapshot: SnapshotAssertion) -> None:
        """A rejected scenario snapshots the failure type and reason."""
        given(account, Opened("ann")).when(Withdraw(9)).then(snapshot)

    def test_stored_snapshots_are_readable_and_stable(self) -> None:
        """The .ambr holds type names and fields, never ids, timestamps, positions or addresses."""
        text = AMBR.read_text()
        assert "test_success_scenario_matches_its_snapshot" in text
        assert "test_rejected_scenario_matches_its_snapshot" in text
        for word in ("Opened", "Deposited", "Withdrawn", "'owner': 'ann'", "'amount': 5"):
            assert word in text
        assert "Insufficient(balance=0, asked=9)" in text
        uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        assert re.search(uuid, text) is None
        assert re.search(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", text) is None
        assert re.search(r"0x[0-9a-f]{6,}", text) is None
        for word in ("position", "event_id", "recorded_at", "stream_id"):
            assert word not in text
